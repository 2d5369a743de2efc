// Package router is the heart of Hermes: every channel hands its messages
// to Router.Route, which deduplicates them, verifies the sender, finds the
// thread and its session, queues a job on the container's input queue,
// wakes the container and acknowledges the message (SPEC §2 steps 1–6).
// Channel adapters only translate wire formats; the decisions are here.
package router

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/events"
	"github.com/webordinary/hermes/internal/lifecycle"
	"github.com/webordinary/hermes/internal/logctx"
	"github.com/webordinary/hermes/internal/notify"
)

// Defaults.
const (
	DefaultQueuePrefix = "webordinary-"
	DefaultPendingCap  = 10
	JobVisibility      = 300 * time.Second
	claimLease         = 2 * time.Minute
)

// Outcome statuses.
const (
	Queued    = "queued"    // a job is on the container's input queue
	Duplicate = "duplicate" // seen before: acknowledged, not routed again
	Dropped   = "dropped"   // not executed (unknown recipient or sender, automatic mail, empty)
	Busy      = "busy"      // over the pending-job cap: not queued, the user was told
)

// Outcome is what became of a message.
type Outcome struct {
	Status      string `json:"status"`
	Reason      string `json:"reason,omitempty"` // why it was dropped
	JobID       string `json:"jobId,omitempty"`
	ThreadID    string `json:"threadId,omitempty"`
	SessionID   string `json:"sessionId,omitempty"`
	ContainerID string `json:"containerId,omitempty"`
	NewSession  bool   `json:"-"`
}

// Acknowledger turns a routed message into the acknowledgement items of
// its channel (composed, threaded) for the outbox.
type Acknowledger interface {
	Ack(ctx context.Context, a Ack) ([]*hermes.OutboxItem, error)
}

// Ack describes one acknowledgement to compose.
type Ack struct {
	Project   *hermes.Project
	Thread    *hermes.Thread
	Session   *hermes.Session
	JobID     string
	Reply     hermes.ReplyContext
	Text      string // the instruction
	Queued    bool   // behind other pending jobs
	Busy      bool   // refused: over the cap
	WakeAfter time.Duration
	Now       time.Time
	// Approval words a plan-approval step (notify.AckPlan, AckApproved,
	// AckRejected, …); "" for an ordinary instruction. Answers that queue
	// nothing (rejected, already decided, expired) are sent even when the
	// project turned acknowledgements off.
	Approval string
}

// Metrics are told what the router does; nil funcs are skipped.
type Metrics struct {
	Routed  func(channel string)
	Dropped func(channel, reason string)
	Dupes   func(channel string)
}

// Router routes inbound messages.
type Router struct {
	Store        hermes.Store
	Queues       hermes.Queues
	Runner       hermes.Runner // nil: jobs wait on their queue until a runner exists
	Sessions     *lifecycle.Sessions
	Acknowledger Acknowledger // nil: no acknowledgements
	Clock        hermes.Clock
	Log          *slog.Logger
	Metrics      Metrics
	QueuePrefix  string
	PendingCap   int                  // pending jobs per container while it is not running
	WakeEstimate func() time.Duration // expected wake time, for acknowledgements
	// OutboxKick, when set, is called after acknowledgements are queued so
	// that the deliverer sends them at once.
	OutboxKick func()
	// Events, when set, gets a queued event for every job queued.
	Events events.Publisher
	// Model says which instructions are destructive or large and run as a
	// plan first (SPEC §7); nil means the keyword rules (internal/classify).
	// When it fails, the keyword rules decide. A Model that is also a
	// hermes.IntentReader reads the replies to a waiting plan that the
	// keyword rules read as neither a yes nor a no (approval.go).
	Model hermes.Model

	ensured sync.Map // container id → true once its queue set exists (this process)
}

