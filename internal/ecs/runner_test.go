package ecs

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
	"github.com/webordinary/hermes/internal/ecs/ecstest"
	"github.com/webordinary/hermes/internal/sqlite"
)

// The fake ECS (ecstest) runs the test binary itself as each task's
// worker (TestMain below): a small worker that speaks the store protocol
// of `hermes worker` — heartbeats in the container record, jobs taken from
// the input queue — and misbehaves on request. The real worker runs on the
// fake in cmd/hermes's end-to-end test.
const fakeWorkerVar = "HERMES_ECS_FAKE_WORKER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeWorkerVar); mode != "" {
		os.Exit(fakeWorker(mode))
	}
	os.Exit(m.Run())
}

func fakeWorker(mode string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	id := os.Getenv(hermes.ContainerIDVar)
	db, err := sqlite.Open(ctx, os.Getenv("FAKE_DB"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer db.Close()
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
	case "hang":
		beat(hermes.ContainerRunning, "idle")
		<-ctx.Done() // no more heartbeats; SIGTERM ends it
		return 143
	}
	beat(hermes.ContainerRunning, "idle")
	input := hermes.QueueSetFor("webordinary-", id).Input
	for ctx.Err() == nil {
		ds, err := db.Receive(ctx, input, 1, 100*time.Millisecond, time.Minute)
		if err != nil {
			continue
		}
		for _, d := range ds {
			_ = db.Delete(ctx, input, d.Receipt)
		}
		beat(hermes.ContainerRunning, "idle")
	}
	beat(hermes.ContainerStopped, "terminated")
	return 0
}

const containerID = "amelia_site_scott"

type fixture struct {
	t      *testing.T
	dbPath string
	db     *sqlite.DB
	srv    *ecstest.Server
	r      *Runner
	woke   atomic.Int32
	failed chan string
}

func newFixture(t *testing.T, mode string) *fixture {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	f := &fixture{t: t, dbPath: filepath.Join(dir, "hermes.db"), failed: make(chan string, 4)}
	db, err := sqlite.Open(ctx, f.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f.db = db
	qs := hermes.QueueSetFor("webordinary-", containerID)
	for _, q := range []string{qs.DLQ, qs.Input, qs.Output} {
		if err := db.CreateQueue(ctx, q, hermes.QueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC()
	if _, err := db.EnsureContainer(ctx, &hermes.Container{ID: containerID, ClientID: "amelia", ProjectID: "site", UserID: "scott",
		Status: hermes.ContainerStopped, Queues: qs, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f.srv = ecstest.New(t, ecstest.Config{
		Cluster: "webordinary-edit-cluster", TaskDefinition: "hermes-worker", ContainerName: "worker",
		Command: []string{exe}, Env: []string{fakeWorkerVar + "=" + mode, "FAKE_DB=" + f.dbPath},
	})
	f.r = f.runner(db)
	return f
}

// runner returns a Runner on store (a replica of its own: own breaker).
func (f *fixture) runner(store *sqlite.DB) *Runner {
	r := &Runner{
		API:     NewClient(awsx.Emulator(f.srv.URL), ""),
		Breaker: awsx.NewBreaker("ecs", awsx.BreakerOptions{Failures: 3, Cooldown: 300 * time.Millisecond}),
		Store:   store, Queues: store, Clock: time.Now,
		Task: Task{
			Cluster: "webordinary-edit-cluster", TaskDefinition: "hermes-worker", ContainerName: "worker",
			Subnets: []string{"subnet-1", "subnet-2"}, SecurityGroups: []string{"sg-1"},
			CapacityProviders: []CapacityProvider{{Name: "FARGATE_SPOT", Weight: 1}},
		},
		Env:       []string{"HERMES_STORE=sqlite", "HERMES_LOG_LEVEL=debug"},
		ReadyPoll: 10 * time.Millisecond, MaxFailures: 3,
		Woke:   func(string, time.Duration) { f.woke.Add(1) },
		Failed: func(_ context.Context, _ *hermes.Container, detail string) { f.failed <- detail },
	}
	f.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Close(ctx)
	})
	return r
}

func (f *fixture) container() *hermes.Container {
	f.t.Helper()
	c, err := f.db.GetContainer(context.Background(), containerID)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (f *fixture) waitFor(what string, cond func(*hermes.Container) bool) *hermes.Container {
	f.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c := f.container()
		if cond(c) {
			return c
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out waiting for %s; container: status %s, detail %q, task %s", what, c.Status, c.Detail, c.Task)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (f *fixture) sendJob() {
	f.t.Helper()
	job, _ := json.Marshal(hermes.Job{ID: hermes.NewToken(), Type: hermes.JobInstruction, SessionID: "s1", ThreadID: "t1", Instruction: "make it blue"})
	if _, err := f.db.Send(context.Background(), f.container().Queues.Input, string(job), nil); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) visible() int {
	st, err := f.db.Stats(context.Background(), f.container().Queues.Input)
	if err != nil {
		f.t.Fatal(err)
	}
	return st.Visible
}

func running(c *hermes.Container) bool { return c.Status == hermes.ContainerRunning }

func TestConcurrentWakesRunOneTaskThenStop(t *testing.T) {
	f := newFixture(t, "work")
	ctx := context.Background()
	c := f.container()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if err := f.r.Wake(ctx, c); err != nil {
				t.Errorf("Wake: %v", err)
			}
		})
	}
	wg.Wait()
	got := f.waitFor("running", running)
	if n := len(f.srv.RunRequests()); n != 1 {
		t.Fatalf("%d RunTask calls for 20 concurrent wakes, want 1", n)
	}
	tasks := f.srv.Tasks()
	if len(tasks) != 1 || got.Task != tasks[0] {
		t.Fatalf("tasks %v, container's task %q", tasks, got.Task)
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.woke.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if f.woke.Load() != 1 {
		t.Fatalf("Woke called %d times, want 1", f.woke.Load())
	}

	// The request, as ECS receives it.
	var req struct {
		Cluster, TaskDefinition, LaunchType, StartedBy, Group, ClientToken string
		Count                                                              int
		CapacityProviderStrategy                                           []struct {
			CapacityProvider string
			Weight           int
		}
		NetworkConfiguration struct {
			AwsvpcConfiguration struct {
				Subnets, SecurityGroups []string
				AssignPublicIp          string
			}
		}
		Overrides struct {
			ContainerOverrides []struct {
				Name        string
				Environment []struct{ Name, Value string }
			}
		}
		Tags []struct{ Key, Value string }
	}
	if err := json.Unmarshal(f.srv.RunRequests()[0], &req); err != nil {
		t.Fatal(err)
	}
	vpc := req.NetworkConfiguration.AwsvpcConfiguration
	if req.Cluster != "webordinary-edit-cluster" || req.TaskDefinition != "hermes-worker" || req.LaunchType != "" || req.Count != 1 ||
		len(req.CapacityProviderStrategy) != 1 || req.CapacityProviderStrategy[0].CapacityProvider != "FARGATE_SPOT" ||
		req.StartedBy != "hermes" || req.Group != "hermes:"+containerID || req.ClientToken != got.StartClaim ||
		!slices.Equal(vpc.Subnets, []string{"subnet-1", "subnet-2"}) || !slices.Equal(vpc.SecurityGroups, []string{"sg-1"}) ||
		vpc.AssignPublicIp != "DISABLED" {
		t.Errorf("RunTask request %s", f.srv.RunRequests()[0])
	}
	env := map[string]string{}
	if len(req.Overrides.ContainerOverrides) != 1 || req.Overrides.ContainerOverrides[0].Name != "worker" {
		t.Fatalf("overrides %+v", req.Overrides)
	}
	for _, kv := range req.Overrides.ContainerOverrides[0].Environment {
		env[kv.Name] = kv.Value
	}
	if env[hermes.ContainerIDVar] != containerID || env["HERMES_CLIENT_ID"] != "amelia" || env["HERMES_USER_ID"] != "scott" ||
		env["HERMES_STORE"] != "sqlite" {
		t.Errorf("environment overrides %v", env)
	}
	tags := map[string]string{}
	for _, tg := range req.Tags {
		tags[tg.Key] = tg.Value
	}
	if tags["client"] != "amelia" || tags["project"] != "site" || tags["user"] != "scott" || tags["managed-by"] != "hermes" {
		t.Errorf("tags %v", tags)
	}

	// A wake of a running container does nothing.
	if err := f.r.Wake(ctx, got); err != nil || len(f.srv.RunRequests()) != 1 {
		t.Fatalf("wake of a running container: %v, %d RunTask calls", err, len(f.srv.RunRequests()))
	}

	// Stop: StopTask → SIGTERM → the worker records its stop; the task
	// stops.
	if err := f.r.Stop(ctx, got); err != nil {
		t.Fatal(err)
	}
	if f.srv.Calls("StopTask") != 1 {
		t.Fatalf("%d StopTask calls", f.srv.Calls("StopTask"))
	}
	f.waitFor("stopped", func(c *hermes.Container) bool { return c.Status == hermes.ContainerStopped && c.Detail == "terminated" })
	deadline = time.Now().Add(5 * time.Second)
	for f.srv.Status(got.Task) != "STOPPED" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s := f.srv.Status(got.Task); s != "STOPPED" {
		t.Fatalf("task %s after StopTask", s)
	}
	// Reconcile leaves a stopped container with no jobs alone.
	if err := f.r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(f.srv.RunRequests()); n != 1 {
		t.Fatalf("reconcile started a task with no jobs: %d", n)
	}
}

// TestStartClaimAcrossReplicas: two runners with their own store
// connections (two Hermes replicas on one database) start one task for
// 20 concurrent wakes between them.
func TestStartClaimAcrossReplicas(t *testing.T) {
	f := newFixture(t, "work")
	ctx := context.Background()
	db2, err := sqlite.Open(ctx, f.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db2.Close() })
	replicas := []*Runner{f.r, f.runner(db2)}
	c := f.container()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if err := replicas[i%2].Wake(ctx, c); err != nil {
				t.Errorf("Wake: %v", err)
			}
		})
	}
	wg.Wait()
	f.waitFor("running", running)
	if n := len(f.srv.RunRequests()); n != 1 {
		t.Fatalf("%d RunTask calls for 20 wakes on two replicas, want 1", n)
	}
}

