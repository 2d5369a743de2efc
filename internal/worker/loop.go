package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/webordinary/hermes"
)

// Defaults of the Loop's durations.
const (
	DefaultVisibility  = 300 * time.Second
	DefaultHeartbeat   = 10 * time.Second
	DefaultIdleTimeout = 10 * time.Minute
	DefaultQueuePrefix = "webordinary-"
)

// DoneJobsFile is the name of the record of finished job ids, kept in the
// checkout's .git directory (so that it is never committed) and capped at
// maxDoneJobs ids, oldest dropped first.
const DoneJobsFile = "hermes-done-jobs.json"

const maxDoneJobs = 1000

// finalTimeout bounds the store and queue calls made after ctx has ended
// (the last container update, making an abandoned job visible again).
const finalTimeout = 10 * time.Second

// Loop is the worker of one edit container: it takes the jobs of the
// container's input queue one at a time, applies each with the Workspace and
// reports the result on the output queue (SPEC §9, docs/jobs.md).
//
// Delivery: a result is sent before its job is deleted, and the job id is
// recorded as finished in between (DoneJobsFile), so a job redelivered after
// a crash is skipped rather than applied and answered again. A crash between
// sending and recording may send a result twice; Hermes records results
// idempotently by job id, so the user is answered once.
//
// Jobs that are not understood (malformed JSON, an unknown version) are
// logged and left undeleted: they reach the dead-letter queue after the
// input queue's maximum receives. A job whose workspace fails (git) is left
// for redelivery; on its last receive (hermes.DefaultMaxReceive) an error
// result is sent instead so that the user hears of it.
//
// Run returns nil after IdleTimeout without a job (the container record is
// then stopped with Detail "idle exit") and when ctx ends (SIGTERM). A job
// running when ctx ends is cancelled: Apply commits the partial work as a
// WIP checkpoint, no result is sent and the job is made visible again, so
// the next worker redoes it on top of the checkpoint — the job is finished
// or left for redelivery, never lost.
//
// Interrupting a running job when a newer one arrives (SPEC §2.7) is not
// implemented by this loop: jobs run one after the other.
type Loop struct {
	Store       hermes.Store
	Queues      hermes.Queues
	ContainerID string
	Workspace   *Workspace
	Clock       hermes.Clock  // time.Now when nil
	Log         *slog.Logger  // slog.Default() when nil
	IdleTimeout time.Duration // DefaultIdleTimeout when zero
	Visibility  time.Duration // how long a received job stays hidden; DefaultVisibility when zero
	Heartbeat   time.Duration // container record updates; DefaultHeartbeat when zero
	QueuePrefix string        // DefaultQueuePrefix when empty

	detailMu sync.Mutex
	detail   string
}

