// Package local is the embedded container runner: each edit container is a
// child process running `hermes worker` (the same binary), configured by
// its environment exactly as the ECS runner configures a task. The runner
// starts a container on its first job, supervises it (restarts with
// backoff after a crash while jobs are pending, gives up after repeated
// crashes), learns readiness from the worker's heartbeat in the store, and
// stops its children gracefully when Hermes shuts down.
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/webordinary/hermes"
)

// Defaults of the Runner's settings.
const (
	DefaultStopGrace    = 30 * time.Second
	DefaultMaxCrashes   = 3
	DefaultBackoff      = time.Second
	DefaultStartTimeout = 5 * time.Minute
	// DefaultStableAfter: a worker that ran this long before crashing
	// counts as a first crash again.
	DefaultStableAfter = time.Minute
	// DefaultHeartbeatTimeout is three of the worker's heartbeat periods.
	DefaultHeartbeatTimeout = 30 * time.Second
	// readyPoll is how often a starting container's record is read for
	// its first heartbeat.
	readyPoll = 10 * time.Millisecond
)

// ContainerIDVar is the variable naming the container a worker runs.
const ContainerIDVar = hermes.ContainerIDVar

// Runner implements hermes.Runner with child processes.
type Runner struct {
	Store  hermes.Store
	Queues hermes.Queues
	// Command is the worker's argv: the hermes binary and "worker".
	Command []string
	// Env is the worker's environment (KEY=VALUE); the runner adds
	// HERMES_CONTAINER_ID and the container's client, project and user.
	Env []string
	// Dir is the workers' working directory ("" for Hermes's own).
	Dir string
	// Output receives the workers' standard output and error (their logs);
	// io.Discard when nil.
	Output io.Writer
	Clock  hermes.Clock
	Log    *slog.Logger

	StopGrace    time.Duration // SIGTERM → SIGKILL on Stop and Close
	MaxCrashes   int           // consecutive crashes before status error
	Backoff      time.Duration // first restart delay; doubles per crash
	StartTimeout time.Duration // start → first heartbeat; longer is a crash
	StableAfter  time.Duration
	// HeartbeatTimeout: a ready worker whose last heartbeat is older is
	// missing (hung): Reconcile kills it, which counts as a crash.
	HeartbeatTimeout time.Duration

	// Woke, when set, learns each wake time: from the wake request to the
	// worker's first heartbeat (the measured wake latency).
	Woke func(containerID string, d time.Duration)
	// Failed, when set, is called once a container is given up on (status
	// error), to tell the users whose jobs wait.
	Failed func(ctx context.Context, c *hermes.Container, detail string)

	mu      sync.Mutex
	procs   map[string]*proc
	crashes map[string]int
	timers  map[string]*time.Timer // pending restarts
	closed  bool
	wg      sync.WaitGroup
}

// proc is one running worker.
type proc struct {
	id       string
	cmd      *exec.Cmd
	wakeAt   time.Time // when the wake was asked for
	started  time.Time
	done     chan struct{}
	stopping bool // asked to stop: its exit is no crash
	ready    bool
}

func (r *Runner) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Wake starts the container's worker unless it is running (or starting)
// in this process. Concurrent wakes start it once. A wake clears an earlier
// give-up (status error): a new message is a new attempt.
func (r *Runner) Wake(ctx context.Context, c *hermes.Container) error {
	return r.wake(ctx, c.ID, true, time.Now())
}

func (r *Runner) wake(ctx context.Context, id string, fresh bool, wakeAt time.Time) error {
	if len(r.Command) == 0 {
		return errors.New("local runner: no worker command")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return hermes.Errorf(hermes.Unavailable, "local runner: shutting down")
	}
	if r.procs == nil {
		r.procs, r.crashes, r.timers = map[string]*proc{}, map[string]int{}, map[string]*time.Timer{}
	}
	if _, ok := r.procs[id]; ok {
		return nil
	}
	if t, ok := r.timers[id]; ok {
		if !fresh {
			return nil // a restart is already scheduled
		}
		t.Stop()
		delete(r.timers, id)
	}
	if fresh {
		r.crashes[id] = 0
	}
	return r.start(ctx, id, wakeAt)
}