// TestReconcileStoppedTask: a task that dies under a running worker (a
// Spot interruption) makes the container missing with ECS's reason; with
// jobs waiting, the same pass starts a new task.
func TestReconcileStoppedTask(t *testing.T) {
	f := newFixture(t, "work")
	ctx := context.Background()
	if err := f.r.Wake(ctx, f.container()); err != nil {
		t.Fatal(err)
	}
	c := f.waitFor("running", running)
	f.srv.Kill(c.Task, "SpotInterruption", "Your Spot Task was interrupted.")
	if err := f.r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	got := f.container()
	if got.Status != hermes.ContainerMissing || !strings.Contains(got.Detail, "Your Spot Task was interrupted.") ||
		!strings.Contains(got.Detail, "SpotInterruption") {
		t.Fatalf("after reconcile: %s %q", got.Status, got.Detail)
	}
	if n := len(f.srv.RunRequests()); n != 1 {
		t.Fatalf("reconcile restarted a container with no jobs: %d RunTask calls", n)
	}
	f.sendJob()
	if err := f.r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(f.srv.RunRequests()); n != 2 {
		t.Fatalf("%d RunTask calls after a reconcile with a waiting job, want 2", n)
	}
	got = f.waitFor("running again", func(c *hermes.Container) bool { return running(c) && c.Task != got.Task })
	deadline := time.Now().Add(5 * time.Second)
	for f.visible() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if f.visible() != 0 {
		t.Fatal("the new task did not take the job")
	}
}

