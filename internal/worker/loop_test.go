package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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
		IdleTimeout: time.Second, Visibility: 2 * time.Second, Heartbeat: 100 * time.Millisecond, WatchWait: 200 * time.Millisecond,
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

// output is what the worker sent on its output queue: the results, and the
// started notices (as decoded maps, to check their exact shape).
type output struct {
	results []hermes.ResultMessage
	started []map[string]any
	order   []string // "started:{jobId}" and "{type}:{jobId}", in the order sent
}

// results drains the output queue and returns the results.
func (e *loopEnv) results(t *testing.T) []hermes.ResultMessage {
	t.Helper()
	return e.output(t).results
}

// output drains the output queue.
func (e *loopEnv) output(t *testing.T) output {
	t.Helper()
	var out output
	for {
		ds, err := e.db.Receive(t.Context(), e.qs.Output, 10, 0, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			return out
		}
		for _, d := range ds {
			var m map[string]any
			if err := json.Unmarshal([]byte(d.Body), &m); err != nil {
				t.Fatal(err)
			}
			if d.Attributes["jobId"] != m["jobId"] || d.Attributes["type"] != m["type"] {
				t.Errorf("attributes %v of %v", d.Attributes, m)
			}
			out.order = append(out.order, m["type"].(string)+":"+m["jobId"].(string))
			if m["type"] == hermes.ResultStarted {
				out.started = append(out.started, m)
				continue
			}
			var r hermes.ResultMessage
			if err := json.Unmarshal([]byte(d.Body), &r); err != nil {
				t.Fatal(err)
			}
			out.results = append(out.results, r)
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

	out := e.output(t)
	res := out.results
	if len(res) != 1 {
		t.Fatalf("%d results, want 1: %+v", len(res), res)
	}
	if want := []string{"started:" + job.ID, "result:" + job.ID}; !slices.Equal(out.order, want) {
		t.Errorf("sent %q, want %q", out.order, want)
	}
	n := out.started[0]
	if len(n) != 7 || n["version"] != 1.0 || n["sessionId"] != job.SessionID || n["threadId"] != job.ThreadID ||
		n["reply"].(map[string]any)["channel"] != hermes.ChannelAPI || n["startedAt"] == nil {
		t.Errorf("started notice %v", n)
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

	// SIGTERM: no result (only the started notice), the job visible again
	// for the next worker.
	if out := e.output(t); len(out.results) != 0 || len(out.started) != 1 {
		t.Errorf("results after a cancelled job: %+v", out)
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

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFile waits for the file to exist.
func waitFile(t *testing.T, name string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(name); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear", name)
		}
	}
}

// waitStats waits for the input queue to have visible and in-flight
// messages.
func (e *loopEnv) waitStats(t *testing.T, visible, inFlight int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		s := e.stats(t, e.qs.Input)
		if s.Visible == visible && s.InFlight == inFlight {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("input queue %+v, want %d visible and %d in flight", s, visible, inFlight)
		}
	}
}

func TestLoopNewerJobInterrupts(t *testing.T) {
	e := newLoopEnv(t, "multi")
	dir := e.loop.Workspace.Dir
	thread := hermes.NewToken()
	first := newJob(thread, "wait for it A")
	first.CreatedAt = time.Now().UTC()
	e.send(t, first)
	done := e.start(t.Context())
	waitFile(t, filepath.Join(dir, "partial-A.txt"))
	second := newJob(thread, "Change the title to Stamps")
	second.CreatedAt = time.Now().UTC()
	e.send(t, second)
	wait(t, done)

	out := e.output(t)
	if want := []string{"started:" + first.ID, "interrupted:" + first.ID, "started:" + second.ID, "result:" + second.ID}; !slices.Equal(out.order, want) {
		t.Fatalf("sent %q, want %q", out.order, want)
	}
	a, b := out.results[0], out.results[1]
	if !a.Interrupted || a.Success || a.Commit == "" || !strings.Contains(a.Summary, "Interrupted by a newer instruction") {
		t.Errorf("interrupted result %+v", a)
	}
	if git(t, dir, "show", a.Commit+":partial-A.txt") != "half done" || !strings.HasPrefix(git(t, dir, "log", "-1", "--format=%s", a.Commit), "WIP: ") {
		t.Errorf("the checkpoint %s does not hold the partial work", a.Commit)
	}
	if !b.Success || b.Commit == "" || git(t, dir, "rev-parse", b.Commit+"^") != a.Commit {
		t.Errorf("the newer job %+v does not run on top of the checkpoint %s", b, a.Commit)
	}
	if s := e.stats(t, e.qs.Input); s.Visible != 0 || s.InFlight != 0 {
		t.Errorf("input queue %+v: both jobs should be deleted", s)
	}
}

func TestLoopQueuePolicyWaitsInOrder(t *testing.T) {
	e := newLoopEnv(t, "gate")
	e.loop.Workspace.Project.BusyPolicy = hermes.BusyQueue
	var logs lockedBuffer
	e.loop.Log = slog.New(slog.NewTextHandler(&logs, nil))
	dir := e.loop.Workspace.Dir
	first := newJob(hermes.NewToken(), "Title First")
	first.CreatedAt = time.Now().UTC()
	e.send(t, first)
	done := e.start(t.Context())
	waitFile(t, filepath.Join(dir, "partial-First.txt"))
	newer := newJob(first.ThreadID, "Title Newer")
	newer.CreatedAt = time.Now().UTC()
	older := newJob(hermes.NewToken(), "Title Older") // queued long ago, delivered late
	older.CreatedAt = first.CreatedAt.Add(-time.Hour)
	e.send(t, newer)
	e.send(t, older)
	e.waitStats(t, 0, 3)                // both held by the worker while the first runs
	time.Sleep(2500 * time.Millisecond) // longer than the visibility (2 s): held jobs are extended
	e.waitStats(t, 0, 3)
	if err := os.WriteFile(filepath.Join(dir, ".git", "hermes-test-gate"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wait(t, done)
	if strings.Contains(logs.String(), "delivered again") {
		t.Error("a held job's visibility lapsed and it was received again")
	}

	out := e.output(t)
	if want := []string{"started:" + first.ID, "result:" + first.ID, "started:" + older.ID, "result:" + older.ID,
		"started:" + newer.ID, "result:" + newer.ID}; !slices.Equal(out.order, want) {
		t.Fatalf("sent %q, want %q", out.order, want)
	}
	for _, r := range out.results {
		if !r.Success || r.Interrupted {
			t.Errorf("result %+v", r)
		}
	}
	if s := e.stats(t, e.qs.Input); s.Visible != 0 || s.InFlight != 0 {
		t.Errorf("input queue %+v", s)
	}
}

func TestLoopRepeatDoesNotInterrupt(t *testing.T) {
	e := newLoopEnv(t, "gate")
	dir := e.loop.Workspace.Dir
	job := newJob(hermes.NewToken(), "Title Once")
	job.CreatedAt = time.Now().UTC()
	e.send(t, job)
	done := e.start(t.Context())
	waitFile(t, filepath.Join(dir, "partial-Once.txt"))
	e.send(t, job) // the same job queued again
	e.waitStats(t, 0, 1)
	if err := os.WriteFile(filepath.Join(dir, ".git", "hermes-test-gate"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wait(t, done)
	out := e.output(t)
	if len(out.results) != 1 || !out.results[0].Success || out.results[0].Interrupted || len(out.started) != 1 {
		t.Errorf("output %+v", out)
	}
}

func TestLoopBacklogRunsInOrder(t *testing.T) {
	e := newLoopEnv(t, "title")
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	e.loop.Clock = func() time.Time { return now }
	thread := hermes.NewToken()
	a, b := newJob(thread, "Title Alpha"), newJob(thread, "Title Beta")
	a.CreatedAt, b.CreatedAt = now.Add(-2*time.Minute), now.Add(-time.Minute)
	e.send(t, a)
	e.send(t, b)
	wait(t, e.start(t.Context()))
	out := e.output(t)
	if want := []string{"started:" + a.ID, "result:" + a.ID, "started:" + b.ID, "result:" + b.ID}; !slices.Equal(out.order, want) {
		t.Fatalf("sent %q, want %q: jobs waiting before the first started must not interrupt it", out.order, want)
	}
	if !out.results[0].Success || !out.results[1].Success || out.started[1]["startedAt"] != "2030-01-02T03:04:05Z" {
		t.Errorf("output %+v", out)
	}
}

func TestLoopDeactivate(t *testing.T) {
	e := newLoopEnv(t, "gate")
	e.loop.Workspace.Project.BusyPolicy = hermes.BusyQueue
	dir := e.loop.Workspace.Dir
	running := newJob(hermes.NewToken(), "Title Running")
	running.CreatedAt = time.Now().UTC()
	e.send(t, running)
	done := e.start(t.Context())
	waitFile(t, filepath.Join(dir, "partial-Running.txt"))
	waiting := newJob(hermes.NewToken(), "Title Waiting")
	waiting.CreatedAt = time.Now().UTC()
	e.send(t, waiting)
	e.waitStats(t, 0, 2)
	control := newJob(running.ThreadID, "")
	control.Type, control.Control, control.CreatedAt = hermes.JobControl, worker.ControlDeactivate, time.Now().UTC()
	e.send(t, control)
	wait(t, done)

	out := e.output(t)
	if want := []string{"started:" + running.ID, "interrupted:" + running.ID}; !slices.Equal(out.order, want) {
		t.Fatalf("sent %q, want %q", out.order, want)
	}
	if c := out.results[0].Commit; c == "" || git(t, dir, "show", c+":partial-Running.txt") != "half done" {
		t.Errorf("the interrupted job's work is not checkpointed: %+v", out.results[0])
	}
	c, err := e.db.GetContainer(t.Context(), containerID)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != hermes.ContainerStopped || c.Detail != "deactivated" {
		t.Errorf("container %+v", c)
	}
	// The waiting job is back in the queue for the next start; the control
	// job is gone.
	if s := e.stats(t, e.qs.Input); s.Visible != 1 || s.InFlight != 0 {
		t.Fatalf("input queue %+v", s)
	}
	ds, err := e.db.Receive(t.Context(), e.qs.Input, 10, 0, time.Minute)
	if err != nil || len(ds) != 1 || !strings.Contains(ds[0].Body, waiting.ID) {
		t.Errorf("left in the queue: %+v %v", ds, err)
	}
}

// A worker that starts after a crash makes the jobs its predecessor held
// visible at once (their receipts are in .git/hermes-held.json) instead of
// waiting out their visibility timeout.
func TestLoopReleasesACrashedPredecessorsJobs(t *testing.T) {
	e := newLoopEnv(t, "title")
	job := newJob(hermes.NewToken(), "Change the title to Again")
	e.send(t, job)
	// The predecessor received it for five minutes and died.
	ds, err := e.db.Receive(t.Context(), e.qs.Input, 1, 0, 5*time.Minute)
	if err != nil || len(ds) != 1 {
		t.Fatalf("receive: %v %v", ds, err)
	}
	held, _ := json.Marshal([]string{ds[0].Receipt, "a-receipt-that-is-gone"})
	heldPath := filepath.Join(e.loop.Workspace.Dir, ".git", worker.HeldFile)
	if err := os.WriteFile(heldPath, held, 0o600); err != nil {
		t.Fatal(err)
	}
	wait(t, e.start(t.Context())) // idle timeout 1 s: far less than five minutes
	res := e.results(t)
	if len(res) != 1 || res[0].JobID != job.ID || !res[0].Success {
		t.Fatalf("results %+v", res)
	}
	if b, err := os.ReadFile(heldPath); err == nil && string(b) != "[]" {
		t.Fatalf("held record after a clean exit: %s", b)
	}
}

// Jobs of a session that has ended (deactivated or expired) are dropped
// without running; jobs of live or unknown sessions run.
func TestLoopDropsJobsOfEndedSessions(t *testing.T) {
	e := newLoopEnv(t, "title")
	ctx := t.Context()
	now := time.Now().UTC()
	session := func(status hermes.SessionStatus) string {
		th := &hermes.Thread{ID: hermes.NewToken(), ClientID: "amelia", ProjectID: "site", UserID: "scott", Channel: hermes.ChannelAPI,
			CreatedAt: now, UpdatedAt: now}
		if err := e.db.CreateThread(ctx, th); err != nil {
			t.Fatal(err)
		}
		s := &hermes.Session{ID: hermes.NewToken(), ThreadID: th.ID, ClientID: "amelia", ProjectID: "site", UserID: "scott",
			ContainerID: containerID, Status: hermes.SessionActive, CreatedAt: now, LastActivity: now, ExpiresAt: now.Add(time.Hour)}
		if err := e.db.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
		if status != hermes.SessionActive {
			if _, err := e.db.UpdateSession(ctx, s.ID, func(x *hermes.Session) error { x.Status = status; return nil }); err != nil {
				t.Fatal(err)
			}
		}
		return s.ID
	}
	ended := newJob(hermes.NewToken(), "Change the title to Never")
	ended.SessionID = session(hermes.SessionDraining)
	live := newJob(hermes.NewToken(), "Change the title to Live")
	live.SessionID = session(hermes.SessionActive)
	unknown := newJob(hermes.NewToken(), "Change the title to Unknown")
	for _, j := range []*hermes.Job{ended, live, unknown} {
		e.send(t, j)
	}
	wait(t, e.start(ctx))
	got := map[string]bool{}
	for _, r := range e.results(t) {
		got[r.JobID] = true
	}
	if got[ended.ID] || !got[live.ID] || !got[unknown.ID] {
		t.Fatalf("results for ended %v, live %v, unknown %v", got[ended.ID], got[live.ID], got[unknown.ID])
	}
	if st := e.stats(t, e.qs.Input); st.Visible+st.InFlight != 0 {
		t.Fatalf("jobs left: %+v", st)
	}
}

// A restarted worker fetches while it takes its first job; when the fetch
// fails, the job goes back to the queue and the worker exits with the
// container in error.
func TestLoopFetchFailureReleasesTheJob(t *testing.T) {
	e := newLoopEnv(t, "title")
	git(t, e.loop.Workspace.Dir, "remote", "set-url", "origin", filepath.Join(t.TempDir(), "gone.git"))
	job := newJob(hermes.NewToken(), "Change the title to Never")
	e.send(t, job)
	done := e.start(t.Context())
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run succeeded with an unreachable origin")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the loop did not exit")
	}
	if st := e.stats(t, e.qs.Input); st.Visible != 1 {
		t.Fatalf("the job was not released: %+v", st)
	}
	if res := e.results(t); len(res) != 0 {
		t.Fatalf("results %+v", res)
	}
	c, err := e.db.GetContainer(t.Context(), containerID)
	if err != nil || c.Status != hermes.ContainerError {
		t.Fatalf("container %+v %v", c, err)
	}
}
