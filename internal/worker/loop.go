package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
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

// DefaultWatchWait is the longest poll of the input queue while a job
// runs when Loop.WatchWait is zero.
const DefaultWatchWait = 2 * time.Second

// maxHeld is the most jobs a worker holds (received, hidden, waiting to run
// after the running one); the others wait in the queue.
const maxHeld = 10

// Control actions (hermes.Job.Control).
const ControlDeactivate = "deactivate"

// Loop is the worker of one edit container: it takes the jobs of the
// container's input queue one at a time, applies each with the Workspace and
// reports it on the output queue (SPEC §9, docs/jobs.md): a "started"
// notice (hermes.ResultStarted) when it starts, then its result.
//
// Delivery: a result is sent before its job is deleted, and the job id is
// recorded as finished in between (DoneJobsFile), so a job redelivered after
// a crash is skipped rather than applied and answered again. A crash between
// sending and recording may send a result twice; Hermes records results
// idempotently by job id, so the user is answered once.
//
// Interrupts (SPEC §2.7): while a job runs, the loop keeps receiving from
// the input queue. What it receives is held — hidden, its visibility
// extended like the running job's — and runs next, in the order the jobs
// were queued (never released and received again, so that nothing is lost
// or run twice; if the worker dies, the visibility timeout returns every
// held job to the queue). With the project's busy policy "interrupt" (the
// default), a job queued after the running one started interrupts it: the
// agent is stopped (SIGTERM to its process group, SIGKILL after the
// Workspace's KillGrace), its partial work is committed as a checkpoint on
// the thread's branch, an "interrupted" result is sent for it and it is
// deleted; the newer job then runs on top (on the same branch when it is
// the same thread). Jobs that were already waiting when the running one
// started do not interrupt it. With "queue", jobs wait for the running
// one. Another delivery of the running (or a held) job is deleted without
// interrupting anything.
//
// A control job (type "control") always interrupts. "deactivate" then
// checkpoints the workspace, deletes the control job without a result,
// makes the other held jobs visible again, records the container stopped
// with Detail "deactivated" and ends Run with nil.
//
// A restarted worker (its clone exists) fetches from origin while it
// already takes its first job, which waits for the fetch before it is
// applied; a failed fetch releases the job and ends Run with the container
// in error, as a failed first clone does.
//
// The receipts of the held jobs are kept in the checkout's .git directory
// (HeldFile): a worker started after a crash makes its predecessor's jobs
// visible at once instead of after their visibility timeout. Jobs of a
// session that has ended (deactivated or expired) are deleted without
// running.
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
// WIP checkpoint, no result is sent and the job is made visible again, as
// are the held ones, so the next worker redoes it on top of the checkpoint —
// every job is finished or left for redelivery, never lost.
type Loop struct {
	Store       hermes.Store
	Queues      hermes.Queues
	ContainerID string
	Workspace   *Workspace    // its Project's BusyPolicy decides what a newer job does
	Clock       hermes.Clock  // time.Now when nil
	Log         *slog.Logger  // slog.Default() when nil
	IdleTimeout time.Duration // DefaultIdleTimeout when zero
	Visibility  time.Duration // how long a received job stays hidden; DefaultVisibility when zero
	Heartbeat   time.Duration // container record updates; DefaultHeartbeat when zero
	QueuePrefix string        // DefaultQueuePrefix when empty
	// WatchWait is the longest poll of the input queue while a job runs;
	// DefaultWatchWait when zero.
	WatchWait time.Duration

	detailMu sync.Mutex
	detail   string

	prep    chan struct{} // closed once the workspace is prepared
	prepErr error         // the preparation's failure; read after prep is closed

	heldMu  sync.Mutex
	pending []*heldJob          // received, waiting to run, in order
	held    map[*heldJob]string // every received job not yet deleted or released → its current receipt
}

// heldJob is a received job.
type heldJob struct {
	d   hermes.Delivery
	job hermes.Job
	at  time.Time // when it was queued: the job's createdAt, else the message's
}