// Route handles one message end to end. It returns an Unavailable error
// when the message should be redelivered later (a dependency failed, or
// another worker is routing the same message); the message was then
// neither lost nor routed twice.
func (r *Router) Route(ctx context.Context, m *hermes.Message) (*Outcome, error) {
	if m.ChannelID == "" || m.Channel == "" {
		return nil, hermes.Errorf(hermes.Invalid, "message without channel or channel id")
	}
	ctx = logctx.With(ctx, slog.String("channel", m.Channel), slog.String("channel_message_id", m.ChannelID))
	now := r.Clock.Now()
	if m.ReceivedAt.IsZero() {
		m.ReceivedAt = now
	}
	state, err := r.Store.ClaimMessage(ctx, m.Channel, m.ChannelID, now, claimLease)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	switch state {
	case hermes.DedupDone:
		r.count(r.Metrics.Dupes, m.Channel)
		r.log().InfoContext(ctx, "duplicate message ignored")
		return &Outcome{Status: Duplicate}, nil
	case hermes.DedupInProgress:
		return nil, hermes.Errorf(hermes.Unavailable, "message %s is being routed; retry later", m.ChannelID)
	}
	out, err := r.route(ctx, m, now)
	if err != nil {
		if rerr := r.Store.ReleaseMessage(context.WithoutCancel(ctx), m.Channel, m.ChannelID); rerr != nil {
			r.log().ErrorContext(ctx, "releasing a message claim failed", "err", rerr)
		}
		return nil, err
	}
	if out.Status == Busy {
		// Not queued: a retry of the same message must be routed, not
		// taken for a duplicate. (The busy reply's outbox id is derived
		// from the job id, so the user is told once.)
		if err := r.Store.ReleaseMessage(context.WithoutCancel(ctx), m.Channel, m.ChannelID); err != nil {
			r.log().ErrorContext(ctx, "releasing a message claim failed", "err", err)
		}
		return out, nil
	}
	if err := r.Store.CompleteMessage(context.WithoutCancel(ctx), m.Channel, m.ChannelID, now); err != nil {
		// Routed, but not remembered: a redelivery would route again. The
		// job id is derived from the channel id, so the container sees the
		// same job twice and skips it.
		r.log().ErrorContext(ctx, "recording a routed message failed", "err", err)
	}
	return out, nil
}

func (r *Router) drop(ctx context.Context, m *hermes.Message, reason, detail string) (*Outcome, error) {
	r.count2(r.Metrics.Dropped, m.Channel, reason)
	r.log().WarnContext(ctx, "message dropped", "reason", reason, "detail", detail, "from", m.From, "to", m.To)
	return &Outcome{Status: Dropped, Reason: reason}, nil
}

// Drop reasons.
const (
	ReasonUnknownRecipient = "unknown-recipient"
	ReasonUnknownSender    = "unknown-sender"
	ReasonEmpty            = "empty"
)