func (l *Loop) log() *slog.Logger {
	if l.Log != nil {
		return l.Log
	}
	return slog.Default()
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func (l *Loop) queues() hermes.QueueSet {
	prefix := l.QueuePrefix
	if prefix == "" {
		prefix = DefaultQueuePrefix
	}
	return hermes.QueueSetFor(prefix, l.ContainerID)
}

// Run prepares the workspace and works until IdleTimeout passes without a
// job or ctx ends.
func (l *Loop) Run(ctx context.Context) error {
	if l.Store == nil || l.Queues == nil || l.Workspace == nil || l.ContainerID == "" {
		return errors.New("worker: loop: store, queues, workspace and container id are required")
	}
	log := l.log().With("container_id", l.ContainerID)
	if err := l.Workspace.Prepare(ctx); err != nil {
		l.finish(ctx, hermes.ContainerError, err.Error())
		return err
	}
	l.setDetail("idle")
	if err := l.heartbeat(ctx); err != nil {
		return fmt.Errorf("worker: recording the container as running: %w", err)
	}
	hbCtx, stopHB := context.WithCancel(ctx)
	var hbDone sync.WaitGroup
	hbDone.Go(func() { l.heartbeats(hbCtx) })
	// exit stops the heartbeats before the final status, which they would
	// otherwise overwrite.
	exit := func(status hermes.ContainerStatus, detail string) error {
		stopHB()
		hbDone.Wait()
		l.finish(ctx, status, detail)
		return nil
	}
	defer func() { stopHB(); hbDone.Wait() }()

	idle := orDefault(l.IdleTimeout, DefaultIdleTimeout)
	q := l.queues()
	lastWork := time.Now()
	log.InfoContext(ctx, "worker started", "input", q.Input, "idleTimeout", idle)
	for {
		left := idle - time.Since(lastWork)
		if ctx.Err() != nil {
			log.InfoContext(ctx, "worker stopping")
			return exit(hermes.ContainerStopped, "terminated")
		}
		if left <= 0 {
			log.InfoContext(ctx, "idle: worker exiting", "idleTimeout", idle)
			return exit(hermes.ContainerStopped, "idle exit")
		}
		ds, err := l.Queues.Receive(ctx, q.Input, 1, min(left, hermes.MaxReceiveWait), orDefault(l.Visibility, DefaultVisibility))
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			log.ErrorContext(ctx, "receiving jobs", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		for _, d := range ds {
			if l.handle(ctx, log, q, d) {
				lastWork = time.Now()
			}
		}
	}
}

// handle takes one delivery and reports whether it was work (a job run or
// skipped as done) rather than a message left for the dead-letter queue.
func (l *Loop) handle(ctx context.Context, log *slog.Logger, q hermes.QueueSet, d hermes.Delivery) bool {
	var job hermes.Job
	if err := json.Unmarshal([]byte(d.Body), &job); err != nil {
		log.ErrorContext(ctx, "malformed job left for the dead-letter queue", "message", d.ID, "receives", d.ReceiveCount, "err", err)
		return false
	}
	if job.Version != hermes.JobVersion {
		log.ErrorContext(ctx, "job of an unknown version left for the dead-letter queue", "message", d.ID, "job", job.ID, "version", job.Version, "receives", d.ReceiveCount)
		return false
	}
	log = log.With("job", job.ID, "thread", job.ThreadID)
	done, err := l.isDone(job.ID)
	if err != nil {
		// Running it again at worst sends a second result, which Hermes
		// records once.
		log.ErrorContext(ctx, "the record of finished jobs is unreadable; running the job", "err", err)
	}
	if done {
		log.InfoContext(ctx, "job already finished: deleting the repeat")
		if err := l.Queues.Delete(ctx, q.Input, d.Receipt); err != nil {
			log.ErrorContext(ctx, "deleting a finished job", "err", err)
		}
		return true
	}

	l.setDetail("busy")
	l.heartbeatLogged(ctx)
	defer func() { l.setDetail("idle"); l.heartbeatLogged(ctx) }()
	jobCtx, stop := context.WithCancel(ctx)
	var extender sync.WaitGroup
	extender.Go(func() { l.extend(jobCtx, log, q.Input, d.Receipt) })
	res, err := l.Workspace.Apply(jobCtx, &job)
	stop()
	extender.Wait()

	if ctx.Err() != nil {
		log.InfoContext(ctx, "stopped during a job: it is left for redelivery")
		l.release(ctx, log, q.Input, d.Receipt)
		return true
	}
	if err != nil {
		if d.ReceiveCount < hermes.DefaultMaxReceive {
			log.ErrorContext(ctx, "the job failed in the workspace; it is left for redelivery", "receives", d.ReceiveCount, "err", err)
			l.release(ctx, log, q.Input, d.Receipt)
			return true
		}
		log.ErrorContext(ctx, "the job failed in the workspace on its last receive; reporting the error", "receives", d.ReceiveCount, "err", err)
		res = &hermes.ResultMessage{
			Version: hermes.ResultVersion, Type: hermes.ResultError,
			SessionID: job.SessionID, ThreadID: job.ThreadID, Reply: job.Reply,
			StartedAt: l.Clock.Now(),
			Result:    hermes.Result{JobID: job.ID, Error: "the workspace failed: " + err.Error(), FinishedAt: l.Clock.Now()},
		}
	}
	body, err := json.Marshal(res)
	if err != nil {
		log.ErrorContext(ctx, "encoding the result", "err", err)
		return true
	}
	attrs := map[string]string{"jobId": job.ID, "type": res.Type, "threadId": job.ThreadID, "sessionId": job.SessionID}
	if _, err := l.Queues.Send(ctx, q.Output, string(body), attrs); err != nil {
		// The job is not deleted: it becomes visible again and is redone.
		log.ErrorContext(ctx, "sending the result; the job is left for redelivery", "err", err)
		return true
	}
	if err := l.markDone(job.ID); err != nil {
		log.ErrorContext(ctx, "recording the job as finished", "err", err)
	}
	if err := l.Queues.Delete(ctx, q.Input, d.Receipt); err != nil {
		log.ErrorContext(ctx, "deleting the finished job", "err", err)
	}
	return true
}

// extend keeps the job hidden while it runs: every Visibility/2 its
// visibility is set to Visibility from now.
func (l *Loop) extend(ctx context.Context, log *slog.Logger, queue, receipt string) {
	vis := orDefault(l.Visibility, DefaultVisibility)
	t := time.NewTicker(max(vis/2, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := l.Queues.ChangeVisibility(ctx, queue, receipt, vis); err != nil && ctx.Err() == nil {
				log.ErrorContext(ctx, "extending the job's visibility", "err", err)
			}
		}
	}
}

// release makes a received job visible again at once, even after ctx ended.
func (l *Loop) release(ctx context.Context, log *slog.Logger, queue, receipt string) {
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalTimeout)
	defer cancel()
	if err := l.Queues.ChangeVisibility(c, queue, receipt, 0); err != nil {
		log.ErrorContext(ctx, "making the job visible again", "err", err)
	}
}

func (l *Loop) setDetail(s string) {
	l.detailMu.Lock()
	l.detail = s
	l.detailMu.Unlock()
}

func (l *Loop) currentDetail() string {
	l.detailMu.Lock()
	defer l.detailMu.Unlock()
	return l.detail
}

// heartbeat records the container as running, with the current detail
// (busy or idle) and the time.
func (l *Loop) heartbeat(ctx context.Context) error {
	detail := l.currentDetail()
	_, err := l.Store.UpdateContainer(ctx, l.ContainerID, func(c *hermes.Container) error {
		now := l.Clock.Now()
		c.Status, c.Detail, c.LastHeartbeat, c.UpdatedAt = hermes.ContainerRunning, detail, &now, now
		return nil
	})
	return err
}

func (l *Loop) heartbeatLogged(ctx context.Context) {
	if err := l.heartbeat(ctx); err != nil && ctx.Err() == nil {
		l.log().ErrorContext(ctx, "heartbeat", "container_id", l.ContainerID, "err", err)
	}
}

func (l *Loop) heartbeats(ctx context.Context) {
	t := time.NewTicker(orDefault(l.Heartbeat, DefaultHeartbeat))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.heartbeatLogged(ctx)
		}
	}
}