// running is the job being applied, as the watcher sees it.
type running struct {
	h      *heldJob
	start  time.Time
	cancel context.CancelCauseFunc
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

func (l *Loop) busyPolicy() string {
	if p := l.Workspace.Project; p != nil && p.BusyPolicy != "" {
		return p.BusyPolicy
	}
	return hermes.BusyInterrupt
}

// Run prepares the workspace and works until IdleTimeout passes without a
// job, a control job deactivates the container, or ctx ends.
func (l *Loop) Run(ctx context.Context) error {
	if l.Store == nil || l.Queues == nil || l.Workspace == nil || l.ContainerID == "" {
		return errors.New("worker: loop: store, queues, workspace and container id are required")
	}
	log := l.log().With("container_id", l.ContainerID)
	// A first start clones before anything else (the clone needs an empty
	// directory). A restart fetches while the worker already takes its
	// first job: process waits for the fetch before applying it.
	l.prep = make(chan struct{})
	if _, err := os.Stat(filepath.Join(l.Workspace.Dir, ".git")); err == nil {
		go func() { l.prepErr = l.Workspace.Prepare(ctx); close(l.prep) }()
	} else {
		if err := l.Workspace.Prepare(ctx); err != nil {
			l.finish(ctx, hermes.ContainerError, err.Error())
			return err
		}
		close(l.prep)
	}
	defer func() { <-l.prep }() // a fetch outliving Run is cancelled with ctx
	l.setDetail("idle")
	if err := l.heartbeat(ctx); err != nil {
		return fmt.Errorf("worker: recording the container as running: %w", err)
	}
	q := l.queues()
	l.releasePredecessor(ctx, log, q.Input)
	bgCtx, stopBG := context.WithCancel(ctx)
	var bg sync.WaitGroup
	bg.Go(func() { l.heartbeats(bgCtx) })
	bg.Go(func() { l.extend(bgCtx, log, q.Input) })
	// exit stops the heartbeats before the final status, which they would
	// otherwise overwrite, and makes every held job visible again.
	exit := func(status hermes.ContainerStatus, detail string) error {
		stopBG()
		bg.Wait()
		l.releaseAll(ctx, log, q.Input)
		l.finish(ctx, status, detail)
		return nil
	}
	defer func() { stopBG(); bg.Wait() }()

	idle := orDefault(l.IdleTimeout, DefaultIdleTimeout)
	lastWork := time.Now()
	log.InfoContext(ctx, "worker started", "input", q.Input, "idleTimeout", idle, "busyPolicy", l.busyPolicy())
	for {
		if ctx.Err() != nil {
			log.InfoContext(ctx, "worker stopping")
			return exit(hermes.ContainerStopped, "terminated")
		}
		if h := l.next(); h != nil {
			stop := l.process(ctx, log, q, h)
			if l.prepFailed() {
				log.ErrorContext(ctx, "preparing the workspace failed; worker exiting", "err", l.prepErr)
				stopBG()
				bg.Wait()
				l.releaseAll(ctx, log, q.Input)
				l.finish(ctx, hermes.ContainerError, l.prepErr.Error())
				return l.prepErr
			}
			if stop {
				log.InfoContext(ctx, "deactivated: worker exiting")
				return exit(hermes.ContainerStopped, "deactivated")
			}
			lastWork = time.Now()
			continue
		}
		left := idle - time.Since(lastWork)
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
			if l.accept(ctx, log, q, d, nil) {
				lastWork = time.Now()
			}
		}
	}
}

// accept takes a delivery: a job to run is held (added to the pending jobs,
// its visibility extended from now on); a job finished before, or another
// delivery of a held job, is deleted; a message that is not a job is left
// for the dead-letter queue. run is the running job, if any: a newer job
// interrupts it. accept reports whether the delivery was work (a job, or a
// repeat of one) rather than a message left for the dead-letter queue.
func (l *Loop) accept(ctx context.Context, log *slog.Logger, q hermes.QueueSet, d hermes.Delivery, run *running) bool {
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
		l.deleteMessage(ctx, log, q.Input, d.Receipt)
		return true
	}
	l.heldMu.Lock()
	for h, receipt := range l.held {
		switch {
		case h.d.ID == d.ID:
			// The same message again (its visibility lapsed): this receipt
			// is now the one that counts.
			if receipt != d.Receipt {
				l.held[h] = d.Receipt
				l.saveHeldLocked(log)
			}
			l.heldMu.Unlock()
			log.WarnContext(ctx, "a held job was delivered again; its newer receipt is kept")
			return true
		case h.job.ID == job.ID:
			l.heldMu.Unlock()
			log.InfoContext(ctx, "another delivery of a job already held: deleting it")
			l.deleteMessage(ctx, log, q.Input, d.Receipt)
			return true
		}
	}
	h := &heldJob{d: d, job: job, at: job.CreatedAt}
	if h.at.IsZero() {
		h.at = d.SentAt
	}
	if h.at.IsZero() {
		h.at = l.Clock.Now()
	}
	if l.held == nil {
		l.held = map[*heldJob]string{}
	}
	l.held[h] = d.Receipt
	l.saveHeldLocked(log)
	// Control jobs first, then in the order they were queued.
	i := len(l.pending)
	for i > 0 && (job.Type == hermes.JobControl && l.pending[i-1].job.Type != hermes.JobControl ||
		job.Type != hermes.JobControl && l.pending[i-1].job.Type != hermes.JobControl && h.at.Before(l.pending[i-1].at)) {
		i--
	}
	l.pending = slices.Insert(l.pending, i, h)
	l.heldMu.Unlock()

	if run != nil {
		switch {
		case job.Type == hermes.JobControl:
			log.InfoContext(ctx, "a control job interrupts the running job", "running", run.h.job.ID, "control", job.Control)
			run.cancel(ErrInterrupted)
		case l.busyPolicy() == hermes.BusyInterrupt && h.at.After(run.start):
			log.InfoContext(ctx, "a newer job interrupts the running job", "running", run.h.job.ID)
			run.cancel(ErrInterrupted)
		default:
			log.InfoContext(ctx, "a job waits for the running one", "running", run.h.job.ID, "policy", l.busyPolicy())
		}
	}
	return true
}

