package relay_test

import (
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/events"
)

// Started and progress notices become events only: no reply, no history
// entry, no lastResult; results become events too, with the id of their
// history entry.
func TestResultEvents(t *testing.T) {
	e := newResultsEnv(t)
	job := e.route(emailIn("ev1@mail.example.com", "Header", "Make the header blue"))
	hub := events.NewHub(16, e.clock.Now)
	sub := hub.Subscribe(t.Context(), job.SessionID)
	e.results.Events = hub
	next := func() events.Event {
		t.Helper()
		select {
		case ev := <-sub.C:
			return ev
		case <-time.After(5 * time.Second):
			t.Fatal("no event")
		}
		return events.Event{}
	}

	started := resultFor(job, hermes.ResultStarted)
	started.FinishedAt = time.Time{} // a notice has none
	e.send(started)
	progress := resultFor(job, hermes.ResultProgress)
	progress.FinishedAt, progress.Summary = time.Time{}, "Editing the header"
	e.send(progress)
	if n := e.poll(); n != 2 {
		t.Fatalf("received %d", n)
	}
	e.queueEmpty()
	if ev := next(); ev.Type != events.Started || ev.JobID != job.ID || !ev.At.Equal(started.StartedAt) {
		t.Errorf("started: %+v", ev)
	}
	if ev := next(); ev.Type != events.Progress || ev.Data["text"] != "Editing the header" {
		t.Errorf("progress: %+v", ev)
	}
	if _, _, results := e.history(job.SessionID); len(results) != 0 {
		t.Errorf("notices recorded in the history: %+v", results)
	}
	if items := e.outbox(hermes.KindResult, hermes.KindError, "started", "progress"); len(items) != 0 {
		t.Errorf("notices answered: %+v", items)
	}
	if s, _ := e.db.GetSession(e.ctx, job.SessionID); s.LastResult != nil {
		t.Errorf("lastResult set by a notice: %+v", s.LastResult)
	}

	e.send(resultFor(job, hermes.ResultDone))
	e.poll()
	ev := next()
	_, _, results := e.history(job.SessionID)
	if len(results) != 1 {
		t.Fatalf("history: %+v", results)
	}
	if want, _ := events.FromHistory(results[0]); ev.Type != events.Result || ev.ID != want.ID || ev.JobID != job.ID {
		t.Errorf("result event %+v, want id %s", ev, want.ID)
	}

	// A notice without a job id is malformed: dropped, no event.
	bad := resultFor(job, hermes.ResultStarted)
	bad.JobID = ""
	e.send(bad)
	e.poll()
	select {
	case ev := <-sub.C:
		t.Errorf("event for a malformed notice: %+v", ev)
	default:
	}
	if len(e.dropped) != 1 {
		t.Errorf("dropped: %v", e.dropped)
	}
}
