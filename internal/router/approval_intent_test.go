package router_test

// Replies to a waiting plan that the keyword rules read as neither a yes
// nor a no, read by a Model that is also a hermes.IntentReader (SPEC §7,
// §10): its approval or rejection decides through the same path as a
// plain "approve"; anything else leaves the reply an instruction.

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/classify"
	"github.com/webordinary/hermes/internal/router"
)

// fakeReader classifies instructions with the keyword rules and reads
// replies as intent says (or fails with err), recording what it was asked.
type fakeReader struct {
	classify.Rules
	mu      sync.Mutex
	intent  hermes.Intent
	err     error
	replies []string
	plans   []string
}

func (f *fakeReader) ReplyIntent(_ context.Context, reply, plan string) (hermes.ReplyIntent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replies = append(f.replies, reply)
	f.plans = append(f.plans, plan)
	if f.err != nil {
		return hermes.ReplyIntent{}, f.err
	}
	return hermes.ReplyIntent{Intent: f.intent, Reason: "the fake reads " + string(f.intent)}, nil
}

func (f *fakeReader) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.replies)
}

var _ hermes.IntentReader = (*fakeReader)(nil)

// logBuffer collects the router's JSON log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// withReader makes f the router's model and collects its log in logs.
func withReader(f *fakeReader, logs *logBuffer) envOption {
	return withRouter(func(r *router.Router) {
		r.Model = f
		if logs != nil {
			r.Log = slog.New(slog.NewJSONHandler(logs, nil))
		}
	})
}

// decisionEntry returns the history entry of the reply that decided the
// approval.
func (e *env) decisionEntry(sessionID, approvalID string) *hermes.HistoryEntry {
	e.t.Helper()
	for _, h := range e.history(sessionID) {
		if h.Direction == hermes.DirectionIn && h.Meta["approvalId"] == approvalID && h.Meta["decision"] != "" {
			return h
		}
	}
	e.t.Fatalf("no history entry of the decision of %s in session %s", approvalID, sessionID)
	return nil
}

func TestModelReadsAnApproval(t *testing.T) {
	f := &fakeReader{intent: hermes.IntentApprove}
	logs := &logBuffer{}
	e := newEnv(t, withRunner(), withReader(f, logs))
	first := simple("<ma1@example.com>", "Delete the whole blog")
	a := e.planned(first, blogPlan)
	if f.calls() != 0 {
		t.Fatalf("the model read %d replies before there was a plan", f.calls())
	}

	msg := reply("<ma2@example.com>", "yes please, do it now, thanks so much!!\n\n> Here is the plan:\n> "+strings.ReplaceAll(blogPlan, "\n", "\n> "), first)
	out := e.route(msg)
	if out.Status != router.Queued || out.JobID != hermes.ExecuteJobID(a.ID) {
		t.Fatalf("outcome = %+v, want the execute job queued", out)
	}
	if f.calls() != 1 || f.replies[0] != "yes please, do it now, thanks so much!!" || f.plans[0] != blogPlan {
		t.Fatalf("the model was asked %q with plans %q, want the unquoted reply and the plan once", f.replies, f.plans)
	}
	job := e.onlyJob(scottInput)
	if job.Type != hermes.JobExecute || job.ApprovalID != a.ID || job.Plan != blogPlan || job.Reply.MessageID != "ma2@example.com" {
		t.Errorf("execute job = %+v", job)
	}
	got := e.approval(a.ID)
	if got.Status != hermes.ApprovalApproved || got.DecidedVia != hermes.ViaReply || got.DoneAt == nil {
		t.Errorf("approval = %s via %q done %v", got.Status, got.DecidedVia, got.DoneAt)
	}
	h := e.decisionEntry(out.SessionID, a.ID)
	if h.Meta["decision"] != "approve" || h.Meta["decidedBy"] != router.DecidedByModel || h.Meta["decisionReason"] != "the fake reads approve" ||
		h.Meta["jobId"] != out.JobID || h.Meta["type"] != hermes.JobExecute {
		t.Errorf("history meta = %v", h.Meta)
	}
	if !strings.Contains(logs.String(), `"decided_by":"model"`) {
		t.Errorf("the log does not say the model decided:\n%s", logs)
	}
	items := e.outboxFor(a.ThreadID)
	if last := items[len(items)-1]; !strings.HasPrefix(last.Text, "Approved — ") || last.Headers["In-Reply-To"] != "<ma2@example.com>" {
		t.Errorf("acknowledgement = %q (In-Reply-To %q)", last.Text, last.Headers["In-Reply-To"])
	}

	// A redelivery does nothing, and asks nothing.
	if out := e.route(msg); out.Status != router.Duplicate {
		t.Errorf("redelivery: %+v", out)
	}
	// Once the plan is decided, another such reply is an instruction: the
	// model is not asked.
	out = e.queued(reply("<ma3@example.com>", "brilliant, thanks a million!!", first))
	if job := e.onlyJob(scottInput); job.ID != out.JobID || job.Type != hermes.JobInstruction {
		t.Errorf("a reply to a decided plan was queued as %+v", job)
	}
	if f.calls() != 1 {
		t.Errorf("the model was asked %d times, want once", f.calls())
	}
}