// next takes the first pending job.
func (l *Loop) next() *heldJob {
	l.heldMu.Lock()
	defer l.heldMu.Unlock()
	if len(l.pending) == 0 {
		return nil
	}
	h := l.pending[0]
	l.pending = l.pending[1:]
	return h
}

// receipt is the held job's current receipt.
func (l *Loop) receipt(h *heldJob) string {
	l.heldMu.Lock()
	defer l.heldMu.Unlock()
	if r, ok := l.held[h]; ok {
		return r
	}
	return h.d.Receipt
}

// unhold stops extending the job's visibility.
func (l *Loop) unhold(h *heldJob) {
	l.heldMu.Lock()
	delete(l.held, h)
	l.saveHeldLocked(l.log())
	l.heldMu.Unlock()
}

// HeldFile is the record of the receipts of the jobs a worker holds, kept
// in the checkout's .git directory: a worker that starts after a crash
// makes its predecessor's jobs visible again at once, rather than after
// their visibility timeout.
const HeldFile = "hermes-held.json"

func (l *Loop) heldFile() string { return filepath.Join(l.Workspace.Dir, ".git", HeldFile) }

// saveHeldLocked writes the receipts of the held jobs; l.heldMu is held.
func (l *Loop) saveHeldLocked(log *slog.Logger) {
	receipts := slices.Sorted(maps.Values(l.held))
	if receipts == nil {
		receipts = []string{}
	}
	b, err := json.Marshal(receipts)
	if err == nil {
		tmp := l.heldFile() + ".tmp"
		if err = os.WriteFile(tmp, b, 0o600); err == nil {
			err = os.Rename(tmp, l.heldFile())
		}
	}
	if err != nil {
		log.Error("recording the held jobs", "err", err)
	}
}

// releasePredecessor makes the jobs a crashed predecessor held visible
// again. A receipt that is no longer current (the job was deleted, or
// received again since) changes nothing.
func (l *Loop) releasePredecessor(ctx context.Context, log *slog.Logger, queue string) {
	b, err := os.ReadFile(l.heldFile())
	if err != nil {
		return
	}
	var receipts []string
	if err := json.Unmarshal(b, &receipts); err != nil {
		log.WarnContext(ctx, "the record of held jobs is unreadable; ignored", "err", err)
		return
	}
	n := 0
	for _, r := range receipts {
		if err := l.Queues.ChangeVisibility(ctx, queue, r, 0); err == nil {
			n++
		}
	}
	if n > 0 {
		log.InfoContext(ctx, "made the jobs of a stopped predecessor visible again", "jobs", n)
	}
	_ = os.Remove(l.heldFile())
}

