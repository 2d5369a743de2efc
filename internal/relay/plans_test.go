package relay_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webordinary/hermes"
)

const public = "https://hermes.example.com/hermes"

// planFor is the result of a plan job: the proposed plan, nothing changed.
func planFor(j hermes.Job, plan string) hermes.ResultMessage {
	m := resultFor(j, hermes.ResultPlan)
	m.Summary, m.FilesChanged, m.Commit, m.PreviewURL = plan, nil, "", ""
	return m
}

// approvalLink returns the token of the approval link in text.
func approvalLink(t *testing.T, text string) string {
	t.Helper()
	i := strings.Index(text, public+"/approvals/")
	if i < 0 {
		t.Fatalf("no approval link in %q", text)
	}
	tok := text[i+len(public+"/approvals/"):]
	if len(tok) < hermes.ApprovalTokenLen || !hermes.ValidApprovalToken(tok[:hermes.ApprovalTokenLen]) {
		t.Fatalf("malformed approval link in %q", text)
	}
	return tok[:hermes.ApprovalTokenLen]
}

func TestPlanResultCreatesTheApproval(t *testing.T) {
	e := newResultsEnv(t)
	e.results.PublicURL, e.results.ApprovalTTL = public, 2*time.Hour
	job := e.route(emailIn("p1@mail.example.com", "Blog", "Delete the whole blog"))
	if job.Type != hermes.JobPlan {
		t.Fatalf("job type %s, want plan", job.Type)
	}
	plan := "1. Delete src/pages/blog/\n2. Remove the Blog menu link"
	e.send(planFor(job, plan))
	e.poll()
	e.queueEmpty()

	items := e.outbox(hermes.KindPlan)
	if len(items) != 1 {
		t.Fatalf("%d plan replies, want 1", len(items))
	}
	it := items[0]
	token := approvalLink(t, it.Text)
	if !strings.Contains(it.Text, plan) || !strings.Contains(it.Text, `Or reply "approve" or "reject" to this email. The link works for 2 hours.`) ||
		!strings.Contains(it.HTML, public+"/approvals/"+token) || it.Headers["In-Reply-To"] != "<p1@mail.example.com>" || it.To != scottEmail {
		t.Errorf("plan reply = %+v", it)
	}
	a, err := e.db.ApprovalByTokenHash(e.ctx, hermes.HashApprovalToken(token))
	if err != nil {
		t.Fatalf("the link's token finds no approval: %v", err)
	}
	if a.ID != hermes.ApprovalIDFor(job.ID) || a.Status != hermes.ApprovalPending || a.Plan != plan || a.Instruction != "Delete the whole blog" ||
		a.SessionID != job.SessionID || a.ThreadID != job.ThreadID || a.ContainerID != "amelia_site_scott" || a.UserID != "scott" ||
		a.Reply.MessageID != "p1@mail.example.com" || !a.ExpiresAt.Equal(a.CreatedAt.Add(2*time.Hour)) {
		t.Errorf("approval = %+v", a)
	}
	if a.TokenHash == token || strings.Contains(a.TokenHash, token) {
		t.Errorf("the token is stored in the clear")
	}
	_, _, results := e.history(job.SessionID)
	if len(results) != 1 || results[0].Kind != hermes.KindPlan || results[0].Meta["approvalId"] != a.ID || results[0].Meta["approvalUrl"] != "" {
		t.Errorf("history = %+v", results)
	}

	// The same result again: nothing more, and the link keeps working.
	e.send(planFor(job, plan))
	e.poll()
	if items := e.outbox(hermes.KindPlan); len(items) != 1 {
		t.Errorf("%d plan replies after a redelivery", len(items))
	}
	if again, err := e.db.GetApproval(e.ctx, a.ID); err != nil || again.TokenHash != a.TokenHash || again.Version != a.Version {
		t.Errorf("the redelivery changed the approval: %+v %v", again, err)
	}
}

// A crash after the approval was stored but before the reply was queued:
// the redelivery rotates the token, and the link in the one reply works.
func TestPlanRedeliveryBeforeTheReply(t *testing.T) {
	e := newResultsEnv(t)
	e.results.PublicURL = public
	job := e.route(emailIn("p2@mail.example.com", "Blog", "Delete the whole blog"))
	fs := &failingStore{Store: e.db}
	fs.failEnqueue.Store(1)
	e.results.Store = fs
	e.results.Visibility = time.Millisecond
	e.send(planFor(job, "1. rm -r blog"))
	e.poll()
	first, err := e.db.GetApproval(e.ctx, hermes.ApprovalIDFor(job.ID))
	if err != nil {
		t.Fatalf("no approval after the first attempt: %v", err)
	}
	if len(e.outbox(hermes.KindPlan)) != 0 {
		t.Fatal("a reply was queued although the step failed")
	}
	time.Sleep(5 * time.Millisecond)
	e.poll()
	e.queueEmpty()
	items := e.outbox(hermes.KindPlan)
	if len(items) != 1 {
		t.Fatalf("%d plan replies", len(items))
	}
	token := approvalLink(t, items[0].Text)
	a, err := e.db.ApprovalByTokenHash(e.ctx, hermes.HashApprovalToken(token))
	if err != nil || a.ID != first.ID {
		t.Fatalf("the link of the reply finds %+v, %v", a, err)
	}
	if a.TokenHash == first.TokenHash {
		t.Errorf("the token was not rotated (the first one was never sent)")
	}
}

