package relay_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/events"
	"github.com/webordinary/hermes/internal/relay"
	"github.com/webordinary/hermes/internal/router"
)

const (
	scottInput = "webordinary-input-amelia_site_scott"
	scottDLQ   = "webordinary-dlq-amelia_site_scott"
)

// countingQueues counts receives on dead-letter queues.
type countingQueues struct {
	hermes.Queues
	dlqReceives atomic.Int32
}

func (q *countingQueues) Receive(ctx context.Context, queue string, max int, wait, vis time.Duration) ([]hermes.Delivery, error) {
	if strings.Contains(queue, "-dlq-") {
		q.dlqReceives.Add(1)
	}
	return q.Queues.Receive(ctx, queue, max, wait, vis)
}

// kill routes m and lets its job fail DefaultMaxReceive times, so that the
// input queue moves it to the dead-letter queue.
func (e *resultsEnv) kill(m *hermes.Message) string {
	e.t.Helper()
	out, err := e.router.Route(e.ctx, m)
	if err != nil || out.Status != router.Queued {
		e.t.Fatalf("route: %+v %v", out, err)
	}
	for range hermes.DefaultMaxReceive {
		ds, err := e.db.Receive(e.ctx, scottInput, 10, 0, time.Minute)
		if err != nil || len(ds) != 1 {
			e.t.Fatalf("receive: %v %v", ds, err)
		}
		if err := e.db.ChangeVisibility(e.ctx, scottInput, ds[0].Receipt, 0); err != nil {
			e.t.Fatal(err)
		}
	}
	if ds, err := e.db.Receive(e.ctx, scottInput, 10, 0, time.Minute); err != nil || len(ds) != 0 {
		e.t.Fatalf("the job was received a fourth time: %v %v", ds, err)
	}
	e.dlqDepth(1)
	return out.JobID
}

func (e *resultsEnv) dlqDepth(want int) {
	e.t.Helper()
	st, err := e.db.Stats(e.ctx, scottDLQ)
	if err != nil {
		e.t.Fatal(err)
	}
	if st.Visible != want || st.InFlight != 0 {
		e.t.Fatalf("dead-letter queue: %+v, want %d visible and none in flight", st, want)
	}
}

func (e *resultsEnv) dead() (*relay.Dead, *countingQueues) {
	q := &countingQueues{Queues: e.db}
	return &relay.Dead{Store: e.db, Queues: q, Clock: e.clock.Now, FromEmail: "hermes@localhost", Kick: func() { e.kicks.Add(1) }}, q
}