func TestModelReadsARejection(t *testing.T) {
	f := &fakeReader{intent: hermes.IntentReject}
	e := newEnv(t, withReader(f, nil))
	first := simple("<mr1@example.com>", "Delete the whole gallery")
	a := e.planned(first, "1. Delete src/pages/gallery/")
	before := len(e.outbox())
	out := e.route(reply("<mr2@example.com>", "hmm, actually let's not touch the gallery", first))
	if out.Status != router.Answered || out.Reason != router.ReasonRejected || out.JobID != "" {
		t.Fatalf("outcome = %+v", out)
	}
	if jobs := e.takeJobs(scottInput); len(jobs) != 0 {
		t.Errorf("a rejection queued jobs: %+v", jobs)
	}
	got := e.approval(a.ID)
	if got.Status != hermes.ApprovalRejected || got.DecidedVia != hermes.ViaReply || got.DoneAt == nil {
		t.Errorf("approval = %s via %q done %v", got.Status, got.DecidedVia, got.DoneAt)
	}
	items := e.outbox()
	var told []*hermes.OutboxItem
	for _, it := range items {
		if it.Kind == "rejected" {
			told = append(told, it)
		}
	}
	if len(items) != before+1 || len(told) != 1 || !strings.HasPrefix(told[0].Text, "OK — the plan is rejected and nothing was changed.") ||
		told[0].Headers["In-Reply-To"] != "<mr2@example.com>" {
		t.Fatalf("outbox after the rejection: %d items (was %d), rejections %+v", len(items), before, told)
	}
	if h := e.decisionEntry(out.SessionID, a.ID); h.Meta["decision"] != "reject" || h.Meta["decidedBy"] != router.DecidedByModel {
		t.Errorf("history meta = %v", h.Meta)
	}
}

// A reply the model reads as an instruction, or cannot read, is an
// instruction as it is without a model; the plan still waits.
func TestModelLeavesAnInstruction(t *testing.T) {
	for _, c := range []struct {
		name   string
		intent hermes.Intent
		err    error
	}{
		{"an instruction", hermes.IntentInstruction, nil},
		{"an unknown intent", "maybe", nil},
		{"unavailable", "", hermes.Errorf(hermes.Unavailable, "bedrock is down")},
		{"a malformed answer", "", hermes.Errorf(hermes.Internal, "the model's answer is not the JSON object asked for")},
		{"too slow", "", hermes.E("bedrock.ReplyIntent", hermes.Unavailable, context.DeadlineExceeded)},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeReader{intent: c.intent, err: c.err}
			logs := &logBuffer{}
			e := newEnv(t, withReader(f, logs))
			first := simple("<mi1@example.com>", "Delete the whole blog")
			a := e.planned(first, blogPlan)
			out := e.queued(reply("<mi2@example.com>", "sure, but keep the footer", first))
			job := e.onlyJob(scottInput)
			if job.ID != out.JobID || job.Type != hermes.JobInstruction || job.Instruction != "sure, but keep the footer" || job.ApprovalID != "" {
				t.Errorf("job = %+v, want the reply as an instruction", job)
			}
			if f.calls() != 1 {
				t.Errorf("the model was asked %d times, want once", f.calls())
			}
			if got := e.approval(a.ID); got.Status != hermes.ApprovalPending || got.DecidedAt != nil {
				t.Errorf("the approval changed: %+v", got)
			}
			for _, h := range e.history(out.SessionID) {
				if h.ID == out.JobID && (h.Meta["decision"] != "" || h.Meta["decidedBy"] != "") {
					t.Errorf("the instruction's history entry has a decision: %v", h.Meta)
				}
			}
			if c.err != nil && !strings.Contains(logs.String(), `"level":"WARN","msg":"the model could not read the reply to the plan`) {
				t.Errorf("no warning of the model's failure:\n%s", logs)
			}
		})
	}
}