// process runs one held job and reports whether the container is to stop
// (a deactivation).
func (l *Loop) process(ctx context.Context, log *slog.Logger, q hermes.QueueSet, h *heldJob) bool {
	job := &h.job
	log = log.With("job", job.ID, "thread", job.ThreadID)
	if job.Type == hermes.JobControl {
		return l.control(ctx, log, q, h)
	}
	if l.sessionEnded(ctx, log, job) {
		l.finishJob(ctx, log, q, h)
		return false
	}
	// The started notice first: the container record's busy detail is
	// bookkeeping and can wait for the store's write lock.
	start := l.Clock.Now()
	l.sendStarted(ctx, log, q, job, start)
	<-l.prep
	if l.prepErr != nil {
		l.release(ctx, log, q.Input, h)
		return false
	}
	l.setDetail("busy")
	l.heartbeatLogged(ctx)
	defer func() { l.setDetail("idle"); l.heartbeatLogged(ctx) }()
	jobCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	run := &running{h: h, start: start, cancel: cancel}
	watchCtx, stopWatch := context.WithCancel(ctx)
	var watcher sync.WaitGroup
	watcher.Go(func() { l.watch(watchCtx, log, q, run) })
	res, err := l.Workspace.Apply(jobCtx, job)
	stopWatch()
	watcher.Wait()

	if ctx.Err() != nil {
		log.InfoContext(ctx, "stopped during a job: it is left for redelivery")
		l.release(ctx, log, q.Input, h)
		return false
	}
	if err != nil {
		if h.d.ReceiveCount < hermes.DefaultMaxReceive {
			log.ErrorContext(ctx, "the job failed in the workspace; it is left for redelivery", "receives", h.d.ReceiveCount, "err", err)
			l.release(ctx, log, q.Input, h)
			return false
		}
		log.ErrorContext(ctx, "the job failed in the workspace on its last receive; reporting the error", "receives", h.d.ReceiveCount, "err", err)
		res = &hermes.ResultMessage{
			Version: hermes.ResultVersion, Type: hermes.ResultError,
			SessionID: job.SessionID, ThreadID: job.ThreadID, Reply: job.Reply,
			StartedAt: start,
			Result:    hermes.Result{JobID: job.ID, Error: "the workspace failed: " + err.Error(), FinishedAt: l.Clock.Now()},
		}
	}
	if res.Type == hermes.ResultInterrupted {
		log.InfoContext(ctx, "the job was interrupted; its partial work is checkpointed", "commit", res.Commit)
	}
	body, err := json.Marshal(res)
	if err != nil {
		log.ErrorContext(ctx, "encoding the result", "err", err)
		return false
	}
	attrs := map[string]string{"jobId": job.ID, "type": res.Type, "threadId": job.ThreadID, "sessionId": job.SessionID}
	if _, err := l.Queues.Send(ctx, q.Output, string(body), attrs); err != nil {
		// The job is not deleted: it becomes visible again and is redone.
		log.ErrorContext(ctx, "sending the result; the job is left for redelivery", "err", err)
		l.unhold(h)
		return false
	}
	l.finishJob(ctx, log, q, h)
	return false
}

// prepFailed reports whether the workspace's preparation has finished and
// failed.
func (l *Loop) prepFailed() bool {
	select {
	case <-l.prep:
		return l.prepErr != nil
	default:
		return false
	}
}

// sessionEnded reports whether the job's session has ended (deactivated or
// expired): its waiting instructions are not carried out. When the store
// cannot say (an unknown session included), the job runs.
func (l *Loop) sessionEnded(ctx context.Context, log *slog.Logger, job *hermes.Job) bool {
	s, err := l.Store.GetSession(ctx, job.SessionID)
	switch {
	case hermes.IsKind(err, hermes.NotFound):
		return false
	case err != nil:
		log.WarnContext(ctx, "reading the job's session; running the job", "err", err)
		return false
	case s.Status == hermes.SessionDraining || s.Status == hermes.SessionExpired:
		log.InfoContext(ctx, "the job's session has ended: the job is dropped", "session_status", s.Status)
		return true
	}
	return false
}

// finishJob records the job as finished and deletes it.
func (l *Loop) finishJob(ctx context.Context, log *slog.Logger, q hermes.QueueSet, h *heldJob) {
	if err := l.markDone(h.job.ID); err != nil {
		log.ErrorContext(ctx, "recording the job as finished", "err", err)
	}
	l.deleteMessage(ctx, log, q.Input, l.receipt(h))
	l.unhold(h)
}

// startedNotice is the message that says a job has started
// (hermes.ResultStarted); Hermes turns it into a session event.
type startedNotice struct {
	Version   int                 `json:"version"`
	Type      string              `json:"type"`
	JobID     string              `json:"jobId"`
	SessionID string              `json:"sessionId"`
	ThreadID  string              `json:"threadId"`
	Reply     hermes.ReplyContext `json:"reply"`
	StartedAt time.Time           `json:"startedAt"`
}

