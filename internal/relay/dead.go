package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/events"
	"github.com/webordinary/hermes/internal/logctx"
)

// Dead-job defaults.
const (
	DefaultDeadInterval = 30 * time.Second
	// DefaultDeadFullScan is how often every dead-letter queue is read
	// again even when its depth did not change (a redrive and a new dead
	// job between two passes leave the depth as it was).
	DefaultDeadFullScan = 5 * time.Minute
	// MaxDeadJobs bounds the messages looked at on one dead-letter queue.
	MaxDeadJobs = 1000
	// deadLook is how long a look at a dead-letter queue hides the
	// messages it received at most: they are made visible again at once
	// after the look, or after this when that fails.
	deadLook = 30 * time.Second
	// deadInstructionLen is how much of an instruction a dead-job reply
	// and listing quote.
	deadInstructionLen = 200
	maxHandledIDs      = 10000
)

// ReasonDeadLetter is the history meta "reason" of a dead job's error.
const ReasonDeadLetter = "dead-letter"

// deadError is the error line of the reply to a dead job.
const deadError = "it failed repeatedly and has been set aside for the site's operators to look at. " +
	"You can send it again, perhaps in other words."

// DeadJob is a message on a container's dead-letter queue, as operators
// see it.
type DeadJob struct {
	ContainerID string `json:"containerId"`
	MessageID   string `json:"messageId"`
	JobID       string `json:"jobId,omitempty"`
	SessionID   string `json:"sessionId,omitempty"`
	ThreadID    string `json:"threadId,omitempty"`
	Type        string `json:"type,omitempty"`
	// Instruction is the job's instruction (or plan), at most 200
	// characters on one line.
	Instruction string `json:"instruction,omitempty"`
	// ReceiveCount is the queue's receive count of the message (SQS's
	// ApproximateReceiveCount: every look at a dead-letter queue counts).
	ReceiveCount int       `json:"receiveCount"`
	SentAt       time.Time `json:"sentAt"` // when the router sent the job
	// Malformed marks a message that is not a job Hermes can read.
	Malformed bool `json:"malformed,omitempty"`
}

// DeadJobOf describes a dead-letter message of container c.
func DeadJobOf(c *hermes.Container, d hermes.Delivery) DeadJob {
	dj := DeadJob{ContainerID: c.ID, MessageID: d.ID, ReceiveCount: d.ReceiveCount, SentAt: d.SentAt.UTC()}
	job, err := decodeJob(d.Body)
	if err != nil {
		dj.Malformed = true
		return dj
	}
	dj.JobID, dj.SessionID, dj.ThreadID, dj.Type = job.ID, job.SessionID, job.ThreadID, job.Type
	text := job.Instruction
	if text == "" {
		text = job.Plan
	}
	dj.Instruction = brief(text, deadInstructionLen)
	return dj
}

// PeekDead calls fn for each message on the dead-letter queue dlq (at most
// max) without consuming any: messages are received in batches with a
// short visibility and all made visible again before it returns, so that
// they stay on the queue for operators. Messages another reader holds at
// that moment are not seen. fn's error stops the look and is returned.
func PeekDead(ctx context.Context, q hermes.Queues, dlq string, max int, fn func(hermes.Delivery) error) (err error) {
	var held []hermes.Delivery
	defer func() {
		rctx := context.WithoutCancel(ctx)
		for _, d := range held {
			// Conflict: the message left meanwhile (redriven, purged).
			if verr := q.ChangeVisibility(rctx, dlq, d.Receipt, 0); verr != nil && !hermes.IsKind(verr, hermes.Conflict) && err == nil {
				err = fmt.Errorf("relay: making dead job %s visible again (it will be after %s): %w", d.ID, deadLook, verr)
			}
		}
	}()
	seen := map[string]bool{}
	for len(held) < max {
		ds, err := q.Receive(ctx, dlq, min(hermes.MaxReceiveBatch, max-len(held)), 0, deadLook)
		if err != nil {
			return err
		}
		if len(ds) == 0 {
			return nil
		}
		held = append(held, ds...)
		for _, d := range ds {
			if seen[d.ID] {
				continue
			}
			seen[d.ID] = true
			if err := fn(d); err != nil {
				return err
			}
		}
	}
	return nil
}