func (r *Router) route(ctx context.Context, m *hermes.Message, now time.Time) (*Outcome, error) {
	project, user, out, err := r.resolve(ctx, m)
	if out != nil || err != nil {
		return out, err
	}
	if err := lifecycle.ValidInstruction(m.Text); err != nil {
		if m.Channel == hermes.ChannelAPI {
			return nil, err
		}
		return r.drop(ctx, m, ReasonEmpty, hermes.ErrorMessage(err))
	}
	thread, err := r.thread(ctx, m, project, user, now)
	if err != nil {
		return nil, err
	}
	ctx = logctx.With(ctx, slog.String("thread_id", thread.ID))
	containerID := hermes.ContainerID(project.ClientID, project.ID, user.ID)
	container, err := r.ensureContainer(ctx, project, user.ID, containerID, now)
	if err != nil {
		return nil, err
	}
	sess, created, err := r.Sessions.ForThread(ctx, thread, project, user.ID)
	if err != nil {
		return nil, err
	}
	ctx = logctx.With(ctx, slog.String("session_id", sess.ID), slog.String("container_id", containerID))
	// A reply such as "approve" to the thread's latest plan decides it
	// (approval.go).
	if out, err := r.approvalReply(ctx, m, turn{project: project, user: user, thread: thread, sess: sess, container: container}, now); out != nil || err != nil {
		return out, err
	}

	jobID := hermes.DeriveToken("job", m.Channel, m.ChannelID)
	reply := replyContext(m, thread)
	container, stats, err := r.inputStats(ctx, project, user.ID, container, now)
	if err != nil {
		return nil, err
	}
	pending := stats.Visible + stats.InFlight
	running := container.Status == hermes.ContainerRunning
	if !running && r.PendingCap > 0 && stats.Visible >= r.PendingCap {
		if err := r.acknowledge(ctx, Ack{Project: project, Thread: thread, Session: sess, JobID: jobID, Reply: reply, Text: m.Text, Busy: true, Now: now}); err != nil {
			return nil, err
		}
		r.log().WarnContext(ctx, "pending-job cap reached; message not queued", "pending", stats.Visible, "cap", r.PendingCap)
		return &Outcome{Status: Busy, ThreadID: thread.ID, SessionID: sess.ID, ContainerID: containerID}, nil
	}

	// A destructive or large instruction runs as a plan first (SPEC §7).
	jobType := hermes.JobInstruction
	if r.needsApproval(ctx, m.Text) {
		jobType = hermes.JobPlan
	}
	job := hermes.Job{
		Version: hermes.JobVersion, ID: jobID, Type: jobType,
		SessionID: sess.ID, ThreadID: thread.ID, Branch: thread.Branch(),
		ClientID: project.ClientID, ProjectID: project.ID, UserID: user.ID,
		Instruction: m.Text, Reply: reply, CreatedAt: now,
	}
	woke, err := r.queueJob(ctx, container, &job, running)
	if err != nil {
		return nil, err
	}
	entry := &hermes.HistoryEntry{
		ID: jobID, SessionID: sess.ID, ThreadID: thread.ID, Direction: hermes.DirectionIn, Kind: hermes.KindInstruction,
		Channel: m.Channel, Text: m.Text, Delivery: hermes.DeliveryQueued, CreatedAt: now,
		Meta: map[string]string{"jobId": jobID, "channelMessageId": m.ChannelID},
	}
	if m.Subject != "" {
		entry.Meta["subject"] = m.Subject
	}
	ack := Ack{Project: project, Thread: thread, Session: sess, JobID: jobID, Reply: reply, Text: m.Text,
		Queued: pending > 0, Now: now}
	if jobType == hermes.JobPlan {
		entry.Meta["type"] = hermes.JobPlan
		ack.Approval = notify.AckPlan
	}
	if !running && r.WakeEstimate != nil {
		ack.WakeAfter = r.WakeEstimate()
	}
	// The job is on its queue: from here on nothing may fail the message,
	// or a redelivery would queue the job again.
	if err := r.acknowledge(ctx, ack, entry); err != nil {
		r.log().ErrorContext(ctx, "the instruction was queued but not recorded in the session's history", "job_id", jobID, "err", err)
	}
	if e, ok := events.FromHistory(entry); ok && r.Events != nil {
		e.Data["pending"] = pending
		r.Events.Publish(sess.ID, e)
	}
	if woke && r.Events != nil {
		r.Events.Publish(sess.ID, events.Event{ID: events.NewID(now), Type: events.Waking, SessionID: sess.ID, JobID: jobID,
			Data: map[string]any{"containerId": containerID}, At: now})
	}
	r.count(r.Metrics.Routed, m.Channel)
	r.log().InfoContext(ctx, "message routed", "job_id", jobID, "type", jobType, "new_session", created, "pending", pending)
	return &Outcome{Status: Queued, JobID: jobID, ThreadID: thread.ID, SessionID: sess.ID, ContainerID: containerID, NewSession: created}, nil
}

