package router_test

// Plan approval (SPEC §7) in the router: destructive or large instructions
// become plan jobs; "approve"/"reject" replies on a thread with a plan decide
// it; the approval page decides through Router.Decide.

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/router"
)

// takeJobs receives every visible job of a queue and deletes it, as the
// container's worker would.
func (e *env) takeJobs(queue string) []hermes.Job {
	e.t.Helper()
	var out []hermes.Job
	for {
		ds, err := e.db.Receive(e.ctx, queue, hermes.MaxReceiveBatch, 0, 0)
		if err != nil {
			e.t.Fatalf("Receive(%s): %v", queue, err)
		}
		if len(ds) == 0 {
			return out
		}
		for _, d := range ds {
			var j hermes.Job
			if err := json.Unmarshal([]byte(d.Body), &j); err != nil {
				e.t.Fatalf("job body %q: %v", d.Body, err)
			}
			if d.Attributes["type"] != j.Type || d.Attributes["jobId"] != j.ID {
				e.t.Errorf("job attributes %v do not match the job (%s %s)", d.Attributes, j.Type, j.ID)
			}
			out = append(out, j)
			if err := e.db.Delete(e.ctx, queue, d.Receipt); err != nil {
				e.t.Fatal(err)
			}
		}
	}
}

// onlyJob takes the queue's jobs and requires exactly one.
func (e *env) onlyJob(queue string) hermes.Job {
	e.t.Helper()
	jobs := e.takeJobs(queue)
	if len(jobs) != 1 {
		e.t.Fatalf("%s has %d jobs, want 1: %+v", queue, len(jobs), jobs)
	}
	return jobs[0]
}

// planned routes a destructive instruction, takes its plan job and stores
// the approval the plan's result would create (internal/relay does that
// part in production). It returns the approval.
func (e *env) planned(m *hermes.Message, plan string) *hermes.Approval {
	e.t.Helper()
	e.queued(m)
	job := e.onlyJob(scottInput)
	if job.Type != hermes.JobPlan {
		e.t.Fatalf("%q was queued as %s, want a plan job", m.Text, job.Type)
	}
	_, hash := hermes.NewApprovalToken()
	now := e.clock.Now()
	a, err := e.db.PutApproval(e.ctx, &hermes.Approval{
		ID: hermes.ApprovalIDFor(job.ID), TokenHash: hash, SessionID: job.SessionID, ThreadID: job.ThreadID,
		ContainerID: scottContainer, ClientID: job.ClientID, ProjectID: job.ProjectID, UserID: job.UserID,
		PlanJobID: job.ID, Instruction: job.Instruction, Plan: plan, Reply: job.Reply,
		CreatedAt: now, ExpiresAt: now.Add(hermes.DefaultApprovalTTL),
	})
	if err != nil {
		e.t.Fatalf("PutApproval: %v", err)
	}
	return a
}

func (e *env) approval(id string) *hermes.Approval {
	e.t.Helper()
	a, err := e.db.GetApproval(e.ctx, id)
	if err != nil {
		e.t.Fatalf("GetApproval: %v", err)
	}
	return a
}

// reply is scott's email answer on the thread of the plan's email.
func reply(msgID, text string, to *hermes.Message) *hermes.Message {
	return emailMsg(msgID, "Re: "+to.Subject, text, []string{to.Thread.MessageID}, []string{to.Thread.MessageID})
}

const blogPlan = "1. Delete src/pages/blog/ and its 14 posts\n2. Remove the Blog link from the menu"

func TestDestructiveInstructionIsPlanned(t *testing.T) {
	e := newEnv(t)
	out := e.queued(simple("<p1@example.com>", "Delete the whole blog section please"))
	job := e.onlyJob(scottInput)
	if job.Type != hermes.JobPlan || job.ID != out.JobID || job.Instruction != "Delete the whole blog section please" || job.Plan != "" || job.ApprovalID != "" {
		t.Errorf("job = %+v, want a plan job of the instruction", job)
	}
	acks := e.outboxFor(out.ThreadID)
	if len(acks) != 1 || !strings.HasPrefix(acks[0].Text, "Got it — this is a large or destructive change") ||
		!strings.Contains(acks[0].Text, "You'll get the plan in this thread") {
		t.Fatalf("acknowledgement = %+v", acks)
	}
	var planned bool
	for _, h := range e.history(out.SessionID) {
		planned = planned || h.ID == out.JobID && h.Meta["type"] == hermes.JobPlan
	}
	if !planned {
		t.Errorf("the history does not record the instruction as a plan")
	}

	// A small change is an instruction, as before.
	e.queued(simple("<p2@example.com>", "Make the header blue"))
	if job := e.onlyJob(scottInput); job.Type != hermes.JobInstruction {
		t.Errorf("a small change was queued as %s", job.Type)
	}
}