// The safety rule: the model's approval counts only for a short reply that
// the keyword rules do not flag as destructive or large.
func TestModelApprovalSafetyRule(t *testing.T) {
	long := strings.Repeat("Yes, that all sounds wonderful to me. ", 6) // 228 characters
	for _, c := range []struct {
		name, text string
		want       string // the type of the job queued
	}{
		{"too long", long, hermes.JobInstruction},
		{"too long for one paragraph", long[:120] + "\n" + long[120:], hermes.JobInstruction},
		{"destructive", "sure, and delete the whole gallery too", hermes.JobPlan},
		{"large", "lovely!! while you're at it, redesign the homepage", hermes.JobPlan},
		{"short, with a signature", "lovely, thanks so much!!\n\nCheers,\nScott\n" + strings.Repeat("Amelia Stamps, 1 High Street, Springfield\n", 6), hermes.JobExecute},
		{"short, quoting a long plan", "yes please, thanks so much!!\n\n> " + strings.Repeat("Delete every page. ", 20), hermes.JobExecute},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeReader{intent: hermes.IntentApprove}
			e := newEnv(t, withReader(f, nil))
			first := simple("<ms1@example.com>", "Delete the whole blog")
			a := e.planned(first, blogPlan)
			if approve, reject := classify.ApprovalReply(c.text); approve || reject {
				t.Fatalf("the keyword rules read %q as a decision", c.text)
			}
			out := e.queued(reply("<ms2@example.com>", c.text, first))
			job := e.onlyJob(scottInput)
			if job.Type != c.want {
				t.Fatalf("job = %s, want %s", job.Type, c.want)
			}
			if f.calls() != 1 {
				t.Errorf("the model was asked %d times, want once", f.calls())
			}
			got := e.approval(a.ID)
			if c.want == hermes.JobExecute {
				if got.Status != hermes.ApprovalApproved || job.ApprovalID != a.ID {
					t.Errorf("approval %s, job %+v", got.Status, job)
				}
				return
			}
			if job.ID != out.JobID || job.Instruction != c.text || got.Status != hermes.ApprovalPending {
				t.Errorf("job %+v, approval %s: want the reply as an instruction and the plan waiting", job, got.Status)
			}
		})
	}
}

// A plain yes or no is read by the keyword rules; the model is not asked.
func TestPlainReplyDoesNotAskTheModel(t *testing.T) {
	f := &fakeReader{intent: hermes.IntentReject} // it would say the opposite
	e := newEnv(t, withReader(f, nil))
	first := simple("<mp1@example.com>", "Delete the whole blog")
	a := e.planned(first, blogPlan)
	out := e.route(reply("<mp2@example.com>", "yes", first))
	if out.Status != router.Queued || out.JobID != hermes.ExecuteJobID(a.ID) {
		t.Fatalf("outcome = %+v", out)
	}
	if h := e.decisionEntry(out.SessionID, a.ID); h.Meta["decidedBy"] != router.DecidedByKeywords || h.Meta["decisionReason"] != "" {
		t.Errorf("history meta = %v", h.Meta)
	}
	if job := e.onlyJob(scottInput); job.Type != hermes.JobExecute {
		t.Errorf("job = %+v", job)
	}
	f.intent = hermes.IntentApprove
	other := simple("<mp3@example.com>", "Delete all the photos")
	b := e.planned(other, "1. rm -r photos")
	if out := e.route(reply("<mp4@example.com>", "No, don't do it", other)); out.Status != router.Answered || out.Reason != router.ReasonRejected {
		t.Fatalf("outcome = %+v", out)
	}
	if got := e.approval(b.ID); got.Status != hermes.ApprovalRejected {
		t.Errorf("approval %s", got.Status)
	}
	if f.calls() != 0 {
		t.Errorf("the model was asked %q", f.replies)
	}
}