// resolve finds the project and the user of a message: from the
// authenticated API caller, or from the address it was sent to and the
// verified sender. A message that resolves to no project, or from someone
// who is not a member, is dropped (never executed, never answered).
func (r *Router) resolve(ctx context.Context, m *hermes.Message) (*hermes.Project, *hermes.User, *Outcome, error) {
	if m.Channel == hermes.ChannelAPI {
		if _, err := r.Store.GetClient(ctx, m.ClientID); err != nil {
			return nil, nil, nil, err
		}
		p, err := r.apiProject(ctx, m.ClientID, m.ProjectID)
		if err != nil {
			return nil, nil, nil, err
		}
		u, err := r.Store.GetUser(ctx, m.ClientID, m.UserID)
		if err != nil {
			if hermes.IsKind(err, hermes.NotFound) {
				return nil, nil, nil, hermes.Errorf(hermes.Unprocessable, "client %q has no user %q", m.ClientID, m.UserID)
			}
			return nil, nil, nil, err
		}
		return p, u, nil, nil
	}
	kind := addressKind(m.Channel)
	p, err := r.Store.ProjectByAddress(ctx, kind, m.To)
	if hermes.IsKind(err, hermes.NotFound) {
		out, err := r.drop(ctx, m, ReasonUnknownRecipient, "no project has this address")
		return nil, nil, out, err
	}
	if err != nil {
		return nil, nil, nil, err
	}
	u, err := r.Store.UserByIdentity(ctx, p.ClientID, kind, m.From)
	if hermes.IsKind(err, hermes.NotFound) {
		out, err := r.drop(ctx, m, ReasonUnknownSender, "the sender is not a member of the project's client")
		return nil, nil, out, err
	}
	if err != nil {
		return nil, nil, nil, err
	}
	return p, u, nil, nil
}

// apiProject is the project an API caller named, or the client's only
// project when it named none.
func (r *Router) apiProject(ctx context.Context, clientID, projectID string) (*hermes.Project, error) {
	if projectID != "" {
		p, err := r.Store.GetProject(ctx, clientID, projectID)
		if hermes.IsKind(err, hermes.NotFound) {
			return nil, hermes.Errorf(hermes.Unprocessable, "client %q has no project %q", clientID, projectID)
		}
		return p, err
	}
	ps, err := r.Store.ListProjects(ctx, clientID)
	if err != nil {
		return nil, err
	}
	switch len(ps) {
	case 1:
		return ps[0], nil
	case 0:
		return nil, hermes.Errorf(hermes.Unprocessable, "client %q has no projects", clientID)
	}
	return nil, hermes.Errorf(hermes.Unprocessable, "projectId is required: client %q has %d projects", clientID, len(ps))
}

func addressKind(channel string) string {
	switch channel {
	case hermes.ChannelSMS:
		return hermes.AddressSMS
	case hermes.ChannelChat:
		return hermes.AddressChat
	}
	return hermes.AddressEmail
}

// Thread references are namespaced by channel.
func emailRef(id string) string          { return "email:" + strings.ToLower(strings.Trim(id, "<> ")) }
func chatRef(channel, key string) string { return "chat:" + channel + ":" + key }
func owned(t *hermes.Thread, p *hermes.Project, u *hermes.User) bool {
	return t.ClientID == p.ClientID && t.ProjectID == p.ID && t.UserID == u.ID
}

