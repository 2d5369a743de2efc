package local

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/sqlite"
)

// The tests run the test binary itself as the worker (TestMain below):
// a small worker that speaks the store protocol of `hermes worker` —
// heartbeats in the container record, jobs taken from the input queue —
// and misbehaves on request (crash, hang, ignore SIGTERM). The real
// worker runs under this runner in cmd/hermes's end-to-end tests.
const fakeWorkerVar = "HERMES_LOCAL_FAKE_WORKER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeWorkerVar); mode != "" {
		os.Exit(fakeWorker(mode))
	}
	os.Exit(m.Run())
}

func fakeWorker(mode string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	id := os.Getenv(ContainerIDVar)
	db, err := sqlite.Open(ctx, os.Getenv("FAKE_DB"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer db.Close()
	if f, err := os.OpenFile(os.Getenv("FAKE_STARTS"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
		fmt.Fprintf(f, "%s %d\n", id, os.Getpid())
		f.Close()
	}
	beat := func(status hermes.ContainerStatus, detail string) {
		_, _ = db.UpdateContainer(context.WithoutCancel(ctx), id, func(c *hermes.Container) error {
			now := time.Now().UTC()
			c.Status, c.Detail, c.LastHeartbeat, c.UpdatedAt = status, detail, &now, now
			return nil
		})
	}
	switch mode {
	case "crash":
		return 3
	case "crash-after-beat":
		beat(hermes.ContainerRunning, "idle")
		return 3
	case "hang":
		beat(hermes.ContainerRunning, "idle")
		select {} // no more heartbeats
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
		beat(hermes.ContainerRunning, "idle")
		select {}
	}
	// "work": take jobs until idle for FAKE_IDLE or SIGTERM.
	beat(hermes.ContainerRunning, "idle")
	idle, _ := time.ParseDuration(os.Getenv("FAKE_IDLE"))
	input := hermes.QueueSetFor("webordinary-", id).Input
	last := time.Now()
	for ctx.Err() == nil && time.Since(last) < idle {
		ds, err := db.Receive(ctx, input, 1, 100*time.Millisecond, time.Minute)
		if err != nil {
			continue
		}
		for _, d := range ds {
			_ = db.Delete(ctx, input, d.Receipt)
			last = time.Now()
		}
		beat(hermes.ContainerRunning, "idle")
	}
	if ctx.Err() != nil {
		beat(hermes.ContainerStopped, "terminated")
	} else {
		beat(hermes.ContainerStopped, "idle exit")
	}
	return 0
}

type fixture struct {
	db     *sqlite.DB
	r      *Runner
	starts string
	c      *hermes.Container
	woke   atomic.Int32
	failed chan string
}

func newFixture(t *testing.T, mode string, idle time.Duration) *fixture {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	dbPath := filepath.Join(dir, "hermes.db")
	db, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	id := "amelia_site_scott"
	qs := hermes.QueueSetFor("webordinary-", id)
	if err := db.CreateQueue(ctx, qs.DLQ, hermes.QueueOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateQueue(ctx, qs.Input, hermes.QueueOptions{DeadLetter: qs.DLQ, MaxReceives: 3}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateQueue(ctx, qs.Output, hermes.QueueOptions{}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	c, err := db.EnsureContainer(ctx, &hermes.Container{ID: id, ClientID: "amelia", ProjectID: "site", UserID: "scott",
		Status: hermes.ContainerStopped, Queues: qs, CreatedAt: now, UpdatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: db, starts: filepath.Join(dir, "starts"), c: c, failed: make(chan string, 4)}
	f.r = &Runner{
		Store: db, Queues: db, Command: []string{exe},
		Env:   []string{fakeWorkerVar + "=" + mode, "FAKE_DB=" + dbPath, "FAKE_STARTS=" + f.starts, "FAKE_IDLE=" + idle.String()},
		Clock: time.Now, StopGrace: 2 * time.Second, Backoff: 20 * time.Millisecond, MaxCrashes: 3,
		Woke:   func(string, time.Duration) { f.woke.Add(1) },
		Failed: func(_ context.Context, _ *hermes.Container, detail string) { f.failed <- detail },
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		f.r.Close(ctx)
	})
	return f
}

func (f *fixture) startCount() int {
	b, _ := os.ReadFile(f.starts)
	return strings.Count(string(b), "\n")
}

func (f *fixture) status(t *testing.T) *hermes.Container {
	t.Helper()
	c, err := f.db.GetContainer(context.Background(), f.c.ID)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) queueJob(t *testing.T, id string) {
	t.Helper()
	job := hermes.Job{Version: 1, ID: id, Type: hermes.JobInstruction, SessionID: "s-" + id, ThreadID: "t-" + id,
		Instruction: "change the title", Reply: hermes.ReplyContext{Channel: hermes.ChannelAPI}}
	b, _ := json.Marshal(job)
	if _, err := f.db.Send(context.Background(), f.c.Queues.Input, string(b), nil); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConcurrentWakesStartOnce(t *testing.T) {
	f := newFixture(t, "work", 300*time.Millisecond)
	f.queueJob(t, "j1")
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if err := f.r.Wake(context.Background(), f.c); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	waitFor(t, "readiness", func() bool { return f.woke.Load() == 1 })
	if c := f.status(t); c.Status != hermes.ContainerRunning && c.Status != hermes.ContainerStopped {
		t.Errorf("status %s", c.Status)
	}
	waitFor(t, "the idle exit", func() bool { return !f.r.Running(f.c.ID) })
	if n := f.startCount(); n != 1 {
		t.Fatalf("%d starts, want 1", n)
	}
	if c := f.status(t); c.Status != hermes.ContainerStopped || c.Detail != "idle exit" {
		t.Fatalf("after the idle exit: %s %q", c.Status, c.Detail)
	}
	if st, _ := f.db.Stats(context.Background(), f.c.Queues.Input); st.Visible+st.InFlight != 0 {
		t.Fatalf("the job was not taken: %+v", st)
	}
	// Asleep: the next wake starts it again.
	f.queueJob(t, "j2")
	if err := f.r.Wake(context.Background(), f.c); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second start", func() bool { return f.startCount() == 2 })
}

func TestCrashRestartsWithBackoffThenGivesUp(t *testing.T) {
	f := newFixture(t, "crash", 0)
	f.queueJob(t, "j1")
	f.queueJob(t, "j2")
	if err := f.r.Wake(context.Background(), f.c); err != nil {
		t.Fatal(err)
	}
	var detail string
	select {
	case detail = <-f.failed:
	case <-time.After(15 * time.Second):
		t.Fatal("never given up on")
	}
	if n := f.startCount(); n != 3 {
		t.Fatalf("%d starts, want 3 (MaxCrashes)", n)
	}
	c := f.status(t)
	if c.Status != hermes.ContainerError || !strings.Contains(c.Detail, "crashed 3 times") || !strings.Contains(detail, "crashed 3 times") {
		t.Fatalf("status %s %q", c.Status, c.Detail)
	}
	// The reconcile loop leaves a container in error alone…
	if err := f.r.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := f.startCount(); n != 3 {
		t.Fatalf("reconcile restarted a container given up on: %d starts", n)
	}
	// …and the users of the waiting jobs are told, once per job; the jobs
	// stay queued.
	n, err := TellWaiting(context.Background(), f.db, time.Now, c, c.Detail)
	if err != nil || n != 2 {
		t.Fatalf("TellWaiting = %d, %v", n, err)
	}
	ds, err := f.db.Receive(context.Background(), f.c.Queues.Output, 10, 0, time.Minute)
	if err != nil || len(ds) != 2 {
		t.Fatalf("output queue: %d results, %v", len(ds), err)
	}
	for _, d := range ds {
		var m hermes.ResultMessage
		if err := json.Unmarshal([]byte(d.Body), &m); err != nil || m.Type != hermes.ResultError || !strings.Contains(m.Error, "could not start") {
			t.Fatalf("result %s: %v", d.Body, err)
		}
	}
	if st, _ := f.db.Stats(context.Background(), f.c.Queues.Input); st.Visible != 2 {
		t.Fatalf("the jobs did not stay queued: %+v", st)
	}
	// A new message (a fresh wake) tries again.
	if err := f.r.Wake(context.Background(), f.c); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a fresh start", func() bool { return f.startCount() >= 4 })
}

func TestCrashWithoutJobsWaitsForTheNext(t *testing.T) {
	f := newFixture(t, "crash-after-beat", 0)
	if err := f.r.Wake(context.Background(), f.c); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the crash", func() bool { return f.status(t).Status == hermes.ContainerMissing })
	time.Sleep(150 * time.Millisecond)
	if n := f.startCount(); n != 1 {
		t.Fatalf("%d starts without pending jobs, want 1", n)
	}
}

func TestStopAndKillAfterGrace(t *testing.T) {
	t.Run("graceful", func(t *testing.T) {
		f := newFixture(t, "work", time.Hour)
		if err := f.r.Wake(context.Background(), f.c); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "readiness", func() bool { return f.woke.Load() == 1 })
		if err := f.r.Stop(context.Background(), f.c); err != nil {
			t.Fatal(err)
		}
		if f.r.Running(f.c.ID) {
			t.Fatal("still running after Stop")
		}
		if c := f.status(t); c.Status != hermes.ContainerStopped || c.Detail != "terminated" {
			t.Fatalf("status %s %q", c.Status, c.Detail)
		}
	})
	t.Run("stubborn", func(t *testing.T) {
		f := newFixture(t, "stubborn", 0)
		f.r.StopGrace = 300 * time.Millisecond
		if err := f.r.Wake(context.Background(), f.c); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "readiness", func() bool { return f.woke.Load() == 1 })
		start := time.Now()
		if err := f.r.Stop(context.Background(), f.c); err != nil {
			t.Fatal(err)
		}
		if time.Since(start) < 300*time.Millisecond {
			t.Fatal("killed before the grace period")
		}
		if c := f.status(t); c.Status != hermes.ContainerStopped || !strings.Contains(c.Detail, "killed") {
			t.Fatalf("status %s %q", c.Status, c.Detail)
		}
	})
	t.Run("not running", func(t *testing.T) {
		f := newFixture(t, "work", 0)
		if _, err := f.db.UpdateContainer(context.Background(), f.c.ID, func(c *hermes.Container) error {
			c.Status = hermes.ContainerRunning
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := f.r.Stop(context.Background(), f.c); err != nil {
			t.Fatal(err)
		}
		if c := f.status(t); c.Status != hermes.ContainerStopped {
			t.Fatalf("status %s", c.Status)
		}
	})
}

func TestCloseStopsEveryWorker(t *testing.T) {
	f := newFixture(t, "work", time.Hour)
	if err := f.r.Wake(context.Background(), f.c); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "readiness", func() bool { return f.woke.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f.r.Close(ctx)
	if f.r.Running(f.c.ID) {
		t.Fatal("running after Close")
	}
	if err := f.r.Wake(context.Background(), f.c); !hermes.IsKind(err, hermes.Unavailable) {
		t.Fatalf("wake after Close: %v", err)
	}
	if c := f.status(t); c.Status != hermes.ContainerStopped {
		t.Fatalf("status %s", c.Status)
	}
}

func TestReconcile(t *testing.T) {
	t.Run("stale record and waiting jobs", func(t *testing.T) {
		f := newFixture(t, "work", 200*time.Millisecond)
		// Left "running" by a Hermes that is gone, with a job waiting.
		if _, err := f.db.UpdateContainer(context.Background(), f.c.ID, func(c *hermes.Container) error {
			c.Status = hermes.ContainerRunning
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		f.queueJob(t, "j1")
		if err := f.r.Reconcile(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the job taken", func() bool {
			st, _ := f.db.Stats(context.Background(), f.c.Queues.Input)
			return st.Visible+st.InFlight == 0
		})
		if n := f.startCount(); n != 1 {
			t.Fatalf("%d starts", n)
		}
	})
	t.Run("nothing waiting", func(t *testing.T) {
		f := newFixture(t, "work", time.Hour)
		if err := f.r.Reconcile(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if f.startCount() != 0 || f.r.Running(f.c.ID) {
			t.Fatal("woke a container with nothing to do")
		}
	})
	t.Run("hung worker", func(t *testing.T) {
		f := newFixture(t, "hang", 0)
		f.r.HeartbeatTimeout = 200 * time.Millisecond
		f.queueJob(t, "j1")
		if err := f.r.Wake(context.Background(), f.c); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "readiness", func() bool { return f.woke.Load() == 1 })
		time.Sleep(300 * time.Millisecond)
		if err := f.r.Reconcile(context.Background()); err != nil {
			t.Fatal(err)
		}
		// Killed as missing, then restarted for its waiting job.
		waitFor(t, "the restart", func() bool { return f.startCount() == 2 })
	})
}

// TestCheck: the health check passes while the worker binary is there and
// fails when it is missing.
func TestCheck(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r := &Runner{Command: []string{exe, "worker"}}
	if err := r.Check(context.Background()); err != nil {
		t.Errorf("check: %v", err)
	}
	r.Command = []string{filepath.Join(t.TempDir(), "no-hermes"), "worker"}
	if err := r.Check(context.Background()); !hermes.IsKind(err, hermes.Unavailable) {
		t.Errorf("check without the binary: %v", err)
	}
	r.Command = []string{t.TempDir(), "worker"}
	if err := r.Check(context.Background()); err == nil {
		t.Error("check of a directory passed")
	}
}