// start runs the worker of container id; r.mu is held.
func (r *Runner) start(ctx context.Context, id string, wakeAt time.Time) error {
	c, err := r.Store.UpdateContainer(ctx, id, func(c *hermes.Container) error {
		now := r.Clock.Now()
		c.Status, c.Detail, c.UpdatedAt = hermes.ContainerStarting, "", now
		return nil
	})
	if err != nil {
		return fmt.Errorf("local runner: recording the start of %s: %w", id, err)
	}
	cmd := exec.Command(r.Command[0], r.Command[1:]...)
	cmd.Dir = r.Dir
	cmd.Env = append(append([]string(nil), r.Env...), hermes.ContainerEnv(c)...)
	out := r.Output
	if out == nil {
		out = io.Discard
	}
	cmd.Stdout, cmd.Stderr = out, out
	detach(cmd)
	if err := cmd.Start(); err != nil {
		r.record(context.WithoutCancel(ctx), id, hermes.ContainerError, "the worker could not start: "+err.Error())
		return fmt.Errorf("local runner: starting the worker of %s: %w", id, err)
	}
	p := &proc{id: id, cmd: cmd, wakeAt: wakeAt, started: time.Now(), done: make(chan struct{})}
	r.procs[id] = p
	r.log().InfoContext(ctx, "container starting", "container_id", id, "pid", cmd.Process.Pid)
	r.wg.Go(func() { r.watch(p) })
	r.wg.Go(func() { r.awaitReady(p) })
	return nil
}

// awaitReady reads the container record until the worker's first
// heartbeat after its start, and reports the wake time. A worker with no
// heartbeat within StartTimeout is killed (and counts as a crash).
func (r *Runner) awaitReady(p *proc) {
	deadline := time.NewTimer(or(r.StartTimeout, DefaultStartTimeout))
	defer deadline.Stop()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	ctx := context.Background()
	for {
		select {
		case <-p.done:
			return
		case <-deadline.C:
			r.log().Error("container did not become ready in time; killing it", "container_id", p.id,
				"timeout", or(r.StartTimeout, DefaultStartTimeout).String())
			_ = p.cmd.Process.Kill()
			return
		case <-tick.C:
			c, err := r.Store.GetContainer(ctx, p.id)
			if err != nil {
				continue
			}
			if c.Status == hermes.ContainerRunning && c.LastHeartbeat != nil && !c.LastHeartbeat.Before(p.started.Truncate(time.Millisecond)) {
				d := time.Since(p.wakeAt)
				r.mu.Lock()
				p.ready = true
				r.mu.Unlock()
				r.log().Info("container ready", "container_id", p.id, "wake_ms", d.Milliseconds())
				if r.Woke != nil {
					r.Woke(p.id, d)
				}
				return
			}
		}
	}
}

// watch waits for the worker to exit and decides what follows: nothing
// after a stop; a new start when jobs came in as it went idle; a restart
// with backoff after a crash while jobs are pending; status error after
// MaxCrashes crashes in a row.
func (r *Runner) watch(p *proc) {
	err := p.cmd.Wait()
	ran := time.Since(p.started)
	ctx := context.Background()
	r.mu.Lock()
	delete(r.procs, p.id)
	stopping, closed := p.stopping, r.closed
	r.mu.Unlock()
	log := r.log().With("container_id", p.id, "ran", ran.Round(time.Millisecond).String())

	if stopping || closed {
		log.Info("container stopped")
		// The worker records its own stop; a killed one cannot. Recorded
		// before done closes, so that Stop returns with it in the store.
		if err != nil {
			r.record(ctx, p.id, hermes.ContainerStopped, "killed after the stop grace period")
		}
		close(p.done)
		return
	}
	close(p.done)
	pending, perr := r.pending(ctx, p.id)
	if err == nil {
		log.Info("container exited")
		r.mu.Lock()
		r.crashes[p.id] = 0
		r.mu.Unlock()
		if perr == nil && pending > 0 {
			// A job arrived as the worker went idle.
			if err := r.wake(ctx, p.id, false, time.Now()); err != nil {
				log.Error("restarting the container for its waiting jobs", "err", err)
			}
		}
		return
	}

	r.mu.Lock()
	if ran >= or(r.StableAfter, DefaultStableAfter) {
		r.crashes[p.id] = 0
	}
	r.crashes[p.id]++
	n := r.crashes[p.id]
	r.mu.Unlock()
	detail := fmt.Sprintf("the worker exited: %v", err)
	if n >= or(r.MaxCrashes, DefaultMaxCrashes) {
		detail = fmt.Sprintf("the worker crashed %d times in a row (last: %v)", n, err)
		log.Error("container given up on", "crashes", n, "err", err)
		c := r.record(ctx, p.id, hermes.ContainerError, detail)
		if c != nil && r.Failed != nil {
			r.Failed(ctx, c, detail)
		}
		return
	}
	if perr != nil || pending == 0 {
		log.Warn("container crashed; no job waits, so it starts again with the next one", "err", err)
		r.record(ctx, p.id, hermes.ContainerMissing, detail)
		return
	}
	delay := or(r.Backoff, DefaultBackoff) << (n - 1)
	log.Warn("container crashed; restarting", "err", err, "crashes", n, "in", delay.String(), "pending", pending)
	r.record(ctx, p.id, hermes.ContainerMissing, detail)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.timers[p.id] = time.AfterFunc(delay, func() {
		r.mu.Lock()
		delete(r.timers, p.id)
		r.mu.Unlock()
		if err := r.wake(ctx, p.id, false, time.Now()); err != nil {
			r.log().Error("restarting a crashed container", "container_id", p.id, "err", err)
		}
	})
}