// thread finds or creates the message's thread (SPEC §4). Hints that name
// another user's thread, or another project's, are ignored: nobody can
// continue someone else's conversation.
func (r *Router) thread(ctx context.Context, m *hermes.Message, p *hermes.Project, u *hermes.User, now time.Time) (*hermes.Thread, error) {
	h := m.Thread
	find := func(get func() (*hermes.Thread, error)) *hermes.Thread {
		t, err := get()
		if err != nil || !owned(t, p, u) {
			return nil
		}
		return t
	}
	var t *hermes.Thread
	var newID string
	var refs []string
	if h.ThreadID != "" && hermes.ValidTokenID(h.ThreadID) {
		t = find(func() (*hermes.Thread, error) { return r.Store.GetThread(ctx, h.ThreadID) })
		if t == nil && m.Channel == hermes.ChannelAPI {
			return nil, hermes.Errorf(hermes.Unprocessable, "thread %q is not a thread of this user on this project", h.ThreadID)
		}
	}
	if t == nil && h.Token != "" {
		t = find(func() (*hermes.Thread, error) { return r.Store.ThreadByToken(ctx, h.Token) })
	}
	switch m.Channel {
	case hermes.ChannelEmail:
		if t == nil && len(h.References) > 0 {
			t = find(func() (*hermes.Thread, error) { return r.Store.ThreadByRef(ctx, emailRef(h.References[0])) })
		}
		for _, id := range h.InReplyTo {
			if t == nil {
				t = find(func() (*hermes.Thread, error) { return r.Store.ThreadByRef(ctx, emailRef(id)) })
			}
		}
		root := h.MessageID
		if len(h.References) > 0 {
			root = h.References[0]
		}
		if root != "" {
			newID = hermes.DeriveToken(p.ClientID, p.ID, u.ID, "email", emailRef(root))
			refs = append(refs, emailRef(root))
		}
		if h.MessageID != "" {
			refs = append(refs, emailRef(h.MessageID))
		}
	case hermes.ChannelChat:
		if h.ChatThread != "" {
			ref := chatRef(m.To, h.ChatThread)
			if t == nil {
				t = find(func() (*hermes.Thread, error) { return r.Store.ThreadByRef(ctx, ref) })
			}
			newID = hermes.DeriveToken(p.ClientID, p.ID, u.ID, "chat", ref)
			refs = append(refs, ref)
		}
	case hermes.ChannelSMS:
		if t == nil && !h.NewThread {
			t = find(func() (*hermes.Thread, error) { return r.Store.LatestThread(ctx, p.ClientID, p.ID, u.ID) })
		}
	}
	if t == nil {
		var err error
		if t, err = r.createThread(ctx, m, p, u, newID, now); err != nil {
			return nil, err
		}
	}
	if len(refs) > 0 {
		if err := r.Store.AddThreadRefs(ctx, t.ID, refs...); err != nil {
			return nil, err
		}
	}
	if err := r.Store.TouchThread(ctx, t.ID, now); err != nil {
		return nil, err
	}
	return t, nil
}

func (r *Router) createThread(ctx context.Context, m *hermes.Message, p *hermes.Project, u *hermes.User, id string, now time.Time) (*hermes.Thread, error) {
	if id == "" {
		id = hermes.NewToken()
	}
	subject := m.Subject
	if subject == "" {
		subject = firstLine(m.Text, 80)
	}
	for range 3 {
		t := &hermes.Thread{ID: id, ClientID: p.ClientID, ProjectID: p.ID, UserID: u.ID, Channel: m.Channel,
			Subject: subject, Token: hermes.NewToken()[:8], CreatedAt: now, UpdatedAt: now}
		err := r.Store.CreateThread(ctx, t)
		if err == nil {
			return t, nil
		}
		if !hermes.IsKind(err, hermes.Conflict) {
			return nil, err
		}
		// A derived id exists already (a concurrent message of the same
		// conversation won), or the random token collided: look, then retry.
		if existing, gerr := r.Store.GetThread(ctx, id); gerr == nil {
			if !owned(existing, p, u) {
				id = hermes.NewToken()
				continue
			}
			return existing, nil
		}
	}
	return nil, hermes.Errorf(hermes.Unavailable, "could not create a thread; retry")
}

func firstLine(s string, n int) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	if len(line) > n {
		line = line[:n]
	}
	return strings.TrimSpace(line)
}