type fakeModel struct {
	verdict bool
	err     error
	calls   int
}

func (m *fakeModel) Classify(_ context.Context, _ string) (hermes.Classification, error) {
	m.calls++
	return hermes.Classification{NeedsApproval: m.verdict, Reason: "the model says so"}, m.err
}

func TestModelClassifies(t *testing.T) {
	model := &fakeModel{verdict: true}
	e := newEnv(t, withRouter(func(r *router.Router) { r.Model = model }))
	e.queued(simple("<m1@example.com>", "Make the header blue"))
	if job := e.onlyJob(scottInput); job.Type != hermes.JobPlan {
		t.Errorf("the model's verdict was ignored: %s", job.Type)
	}
	model.verdict = false
	e.queued(simple("<m2@example.com>", "Delete every page"))
	if job := e.onlyJob(scottInput); job.Type != hermes.JobInstruction {
		t.Errorf("the model's verdict was ignored: %s", job.Type)
	}

	// A failing model falls back to the keyword rules.
	model.err = hermes.Errorf(hermes.Unavailable, "bedrock is down")
	e.queued(simple("<m3@example.com>", "Delete every page"))
	if job := e.onlyJob(scottInput); job.Type != hermes.JobPlan {
		t.Errorf("with the model down, a destructive instruction was queued as %s", job.Type)
	}
	e.queued(simple("<m4@example.com>", "Make the footer green"))
	if job := e.onlyJob(scottInput); job.Type != hermes.JobInstruction {
		t.Errorf("with the model down, a small change was queued as %s", job.Type)
	}
	if model.calls != 4 {
		t.Errorf("the model was asked %d times, want 4", model.calls)
	}
}

func TestApproveReplyQueuesTheExecuteJob(t *testing.T) {
	e := newEnv(t, withRunner())
	first := simple("<a1@example.com>", "Delete the whole blog")
	a := e.planned(first, blogPlan)
	e.clock.Advance(time.Hour) // the plan's session has expired by now: a new one is opened

	msg := reply("<a2@example.com>", "Yes, go ahead\n\n> Here is the plan", first)
	out := e.route(msg)
	if out.Status != router.Queued || out.JobID != hermes.ExecuteJobID(a.ID) {
		t.Fatalf("outcome = %+v, want the execute job queued", out)
	}
	job := e.onlyJob(scottInput)
	if job.Type != hermes.JobExecute || job.ApprovalID != a.ID || job.Plan != blogPlan || job.Instruction != "Delete the whole blog" ||
		job.ThreadID != a.ThreadID || job.SessionID != out.SessionID || job.Branch != "thread-"+a.ThreadID {
		t.Errorf("execute job = %+v", job)
	}
	if job.Reply.MessageID != "a2@example.com" {
		t.Errorf("the execute job answers %q, want the approving reply", job.Reply.MessageID)
	}
	if e.runner.count() == 0 {
		t.Errorf("the container was not woken")
	}
	got := e.approval(a.ID)
	if got.Status != hermes.ApprovalApproved || got.DecidedVia != hermes.ViaReply || got.DoneAt == nil {
		t.Errorf("approval = %s via %q done %v", got.Status, got.DecidedVia, got.DoneAt)
	}
	items := e.outboxFor(a.ThreadID)
	last := items[len(items)-1]
	if !strings.HasPrefix(last.Text, "Approved — ") || !strings.Contains(last.Text, "Delete the whole blog") || last.Headers["In-Reply-To"] != "<a2@example.com>" {
		t.Errorf("acknowledgement = %q (In-Reply-To %q)", last.Text, last.Headers["In-Reply-To"])
	}

	// The same reply again (a redelivery) does nothing.
	if out := e.route(msg); out.Status != router.Duplicate {
		t.Errorf("redelivery: %+v", out)
	}
	// Another "approve" is told the plan is approved already; nothing runs twice.
	out = e.route(reply("<a3@example.com>", "approve", first))
	if out.Status != router.Answered || out.Reason != router.ReasonAlreadyDecided {
		t.Errorf("second approval: %+v", out)
	}
	if jobs := e.takeJobs(scottInput); len(jobs) != 0 {
		t.Errorf("jobs after a second approval: %+v", jobs)
	}
	items = e.outboxFor(a.ThreadID)
	if last := items[len(items)-1]; !strings.HasPrefix(last.Text, "That plan was approved already") {
		t.Errorf("answer to the second approval = %q", last.Text)
	}
}