// sendStarted sends the started notice; a failure is logged and nothing
// more.
func (l *Loop) sendStarted(ctx context.Context, log *slog.Logger, q hermes.QueueSet, job *hermes.Job, start time.Time) {
	body, err := json.Marshal(startedNotice{Version: hermes.ResultVersion, Type: hermes.ResultStarted, JobID: job.ID,
		SessionID: job.SessionID, ThreadID: job.ThreadID, Reply: job.Reply, StartedAt: start})
	if err == nil {
		attrs := map[string]string{"jobId": job.ID, "type": hermes.ResultStarted, "threadId": job.ThreadID, "sessionId": job.SessionID}
		_, err = l.Queues.Send(ctx, q.Output, string(body), attrs)
	}
	if err != nil {
		log.ErrorContext(ctx, "sending the started notice", "err", err)
	}
}

// watch receives from the input queue while a job runs, until ctx ends.
// What it receives is accepted: held to run next, or deleted as a repeat;
// a newer job interrupts the running one.
func (l *Loop) watch(ctx context.Context, log *slog.Logger, q hermes.QueueSet, run *running) {
	wait := min(orDefault(l.WatchWait, DefaultWatchWait), hermes.MaxReceiveWait)
	for ctx.Err() == nil {
		l.heldMu.Lock()
		room := maxHeld - len(l.pending)
		l.heldMu.Unlock()
		if room <= 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			continue
		}
		ds, err := l.Queues.Receive(ctx, q.Input, min(room, hermes.MaxReceiveBatch), wait, orDefault(l.Visibility, DefaultVisibility))
		if err != nil {
			if ctx.Err() == nil {
				log.ErrorContext(ctx, "watching the input queue", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			continue
		}
		for _, d := range ds {
			l.accept(context.WithoutCancel(ctx), log, q, d, run)
		}
	}
}

// control carries out a control job and reports whether the container is
// to stop.
func (l *Loop) control(ctx context.Context, log *slog.Logger, q hermes.QueueSet, h *heldJob) bool {
	<-l.prep // no checkpoint while git fetches
	switch h.job.Control {
	case ControlDeactivate:
		log.InfoContext(ctx, "deactivating: checkpointing the workspace")
		if hash, err := l.Workspace.Checkpoint(ctx, "WIP: checkpoint before deactivation"); err != nil {
			// The job is left: redelivered, it tries again.
			log.ErrorContext(ctx, "checkpointing before deactivation; the control job is left for redelivery", "err", err)
			l.release(ctx, log, q.Input, h)
			return false
		} else if hash != "" {
			log.InfoContext(ctx, "checkpointed work in progress", "commit", hash)
		}
		l.finishJob(ctx, log, q, h)
		return true
	default:
		log.ErrorContext(ctx, "unknown control action: the control job is deleted", "control", h.job.Control)
		l.finishJob(ctx, log, q, h)
		return false
	}
}

// extend keeps the held jobs hidden: every Visibility/2 the visibility of
// each is set to Visibility from now.
func (l *Loop) extend(ctx context.Context, log *slog.Logger, queue string) {
	vis := orDefault(l.Visibility, DefaultVisibility)
	t := time.NewTicker(max(vis/2, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.heldMu.Lock()
		receipts := make(map[*heldJob]string, len(l.held))
		maps.Copy(receipts, l.held)
		l.heldMu.Unlock()
		for h, r := range receipts {
			if err := l.Queues.ChangeVisibility(ctx, queue, r, vis); err != nil && ctx.Err() == nil {
				log.ErrorContext(ctx, "extending a held job's visibility", "job", h.job.ID, "err", err)
			}
		}
	}
}

// deleteMessage deletes a received message, even after ctx ended.
func (l *Loop) deleteMessage(ctx context.Context, log *slog.Logger, queue, receipt string) {
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalTimeout)
	defer cancel()
	if err := l.Queues.Delete(c, queue, receipt); err != nil {
		log.ErrorContext(ctx, "deleting a job", "err", err)
	}
}

// releaseAll makes every held job visible again.
func (l *Loop) releaseAll(ctx context.Context, log *slog.Logger, queue string) {
	l.heldMu.Lock()
	hs := slices.Collect(maps.Keys(l.held))
	l.pending = nil
	l.heldMu.Unlock()
	for _, h := range hs {
		log.InfoContext(ctx, "making a held job visible again", "job", h.job.ID)
		l.release(ctx, log, queue, h)
	}
}

// release makes a held job visible again at once, even after ctx ended.
func (l *Loop) release(ctx context.Context, log *slog.Logger, queue string, h *heldJob) {
	receipt := l.receipt(h)
	l.unhold(h)
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalTimeout)
	defer cancel()
	if err := l.Queues.ChangeVisibility(c, queue, receipt, 0); err != nil {
		log.ErrorContext(ctx, "making the job visible again", "job", h.job.ID, "err", err)
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