// ensureContainer records the container and creates its queue set (DLQ
// first, then input with its redrive policy, then output) once per process.
func (r *Router) ensureContainer(ctx context.Context, p *hermes.Project, userID, id string, now time.Time) (*hermes.Container, error) {
	prefix := r.QueuePrefix
	if prefix == "" {
		prefix = DefaultQueuePrefix
	}
	if _, ok := r.ensured.Load(id); ok {
		c, err := r.Store.GetContainer(ctx, id)
		switch {
		case err == nil && c.QueuesState == "":
			return c, nil
		case err != nil && !hermes.IsKind(err, hermes.NotFound):
			return nil, err
		}
		r.ensured.Delete(id) // the record went away, or the idle clean-up has its queues: make them again
	}
	c, err := r.Store.EnsureContainer(ctx, &hermes.Container{
		ID: id, ClientID: p.ClientID, ProjectID: p.ID, UserID: userID, Status: hermes.ContainerStopped,
		Queues: hermes.QueueSetFor(prefix, id), CreatedAt: now, UpdatedAt: now,
	})
	if err != nil {
		return nil, err
	}
	if c.QueuesState != "" {
		if c, err = r.reclaimQueues(ctx, id, hermes.QueueSetFor(prefix, id), now); err != nil {
			return nil, err
		}
	}
	tags := map[string]string{"client": p.ClientID, "project": p.ID, "user": userID, "managed-by": "hermes"}
	if err := r.Queues.CreateQueue(ctx, c.Queues.DLQ, hermes.QueueOptions{Retention: 14 * 24 * time.Hour, Tags: tags}); err != nil {
		return nil, fmt.Errorf("router: dead-letter queue: %w", err)
	}
	if err := r.Queues.CreateQueue(ctx, c.Queues.Input, hermes.QueueOptions{
		VisibilityTimeout: JobVisibility, DeadLetter: c.Queues.DLQ, MaxReceives: hermes.DefaultMaxReceive, Tags: tags,
	}); err != nil {
		return nil, fmt.Errorf("router: input queue: %w", err)
	}
	if err := r.Queues.CreateQueue(ctx, c.Queues.Output, hermes.QueueOptions{VisibilityTimeout: JobVisibility, Tags: tags}); err != nil {
		return nil, fmt.Errorf("router: output queue: %w", err)
	}
	r.ensured.Store(id, true)
	return c, nil
}

// inputStats returns the counts of the container's input queue, making
// the queue set again when it went away (deleted by an operator or a
// clean-up).
func (r *Router) inputStats(ctx context.Context, p *hermes.Project, userID string, c *hermes.Container, now time.Time) (*hermes.Container, hermes.QueueStats, error) {
	stats, err := r.Queues.Stats(ctx, c.Queues.Input)
	if hermes.IsKind(err, hermes.NotFound) {
		r.ensured.Delete(c.ID)
		if c, err = r.ensureContainer(ctx, p, userID, c.ID, now); err != nil {
			return nil, stats, err
		}
		stats, err = r.Queues.Stats(ctx, c.Queues.Input)
	}
	if err != nil {
		return nil, stats, fmt.Errorf("router: queue depth: %w", err)
	}
	return c, stats, nil
}

// queueJob sends a job to the container's input queue and, unless it is
// running, wakes it; it reports whether it woke it. A failed wake is only
// logged: the job is durable on its queue, and the reconcile loop wakes
// the container later.
func (r *Router) queueJob(ctx context.Context, c *hermes.Container, job *hermes.Job, running bool) (woke bool, err error) {
	body, err := json.Marshal(job)
	if err != nil {
		return false, err
	}
	if _, err := r.Queues.Send(ctx, c.Queues.Input, string(body), map[string]string{
		"jobId": job.ID, "type": job.Type, "threadId": job.ThreadID, "sessionId": job.SessionID,
	}); err != nil {
		return false, fmt.Errorf("router: queueing the job: %w", err)
	}
	if r.Runner == nil || running {
		return false, nil
	}
	if err := r.Runner.Wake(ctx, c); err != nil {
		r.log().WarnContext(ctx, "waking the container failed; the job waits on its queue", "job_id", job.ID, "err", err)
		return false, nil
	}
	return true, nil
}