// finish records the container's final status, even after ctx ended.
func (l *Loop) finish(ctx context.Context, status hermes.ContainerStatus, detail string) {
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalTimeout)
	defer cancel()
	_, err := l.Store.UpdateContainer(c, l.ContainerID, func(ct *hermes.Container) error {
		now := l.Clock.Now()
		ct.Status, ct.Detail, ct.LastHeartbeat, ct.UpdatedAt = status, detail, &now, now
		return nil
	})
	if err != nil {
		l.log().ErrorContext(ctx, "recording the container's status", "container_id", l.ContainerID, "status", status, "err", err)
	}
}

// doneFile is the record of finished job ids: in the checkout's .git
// directory, so that it survives restarts and is never committed.
func (l *Loop) doneFile() string {
	return filepath.Join(l.Workspace.Dir, ".git", DoneJobsFile)
}

func (l *Loop) readDone() ([]string, error) {
	b, err := os.ReadFile(l.doneFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	if err := json.Unmarshal(b, &ids); err != nil {
		return nil, fmt.Errorf("worker: %s: %w", l.doneFile(), err)
	}
	return ids, nil
}

func (l *Loop) isDone(id string) (bool, error) {
	ids, err := l.readDone()
	return slices.Contains(ids, id), err
}

// markDone adds id to the record (written to a temporary file and renamed).
func (l *Loop) markDone(id string) error {
	ids, err := l.readDone()
	if err != nil {
		ids = nil // a damaged record is replaced
	}
	ids = append(ids, id)
	if len(ids) > maxDoneJobs {
		ids = ids[len(ids)-maxDoneJobs:]
	}
	b, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	tmp := l.doneFile() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, l.doneFile())
}