// staleOutbox answers the first GetOutbox NotFound: a handler that looked
// at the outbox just before another handler queued the reply.
type staleOutbox struct {
	hermes.Store
	stale atomic.Bool
}

func (s *staleOutbox) GetOutbox(ctx context.Context, id string) (*hermes.OutboxItem, error) {
	if s.stale.CompareAndSwap(true, false) {
		return nil, hermes.Errorf(hermes.NotFound, "not yet")
	}
	return s.Store.GetOutbox(ctx, id)
}

// Two handlers of the same plan result: the reply queued first wins, and
// the approval ends up with its token, not the second handler's.
func TestPlanRaceKeepsTheSentToken(t *testing.T) {
	e := newResultsEnv(t)
	e.results.PublicURL = public
	job := e.route(emailIn("p3@mail.example.com", "Blog", "Delete the whole blog"))
	body := mustJSON(t, planFor(job, "1. rm -r blog"))
	if err := e.results.HandleResult(e.ctx, body); err != nil { // the first handler
		t.Fatal(err)
	}
	first, err := e.db.GetApproval(e.ctx, hermes.ApprovalIDFor(job.ID))
	if err != nil {
		t.Fatal(err)
	}
	so := &staleOutbox{Store: e.db}
	so.stale.Store(true)
	e.results.Store = so
	if err := e.results.HandleResult(e.ctx, body); err != nil { // the second, late one
		t.Fatal(err)
	}
	items := e.outbox(hermes.KindPlan)
	if len(items) != 1 {
		t.Fatalf("%d plan replies", len(items))
	}
	token := approvalLink(t, items[0].Text)
	a, err := e.db.ApprovalByTokenHash(e.ctx, hermes.HashApprovalToken(token))
	if err != nil {
		t.Fatalf("the sent link finds no approval: %v", err)
	}
	if a.TokenHash != first.TokenHash || a.Version <= first.Version {
		t.Errorf("approval %+v: want the first token back after the second handler's rotation", a)
	}
}

func TestPlanResultOtherChannels(t *testing.T) {
	e := newResultsEnv(t)
	e.results.PublicURL = public
	for _, tc := range []struct {
		name string
		m    *hermes.Message
	}{
		{"sms", &hermes.Message{Channel: hermes.ChannelSMS, ChannelID: "SM1", From: "+15550100002", To: "+15550100001", Text: "Delete all the photos"}},
		{"chat", &hermes.Message{Channel: hermes.ChannelChat, ChannelID: "Ev1", From: "U0456", To: "C0123", Text: "Delete all the photos",
			Thread: hermes.ThreadHints{ChatThread: "1793534400.000100"}}},
		{"api", &hermes.Message{Channel: hermes.ChannelAPI, ChannelID: "amelia/m1", ClientID: "amelia", ProjectID: "site", UserID: "scott",
			Text: "Delete all the photos", Thread: hermes.ThreadHints{NewThread: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := e.route(tc.m)
			e.send(planFor(job, "1. Remove every photo"))
			e.poll()
			a, err := e.db.GetApproval(e.ctx, hermes.ApprovalIDFor(job.ID))
			if err != nil {
				t.Fatal(err)
			}
			_, _, results := e.history(job.SessionID)
			if len(results) != 1 {
				t.Fatalf("history results: %+v", results)
			}
			var text string
			if tc.name == "api" {
				text = results[0].Meta["approvalUrl"] // no reply: the link is on the history entry
			} else {
				for _, it := range e.outbox(hermes.KindPlan) {
					if it.ThreadID == job.ThreadID {
						text = it.Text
					}
				}
			}
			token := approvalLink(t, text)
			if hermes.HashApprovalToken(token) != a.TokenHash {
				t.Errorf("the link's token is not the approval's")
			}
			switch tc.name {
			case "sms":
				if len(text) > 160 {
					t.Errorf("SMS of %d characters: %q", len(text), text)
				}
			case "chat":
				if !strings.Contains(text, "|Review the plan>") {
					t.Errorf("chat reply %q", text)
				}
			}
		})
	}
}

// Without a public URL the plan goes out without a link; replies decide.
func TestPlanWithoutPublicURL(t *testing.T) {
	e := newResultsEnv(t)
	job := e.route(emailIn("p4@mail.example.com", "Blog", "Delete the whole blog"))
	e.send(planFor(job, "1. rm -r blog"))
	e.poll()
	items := e.outbox(hermes.KindPlan)
	if len(items) != 1 || strings.Contains(items[0].Text, "/approvals/") || !strings.Contains(items[0].Text, "rm -r blog") {
		t.Fatalf("plan replies %+v", items)
	}
	if _, err := e.db.GetApproval(e.ctx, hermes.ApprovalIDFor(job.ID)); err != nil {
		t.Errorf("no approval: %v", err)
	}
}