// pending is how many jobs wait for the container (visible or in flight).
func (r *Runner) pending(ctx context.Context, id string) (int, error) {
	c, err := r.Store.GetContainer(ctx, id)
	if err != nil {
		return 0, err
	}
	if c.Queues.Input == "" {
		return 0, nil
	}
	st, err := r.Queues.Stats(ctx, c.Queues.Input)
	if err != nil {
		return 0, err
	}
	return st.Visible + st.InFlight, nil
}

// record sets the container's status and detail; it returns the stored
// container, nil when that failed (logged).
func (r *Runner) record(ctx context.Context, id string, status hermes.ContainerStatus, detail string) *hermes.Container {
	c, err := r.Store.UpdateContainer(ctx, id, func(c *hermes.Container) error {
		c.Status, c.Detail, c.UpdatedAt = status, detail, r.Clock.Now()
		return nil
	})
	if err != nil {
		r.log().Error("recording the container's status", "container_id", id, "status", status, "err", err)
		return nil
	}
	return c
}

// Running reports whether the container's worker is a live child of this
// runner.
func (r *Runner) Running(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.procs[id]
	return ok
}

// Stop asks the container's worker to stop (SIGTERM: it checkpoints, and a
// job it was running is left for redelivery) and waits for it to exit; it
// is killed after StopGrace or when ctx ends. A container with no worker
// here is recorded stopped unless it is already.
func (r *Runner) Stop(ctx context.Context, c *hermes.Container) error {
	r.mu.Lock()
	p := r.procs[c.ID]
	if t, ok := r.timers[c.ID]; ok {
		t.Stop()
		delete(r.timers, c.ID)
	}
	if p != nil {
		p.stopping = true
	}
	r.mu.Unlock()
	if p == nil {
		cur, err := r.Store.GetContainer(ctx, c.ID)
		if err != nil {
			return err
		}
		if cur.Status != hermes.ContainerStopped && cur.Status != hermes.ContainerError {
			r.record(ctx, c.ID, hermes.ContainerStopped, "stopped")
		}
		return nil
	}
	r.record(ctx, c.ID, hermes.ContainerStopping, "")
	r.stop(ctx, p)
	return nil
}

// stop signals p and waits for it, killing it after the grace period.
func (r *Runner) stop(ctx context.Context, p *proc) {
	_ = terminate(p.cmd)
	grace := time.NewTimer(or(r.StopGrace, DefaultStopGrace))
	defer grace.Stop()
	select {
	case <-p.done:
		return
	case <-grace.C:
	case <-ctx.Done():
	}
	r.log().Warn("container did not stop in time; killing it", "container_id", p.id)
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Check reports, for the health check, whether the worker program can be
// started: the command's binary exists and is executable.
func (r *Runner) Check(context.Context) error {
	if len(r.Command) == 0 {
		return hermes.Errorf(hermes.Internal, "no worker command")
	}
	bin, err := exec.LookPath(r.Command[0])
	if err != nil {
		return hermes.Errorf(hermes.Unavailable, "the worker binary %s: %v", r.Command[0], err)
	}
	fi, err := os.Stat(bin)
	if err != nil || fi.IsDir() {
		return hermes.Errorf(hermes.Unavailable, "the worker binary %s is not a file", bin)
	}
	return nil
}

// Close stops every worker (as Stop does, in parallel, bounded by ctx and
// StopGrace) and cancels pending restarts. Wakes after Close fail.
func (r *Runner) Close(ctx context.Context) {
	r.mu.Lock()
	r.closed = true
	for id, t := range r.timers {
		t.Stop()
		delete(r.timers, id)
	}
	ps := make([]*proc, 0, len(r.procs))
	for _, p := range r.procs {
		p.stopping = true
		ps = append(ps, p)
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() { r.stop(ctx, p) })
	}
	wg.Wait()
	r.wg.Wait()
}