// Dead watches the dead-letter queue of every container (SPEC §2 step 11):
// a job there failed repeatedly, and its user is told once, on the job's
// channel, that the request could not be applied (threaded like every
// reply), with an error entry in the session's history and an error
// event. The job itself stays on the dead-letter queue for operators, who
// list, redrive or purge it through the API.
//
// Exactly once: the reply and the history entry have the id of the error
// result the job would have had (hermes.DeriveToken("result", jobId,
// "error")), both writes are idempotent by id, and a job whose session
// history already holds any result of it is not answered again, so neither
// a crash, another replica, a redrive that dies again, nor a late result
// of the job adds a second reply.
//
// Cheap: a pass reads each dead-letter queue's counts first; an empty
// queue, or one whose depth is what it was when every message on it was
// found answered, is not read, except in a full scan every FullScan.
type Dead struct {
	Store     hermes.Store
	Queues    hermes.Queues
	Clock     hermes.Clock
	Log       *slog.Logger
	FromEmail string // sender of email replies when the job names no project address
	Kick      func() // the deliverer's Kick, after a reply is queued
	Events    events.Publisher
	Interval  time.Duration // between passes; DefaultDeadInterval when 0
	FullScan  time.Duration // DefaultDeadFullScan when 0
	// Answered counts the dead jobs answered, for metrics; nil skips.
	Answered func()

	mu       sync.Mutex
	known    map[string]int  // dead-letter queue → depth when all its messages were found handled
	handled  map[string]bool // queue/message id → found handled (answered, or nothing to answer)
	lastFull time.Time
}

