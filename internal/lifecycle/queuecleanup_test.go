package lifecycle_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/hermestest"
	"github.com/webordinary/hermes/internal/lifecycle"
	"github.com/webordinary/hermes/internal/router"
	"github.com/webordinary/hermes/internal/sqlite"
)

const (
	containerID = "amelia_site_scott"
	cleanAfter  = 7 * 24 * time.Hour
	grace       = 5 * time.Minute
)

var scottQueues = hermes.QueueSetFor(router.DefaultQueuePrefix, containerID)

// cleanupEnv is a router and a queue clean-up on one store and clock.
type cleanupEnv struct {
	t       *testing.T
	ctx     context.Context
	db      *sqlite.DB
	clock   *hermestest.Clock
	router  *router.Router
	cleanup *lifecycle.QueueCleanup
	msgs    int
}

func newCleanupEnv(t *testing.T) *cleanupEnv {
	t.Helper()
	db := openStore(t, filepath.Join(t.TempDir(), "hermes.db"))
	seed(t, db)
	clock := hermestest.NewClock(start)
	sessions := &lifecycle.Sessions{Store: db, Clock: clock.Now, TTL: ttl, PublicBase: "http://hermes.test"}
	return &cleanupEnv{
		t: t, ctx: t.Context(), db: db, clock: clock,
		router:  &router.Router{Store: db, Queues: db, Sessions: sessions, Clock: clock.Now},
		cleanup: &lifecycle.QueueCleanup{Store: db, Queues: db, Clock: clock.Now, After: cleanAfter, Grace: grace},
	}
}

// send routes an API message; it returns the router's error.
func (e *cleanupEnv) send() (*router.Outcome, error) {
	e.msgs++
	return e.router.Route(e.ctx, &hermes.Message{Channel: hermes.ChannelAPI, ChannelID: fmt.Sprintf("amelia/m%d", e.msgs),
		ClientID: "amelia", ProjectID: "site", UserID: "scott", Text: "Make the header blue"})
}

func (e *cleanupEnv) mustSend() *router.Outcome {
	e.t.Helper()
	out, err := e.send()
	if err != nil || out.Status != router.Queued {
		e.t.Fatalf("route: %+v %v", out, err)
	}
	return out
}