// TestGiveUp: starts that keep failing before the first heartbeat — a
// worker that exits at once, or RunTask failures — end in status error
// and the users told, once; reconcile then leaves the container alone
// until a new wake.
func TestGiveUp(t *testing.T) {
	t.Run("TaskExitsBeforeHeartbeat", func(t *testing.T) {
		f := newFixture(t, "crash")
		ctx := context.Background()
		f.sendJob()
		if err := f.r.Wake(ctx, f.container()); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 50 && f.container().Status != hermes.ContainerError; i++ {
			// Each pass sees the last task stopped, then starts another.
			time.Sleep(50 * time.Millisecond)
			if err := f.r.Reconcile(ctx); err != nil {
				t.Fatal(err)
			}
		}
		c := f.container()
		if c.Status != hermes.ContainerError || !strings.Contains(c.Detail, "3 times") || !strings.Contains(c.Detail, "exit code 3") ||
			!strings.Contains(c.Detail, "Essential container in task exited") {
			t.Fatalf("container %s %q", c.Status, c.Detail)
		}
		if n := len(f.srv.RunRequests()); n != 3 {
			t.Fatalf("%d RunTask calls, want 3", n)
		}
		select {
		case d := <-f.failed:
			if d != c.Detail {
				t.Errorf("Failed told %q", d)
			}
		default:
			t.Fatal("Failed was not called")
		}
		if err := f.r.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		if n := len(f.srv.RunRequests()); n != 3 || len(f.failed) != 0 {
			t.Fatalf("reconcile of a given-up container: %d RunTask calls, %d more Failed", n, len(f.failed))
		}
		// A new message is a new attempt.
		if err := f.r.Wake(ctx, c); err != nil {
			t.Fatal(err)
		}
		if n := len(f.srv.RunRequests()); n != 4 || f.container().StartFailures != 0 && f.container().Status == hermes.ContainerError {
			t.Fatalf("a fresh wake after a give-up: %d RunTask calls, %s", n, f.container().Status)
		}
	})
	t.Run("RunTaskFailures", func(t *testing.T) {
		f := newFixture(t, "work")
		ctx := context.Background()
		f.sendJob()
		const reason = "Capacity is unavailable at this time. Please try again later or in a different availability zone"
		f.srv.FailStarts(3, reason)
		err := f.r.Wake(ctx, f.container())
		if !hermes.IsKind(err, hermes.Unavailable) {
			t.Fatalf("Wake with a RunTask failure: %v", err)
		}
		if c := f.container(); c.Status != hermes.ContainerMissing || !strings.Contains(c.Detail, reason) || c.StartFailures != 1 {
			t.Fatalf("after a RunTask failure: %s %q %d", c.Status, c.Detail, c.StartFailures)
		}
		for range 2 {
			if err := f.r.Reconcile(ctx); err != nil {
				t.Fatal(err)
			}
		}
		c := f.container()
		if c.Status != hermes.ContainerError || !strings.Contains(c.Detail, reason) {
			t.Fatalf("after 3 RunTask failures: %s %q", c.Status, c.Detail)
		}
		if len(f.failed) != 1 {
			t.Fatalf("Failed called %d times", len(f.failed))
		}
		if len(f.srv.Tasks()) != 0 {
			t.Fatal("tasks started")
		}
	})
}

