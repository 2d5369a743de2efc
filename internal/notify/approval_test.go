package notify

import (
	"strings"
	"testing"
	"time"

	"github.com/webordinary/hermes"
)

const testApprovalURL = "https://hermes.example.com/approvals/Qm9ndXMtdG9rZW4tZm9yLXRlc3RzLW9ubHktMDEyMzQ"

func planResult() Result {
	return Result{
		ProjectName: "Amelia Stamps", Type: hermes.ResultPlan,
		Summary: "1. Delete src/pages/blog/\n2. Remove <b>the</b> blog link & its icon",
		Token:   "[ref:abcd2345]", ApprovalURL: testApprovalURL, ApprovalValidFor: 24 * time.Hour,
	}
}

func TestPlanEmail(t *testing.T) {
	text, html, err := ResultEmail(planResult())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Here is the plan for your request. Nothing has been changed yet.",
		"1. Delete src/pages/blog/\n2. Remove <b>the</b> blog link & its icon",
		"Approve or reject the plan here: " + testApprovalURL + "\n",
		`Or reply "approve" or "reject" to this email. The link works for 24 hours.`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	for _, want := range []string{
		`<a href="` + testApprovalURL + `"`,
		"Remove &lt;b&gt;the&lt;/b&gt; blog link &amp; its icon",
		"The link works for 24 hours.",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("html lacks %q:\n%s", want, html)
		}
	}
	if strings.Contains(html, "<b>the</b>") {
		t.Errorf("the plan is not escaped in the html:\n%s", html)
	}

	// Only plans get the link, and only an http(s) one.
	done := planResult()
	done.Type, done.Success = hermes.ResultDone, true
	if text, _, _ := ResultEmail(done); strings.Contains(text, "/approvals/") || strings.Contains(text, "approve") {
		t.Errorf("a done result mentions approval:\n%s", text)
	}
	bad := planResult()
	bad.ApprovalURL = "javascript:alert(1)"
	if text, html, _ := ResultEmail(bad); strings.Contains(text, "javascript") || strings.Contains(html, "javascript") {
		t.Errorf("a non-http approval link was used:\n%s", html)
	}
}

func TestPlanSMS(t *testing.T) {
	for _, name := range []string{"Amelia Stamps", strings.Repeat("Very Long Project Name ", 4)} {
		r := planResult()
		r.ProjectName = name
		r.Summary = strings.Repeat("Remove the whole blog section and its pages. ", 10)
		msg := ResultSMS(r)
		if septets(msg) > SMSMaxSeptets {
			t.Errorf("%d septets > %d: %q", septets(msg), SMSMaxSeptets, msg)
		}
		if !strings.Contains(msg, " "+testApprovalURL) || !strings.Contains(msg, "pprove or reject") {
			t.Errorf("no approval link: %q", msg)
		}
		if !strings.HasPrefix(strings.TrimPrefix(msg, "Amelia Stamps: "), "Plan ready, nothing changed yet:") {
			t.Errorf("status missing: %q", msg)
		}
	}
	// A short URL leaves room for the reply hint.
	r := planResult()
	r.ApprovalURL = "https://h.example/approvals/Qm9ndXMtdG9rZW4tZm9yLXRlc3RzLW9ubHktMDEyMzQ"
	r.Summary = "Delete the blog."
	if msg := ResultSMS(r); !strings.HasSuffix(msg, " Reply approve or reject, or open "+r.ApprovalURL+" ref:abcd2345") {
		t.Errorf("no reply hint: %q", msg)
	}
}

func TestPlanChat(t *testing.T) {
	msg := ResultChat(planResult())
	if !strings.Contains(msg, "<"+testApprovalURL+"|Review the plan> to approve or reject it, or reply `approve` or `reject` in this thread. The link works for 24 hours.") {
		t.Errorf("no approval line: %q", msg)
	}
	if !strings.Contains(msg, "Remove &lt;b&gt;the&lt;/b&gt; blog link &amp; its icon") {
		t.Errorf("plan not escaped: %q", msg)
	}
}

func TestValidFor(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "", time.Hour: "1 hour", 24 * time.Hour: "24 hours", 48 * time.Hour: "2 days",
		90 * time.Minute: "90 minutes", 30*time.Minute + time.Second: "31 minutes",
	} {
		if got := validFor(d); got != want {
			t.Errorf("validFor(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestApprovalAcks(t *testing.T) {
	for _, tc := range []struct {
		ack    Ack
		status string
		next   string // "" when nothing follows
	}{
		{Ack{Approval: AckPlan, WakeSeconds: 30}, "Got it — this is a large or destructive change, so your editor will first propose a plan. Nothing changes until you approve it.",
			"You'll get the plan in this thread, with a link to approve or reject it."},
		{Ack{Approval: AckApproved, WakeSeconds: 30}, "Approved — your editor is waking up, usually about 30 seconds.", "You'll get a reply in this thread when it's done."},
		{Ack{Approval: AckApproved, Queued: true}, "Approved — queued behind your current request.", "You'll get a reply in this thread when it's done."},
		{Ack{Approval: AckApproved}, "Approved — working on it now.", "You'll get a reply in this thread when it's done."},
		{Ack{Approval: AckRejected}, "OK — the plan is rejected and nothing was changed.", ""},
		{Ack{Approval: AckAlreadyApproved}, "That plan was approved already; the change is on its way or done.", ""},
		{Ack{Approval: AckAlreadyRejected}, "That plan was rejected already, so nothing was changed. Send your request again for a new plan.", ""},
		{Ack{Approval: AckExpired}, "That plan has expired and nothing was changed. Send your request again for a new plan.", ""},
	} {
		text, html, err := AckEmail(fill(tc.ack))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(text, tc.status+"\n") {
			t.Errorf("%s: text starts %q", tc.ack.Approval, text)
		}
		for _, next := range []string{"You'll get the plan in this thread", "You'll get a reply in this thread"} {
			want := tc.next != "" && strings.HasPrefix(tc.next, next)
			if strings.Contains(text, next) != want || strings.Contains(html, next) != want {
				t.Errorf("%s: %q shown: %v, want %v:\n%s", tc.ack.Approval, next, !want, want, text)
			}
		}
		if sms := AckSMS(fill(tc.ack)); septets(sms) > SMSMaxSeptets || !strings.HasPrefix(sms, "Amelia Stamps: "+toGSM7(tc.status)) && !strings.HasPrefix(sms, toGSM7(tc.status)) {
			t.Errorf("%s: sms %q", tc.ack.Approval, sms)
		}
		if chat := AckChat(fill(tc.ack)); !strings.HasPrefix(chat, tc.status) {
			t.Errorf("%s: chat %q", tc.ack.Approval, chat)
		}
	}
}
