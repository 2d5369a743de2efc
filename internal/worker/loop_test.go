package worker_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/sqlite"
	"github.com/webordinary/hermes/internal/worker"
)

const containerID = "amelia_site_scott"

// loopEnv is a SQLite store and queues with the container's record and queue
// set, made as the router makes them, and a loop on a prepared workspace.
type loopEnv struct {
	db   *sqlite.DB
	qs   hermes.QueueSet
	loop *worker.Loop
}

func newLoopEnv(t *testing.T, mode string) *loopEnv {
	t.Helper()
	ctx := t.Context()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hermes.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	qs := hermes.QueueSetFor("webordinary-", containerID)
	now := hermes.Clock(nil).Now()
	if _, err := db.EnsureContainer(ctx, &hermes.Container{ID: containerID, ClientID: "amelia", ProjectID: "site", UserID: "scott",
		Status: hermes.ContainerStopped, Queues: qs, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateQueue(ctx, qs.DLQ, hermes.QueueOptions{Retention: 14 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateQueue(ctx, qs.Input, hermes.QueueOptions{VisibilityTimeout: 300 * time.Second, DeadLetter: qs.DLQ, MaxReceives: hermes.DefaultMaxReceive}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateQueue(ctx, qs.Output, hermes.QueueOptions{VisibilityTimeout: 300 * time.Second}); err != nil {
		t.Fatal(err)
	}
	return &loopEnv{db: db, qs: qs, loop: &worker.Loop{
		Store: db, Queues: db, ContainerID: containerID, Workspace: setup(t, mode),
		IdleTimeout: time.Second, Visibility: 2 * time.Second, Heartbeat: 100 * time.Millisecond,
	}}
}

func (e *loopEnv) send(t *testing.T, body any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Send(t.Context(), e.qs.Input, string(b), nil); err != nil {
		t.Fatal(err)
	}
}

// start runs the loop and returns its outcome's channel.
func (e *loopEnv) start(ctx context.Context) chan error {
	done := make(chan error, 1)
	go func() { done <- e.loop.Run(ctx) }()
	return done
}

func wait(t *testing.T, done chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the loop did not exit")
	}
}

// results drains the output queue.
func (e *loopEnv) results(t *testing.T) []hermes.ResultMessage {
	t.Helper()
	var out []hermes.ResultMessage
	for {
		ds, err := e.db.Receive(t.Context(), e.qs.Output, 10, 0, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			return out
		}
		for _, d := range ds {
			var r hermes.ResultMessage
			if err := json.Unmarshal([]byte(d.Body), &r); err != nil {
				t.Fatal(err)
			}
			if d.Attributes["jobId"] != r.JobID {
				t.Errorf("attributes %v", d.Attributes)
			}
			out = append(out, r)
		}
	}
}

func (e *loopEnv) stats(t *testing.T, queue string) hermes.QueueStats {
	t.Helper()
	s, err := e.db.Stats(t.Context(), queue)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLoopRunsJobOnceAndExitsWhenIdle(t *testing.T) {
	e := newLoopEnv(t, "title")
	job := newJob(hermes.NewToken(), "Change the title to Stamps")
	job.CreatedAt = time.Now().UTC()
	e.send(t, job)
	e.send(t, job) // the router may queue the same job id twice after a crash
	start := time.Now()
	wait(t, e.start(t.Context()))

	res := e.results(t)
	if len(res) != 1 {
		t.Fatalf("%d results, want 1: %+v", len(res), res)
	}
	r := res[0]
	if r.JobID != job.ID || r.Type != hermes.ResultDone || !r.Success || r.Commit == "" || r.Branch != worker.BranchName(job.ThreadID) ||
		r.SessionID != job.SessionID || r.Reply.Channel != hermes.ChannelAPI || r.FinishedAt.IsZero() {
		t.Errorf("result %+v", r)
	}
	if s := e.stats(t, e.qs.Input); s.Visible != 0 || s.InFlight != 0 {
		t.Errorf("input queue %+v: the job and its repeat should be deleted", s)
	}
	c, err := e.db.GetContainer(t.Context(), containerID)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != hermes.ContainerStopped || c.Detail != "idle exit" || c.LastHeartbeat == nil || c.LastHeartbeat.Before(start.Truncate(time.Second)) {
		t.Errorf("container %+v", c)
	}
	if _, err := os.Stat(filepath.Join(e.loop.Workspace.Dir, ".git", worker.DoneJobsFile)); err != nil {
		t.Errorf("no record of finished jobs: %v", err)
	}

	// A restarted worker skips the job when it is delivered again.
	e.send(t, job)
	wait(t, e.start(t.Context()))
	if res := e.results(t); len(res) != 0 {
		t.Errorf("a finished job was answered again: %+v", res)
	}
	if s := e.stats(t, e.qs.Input); s.Visible != 0 || s.InFlight != 0 {
		t.Errorf("input queue %+v", s)
	}
}

func TestLoopHeartbeatsWhileBusy(t *testing.T) {
	e := newLoopEnv(t, "sleep")
	e.send(t, newJob(hermes.NewToken(), "Take your time"))
	ctx, cancel := context.WithCancel(t.Context())
	done := e.start(ctx)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := e.db.GetContainer(t.Context(), containerID)
		if err != nil {
			t.Fatal(err)
		}
		if c.Status == hermes.ContainerRunning && c.Detail == "busy" && c.LastHeartbeat != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %+v: not running and busy", c)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The job outlives its visibility (2 s) without being received again.
	time.Sleep(2500 * time.Millisecond)
	if s := e.stats(t, e.qs.Input); s.InFlight != 1 || s.Visible != 0 {
		t.Errorf("input queue %+v: the running job should stay hidden", s)
	}
	cancel()
	wait(t, done)

	// SIGTERM: no result, the job visible again for the next worker.
	if res := e.results(t); len(res) != 0 {
		t.Errorf("results after a cancelled job: %+v", res)
	}
	if s := e.stats(t, e.qs.Input); s.Visible != 1 || s.InFlight != 0 {
		t.Errorf("input queue %+v: the cancelled job should be visible again", s)
	}
	c, err := e.db.GetContainer(t.Context(), containerID)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != hermes.ContainerStopped || c.Detail != "terminated" {
		t.Errorf("container %+v", c)
	}
	// The partial work was checkpointed on the thread's branch.
	if msg := git(t, e.loop.Workspace.Dir, "log", "-1", "--format=%s"); len(msg) < 4 || msg[:4] != "WIP:" {
		t.Errorf("last commit %q, want a WIP checkpoint", msg)
	}
}

func TestLoopLeavesUnknownVersion(t *testing.T) {
	e := newLoopEnv(t, "title")
	job := newJob(hermes.NewToken(), "Change the title to Stamps")
	job.Version = hermes.JobVersion + 1
	e.send(t, job)
	wait(t, e.start(t.Context()))
	if res := e.results(t); len(res) != 0 {
		t.Errorf("results for an unknown version: %+v", res)
	}
	if s := e.stats(t, e.qs.Input); s.Visible+s.InFlight != 1 {
		t.Errorf("input queue %+v: the job should be left undeleted", s)
	}
}