// Reconcile is the safety net behind push wakes: containers recorded as
// running or starting without a worker here (Hermes restarted) are marked
// stopped, and containers whose input queue has visible jobs and no worker
// are woken — except those given up on (status error), which wait for a
// new message or an operator's wake.
func (r *Runner) Reconcile(ctx context.Context) error {
	cs, err := r.Store.ListContainers(ctx)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.mu.Lock()
		p, live := r.procs[c.ID]
		ready := live && p.ready
		_, restarting := r.timers[c.ID]
		r.mu.Unlock()
		if ready && c.LastHeartbeat != nil && r.Clock.Now().Sub(*c.LastHeartbeat) > or(r.HeartbeatTimeout, DefaultHeartbeatTimeout) {
			r.log().WarnContext(ctx, "reconcile: the worker's heartbeats stopped; killing it", "container_id", c.ID,
				"last_heartbeat", c.LastHeartbeat.Format(time.RFC3339))
			r.record(ctx, c.ID, hermes.ContainerMissing, "no heartbeat since "+c.LastHeartbeat.Format(time.RFC3339))
			_ = p.cmd.Process.Kill()
			continue
		}
		if live || restarting {
			continue
		}
		switch c.Status {
		case hermes.ContainerRunning, hermes.ContainerStarting, hermes.ContainerStopping:
			r.log().InfoContext(ctx, "reconcile: container has no worker; recorded stopped", "container_id", c.ID, "was", c.Status)
			r.record(ctx, c.ID, hermes.ContainerStopped, "no worker (Hermes restarted)")
		case hermes.ContainerError:
			continue
		}
		if c.Queues.Input == "" {
			continue
		}
		st, err := r.Queues.Stats(ctx, c.Queues.Input)
		if err != nil {
			if !hermes.IsKind(err, hermes.NotFound) {
				r.log().WarnContext(ctx, "reconcile: reading the input queue", "container_id", c.ID, "err", err)
			}
			continue
		}
		if st.Visible > 0 {
			r.log().InfoContext(ctx, "reconcile: waking a container with waiting jobs", "container_id", c.ID, "jobs", st.Visible)
			if err := r.wake(ctx, c.ID, false, time.Now()); err != nil {
				r.log().WarnContext(ctx, "reconcile: waking", "container_id", c.ID, "err", err)
			}
		}
	}
	return nil
}

// RunReconcile reconciles every interval until ctx ends.
func (r *Runner) RunReconcile(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := r.Reconcile(ctx); err != nil && ctx.Err() == nil {
			r.log().WarnContext(ctx, "reconcile failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// TellWaiting reports an error result on c's output queue for every job
// waiting on its input queue, so that the results relay tells each user
// (once per job) that their editor could not start. The jobs stay queued:
// they run when the container starts again.
func TellWaiting(ctx context.Context, q hermes.Queues, clock hermes.Clock, c *hermes.Container, detail string) (int, error) {
	if c.Queues.Input == "" || c.Queues.Output == "" {
		return 0, nil
	}
	const peekVisibility = 5 * time.Second
	seen := map[string]bool{}
	var receipts []string
	defer func() {
		for _, rc := range receipts {
			_ = q.ChangeVisibility(context.WithoutCancel(ctx), c.Queues.Input, rc, 0)
		}
	}()
	n := 0
	for range 100 {
		ds, err := q.Receive(ctx, c.Queues.Input, hermes.MaxReceiveBatch, 0, peekVisibility)
		if err != nil {
			return n, err
		}
		if len(ds) == 0 {
			break
		}
		for _, d := range ds {
			receipts = append(receipts, d.Receipt)
			var job hermes.Job
			if json.Unmarshal([]byte(d.Body), &job) != nil || job.ID == "" || seen[job.ID] || job.Type == hermes.JobControl {
				continue
			}
			seen[job.ID] = true
			now := clock.Now()
			res := hermes.ResultMessage{
				Version: hermes.ResultVersion, Type: hermes.ResultError, SessionID: job.SessionID, ThreadID: job.ThreadID,
				Reply: job.Reply, StartedAt: now,
				Result: hermes.Result{JobID: job.ID, FinishedAt: now,
					Error: "your editor could not start (" + detail + "). The request is kept and runs when the editor starts again: send another message to retry."},
			}
			body, err := json.Marshal(res)
			if err != nil {
				return n, err
			}
			if _, err := q.Send(ctx, c.Queues.Output, string(body), map[string]string{"jobId": job.ID, "type": res.Type}); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// Environ returns the variables of env named in names, as KEY=VALUE, for a
// worker's environment.
func Environ(getenv func(string) string, names ...string) []string {
	var out []string
	for _, k := range names {
		if v := getenv(k); v != "" {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// Executable is this program's path, the default worker binary.
func Executable() (string, error) { return os.Executable() }