// reclaimQueues takes a container's queue set back from the idle clean-up
// (internal/lifecycle.QueueCleanup) before a job is queued: a retiring
// mark is cleared, which makes the clean-up leave the set alone, and a
// deleted set is named again, to be created. While a clean-up is deleting
// the set, the message is refused as Unavailable (redelivered by its
// channel, or 503 to an API caller) for the moment it takes, so that a job
// is never sent to a queue about to be deleted; a clean-up that held the
// set for longer than hermes.QueuesDeletingTimeout is taken over.
func (r *Router) reclaimQueues(ctx context.Context, id string, set hermes.QueueSet, now time.Time) (*hermes.Container, error) {
	c, err := r.Store.UpdateContainer(ctx, id, func(c *hermes.Container) error {
		if c.QueuesState == hermes.QueuesDeleting && c.QueuesStateAt != nil && now.Sub(*c.QueuesStateAt) < hermes.QueuesDeletingTimeout {
			return hermes.Errorf(hermes.Unavailable, "the editor's queues are being recycled; try again in a moment")
		}
		if c.QueuesState == hermes.QueuesDeleting || c.QueuesState == hermes.QueuesDeleted {
			c.Queues = set
		}
		c.QueuesState, c.QueuesStateAt, c.UpdatedAt = "", nil, now
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("router: taking the queue set back from the clean-up: %w", err)
	}
	r.log().InfoContext(ctx, "queue set taken back from the idle clean-up")
	return c, nil
}

func replyContext(m *hermes.Message, t *hermes.Thread) hermes.ReplyContext {
	rc := hermes.ReplyContext{Channel: m.Channel, To: m.From, From: m.To, Subject: m.Subject, Token: t.Token}
	switch m.Channel {
	case hermes.ChannelEmail:
		rc.MessageID = m.Thread.MessageID
		rc.References = m.Thread.References
	case hermes.ChannelChat:
		rc.ChatThread = m.Thread.ChatThread
	}
	return rc
}

// acknowledge queues the acknowledgement of the project's channel in the
// outbox, and records it in the session's history after the given entries
// (one write for both). Projects may turn acknowledgements off; busy
// replies are always sent, since the message was not queued. A failure to
// compose or queue the acknowledgement is logged: the job is queued and
// its result will be answered all the same.
func (r *Router) acknowledge(ctx context.Context, a Ack, hist ...*hermes.HistoryEntry) error {
	if r.Acknowledger != nil && (a.Busy || a.Project.Acknowledges() || answersOnly(a.Approval)) {
		if items, err := r.ackItems(ctx, a); err != nil {
			r.log().ErrorContext(ctx, "acknowledgement not queued", "err", err)
		} else {
			for _, it := range items {
				hist = append(hist, &hermes.HistoryEntry{
					ID: it.ID, SessionID: a.Session.ID, ThreadID: a.Thread.ID, Direction: hermes.DirectionOut,
					Kind: it.Kind, Channel: it.Channel, Text: it.Text, CreatedAt: a.Now.Add(time.Millisecond), // after the instruction
					Meta: map[string]string{"outboxId": it.ID},
				})
			}
		}
	}
	if len(hist) == 0 {
		return nil
	}
	return r.Store.AppendHistory(ctx, hist...)
}

func (r *Router) ackItems(ctx context.Context, a Ack) ([]*hermes.OutboxItem, error) {
	items, err := r.Acknowledger.Ack(ctx, a)
	if err != nil || len(items) == 0 {
		return nil, err
	}
	if err := r.Store.EnqueueOutbox(ctx, items...); err != nil {
		return nil, err
	}
	if r.OutboxKick != nil {
		r.OutboxKick()
	}
	return items, nil
}

func (r *Router) count(f func(string), channel string) {
	if f != nil {
		f(channel)
	}
}

func (r *Router) count2(f func(string, string), channel, reason string) {
	if f != nil {
		f(channel, reason)
	}
}

func (r *Router) log() *slog.Logger {
	if r.Log == nil {
		return slog.Default()
	}
	return r.Log
}