// A thread without a pending approval — none, an expired one, a decided
// one — never asks the model.
func TestNoPendingApprovalDoesNotAskTheModel(t *testing.T) {
	f := &fakeReader{intent: hermes.IntentApprove}
	e := newEnv(t, withReader(f, nil))
	ambiguous := "yes please, do it now, thanks so much!!"

	plain := simple("<mn1@example.com>", "Make the header blue")
	e.queued(plain)
	e.takeJobs(scottInput)
	e.queued(reply("<mn2@example.com>", ambiguous, plain))
	if job := e.onlyJob(scottInput); job.Type != hermes.JobInstruction {
		t.Errorf("a reply on a thread without a plan was queued as %s", job.Type)
	}

	expired := simple("<mn3@example.com>", "Delete the whole blog")
	a := e.planned(expired, blogPlan)
	e.clock.Advance(hermes.DefaultApprovalTTL)
	e.queued(reply("<mn4@example.com>", ambiguous, expired))
	if job := e.onlyJob(scottInput); job.Type != hermes.JobInstruction {
		t.Errorf("a reply to an expired plan was queued as %s", job.Type)
	}
	if got := e.approval(a.ID); got.Status != hermes.ApprovalPending || got.DecidedAt != nil {
		t.Errorf("the expired approval changed: %+v", got)
	}

	rejected := simple("<mn5@example.com>", "Delete the whole gallery")
	b := e.planned(rejected, "1. rm -r gallery")
	if out := e.route(reply("<mn6@example.com>", "reject", rejected)); out.Status != router.Answered {
		t.Fatalf("rejection: %+v", out)
	}
	e.queued(reply("<mn7@example.com>", ambiguous, rejected))
	if job := e.onlyJob(scottInput); job.Type != hermes.JobInstruction {
		t.Errorf("a reply to a rejected plan was queued as %s", job.Type)
	}
	if got := e.approval(b.ID); got.Status != hermes.ApprovalRejected {
		t.Errorf("approval %s", got.Status)
	}

	// A reply that is all quote has nothing to read.
	pending := simple("<mn8@example.com>", "Delete all the photos")
	e.planned(pending, "1. rm -r photos")
	e.queued(reply("<mn9@example.com>", "> 1. rm -r photos\n> reply approve or reject", pending))
	if job := e.onlyJob(scottInput); job.Type != hermes.JobInstruction {
		t.Errorf("an all-quote reply was queued as %s", job.Type)
	}
	if f.calls() != 0 {
		t.Errorf("the model was asked %q", f.replies)
	}
}

// A decision the model read whose carrying out failed is carried out when
// the reply is redelivered; the execute job is queued once.
func TestModelApprovalInterruptedIsCarriedOutOnRetry(t *testing.T) {
	f := &fakeReader{intent: hermes.IntentApprove}
	fq := &failingSend{}
	e := newEnv(t, withReader(f, nil), withQueues(func(q hermes.Queues) hermes.Queues { fq.Queues = q; return fq }))
	first := simple("<mt1@example.com>", "Delete the whole blog")
	a := e.planned(first, blogPlan)

	msg := reply("<mt2@example.com>", "yes please, do it now, thanks so much!!", first)
	fq.on = true
	if _, err := e.r.Route(e.ctx, msg); err == nil || !hermes.IsKind(err, hermes.Unavailable) {
		t.Fatalf("Route with the queue down: %v, want Unavailable", err)
	}
	if got := e.approval(a.ID); got.Status != hermes.ApprovalApproved || got.DoneAt != nil {
		t.Fatalf("after the failure: %s done %v", got.Status, got.DoneAt)
	}
	fq.on = false
	out := e.route(msg) // the channel redelivers
	if out.Status != router.Queued || out.JobID != hermes.ExecuteJobID(a.ID) {
		t.Fatalf("redelivery: %+v", out)
	}
	if jobs := e.takeJobs(scottInput); len(jobs) != 1 || jobs[0].Type != hermes.JobExecute {
		t.Errorf("jobs = %+v, want one execute job", jobs)
	}
	if got := e.approval(a.ID); got.DoneAt == nil {
		t.Errorf("the carried-out decision is not done")
	}
	if h := e.decisionEntry(out.SessionID, a.ID); h.Meta["decidedBy"] != router.DecidedByModel {
		t.Errorf("history meta = %v", h.Meta)
	}
	if f.calls() != 2 {
		t.Errorf("the model was asked %d times, want twice (once a delivery)", f.calls())
	}
	// Done now: another such reply is an instruction.
	e.queued(reply("<mt3@example.com>", "brilliant, thanks a million!!", first))
	if job := e.onlyJob(scottInput); job.Type != hermes.JobInstruction {
		t.Errorf("a reply to a carried-out plan was queued as %s", job.Type)
	}
	if f.calls() != 2 {
		t.Errorf("the model was asked %d times, want twice", f.calls())
	}
}