func (e *resultsEnv) pollDead(d *relay.Dead) int {
	e.t.Helper()
	n, err := d.Poll(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func TestDeadJobAnsweredOnceAndKept(t *testing.T) {
	e := newResultsEnv(t)
	jobID := e.kill(emailIn("dead1@mail.example.com", "Header colour", "Make the header blue\nand the footer green", "root@mail.example.com"))
	out, _ := e.router.Route(e.ctx, emailIn("dead1@mail.example.com", "Header colour", "x")) // a duplicate: nothing new
	if out.Status != router.Duplicate {
		t.Fatalf("duplicate routed: %+v", out)
	}
	sessionID := jobSession(t, e, jobID)

	hub := events.NewHub(8, e.clock.Now)
	sub := hub.Subscribe(t.Context(), sessionID)
	d, q := e.dead()
	d.Events = hub
	var answered atomic.Int32
	d.Answered = func() { answered.Add(1) }
	e.clock.Advance(time.Minute)
	if n := e.pollDead(d); n != 1 || answered.Load() != 1 {
		t.Fatalf("answered %d (counted %d), want 1", n, answered.Load())
	}
	e.dlqDepth(1) // kept for operators, visible again

	items := e.outbox(hermes.KindError)
	if len(items) != 1 {
		t.Fatalf("%d error replies", len(items))
	}
	it := items[0]
	if it.ID != hermes.DeriveToken("result", jobID, hermes.ResultError) || it.Channel != hermes.ChannelEmail || it.To != scottEmail || it.From != ameliaEmail {
		t.Errorf("reply %+v", it)
	}
	if it.Headers["In-Reply-To"] != "<dead1@mail.example.com>" || it.Headers["References"] != "<root@mail.example.com> <dead1@mail.example.com>" ||
		!strings.HasPrefix(it.Subject, "Re: Header colour [ref:") {
		t.Errorf("not threaded: %q %v", it.Subject, it.Headers)
	}
	for _, w := range []string{"your request could not be applied", "“Make the header blue and the footer green”", "set aside"} {
		if !strings.Contains(it.Text, w) {
			t.Errorf("reply lacks %q:\n%s", w, it.Text)
		}
	}
	_, _, results := e.history(sessionID)
	if len(results) != 1 || results[0].ID != it.ID || results[0].Kind != hermes.KindError || results[0].Meta["reason"] != relay.ReasonDeadLetter ||
		results[0].Meta["outboxId"] != it.ID || results[0].Meta["jobId"] != jobID {
		t.Errorf("history: %+v", results)
	}
	sess, err := e.db.GetSession(e.ctx, sessionID)
	if err != nil {
		t.Fatal(err)
	}
	if lr := sess.LastResult; lr == nil || lr.JobID != jobID || lr.Success || lr.Error == "" {
		t.Errorf("lastResult %+v", sess.LastResult)
	}
	select {
	case ev := <-sub.C:
		if ev.Type != events.Error || ev.JobID != jobID || ev.Data["reason"] != relay.ReasonDeadLetter {
			t.Errorf("event %+v", ev)
		}
	default:
		t.Error("no error event")
	}

	// Cheap: the next pass sees the same depth and does not read the queue.
	before := q.dlqReceives.Load()
	if n := e.pollDead(d); n != 0 || q.dlqReceives.Load() != before {
		t.Errorf("second pass answered %d, receives %d → %d", n, before, q.dlqReceives.Load())
	}
	// A full scan reads it, and answers nothing again; nor does another
	// replica (or this one after a restart) with empty caches.
	e.clock.Advance(relay.DefaultDeadFullScan)
	if n := e.pollDead(d); n != 0 || q.dlqReceives.Load() == before {
		t.Errorf("full scan answered %d, receives %d", n, q.dlqReceives.Load())
	}
	other, _ := e.dead()
	if n := e.pollDead(other); n != 0 {
		t.Errorf("another replica answered %d", n)
	}
	if items := e.outbox(hermes.KindError); len(items) != 1 {
		t.Errorf("%d error replies after more passes", len(items))
	}
	if _, _, results := e.history(sessionID); len(results) != 1 {
		t.Errorf("%d history results after more passes", len(results))
	}
	e.dlqDepth(1)
}

// jobSession returns the session of a routed job (from the thread's only
// live session).
func jobSession(t *testing.T, e *resultsEnv, jobID string) string {
	t.Helper()
	sessions, _, err := e.db.ListSessions(e.ctx, "amelia", nil, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sessions {
		hs, _ := e.db.ListHistory(e.ctx, s.ID)
		for _, h := range hs {
			if h.ID == jobID {
				return s.ID
			}
		}
	}
	t.Fatalf("no session has job %s", jobID)
	return ""
}

func TestDeadJobAlreadyAnsweredByAResult(t *testing.T) {
	// The worker reported an error for the job on its last receive, yet
	// the job reached the dead-letter queue (it crashed before deleting
	// it): the user was told once, and is not told again.
	e := newResultsEnv(t)
	jobID := e.kill(emailIn("dead2@mail.example.com", "Header", "Make the header blue"))
	sessionID := jobSession(t, e, jobID)
	sess, _ := e.db.GetSession(e.ctx, sessionID)
	th, _ := e.db.GetThread(e.ctx, sess.ThreadID)
	job := hermes.Job{ID: jobID, SessionID: sessionID, ThreadID: th.ID, Branch: th.Branch(),
		Reply: hermes.ReplyContext{Channel: hermes.ChannelEmail, To: scottEmail, From: ameliaEmail, Subject: "Header", MessageID: "dead2@mail.example.com"}}
	e.send(resultFor(job, hermes.ResultError))
	e.poll()
	if n := len(e.outbox(hermes.KindError)); n != 1 {
		t.Fatalf("%d error replies from the result", n)
	}
	d, _ := e.dead()
	if n := e.pollDead(d); n != 0 {
		t.Errorf("answered %d", n)
	}
	if n := len(e.outbox(hermes.KindError)); n != 1 {
		t.Errorf("%d error replies", n)
	}
}

func TestDeadJobExactlyOnceAcrossFailures(t *testing.T) {
	for _, step := range []string{"outbox", "history"} {
		t.Run(step, func(t *testing.T) {
			e := newResultsEnv(t)
			jobID := e.kill(emailIn("dead3@mail.example.com", "Header", "Make the header blue"))
			fs := &failingStore{Store: e.db}
			if step == "outbox" {
				fs.failEnqueue.Store(1)
			} else {
				fs.failAppend.Store(1) // the reply is queued, the crash comes before the history entry
			}
			d, _ := e.dead()
			d.Store = fs
			if n := e.pollDead(d); n != 0 {
				t.Fatalf("answered %d despite the failure", n)
			}
			e.dlqDepth(1)
			if n := e.pollDead(d); n != 1 {
				t.Fatalf("retry answered %d", n)
			}
			if n := e.pollDead(d); n != 0 {
				t.Fatalf("third pass answered %d", n)
			}
			if items := e.outbox(hermes.KindError); len(items) != 1 {
				t.Errorf("%d error replies", len(items))
			}
			if _, _, results := e.history(jobSession(t, e, jobID)); len(results) != 1 {
				t.Errorf("%d history results", len(results))
			}
			e.dlqDepth(1)
		})
	}
}

func TestDeadJobAPIChannelAndMalformed(t *testing.T) {
	e := newResultsEnv(t)
	out, err := e.router.Route(e.ctx, &hermes.Message{Channel: hermes.ChannelAPI, ChannelID: "amelia/m1",
		ClientID: "amelia", ProjectID: "site", UserID: "scott", Text: "Add the March show"})
	if err != nil {
		t.Fatal(err)
	}
	// The job and a message that is not a job die.
	if _, err := e.db.Send(e.ctx, scottInput, "{not a job", nil); err != nil {
		t.Fatal(err)
	}
	for range hermes.DefaultMaxReceive {
		ds, err := e.db.Receive(e.ctx, scottInput, 10, 0, time.Minute)
		if err != nil || len(ds) != 2 {
			t.Fatalf("receive: %v %v", len(ds), err)
		}
		for _, dl := range ds {
			if err := e.db.ChangeVisibility(e.ctx, scottInput, dl.Receipt, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := e.db.Receive(e.ctx, scottInput, 10, 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	e.dlqDepth(2)
	d, _ := e.dead()
	if n := e.pollDead(d); n != 1 {
		t.Fatalf("answered %d", n)
	}
	if items := e.outbox(hermes.KindError); len(items) != 0 {
		t.Errorf("API channel got %d replies in the outbox", len(items))
	}
	_, _, results := e.history(out.SessionID)
	if len(results) != 1 || results[0].Kind != hermes.KindError || !strings.Contains(results[0].Text, "Add the March show") {
		t.Errorf("history: %+v", results)
	}
	e.dlqDepth(2)

	// The listing shows both, the malformed one marked.
	c, _ := e.db.GetContainer(e.ctx, out.ContainerID)
	var jobs []relay.DeadJob
	for range 2 { // looking twice consumes nothing
		jobs = nil
		if err := relay.PeekDead(e.ctx, e.db, c.Queues.DLQ, 100, func(dl hermes.Delivery) error {
			jobs = append(jobs, relay.DeadJobOf(c, dl))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		e.dlqDepth(2)
	}
	if len(jobs) != 2 {
		t.Fatalf("listed %d", len(jobs))
	}
	var good, bad int
	for _, j := range jobs {
		switch {
		case j.Malformed && j.JobID == "":
			bad++
		case j.JobID == out.JobID && j.SessionID == out.SessionID && j.ThreadID == out.ThreadID && j.Type == hermes.JobInstruction &&
			j.Instruction == "Add the March show" && j.ContainerID == c.ID && !j.SentAt.IsZero() && j.MessageID != "":
			good++
		}
	}
	if good != 1 || bad != 1 {
		t.Errorf("listing: %+v", jobs)
	}
	// A limit stops the look early, and still leaves every message visible.
	n := 0
	if err := relay.PeekDead(e.ctx, e.db, c.Queues.DLQ, 1, func(hermes.Delivery) error { n++; return nil }); err != nil || n != 1 {
		t.Errorf("limited look: %d %v", n, err)
	}
	e.dlqDepth(2)
}
