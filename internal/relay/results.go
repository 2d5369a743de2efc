package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/events"
	"github.com/webordinary/hermes/internal/logctx"
	"github.com/webordinary/hermes/internal/mail"
	"github.com/webordinary/hermes/internal/notify"
)

// Results defaults.
const (
	DefaultResultsInterval = 2 * time.Second
	DefaultResultsWait     = time.Second
	// resultsPassWait bounds the long-poll waits of one Poll over all
	// output queues, so that many containers are still covered often.
	resultsPassWait = 5 * time.Second
	// resultVisibility is the default of Results.Visibility.
	resultVisibility = time.Minute
	// MaxResultReceives is how often a result that fails to be handled is
	// tried before it is dropped (output queues have no dead-letter queue).
	MaxResultReceives = 10
	// maxQueueDrain bounds the receives from one output queue in a pass.
	maxQueueDrain = 10
	// receiveRetry is a poller's pause after a failed receive.
	receiveRetry = time.Second
	// settleTimeout bounds the handling of one received result, and the
	// deletion of a received batch, which finish even when Run's context
	// ends meanwhile.
	settleTimeout = 30 * time.Second
	// DefaultSummaryTimeout is the default of Results.SummaryTimeout.
	DefaultSummaryTimeout = 5 * time.Second
)

// Reasons a result is dropped.
const (
	DropMalformed      = "malformed"
	DropUnknownSession = "unknown-session"
	DropMismatch       = "mismatch" // the session belongs to another thread or container
	DropGaveUp         = "gave-up"  // failed MaxResultReceives times
)

// Results consumes what edit containers report on their output queues and
// answers the user once per result (SPEC §2 step 8): the session keeps it
// as lastResult, its history gets an outbound entry, and the reply of the
// job's channel goes to the outbox. Every id is derived from the job id
// and the result type, so a result delivered again after a crash at any
// step adds nothing twice, and replicas consuming the same queues answer
// each result once.
//
// Run gives every awake container (starting, running, stopping or missing)
// a poller: a goroutine that long-polls its output queue (waits of up to
// 20 s, as SQS allows) and handles each result as it arrives, so that a
// result is relayed within the queue's delivery latency (at once on SQS
// and for sends in this process; on SQLite, sends from other processes are
// found by the adapter's periodic look, every 25 ms) while an idle
// container costs one receive per wait.
//
// A pass every Interval lists the containers: it starts the pollers of
// those that woke, marks those that went to sleep (stopped, error, or
// gone), whose pollers end after their next empty receive, and sweeps the
// output queues of sleeping containers without waiting, so that results
// left by a worker that exited or sent by Hermes itself (a container that
// could not start) are relayed too. Watch starts a poller at once when a
// container wakes, without waiting for the pass.
type Results struct {
	Store     hermes.Store
	Queues    hermes.Queues
	Clock     hermes.Clock
	Log       *slog.Logger
	FromEmail string // sender of email replies when the job names no project address
	// PublicURL (HERMES_PUBLIC_URL, base path included) is where approval
	// links of plans point; without it plans are approved by a reply.
	// ApprovalTTL is how long a link works (hermes.DefaultApprovalTTL when
	// 0). See plans.go.
	PublicURL   string
	ApprovalTTL time.Duration
	// Kick, when set, is called after a reply is queued (the deliverer's
	// Kick).
	Kick func()
	// Interval is the time between Run's passes (poller discovery and the
	// sweep of sleeping containers); DefaultResultsInterval when 0.
	Interval time.Duration
	// LongPoll is the wait of each poller's receive (hermes.MaxReceiveWait
	// when 0 or more): how long an idle poller's request lasts, and so
	// about how long a poller outlives its container's sleep.
	LongPoll time.Duration
	// Wait is Poll's long-poll wait per output queue; DefaultResultsWait
	// when 0.
	Wait time.Duration
	// Visibility hides a received result while it is handled; one whose
	// handling failed is received again after it. A minute when 0.
	Visibility time.Duration
	// Relayed and Dropped count outcomes, for metrics; nil skips. They are
	// called from several goroutines.
	Relayed func(kind string)
	Dropped func(reason string)
	// Events, when set, gets an event per relayed result (from its
	// history entry) and per started or progress notice (events only:
	// no reply, no history entry).
	Events events.Publisher
	// Summarizer, when set (Bedrock with HERMES_MODEL=bedrock), writes
	// the summary an SMS reply quotes when the agent's is longer than the
	// room the one segment leaves it; see smsSummary. Without one, or when
	// it fails, the agent's summary is cut. SummaryTimeout bounds each call
	// (DefaultSummaryTimeout when 0); the result waits for it.
	Summarizer     hermes.Summarizer
	SummaryTimeout time.Duration

	mu  sync.Mutex
	run *resultsRun // while Run runs
}