// Run watches the dead-letter queues until ctx ends.
func (d *Dead) Run(ctx context.Context) {
	interval := d.Interval
	if interval <= 0 {
		interval = DefaultDeadInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := d.Poll(ctx); err != nil && ctx.Err() == nil {
			d.log().WarnContext(ctx, "dead jobs: listing containers failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll makes one pass over the dead-letter queues and returns how many
// dead jobs it answered.
func (d *Dead) Poll(ctx context.Context) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.known == nil {
		d.known, d.handled = map[string]int{}, map[string]bool{}
	}
	cs, err := d.Store.ListContainers(ctx)
	if err != nil {
		return 0, err
	}
	now := d.Clock.Now()
	every := d.FullScan
	if every <= 0 {
		every = DefaultDeadFullScan
	}
	full := d.lastFull.IsZero() || now.Sub(d.lastFull) >= every
	answered := 0
	for _, c := range cs {
		q := c.Queues.DLQ
		if q == "" || ctx.Err() != nil {
			continue
		}
		cctx := logctx.With(ctx, slog.String("container_id", c.ID))
		st, err := d.Queues.Stats(cctx, q)
		if err != nil {
			if !hermes.IsKind(err, hermes.NotFound) {
				d.log().WarnContext(cctx, "dead jobs: reading the dead-letter queue's depth failed", "queue", q, "err", err)
			}
			delete(d.known, q)
			continue
		}
		depth := st.Visible + st.InFlight
		if depth == 0 {
			delete(d.known, q)
			continue
		}
		if n, ok := d.known[q]; ok && n == depth && !full {
			continue
		}
		n, all := d.scan(cctx, c)
		answered += n
		if all && st.InFlight == 0 {
			d.known[q] = depth
		} else {
			delete(d.known, q)
		}
	}
	if full {
		d.lastFull = now
	}
	if len(d.handled) > maxHandledIDs {
		clear(d.handled) // the history check answers for them again
	}
	return answered, nil
}

// scan answers the unanswered dead jobs of c's dead-letter queue. all
// reports whether every message was found handled.
func (d *Dead) scan(ctx context.Context, c *hermes.Container) (answered int, all bool) {
	q := c.Queues.DLQ
	all = true
	err := PeekDead(ctx, d.Queues, q, MaxDeadJobs, func(m hermes.Delivery) error {
		key := q + "/" + m.ID
		if d.handled[key] {
			return nil
		}
		done, err := d.answer(ctx, c, m)
		if err != nil {
			all = false
			d.log().WarnContext(ctx, "dead jobs: answering a dead job failed; it is tried again", "message_id", m.ID, "err", err)
			return nil
		}
		d.handled[key] = true
		if done {
			answered++
		}
		return nil
	})
	if err != nil {
		all = false
		if ctx.Err() == nil {
			d.log().WarnContext(ctx, "dead jobs: reading the dead-letter queue failed", "queue", q, "err", err)
		}
	}
	return answered, all
}

// answer answers one dead job unless it needs none (not a job, a control
// job, its session gone, answered before). It reports whether it answered
// now; an error means a retry may succeed.
func (d *Dead) answer(ctx context.Context, c *hermes.Container, m hermes.Delivery) (bool, error) {
	job, err := decodeJob(m.Body)
	if err != nil {
		d.log().WarnContext(ctx, "dead jobs: a dead message is not a job Hermes can read; left for operators", "message_id", m.ID, "err", err)
		return false, nil
	}
	if job.Type == hermes.JobControl {
		return false, nil
	}
	ctx = logctx.With(ctx, slog.String("job_id", job.ID), slog.String("session_id", job.SessionID), slog.String("thread_id", job.ThreadID))
	sess, err := d.Store.GetSession(ctx, job.SessionID)
	if hermes.IsKind(err, hermes.NotFound) {
		d.log().WarnContext(ctx, "dead jobs: the dead job's session no longer exists; not answered", "message_id", m.ID)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if sess.ThreadID != job.ThreadID || sess.ContainerID != c.ID {
		d.log().WarnContext(ctx, "dead jobs: the dead job names a session of another thread or container; not answered", "message_id", m.ID)
		return false, nil
	}
	hist, err := d.Store.ListHistory(ctx, sess.ID)
	if err != nil {
		return false, err
	}
	answeredIDs := map[string]bool{}
	for _, t := range []string{hermes.ResultDone, hermes.ResultError, hermes.ResultInterrupted, hermes.ResultPlan} {
		answeredIDs[hermes.DeriveToken("result", job.ID, t)] = true
	}
	for _, h := range hist {
		if answeredIDs[h.ID] {
			return false, nil // answered already: by this loop, or by a result of the job
		}
	}

	now := d.Clock.Now()
	id := hermes.DeriveToken("result", job.ID, hermes.ResultError)
	text := job.Instruction
	if text == "" {
		text = job.Plan
	}
	rm := hermes.ResultMessage{
		Version: hermes.ResultVersion, Type: hermes.ResultError, SessionID: sess.ID, ThreadID: sess.ThreadID, Reply: job.Reply,
		Result: hermes.Result{JobID: job.ID, Summary: "Your request: “" + brief(text, deadInstructionLen) + "”", Error: deadError, FinishedAt: now},
	}
	// The reply, composed and threaded as a result's (same checks of the
	// addresses), then the session's lastResult, then the history entry
	// that marks the job answered.
	res := &Results{Store: d.Store, Clock: d.Clock, Log: d.Log, FromEmail: d.FromEmail}
	it, err := res.reply(ctx, sess, &rm, hermes.KindError, id, now)
	if err != nil {
		if !hermes.IsKind(err, hermes.Invalid) && !hermes.IsKind(err, hermes.Unprocessable) {
			return false, err
		}
		d.log().ErrorContext(ctx, "dead jobs: reply not composed; the failure is recorded without one", "err", err)
		it = nil
	}
	if it != nil {
		if err := d.Store.EnqueueOutbox(ctx, it); err != nil {
			return false, fmt.Errorf("queueing the reply: %w", err)
		}
		if d.Kick != nil {
			d.Kick()
		}
	}
	last := rm.Result
	if _, err := d.Store.UpdateSession(ctx, sess.ID, func(s *hermes.Session) error {
		if s.LastResult != nil && s.LastResult.FinishedAt.After(last.FinishedAt) {
			return nil
		}
		s.LastResult = &last
		return nil
	}); err != nil {
		return false, fmt.Errorf("recording the failure on the session: %w", err)
	}
	entry := &hermes.HistoryEntry{
		ID: id, SessionID: sess.ID, ThreadID: sess.ThreadID, Direction: hermes.DirectionOut, Kind: hermes.KindError,
		Channel: job.Reply.Channel, Text: historyText(&rm), CreatedAt: now,
		Meta: map[string]string{"jobId": job.ID, "type": hermes.ResultError, "reason": ReasonDeadLetter, "error": deadError, "messageId": m.ID},
	}
	if it != nil {
		entry.Meta["outboxId"] = it.ID
	}
	if err := d.Store.AppendHistory(ctx, entry); err != nil {
		return false, fmt.Errorf("recording the failure in the history: %w", err)
	}
	if e, ok := events.FromHistory(entry); ok && d.Events != nil {
		d.Events.Publish(sess.ID, e)
	}
	if d.Answered != nil {
		d.Answered()
	}
	d.log().WarnContext(ctx, "dead job answered: the user was told the request could not be applied", "message_id", m.ID, "channel", job.Reply.Channel, "reply", it != nil)
	return true, nil
}

// decodeJob parses a job message and checks the ids a dead-job answer
// relies on.
func decodeJob(body string) (*hermes.Job, error) {
	var j hermes.Job
	if err := json.Unmarshal([]byte(body), &j); err != nil {
		return nil, err
	}
	switch {
	case !hermes.ValidTokenID(j.ID):
		return nil, fmt.Errorf("invalid jobId %q", j.ID)
	case !hermes.ValidTokenID(j.SessionID):
		return nil, fmt.Errorf("invalid sessionId %q", j.SessionID)
	case !hermes.ValidTokenID(j.ThreadID):
		return nil, fmt.Errorf("invalid threadId %q", j.ThreadID)
	case j.Type == "":
		return nil, errors.New("no type")
	}
	return &j, nil
}

// brief returns s on one line (white space collapsed, control characters
// dropped), at most n runes, ending in "…" when it was cut.
func brief(s string, n int) string {
	var b strings.Builder
	space := false
	for _, r := range strings.ToValidUTF8(s, "") {
		switch {
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		case unicode.IsControl(r):
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	r := []rune(b.String())
	if len(r) <= n {
		return string(r)
	}
	return strings.TrimRightFunc(string(r[:n-1]), unicode.IsSpace) + "…"
}

func (d *Dead) log() *slog.Logger {
	if d.Log == nil {
		return slog.Default()
	}
	return d.Log
}