// TestHungWorkerStopped: a running worker whose heartbeats stop has its
// task stopped by reconcile (status missing).
func TestHungWorkerStopped(t *testing.T) {
	f := newFixture(t, "hang")
	f.r.HeartbeatTimeout = 200 * time.Millisecond
	ctx := context.Background()
	if err := f.r.Wake(ctx, f.container()); err != nil {
		t.Fatal(err)
	}
	c := f.waitFor("running", running)
	time.Sleep(300 * time.Millisecond)
	if err := f.r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	got := f.container()
	if got.Status != hermes.ContainerMissing || !strings.Contains(got.Detail, "no heartbeat since") || f.srv.Calls("StopTask") != 1 {
		t.Fatalf("hung: %s %q, %d StopTask calls", got.Status, got.Detail, f.srv.Calls("StopTask"))
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.srv.Status(c.Task) != "STOPPED" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if f.srv.Status(c.Task) != "STOPPED" {
		t.Fatal("the hung task was not stopped")
	}
}

// TestStartTimeout: a task that runs but never heartbeats is stopped
// after the start timeout and counts as a failed start.
func TestStartTimeout(t *testing.T) {
	f := newFixture(t, "work")
	f.r.StartTimeout = 300 * time.Millisecond
	f.srv = ecstest.New(t, ecstest.Config{
		Cluster: "webordinary-edit-cluster", TaskDefinition: "hermes-worker", ContainerName: "worker",
		Command: []string{"sleep", "60"}, // never heartbeats
	})
	f.r.API = NewClient(awsx.Emulator(f.srv.URL), "")
	ctx := context.Background()
	if err := f.r.Wake(ctx, f.container()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	if err := f.r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	c := f.container()
	if c.Status != hermes.ContainerMissing || c.StartFailures != 1 || !strings.Contains(c.Detail, "no heartbeat within") || f.srv.Calls("StopTask") != 1 {
		t.Fatalf("start timeout: %s %q %d, %d StopTask calls", c.Status, c.Detail, c.StartFailures, f.srv.Calls("StopTask"))
	}
}

// TestECSDown: while ECS answers 500s, Wake is Unavailable and the claim
// is released; the breaker opens and calls fail fast; once ECS is back,
// reconcile starts the container and the job is taken. Throttling is
// retried by the SDK.
func TestECSDown(t *testing.T) {
	f := newFixture(t, "work")
	ctx := context.Background()
	f.sendJob()
	f.srv.Down()
	for i := range 3 {
		if err := f.r.Wake(ctx, f.container()); !hermes.IsKind(err, hermes.Unavailable) {
			t.Fatalf("wake %d with ECS down: %v", i, err)
		}
		if c := f.container(); c.Status != hermes.ContainerStopped || c.StartClaim == "" {
			t.Fatalf("claim not released: %s %q", c.Status, c.Detail)
		}
	}
	calls := f.srv.Calls("RunTask")
	if f.r.Breaker.State() != "open" {
		t.Fatalf("breaker %s after 3 failed wakes", f.r.Breaker.State())
	}
	if err := f.r.Wake(ctx, f.container()); !hermes.IsKind(err, hermes.Unavailable) || f.srv.Calls("RunTask") != calls {
		t.Fatalf("wake with the breaker open: %v, %d calls (was %d)", err, f.srv.Calls("RunTask"), calls)
	}
	if err := f.r.Reconcile(ctx); err != nil {
		t.Fatal(err) // nothing to describe; the wake's failure is only logged
	}
	if f.visible() != 1 {
		t.Fatal("the job left its queue")
	}
	f.srv.Up()
	f.srv.Throttle(2) // retried by the SDK
	time.Sleep(350 * time.Millisecond)
	if err := f.r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	f.waitFor("running", running)
	deadline := time.Now().Add(5 * time.Second)
	for f.visible() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if f.visible() != 0 {
		t.Fatal("the job was not taken after ECS recovered")
	}
	if len(f.srv.Tasks()) != 1 || f.r.Breaker.State() != "closed" {
		t.Fatalf("%d tasks, breaker %s", len(f.srv.Tasks()), f.r.Breaker.State())
	}
}

// TestCheck: the health check describes the cluster — ok while ECS
// answers for it, an error while ECS is down or for a cluster it does not
// know.
func TestCheck(t *testing.T) {
	f := newFixture(t, "work")
	ctx := context.Background()
	if err := f.r.Check(ctx); err != nil {
		t.Fatalf("check: %v", err)
	}
	f.srv.Down()
	if err := f.r.Check(ctx); !hermes.IsKind(err, hermes.Unavailable) {
		t.Errorf("check with ECS down: %v", err)
	}
	f.srv.Up()
	f.r.Task.Cluster = "elsewhere"
	if err := f.r.Check(ctx); err == nil || !strings.Contains(err.Error(), "cluster elsewhere is missing") {
		t.Errorf("check of an unknown cluster: %v", err)
	}
}

// TestStopWithoutTask records a container that has no task stopped.
func TestStopWithoutTask(t *testing.T) {
	f := newFixture(t, "work")
	ctx := context.Background()
	if _, err := f.db.UpdateContainer(ctx, containerID, func(c *hermes.Container) error {
		c.Status = hermes.ContainerMissing
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := f.r.Stop(ctx, f.container()); err != nil {
		t.Fatal(err)
	}
	if c := f.container(); c.Status != hermes.ContainerStopped || f.srv.Calls("StopTask") != 0 {
		t.Fatalf("%s, %d StopTask calls", c.Status, f.srv.Calls("StopTask"))
	}
}