// resultsRun is the state of one Run: its pollers by container id.
type resultsRun struct {
	ctx     context.Context
	pollers map[string]*poller
	wg      sync.WaitGroup
}

// poller is the state of one container's poller, guarded by Results.mu.
type poller struct {
	c       *hermes.Container // as last listed; nil until loaded (Watch)
	asleep  bool              // the container was sleeping at the last pass: stop when the queue is empty
	watched time.Time         // when Watch last asked for it
}

// Run relays results until ctx ends, and returns once every poller has
// stopped.
func (r *Results) Run(ctx context.Context) {
	run := &resultsRun{ctx: ctx, pollers: map[string]*poller{}}
	r.mu.Lock()
	if r.run != nil {
		r.mu.Unlock()
		r.log().ErrorContext(ctx, "relay: Results.Run is already running")
		return
	}
	r.run = run
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.run = nil // Watch starts nothing more
		r.mu.Unlock()
		run.wg.Wait()
	}()
	interval := r.Interval
	if interval <= 0 {
		interval = DefaultResultsInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := r.pass(ctx, run); err != nil && ctx.Err() == nil {
			r.log().WarnContext(ctx, "relay: listing containers failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Watch makes sure the container's output queue has a poller, starting
// one at once if needed: the runner calls it when a container wakes, so
// that its first results do not wait for the next pass. The poller lasts
// as long as the container is awake. Watch does nothing unless Run runs.
func (r *Results) Watch(containerID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	run := r.run
	if run == nil || run.ctx.Err() != nil {
		return
	}
	if p, ok := run.pollers[containerID]; ok {
		p.asleep, p.watched = false, time.Now()
		return
	}
	r.start(run, containerID, &poller{watched: time.Now()})
}

// Watching returns the ids of the containers whose output queues have a
// poller now, sorted.
func (r *Results) Watching() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.run == nil {
		return nil
	}
	ids := make([]string, 0, len(r.run.pollers))
	for id := range r.run.pollers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// awake reports whether c's worker runs or may soon: the queues of awake
// containers are long-polled, the others' swept by each pass.
func awake(c *hermes.Container) bool {
	switch c.Status {
	case hermes.ContainerStarting, hermes.ContainerRunning, hermes.ContainerStopping, hermes.ContainerMissing:
		return true
	}
	return false
}

// pass lists the containers: it starts the pollers of awake ones, marks
// the pollers of sleeping or deleted ones to stop once their queue is
// empty, and sweeps the output queues of sleeping containers that have no
// poller (one that had results gets a poller for a while).
func (r *Results) pass(ctx context.Context, run *resultsRun) error {
	listed := time.Now()
	cs, err := r.Store.ListContainers(ctx)
	if err != nil {
		return err
	}
	var sleeping []*hermes.Container
	r.mu.Lock()
	seen := make(map[string]bool, len(cs))
	for _, c := range cs {
		seen[c.ID] = true
		p, ok := run.pollers[c.ID]
		switch {
		case ok:
			p.c = c
			// A Watch after the listing knows better than the listing.
			p.asleep = !awake(c) && !p.watched.After(listed)
		case awake(c) && c.Queues.Output != "":
			r.start(run, c.ID, &poller{c: c})
		case c.Queues.Output != "":
			sleeping = append(sleeping, c)
		}
	}
	for id, p := range run.pollers {
		if !seen[id] && !p.watched.After(listed) {
			p.asleep = true
		}
	}
	r.mu.Unlock()
	for _, c := range sleeping {
		if ctx.Err() != nil {
			break
		}
		if r.drain(ctx, c, 0) == 0 {
			continue
		}
		// It had results: more may follow.
		r.mu.Lock()
		if _, ok := run.pollers[c.ID]; !ok && ctx.Err() == nil {
			r.start(run, c.ID, &poller{c: c, asleep: true})
		}
		r.mu.Unlock()
	}
	return nil
}

// start starts a poller; r.mu is held.
func (r *Results) start(run *resultsRun, id string, p *poller) {
	run.pollers[id] = p
	run.wg.Go(func() { r.poll(run, id, p) })
}

// poll is a poller: it long-polls the container's output queue and
// handles what arrives, until ctx ends, or the container is asleep and its
// queue was empty, or the queue is gone.
func (r *Results) poll(run *resultsRun, id string, p *poller) {
	ctx := logctx.With(run.ctx, slog.String("container_id", id))
	wait := r.LongPoll
	if wait <= 0 || wait > hermes.MaxReceiveWait {
		wait = hermes.MaxReceiveWait
	}
	r.log().DebugContext(ctx, "relay: polling the output queue")
	defer func() {
		r.mu.Lock()
		if run.pollers[id] == p {
			delete(run.pollers, id)
		}
		r.mu.Unlock()
		r.log().DebugContext(ctx, "relay: stopped polling the output queue")
	}()
	for ctx.Err() == nil {
		r.mu.Lock()
		c := p.c
		r.mu.Unlock()
		if c == nil {
			got, err := r.Store.GetContainer(ctx, id)
			if err != nil {
				if !hermes.IsKind(err, hermes.NotFound) && ctx.Err() == nil {
					r.log().WarnContext(ctx, "relay: reading the container failed; the next pass polls it", "err", err)
				}
				return
			}
			r.mu.Lock()
			if p.c == nil {
				p.c = got
			}
			c = p.c
			r.mu.Unlock()
		}
		q := c.Queues.Output
		if q == "" {
			return
		}
		ds, err := r.Queues.Receive(ctx, q, hermes.MaxReceiveBatch, wait, r.visibility())
		if ctx.Err() != nil {
			// A batch received as ctx ended is still handled.
			r.settle(ctx, c, q, ds)
			return
		}
		if hermes.IsKind(err, hermes.NotFound) {
			return // the queue set was cleaned up; a pass starts a poller when there is one again
		}
		if err != nil {
			r.log().WarnContext(ctx, "relay: receiving results failed", "queue", q, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(receiveRetry):
			}
			continue
		}
		r.settle(ctx, c, q, ds)
		if len(ds) == 0 && r.retire(run, id, p) {
			return
		}
	}
}

// retire removes p when its container is asleep, and reports whether it
// did.
func (r *Results) retire(run *resultsRun, id string, p *poller) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !p.asleep {
		return false
	}
	if run.pollers[id] == p {
		delete(run.pollers, id)
	}
	return true
}

// Poll makes one pass over the output queues of every container, awake or
// not, outside Run (tools and tests): it receives their results (waiting
// up to Wait on each queue, within a shared budget), handles each and
// deletes what was handled (or deliberately dropped). A result whose
// handling failed stays on its queue and is received again after its
// visibility. It returns how many results it received.
func (r *Results) Poll(ctx context.Context) (int, error) {
	cs, err := r.Store.ListContainers(ctx)
	if err != nil {
		return 0, err
	}
	wait := r.Wait
	if wait <= 0 {
		wait = DefaultResultsWait
	}
	if len(cs) > 1 {
		wait = min(wait, resultsPassWait/time.Duration(len(cs)))
	}
	wait = wait.Truncate(time.Millisecond)
	n := 0
	for _, c := range cs {
		if ctx.Err() != nil {
			break
		}
		n += r.drain(ctx, c, wait)
	}
	return n, nil
}

// drain receives and handles the results waiting on c's output queue.
func (r *Results) drain(ctx context.Context, c *hermes.Container, wait time.Duration) int {
	q := c.Queues.Output
	if q == "" {
		return 0
	}
	ctx = logctx.With(ctx, slog.String("container_id", c.ID))
	n := 0
	for range maxQueueDrain {
		ds, err := r.Queues.Receive(ctx, q, hermes.MaxReceiveBatch, wait, r.visibility())
		if err != nil {
			if !hermes.IsKind(err, hermes.NotFound) && ctx.Err() == nil {
				r.log().WarnContext(ctx, "relay: receiving results failed", "queue", q, "err", err)
			}
			return n
		}
		n += len(ds)
		r.settle(ctx, c, q, ds)
		if len(ds) < hermes.MaxReceiveBatch {
			return n
		}
		wait = 0
	}
	return n
}

// settle handles the results received together from c's queue q, in
// order, and deletes them with one DeleteBatch, except those whose handling
// failed with receives left: they are received again after their
// visibility. A received batch is settled even when ctx ends meanwhile,
// rather than left hidden for its visibility: each result is handled
// within settleTimeout, and the delete has a settleTimeout of its own.
func (r *Results) settle(ctx context.Context, c *hermes.Container, q string, ds []hermes.Delivery) {
	var done, ids []string // receipts and ids of the results to delete
	for _, d := range ds {
		if r.settled(ctx, c, d) {
			done, ids = append(done, d.Receipt), append(ids, d.ID)
		}
	}
	if len(done) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	if err := r.Queues.DeleteBatch(ctx, q, done); err != nil {
		// Received again after their visibility: handled again with the
		// same ids, so nothing is repeated.
		r.log().WarnContext(ctx, "relay: deleting handled results failed", "message_ids", ids, "err", err)
	}
}

// settled handles a received result and reports whether it is done with:
// handled, deliberately dropped, or failed on its last receive.
func (r *Results) settled(ctx context.Context, c *hermes.Container, d hermes.Delivery) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	if err := r.handle(ctx, c, []byte(d.Body)); err != nil {
		if d.ReceiveCount < MaxResultReceives {
			r.log().WarnContext(ctx, "relay: result not handled; it will be received again", "message_id", d.ID, "receives", d.ReceiveCount, "err", err)
			return false
		}
		r.log().ErrorContext(ctx, "relay: result dropped after repeated failures", "message_id", d.ID, "receives", d.ReceiveCount, "err", err)
		r.count(r.Dropped, DropGaveUp)
	}
	return true
}

func (r *Results) visibility() time.Duration {
	if r.Visibility <= 0 {
		return resultVisibility
	}
	return r.Visibility
}

// HandleResult handles one result message body. It returns nil when the
// result was relayed, or deliberately dropped (malformed, unknown session:
// logged and counted); an error means a retry may succeed (the store
// failed) and the message should be received again.
func (r *Results) HandleResult(ctx context.Context, body []byte) error {
	return r.handle(ctx, nil, body)
}

// handle handles a result received from c's output queue (nil: unknown).
func (r *Results) handle(ctx context.Context, c *hermes.Container, body []byte) error {
	var m hermes.ResultMessage
	if err := decodeResult(body, &m); err != nil {
		r.drop(ctx, DropMalformed, "relay: malformed result dropped", "err", err, "bytes", len(body))
		return nil
	}
	ctx = logctx.With(ctx, slog.String("job_id", m.JobID), slog.String("session_id", m.SessionID), slog.String("thread_id", m.ThreadID))
	sess, err := r.Store.GetSession(ctx, m.SessionID)
	if hermes.IsKind(err, hermes.NotFound) {
		r.drop(ctx, DropUnknownSession, "relay: result for an unknown session dropped", "type", m.Type)
		return nil
	}
	if err != nil {
		return err
	}
	if sess.ThreadID != m.ThreadID || c != nil && sess.ContainerID != c.ID {
		r.drop(ctx, DropMismatch, "relay: result names a session of another thread or container; dropped",
			"session_thread", sess.ThreadID, "session_container", sess.ContainerID)
		return nil
	}
	now := r.Clock.Now()
	if m.Type == hermes.ResultStarted || m.Type == hermes.ResultProgress {
		r.notice(ctx, &m, now)
		return nil
	}
	kind := m.Type
	if kind == hermes.ResultDone && !m.Success {
		kind = hermes.KindError
	}
	id := hermes.DeriveToken("result", m.JobID, m.Type)
	res := m.Result
	res.Interrupted = res.Interrupted || m.Type == hermes.ResultInterrupted
	res.FinishedAt = res.FinishedAt.UTC().Truncate(time.Millisecond)

	// 1. The session's lastResult: a late redelivery of an older result
	// never replaces a newer one.
	if _, err := r.Store.UpdateSession(ctx, sess.ID, func(s *hermes.Session) error {
		if s.LastResult != nil && s.LastResult.FinishedAt.After(res.FinishedAt) {
			return nil
		}
		s.LastResult = &res
		return nil
	}); err != nil {
		return fmt.Errorf("relay: recording the result: %w", err)
	}

	// A plan: its approval, with a fresh link for the reply (plans.go).
	link := ""
	if m.Type == hermes.ResultPlan {
		if link, err = r.planApproval(ctx, sess, &m, id, now); err != nil {
			return err
		}
	}

	// 2. The reply, in the outbox (unique by id).
	it, err := r.replyWith(ctx, sess, &m, kind, id, now, link)
	if err != nil {
		if !hermes.IsKind(err, hermes.Invalid) && !hermes.IsKind(err, hermes.Unprocessable) {
			return err
		}
		// A reply that cannot be composed never will be: the result is
		// kept on the session and in its history, without a reply.
		r.log().ErrorContext(ctx, "relay: result reply not composed; the result is recorded without one", "err", err)
		it = nil
	}
	if it != nil {
		if err := r.Store.EnqueueOutbox(ctx, it); err != nil {
			return fmt.Errorf("relay: queueing the reply: %w", err)
		}
		if link != "" {
			if err := r.syncApprovalToken(ctx, id, hermes.ApprovalIDFor(m.JobID), link); err != nil {
				return err
			}
		}
		if r.Kick != nil {
			r.Kick()
		}
	}

	// 3. The history entry (unique by id).
	entry := &hermes.HistoryEntry{
		ID: id, SessionID: sess.ID, ThreadID: sess.ThreadID, Direction: hermes.DirectionOut, Kind: kind,
		Channel: m.Reply.Channel, Text: historyText(&m), CreatedAt: now,
		Meta: map[string]string{"jobId": m.JobID, "type": m.Type},
	}
	if it != nil {
		entry.Meta["outboxId"] = it.ID
	}
	if m.Type == hermes.ResultPlan {
		entry.Meta["approvalId"] = hermes.ApprovalIDFor(m.JobID)
		if link != "" && m.Reply.Channel == hermes.ChannelAPI {
			entry.Meta["approvalUrl"] = link // no reply carries it
		}
	}
	for k, v := range map[string]string{"commit": m.Commit, "previewUrl": m.PreviewURL, "error": m.Error} {
		if v != "" {
			entry.Meta[k] = v
		}
	}
	if err := r.Store.AppendHistory(ctx, entry); err != nil {
		return fmt.Errorf("relay: recording the result in the history: %w", err)
	}
	if e, ok := events.FromHistory(entry); ok && r.Events != nil {
		r.Events.Publish(sess.ID, e)
	}
	r.count(r.Relayed, kind)
	r.log().InfoContext(ctx, "result relayed", "type", m.Type, "channel", m.Reply.Channel, "reply", it != nil)
	return nil
}

// decodeResult parses and validates a result message.
func decodeResult(body []byte, m *hermes.ResultMessage) error {
	if err := json.Unmarshal(body, m); err != nil {
		return err
	}
	switch {
	case m.Version != hermes.ResultVersion:
		return fmt.Errorf("unknown version %d", m.Version)
	case !hermes.ValidTokenID(m.JobID):
		return fmt.Errorf("invalid jobId %q", m.JobID)
	case !hermes.ValidTokenID(m.SessionID):
		return fmt.Errorf("invalid sessionId %q", m.SessionID)
	case !hermes.ValidTokenID(m.ThreadID):
		return fmt.Errorf("invalid threadId %q", m.ThreadID)
	case !slices.Contains([]string{hermes.ResultDone, hermes.ResultInterrupted, hermes.ResultPlan, hermes.ResultError,
		hermes.ResultStarted, hermes.ResultProgress}, m.Type):
		return fmt.Errorf("unknown type %q", m.Type)
	case !slices.Contains([]string{hermes.ChannelAPI, hermes.ChannelEmail, hermes.ChannelSMS, hermes.ChannelChat}, m.Reply.Channel):
		return fmt.Errorf("unknown reply channel %q", m.Reply.Channel)
	case m.FinishedAt.IsZero() && m.Type != hermes.ResultStarted && m.Type != hermes.ResultProgress:
		return fmt.Errorf("no finishedAt")
	}
	return nil
}

// notice publishes the event of a started or progress notice; nothing else
// is recorded (a redelivered notice is published again, which subscribers
// tolerate: it says what they know).
func (r *Results) notice(ctx context.Context, m *hermes.ResultMessage, now time.Time) {
	at := m.StartedAt
	if m.Type == hermes.ResultProgress || at.IsZero() {
		at = now
	}
	e := events.Event{Type: events.Started, JobID: m.JobID, At: at, Data: map[string]any{}}
	if m.Type == hermes.ResultProgress {
		e.Type = events.Progress
		e.Data["text"] = m.Summary
	} else {
		e.ID = events.IDAt(at, hermes.DeriveToken("started", m.JobID))
	}
	if r.Events != nil {
		r.Events.Publish(m.SessionID, e)
	}
	r.log().DebugContext(ctx, "result notice", "type", m.Type)
}

// historyText is what the history shows of a result.
func historyText(m *hermes.ResultMessage) string {
	if (m.Type == hermes.ResultError || !m.Success && m.Type == hermes.ResultDone) && m.Error != "" {
		if m.Summary == "" {
			return m.Error
		}
		return m.Summary + "\n\nError: " + m.Error
	}
	return m.Summary
}

// reply composes the outbox item answering m on its channel, or nil for
// the API channel (the result is on the session). The addresses the job
// echoes back must still be the user's and the project's: a container
// never chooses where a reply goes.
func (r *Results) reply(ctx context.Context, sess *hermes.Session, m *hermes.ResultMessage, kind, id string, now time.Time) (*hermes.OutboxItem, error) {
	return r.replyWith(ctx, sess, m, kind, id, now, "")
}

// replyWith is reply with a plan's approval link.
func (r *Results) replyWith(ctx context.Context, sess *hermes.Session, m *hermes.ResultMessage, kind, id string, now time.Time, approvalURL string) (*hermes.OutboxItem, error) {
	if m.Reply.Channel == hermes.ChannelAPI {
		return nil, nil
	}
	project, err := r.Store.GetProject(ctx, sess.ClientID, sess.ProjectID)
	if err != nil {
		if hermes.IsKind(err, hermes.NotFound) {
			return nil, hermes.Errorf(hermes.Unprocessable, "the project %s/%s no longer exists", sess.ClientID, sess.ProjectID)
		}
		return nil, err
	}
	user, err := r.Store.GetUser(ctx, sess.ClientID, sess.UserID)
	if err != nil {
		if hermes.IsKind(err, hermes.NotFound) {
			return nil, hermes.Errorf(hermes.Unprocessable, "the user %s/%s no longer exists", sess.ClientID, sess.UserID)
		}
		return nil, err
	}
	thread, err := r.Store.GetThread(ctx, sess.ThreadID)
	if err != nil {
		return nil, err
	}
	rc := m.Reply
	if err := checkReply(rc, project, user); err != nil {
		return nil, err
	}
	n := notify.Result{
		ProjectName: project.Name, Type: m.Type, Success: m.Success, Summary: m.Summary, FilesChanged: m.FilesChanged,
		Commit: m.Commit, PreviewURL: m.PreviewURL, Error: m.Error, Token: mail.FormatToken(thread.Token),
		ApprovalURL: approvalURL, ApprovalValidFor: r.ApprovalTTL,
	}
	if n.ApprovalValidFor <= 0 {
		n.ApprovalValidFor = hermes.DefaultApprovalTTL
	}
	if n.ProjectName == "" {
		n.ProjectName = project.ID
	}
	if thread.Token == "" {
		n.Token = ""
	}
	it := &hermes.OutboxItem{
		ID: id, Channel: rc.Channel, To: rc.To, From: rc.From, Kind: kind,
		ThreadID: thread.ID, SessionID: sess.ID, ClientID: sess.ClientID, CreatedAt: now, NextAttemptAt: now,
	}
	switch rc.Channel {
	case hermes.ChannelEmail:
		if it.From == "" {
			it.From = r.FromEmail
			if len(project.EmailAddresses) > 0 {
				it.From = project.EmailAddresses[0]
			}
		}
		text, html, err := notify.ResultEmail(n)
		if err != nil {
			return nil, err
		}
		orig := rc.Subject
		if orig == "" {
			orig = thread.Subject
		}
		_, domain, _ := strings.Cut(it.From, "@")
		mr := mail.Reply{
			From: it.From, FromName: n.ProjectName, To: []string{it.To},
			Subject:   mail.ReplySubject(orig, thread.Token),
			MessageID: mail.NewMessageID(thread.ID, domain), InReplyTo: strings.Trim(rc.MessageID, "<> "),
			ThreadID: thread.ID, Text: text, HTML: html, Date: now, Kind: kind,
		}
		if mr.InReplyTo != "" {
			mr.References = mail.ReferencesFor(mr.InReplyTo, rc.References)
		}
		raw, err := mail.Compose(mr)
		if err != nil {
			return nil, err
		}
		it.Subject, it.Text, it.HTML, it.Raw = mr.Subject, text, html, raw
		it.Headers = map[string]string{"Message-ID": "<" + mr.MessageID + ">"}
		if mr.InReplyTo != "" {
			it.Headers["In-Reply-To"] = "<" + mr.InReplyTo + ">"
		}
		if len(mr.References) > 0 {
			it.Headers["References"] = "<" + strings.Join(mr.References, "> <") + ">"
		}
	case hermes.ChannelSMS:
		n.Summary = r.smsSummary(ctx, id, n)
		it.Text = notify.ResultSMS(n)
	case hermes.ChannelChat:
		it.Text = notify.ResultChat(n)
		it.To = rc.From // the chat channel; the reply goes into the thread
		it.Headers = map[string]string{"thread_ts": rc.ChatThread}
	}
	return it, nil
}

// smsSummary returns the summary the SMS reply n quotes: the agent's when
// it fits the room that the short form leaves (notify.SMSSummaryRoom),
// else the Summarizer's, asked for at most that many characters, when its
// answer fits; otherwise the agent's, which notify.ResultSMS cuts. Only
// the SMS text is shortened: the session's lastResult and its history
// keep the agent's summary. Done and interrupted results are summarised;
// a plan is quoted in the agent's own words (the user approves what it
// says) and a failure quotes its error. A result delivered again after
// its reply was queued (id) asks nothing: queueing the reply again is a
// no-op, and the stored item stays as it was. One delivered again before
// that (a crash in between) may get another summary; the reply is still
// queued once.
func (r *Results) smsSummary(ctx context.Context, id string, n notify.Result) string {
	if n.Type != hermes.ResultInterrupted && (n.Type != hermes.ResultDone || !n.Success) {
		return n.Summary
	}
	room, fits := notify.SMSSummaryRoom(n)
	if fits || room == 0 || strings.TrimSpace(n.Summary) == "" {
		return n.Summary
	}
	if r.Summarizer == nil {
		r.log().DebugContext(ctx, "relay: the SMS summary is cut to fit one segment (no summarizer)", "room", room)
		return n.Summary
	}
	if _, err := r.Store.GetOutbox(ctx, id); err == nil {
		return n.Summary // queued already
	}
	timeout := r.SummaryTimeout
	if timeout <= 0 {
		timeout = DefaultSummaryTimeout
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := r.Summarizer.Summarize(sctx, n.Summary, room)
	if err == nil {
		short := n
		short.Summary = s
		if _, ok := notify.SMSSummaryRoom(short); ok {
			return s
		}
		err = fmt.Errorf("the summary (%d characters) does not fit the room", utf8.RuneCountInString(s))
		if strings.TrimSpace(s) == "" {
			err = errors.New("the summary is empty")
		}
	}
	r.log().WarnContext(ctx, "relay: no usable SMS summary from the model; the summary is cut to fit one segment", "room", room, "err", err)
	return n.Summary
}

// checkReply verifies that the reply goes to one of the user's identities
// on the channel, from one of the project's addresses.
func checkReply(rc hermes.ReplyContext, p *hermes.Project, u *hermes.User) error {
	var to, from []string
	switch rc.Channel {
	case hermes.ChannelEmail:
		to, from = u.Emails, p.EmailAddresses
		rc.To, rc.From = strings.ToLower(rc.To), strings.ToLower(rc.From)
		if rc.From == "" {
			from = []string{""} // the default sender
		}
	case hermes.ChannelSMS:
		to, from = u.Phones, p.SMSNumbers
	case hermes.ChannelChat:
		to, from = u.ChatIDs, p.SlackChannels
	}
	if !slices.Contains(to, rc.To) {
		return hermes.Errorf(hermes.Unprocessable, "the reply address %q is not one of the user's", rc.To)
	}
	if !slices.Contains(from, rc.From) {
		return hermes.Errorf(hermes.Unprocessable, "the reply sender %q is not one of the project's addresses", rc.From)
	}
	return nil
}

func (r *Results) drop(ctx context.Context, reason, msg string, args ...any) {
	r.log().WarnContext(ctx, msg, append(args, "reason", reason)...)
	r.count(r.Dropped, reason)
}

func (r *Results) count(f func(string), label string) {
	if f != nil {
		f(label)
	}
}

func (r *Results) log() *slog.Logger {
	if r.Log == nil {
		return slog.Default()
	}
	return r.Log
}