// work takes every job off the input queue, as a worker that finished
// them would.
func (e *cleanupEnv) work() {
	e.t.Helper()
	ds, err := e.db.Receive(e.ctx, scottQueues.Input, 10, 0, time.Minute)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, d := range ds {
		if err := e.db.Delete(e.ctx, scottQueues.Input, d.Receipt); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *cleanupEnv) pass() int {
	e.t.Helper()
	n, err := e.cleanup.Pass(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *cleanupEnv) container() *hermes.Container {
	e.t.Helper()
	c, err := e.db.GetContainer(e.ctx, containerID)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// queues reports which of the set's queues exist.
func (e *cleanupEnv) queues() (exist int) {
	e.t.Helper()
	for _, q := range []string{scottQueues.Input, scottQueues.Output, scottQueues.DLQ} {
		_, err := e.db.Stats(e.ctx, q)
		switch {
		case err == nil:
			exist++
		case !hermes.IsKind(err, hermes.NotFound):
			e.t.Fatal(err)
		}
	}
	return exist
}

func (e *cleanupEnv) wantState(state string, queues int) {
	e.t.Helper()
	c := e.container()
	if c.QueuesState != state {
		e.t.Fatalf("queue state %q, want %q", c.QueuesState, state)
	}
	if n := e.queues(); n != queues {
		e.t.Fatalf("%d queues exist, want %d", n, queues)
	}
}

func TestQueueCleanupDeletesIdleSetsAndTheRouterMakesThemAgain(t *testing.T) {
	e := newCleanupEnv(t)
	e.mustSend()
	e.work()
	other, err := e.db.ListQueues(e.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.db.CreateQueue(e.ctx, "webordinary-input-amelia_site_scott2", hermes.QueueOptions{}); err != nil {
		t.Fatal(err)
	}

	// Not idle long enough: nothing happens.
	e.clock.Advance(cleanAfter - time.Minute)
	e.pass()
	e.wantState("", 3)

	// Idle: marked first, deleted only after the grace period.
	e.clock.Advance(time.Minute)
	if n := e.pass(); n != 0 {
		t.Fatalf("deleted %d at once", n)
	}
	e.wantState(hermes.QueuesRetiring, 3)
	e.clock.Advance(grace - time.Second)
	e.pass()
	e.wantState(hermes.QueuesRetiring, 3)
	e.clock.Advance(time.Second)
	if n := e.pass(); n != 1 {
		t.Fatalf("deleted %d", n)
	}
	e.wantState(hermes.QueuesDeleted, 0)
	if c := e.container(); c.Queues != (hermes.QueueSet{}) || c.QueuesStateAt == nil {
		t.Errorf("record after deletion: %+v", c)
	}
	// Only the container's own queues went.
	left, err := e.db.ListQueues(e.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != len(other)-3+1 {
		t.Errorf("queues left %v (before %v)", left, other)
	}
	if n := e.pass(); n != 0 {
		t.Errorf("a deleted set was deleted again: %d", n)
	}

	// The next message makes the set again and is queued.
	out := e.mustSend()
	e.wantState("", 3)
	if c := e.container(); c.Queues != scottQueues || c.QueuesStateAt != nil {
		t.Errorf("record after the message: %+v", c)
	}
	ds, err := e.db.Receive(e.ctx, scottQueues.Input, 10, 0, time.Minute)
	if err != nil || len(ds) != 1 || ds[0].Attributes["jobId"] != out.JobID {
		t.Fatalf("the job is not on the new input queue: %v %v", ds, err)
	}
	// The new input queue dead-letters as before.
	for range hermes.DefaultMaxReceive - 1 {
		_ = e.db.ChangeVisibility(e.ctx, scottQueues.Input, ds[0].Receipt, 0)
		if ds, err = e.db.Receive(e.ctx, scottQueues.Input, 10, 0, time.Minute); err != nil || len(ds) != 1 {
			t.Fatal(ds, err)
		}
	}
	_ = e.db.ChangeVisibility(e.ctx, scottQueues.Input, ds[0].Receipt, 0)
	if _, err := e.db.Receive(e.ctx, scottQueues.Input, 10, 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	if st, err := e.db.Stats(e.ctx, scottQueues.DLQ); err != nil || st.Visible != 1 {
		t.Errorf("dead-letter queue after redrive limit: %+v %v", st, err)
	}

	// A second round, the router having the set cached by now.
	if err := e.db.Purge(e.ctx, scottQueues.DLQ); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(cleanAfter)
	e.pass()
	e.clock.Advance(grace)
	if n := e.pass(); n != 1 {
		t.Fatalf("second round deleted %d", n)
	}
	e.wantState(hermes.QueuesDeleted, 0)
	e.mustSend()
	e.wantState("", 3)
}

func TestQueueCleanupKeepsSetsInUse(t *testing.T) {
	cases := []struct {
		name    string
		prepare func(e *cleanupEnv) // before the clean-up looks
	}{
		{"a job waiting", func(e *cleanupEnv) { e.mustSend() }},
		{"a job in flight", func(e *cleanupEnv) {
			e.mustSend()
			if _, err := e.db.Receive(e.ctx, scottQueues.Input, 1, 0, time.Hour); err != nil {
				e.t.Fatal(err)
			}
		}},
		{"a result waiting", func(e *cleanupEnv) {
			if _, err := e.db.Send(e.ctx, scottQueues.Output, "{}", nil); err != nil {
				e.t.Fatal(err)
			}
		}},
		{"a dead job", func(e *cleanupEnv) {
			if _, err := e.db.Send(e.ctx, scottQueues.DLQ, "{}", nil); err != nil {
				e.t.Fatal(err)
			}
		}},
		{"running", func(e *cleanupEnv) {
			if _, err := e.db.UpdateContainer(e.ctx, containerID, func(c *hermes.Container) error {
				c.Status = hermes.ContainerRunning
				return nil
			}); err != nil {
				e.t.Fatal(err)
			}
		}},
		{"a recent heartbeat", func(e *cleanupEnv) {
			hb := e.clock.Now().Add(-time.Hour)
			if _, err := e.db.UpdateContainer(e.ctx, containerID, func(c *hermes.Container) error {
				c.LastHeartbeat = &hb
				return nil
			}); err != nil {
				e.t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newCleanupEnv(t)
			e.mustSend()
			e.work()
			e.clock.Advance(cleanAfter + time.Hour)
			c.prepare(e)
			for range 3 {
				e.pass()
				e.clock.Advance(grace)
			}
			e.wantState("", 3)
		})
		// The same, arriving while the set is marked retiring: the mark
		// goes, the set stays.
		t.Run(c.name+" after the mark", func(t *testing.T) {
			e := newCleanupEnv(t)
			e.mustSend()
			e.work()
			e.clock.Advance(cleanAfter + time.Hour)
			e.pass()
			e.wantState(hermes.QueuesRetiring, 3)
			c.prepare(e)
			e.clock.Advance(grace)
			if n := e.pass(); n != 0 {
				t.Fatalf("deleted %d", n)
			}
			if st := e.container().QueuesState; st == hermes.QueuesDeleted || st == hermes.QueuesDeleting {
				t.Fatalf("state %q", st)
			}
			if e.queues() != 3 {
				t.Fatal("queues deleted")
			}
		})
	}
}

func TestQueueCleanupMessageDuringGraceTakesTheSetBack(t *testing.T) {
	e := newCleanupEnv(t)
	e.mustSend()
	e.work()
	e.clock.Advance(cleanAfter)
	e.pass()
	e.wantState(hermes.QueuesRetiring, 3)
	e.mustSend() // through the router, which has the set cached
	e.wantState("", 3)
	e.clock.Advance(grace)
	e.work()           // even once the job is done,
	e.pass()           // the container changed (the router's take-back counts as activity):
	e.wantState("", 3) // not idle for another week
	e.clock.Advance(cleanAfter)
	e.pass()
	e.wantState(hermes.QueuesRetiring, 3)
}

func TestQueueCleanupDeletingRefusesMessagesThenIsTakenOver(t *testing.T) {
	e := newCleanupEnv(t)
	e.mustSend()
	e.work()
	// A clean-up that crashed while deleting: the record says deleting.
	at := e.clock.Now()
	if _, err := e.db.UpdateContainer(e.ctx, containerID, func(c *hermes.Container) error {
		c.QueuesState, c.QueuesStateAt = hermes.QueuesDeleting, &at
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.db.DeleteQueue(e.ctx, scottQueues.Input); err != nil { // it got as far as the input queue
		t.Fatal(err)
	}
	out, err := e.send()
	if !hermes.IsKind(err, hermes.Unavailable) {
		t.Fatalf("message while deleting: %+v %v, want Unavailable", out, err)
	}
	// The same message is routed once the deletion is stale: the router
	// takes the container back and makes the set again.
	e.clock.Advance(hermes.QueuesDeletingTimeout)
	e.msgs--
	out = e.mustSend()
	e.wantState("", 3)
	if st, err := e.db.Stats(e.ctx, scottQueues.Input); err != nil || st.Visible != 1 {
		t.Errorf("input queue: %+v %v (job %s)", st, err, out.JobID)
	}
}

func TestQueueCleanupResumesAStaleDeletion(t *testing.T) {
	e := newCleanupEnv(t)
	e.mustSend()
	e.work()
	e.clock.Advance(cleanAfter)
	at := e.clock.Now()
	if _, err := e.db.UpdateContainer(e.ctx, containerID, func(c *hermes.Container) error {
		c.QueuesState, c.QueuesStateAt = hermes.QueuesDeleting, &at
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := e.pass(); n != 0 {
		t.Fatalf("a fresh deletion of another clean-up was taken over: %d", n)
	}
	e.clock.Advance(hermes.QueuesDeletingTimeout)
	if n := e.pass(); n != 1 {
		t.Fatalf("stale deletion not resumed: %d", n)
	}
	e.wantState(hermes.QueuesDeleted, 0)
}

func TestQueueCleanupDisabled(t *testing.T) {
	e := newCleanupEnv(t)
	e.mustSend()
	e.work()
	e.cleanup.After = 0
	e.clock.Advance(100 * cleanAfter)
	e.pass()
	e.clock.Advance(grace)
	e.pass()
	e.wantState("", 3)
	done := make(chan struct{})
	go func() { e.cleanup.Run(e.ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run does not return when disabled")
	}
}