func TestRejectReplyQueuesNothing(t *testing.T) {
	e := newEnv(t)
	e.setAcknowledge("amelia", "site", false) // the rejection is told all the same
	first := simple("<r1@example.com>", "Delete the whole blog")
	a := e.planned(first, blogPlan)
	before := len(e.outbox())
	out := e.route(reply("<r2@example.com>", "No, don't do it", first))
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
	if len(items) != before+1 || items[len(items)-1].Kind != "rejected" || !strings.HasPrefix(items[len(items)-1].Text, "OK — the plan is rejected and nothing was changed.") {
		t.Fatalf("outbox after the rejection: %d items (was %d), last %+v", len(items), before, items[len(items)-1])
	}
	// Approving afterwards changes nothing.
	out = e.route(reply("<r3@example.com>", "approve", first))
	if out.Status != router.Answered || out.Reason != router.ReasonAlreadyDecided {
		t.Errorf("approval after the rejection: %+v", out)
	}
	if jobs := e.takeJobs(scottInput); len(jobs) != 0 {
		t.Errorf("jobs after approving a rejected plan: %+v", jobs)
	}
}

func TestApproveWithoutPlanIsAnInstruction(t *testing.T) {
	e := newEnv(t)
	first := simple("<n1@example.com>", "Make the header blue")
	e.queued(first)
	e.takeJobs(scottInput)
	out := e.queued(reply("<n2@example.com>", "approve", first))
	job := e.onlyJob(scottInput)
	if job.ID != out.JobID || job.Type != hermes.JobInstruction || job.Instruction != "approve" {
		t.Errorf("job = %+v, want the instruction \"approve\"", job)
	}
	// A plan on another thread is not this thread's.
	other := simple("<n3@example.com>", "Delete the whole blog")
	e.planned(other, blogPlan)
	e.queued(reply("<n4@example.com>", "yes", first))
	if job := e.onlyJob(scottInput); job.Type != hermes.JobInstruction {
		t.Errorf("a reply on a thread without a plan was queued as %s", job.Type)
	}
	// An instruction that is more than a yes or no is an instruction even
	// while a plan waits.
	e.queued(reply("<n5@example.com>", "yes but keep the archive page", other))
	if job := e.onlyJob(scottInput); job.Type != hermes.JobInstruction {
		t.Errorf("a conditional answer was queued as %s", job.Type)
	}
}

func TestExpiredApproval(t *testing.T) {
	e := newEnv(t)
	first := simple("<x1@example.com>", "Delete the whole blog")
	a := e.planned(first, blogPlan)
	e.clock.Advance(hermes.DefaultApprovalTTL)
	out := e.route(reply("<x2@example.com>", "approve", first))
	if out.Status != router.Answered || out.Reason != router.ReasonExpired {
		t.Fatalf("outcome = %+v", out)
	}
	if jobs := e.takeJobs(scottInput); len(jobs) != 0 {
		t.Errorf("an expired plan was queued: %+v", jobs)
	}
	if got := e.approval(a.ID); got.Status != hermes.ApprovalPending || got.DecidedAt != nil {
		t.Errorf("the expired approval changed: %+v", got)
	}
	items := e.outboxFor(a.ThreadID)
	if last := items[len(items)-1]; !strings.HasPrefix(last.Text, "That plan has expired and nothing was changed.") {
		t.Errorf("answer = %q", last.Text)
	}
}

func TestDecideFromThePage(t *testing.T) {
	e := newEnv(t, withRunner())
	first := simple("<d1@example.com>", "Delete the whole blog")
	a := e.planned(first, blogPlan)
	e.clock.Advance(2 * time.Hour)
	d, err := e.r.Decide(e.ctx, a, true)
	if err != nil {
		t.Fatal(err)
	}
	if d.Outcome != router.DecisionApplied || d.JobID != hermes.ExecuteJobID(a.ID) || d.Approval.Status != hermes.ApprovalApproved {
		t.Fatalf("decision = %+v", d)
	}
	job := e.onlyJob(scottInput)
	if job.Type != hermes.JobExecute || job.Plan != blogPlan || job.Reply.MessageID != "d1@example.com" || job.SessionID != d.SessionID {
		t.Errorf("execute job = %+v", job)
	}
	if s := e.session(d.SessionID); !s.Status.Live() || s.ID == a.SessionID {
		t.Errorf("the execute job went to session %s (%s); the plan's session %s had expired", s.ID, s.Status, a.SessionID)
	}
	if e.runner.count() == 0 {
		t.Errorf("the container was not woken")
	}
	got := e.approval(a.ID)
	if got.DecidedVia != hermes.ViaPage || got.DoneAt == nil {
		t.Errorf("approval = %+v", got)
	}
	// Deciding again (a second click, another tab) changes nothing.
	for _, approve := range []bool{true, false} {
		d, err := e.r.Decide(e.ctx, got, approve)
		if err != nil || d.Outcome != router.DecisionAlready || d.Approval.Status != hermes.ApprovalApproved {
			t.Errorf("Decide(%v) again = %+v, %v", approve, d, err)
		}
	}
	if jobs := e.takeJobs(scottInput); len(jobs) != 0 {
		t.Errorf("jobs after deciding again: %+v", jobs)
	}
}

func TestRejectFromThePage(t *testing.T) {
	e := newEnv(t)
	first := simple("<j1@example.com>", "Delete the whole blog")
	a := e.planned(first, blogPlan)
	d, err := e.r.Decide(e.ctx, a, false)
	if err != nil || d.Outcome != router.DecisionApplied || d.Approval.Status != hermes.ApprovalRejected {
		t.Fatalf("Decide = %+v, %v", d, err)
	}
	if jobs := e.takeJobs(scottInput); len(jobs) != 0 {
		t.Errorf("a rejection queued jobs: %+v", jobs)
	}
	items := e.outboxFor(a.ThreadID)
	last := items[len(items)-1]
	if last.Kind != "rejected" || last.To != scottEmail || last.Headers["In-Reply-To"] != "<j1@example.com>" || !strings.Contains(last.Text, "nothing was changed") {
		t.Errorf("rejection reply = %+v", last)
	}
	// Expired approvals are refused.
	b := e.planned(simple("<j2@example.com>", "Delete the whole gallery"), "1. rm -r gallery")
	e.clock.Advance(hermes.DefaultApprovalTTL + time.Second)
	d, err = e.r.Decide(e.ctx, b, true)
	if err != nil || d.Outcome != router.DecisionExpired {
		t.Errorf("Decide of an expired approval = %+v, %v", d, err)
	}
	if jobs := e.takeJobs(scottInput); len(jobs) != 0 {
		t.Errorf("an expired approval queued jobs: %+v", jobs)
	}
}

// failingSend fails every Send while on.
type failingSend struct {
	hermes.Queues
	on bool
}

func (f *failingSend) Send(ctx context.Context, q, body string, attrs map[string]string) (string, error) {
	if f.on {
		return "", hermes.E("test", hermes.Unavailable, errors.New("queue down"))
	}
	return f.Queues.Send(ctx, q, body, attrs)
}

// A decision stored but not carried out (the queue failed) is carried out
// when the same answer comes again; the execute job is queued once.
func TestApprovalInterruptedIsCarriedOutOnRetry(t *testing.T) {
	fq := &failingSend{}
	e := newEnv(t, withQueues(func(q hermes.Queues) hermes.Queues { fq.Queues = q; return fq }))
	first := simple("<i1@example.com>", "Delete the whole blog")
	a := e.planned(first, blogPlan)

	msg := reply("<i2@example.com>", "approve", first)
	fq.on = true
	if _, err := e.r.Route(e.ctx, msg); err == nil || !hermes.IsKind(err, hermes.Unavailable) {
		t.Fatalf("Route with the queue down: %v, want Unavailable", err)
	}
	if got := e.approval(a.ID); got.Status != hermes.ApprovalApproved || got.DoneAt != nil {
		t.Fatalf("after the failure: %s done %v", got.Status, got.DoneAt)
	}
	// The page finds it decided, not done: it cannot show "approved" for a
	// job that is not queued, so it carries it out too — but the queue is
	// still down.
	if _, err := e.r.Decide(e.ctx, e.approval(a.ID), true); err == nil {
		t.Errorf("Decide with the queue down: no error")
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
	// A rejection now is too late.
	if d, err := e.r.Decide(e.ctx, e.approval(a.ID), false); err != nil || d.Outcome != router.DecisionAlready {
		t.Errorf("rejecting an approved plan = %+v, %v", d, err)
	}
}

// Replies on SMS and chat decide like email ones.
func TestApprovalRepliesOnOtherChannels(t *testing.T) {
	e := newEnv(t)
	m := smsMsg("SM1", "Delete all the photos")
	e.queued(m)
	job := e.onlyJob(scottInput)
	if job.Type != hermes.JobPlan {
		t.Fatalf("job type %s", job.Type)
	}
	_, hash := hermes.NewApprovalToken()
	now := e.clock.Now()
	a, err := e.db.PutApproval(e.ctx, &hermes.Approval{ID: hermes.ApprovalIDFor(job.ID), TokenHash: hash, SessionID: job.SessionID,
		ThreadID: job.ThreadID, ContainerID: scottContainer, ClientID: "amelia", ProjectID: "site", UserID: "scott", PlanJobID: job.ID,
		Instruction: job.Instruction, Plan: "rm photos", Reply: job.Reply, CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	out := e.route(smsMsg("SM2", "OK"))
	if out.Status != router.Queued {
		t.Fatalf("SMS approval: %+v", out)
	}
	if j := e.onlyJob(scottInput); j.Type != hermes.JobExecute || j.ApprovalID != a.ID || j.Reply.Channel != hermes.ChannelSMS {
		t.Errorf("execute job = %+v", j)
	}
}
