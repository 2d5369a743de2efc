package router

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/classify"
	"github.com/webordinary/hermes/internal/events"
	"github.com/webordinary/hermes/internal/logctx"
	"github.com/webordinary/hermes/internal/notify"
)

// Plan approval (SPEC §7), the router's side: instructions that need
// approval are queued as plan jobs (route); a plan result creates an
// approval (internal/relay); the user decides on the approval page
// (internal/httpapi, through Decide) or by replying on the thread
// (approvalReply); an approved plan is queued as an execute job.
//
// A decision is first stored (a compare-and-set: of concurrent decisions
// one wins), then carried out (the execute job queued, or the rejection
// told), then marked done. Every id on the way is derived from the
// approval's, so carrying a decision out again after a failure in between
// queues nothing twice: the execute job's id is the same (and the worker
// skips a job id it has finished), and outbox items and history entries
// are unique by id.

// Outcome statuses of approval replies.
const (
	// Answered: the message answered the thread's latest plan without
	// queuing anything (Reason: ReasonRejected, ReasonAlreadyDecided or
	// ReasonExpired); the user was told on the channel.
	Answered = "answered"
)

// Reasons of answered messages.
const (
	ReasonRejected       = "rejected"
	ReasonAlreadyDecided = "already-decided"
	ReasonExpired        = "expired"
)

// Results of a decision (Decision.Outcome).
const (
	DecisionApplied = "applied" // decided now (or a decision of the same kind, interrupted before, carried out)
	DecisionAlready = "already" // decided before; Decision.Approval.Status says how
	DecisionExpired = "expired" // too late: the approval expired undecided
)

// Decision is what became of an approve or reject.
type Decision struct {
	Outcome  string
	Approval *hermes.Approval // as stored
	// The execute job of an applied approval, and where it went.
	JobID, SessionID, ContainerID string
}

// turn is what routing a message (or a page's decision) found: the
// project, user, thread, live session and container.
type turn struct {
	project   *hermes.Project
	user      *hermes.User
	thread    *hermes.Thread
	sess      *hermes.Session
	container *hermes.Container
}

// needsApproval asks the model (the keyword rules when there is none, or
// when it fails) whether an instruction is destructive or large.
func (r *Router) needsApproval(ctx context.Context, text string) bool {
	if r.Model != nil {
		c, err := r.Model.Classify(ctx, text)
		if err == nil {
			if c.NeedsApproval {
				r.log().InfoContext(ctx, "the instruction needs approval: a plan first", "reason", c.Reason, "matched", c.Matched)
			}
			return c.NeedsApproval
		}
		r.log().WarnContext(ctx, "the model could not classify the instruction; the keyword rules decide", "err", err)
	}
	c := classify.Classify(text)
	if c.NeedsApproval {
		r.log().InfoContext(ctx, "the instruction needs approval: a plan first", "reason", c.Reason, "matched", c.Matched)
	}
	return c.NeedsApproval
}

// answersOnly reports whether an acknowledgement of this approval step is
// the only answer the user gets (nothing was queued).
func answersOnly(approval string) bool {
	switch approval {
	case notify.AckRejected, notify.AckAlreadyApproved, notify.AckAlreadyRejected, notify.AckExpired:
		return true
	}
	return false
}

// Who read a reply as a decision (the history entry's meta.decidedBy).
const (
	DecidedByKeywords = "keywords" // classify.ApprovalReply: a plain yes or no
	DecidedByModel    = "model"    // the Model, as a hermes.IntentReader
)

// MaxModelApproval bounds the first unquoted paragraph of a reply that the
// model reads as an approval (characters): a longer reply says more than
// yes, and is an instruction.
const MaxModelApproval = 200

// approvalReply handles a message that answers the plan of its thread: it
// decides the thread's latest approval, from the verified sender (routing
// found the thread among the sender's own). A plain "approve" or "reject"
// (classify.ApprovalReply) decides it; so does a reply that the keyword
// rules read as neither when the Model is also a hermes.IntentReader and
// reads it as an approval or a rejection while the approval is pending
// (readIntent). It returns a nil Outcome when the message is not such a
// reply, or the thread has no approval: the message is then an
// instruction like any other.
func (r *Router) approvalReply(ctx context.Context, m *hermes.Message, t turn, now time.Time) (*Outcome, error) {
	approve, reject := classify.ApprovalReply(m.Text)
	reader, _ := r.Model.(hermes.IntentReader)
	if !approve && !reject && reader == nil {
		return nil, nil
	}
	a, err := r.Store.LatestApproval(ctx, t.thread.ID)
	if hermes.IsKind(err, hermes.NotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("router: the thread's approval: %w", err)
	}
	if a.ClientID != t.project.ClientID || a.ProjectID != t.project.ID || a.UserID != t.user.ID {
		return nil, nil // cannot happen: the thread is the sender's own
	}
	ctx = logctx.With(ctx, slog.String("approval_id", a.ID))
	by, reason := DecidedByKeywords, ""
	if !approve && !reject {
		// Neither a plain yes nor a plain no: the model reads it, but only
		// while the plan waits (an answer to a decided or expired plan is
		// an instruction, as it is without a model). A decision that was
		// interrupted before it was carried out still waits: the reply that
		// made it, redelivered, carries it out, as a plain "approve" would.
		waiting := a.Status == hermes.ApprovalPending && !a.Expired(now) || a.Decided() && a.DoneAt == nil
		if !waiting {
			return nil, nil
		}
		if approve, reject, reason = r.readIntent(ctx, reader, m.Text, a.Plan); !approve && !reject {
			return nil, nil
		}
		by = DecidedByModel
	}
	// The history entry of the reply; the acknowledgement follows it.
	msgID := hermes.DeriveToken("job", m.Channel, m.ChannelID)
	entry := &hermes.HistoryEntry{
		ID: msgID, SessionID: t.sess.ID, ThreadID: t.thread.ID, Direction: hermes.DirectionIn, Kind: hermes.KindInstruction,
		Channel: m.Channel, Text: m.Text, CreatedAt: now,
		Meta: map[string]string{"channelMessageId": m.ChannelID, "approvalId": a.ID, "decision": decisionWord(approve), "decidedBy": by},
	}
	if reason != "" {
		entry.Meta["decisionReason"] = reason
	}
	src := source{via: hermes.ViaReply, turn: &t, reply: replyContext(m, t.thread), entry: entry, ackID: msgID}
	d, err := r.decide(ctx, a, approve, src, now)
	if err != nil {
		return nil, err
	}
	out := &Outcome{ThreadID: t.thread.ID, SessionID: t.sess.ID, ContainerID: t.container.ID}
	switch {
	case d.Outcome == DecisionApplied && approve:
		out.Status, out.JobID, out.SessionID = Queued, d.JobID, d.SessionID
		r.count(r.Metrics.Routed, m.Channel)
	case d.Outcome == DecisionApplied:
		out.Status, out.Reason = Answered, ReasonRejected
	case d.Outcome == DecisionExpired:
		out.Status, out.Reason = Answered, ReasonExpired
	default:
		out.Status, out.Reason = Answered, ReasonAlreadyDecided
	}
	r.log().InfoContext(ctx, "approval reply", "decision", decisionWord(approve), "decided_by", by, "outcome", d.Outcome, "status", d.Approval.Status)
	return out, nil
}

// readIntent asks the model what a reply that is neither a plain yes nor a
// plain no means for the plan: it sees the reply's unquoted lines (the
// plan is passed on its own). Its rejection counts. Its approval counts
// only when the reply is short — its first unquoted paragraph at most
// MaxModelApproval characters — and the keyword rules do not flag the
// reply itself as destructive or large (classify.Classify): so a reply
// cannot carry a new request past approval as a "yes" ("sure, and delete
// the gallery too"), whatever the model makes of it. Anything else — an
// instruction, an approval against the rule, an error — leaves the reply
// an instruction, as the keyword rules read it.
func (r *Router) readIntent(ctx context.Context, reader hermes.IntentReader, text, plan string) (approve, reject bool, reason string) {
	body := unquoted(text)
	if body == "" {
		return false, false, ""
	}
	ri, err := reader.ReplyIntent(ctx, body, plan)
	if err != nil {
		r.log().WarnContext(ctx, "the model could not read the reply to the plan; it is an instruction", "err", err)
		return false, false, ""
	}
	switch ri.Intent {
	case hermes.IntentApprove:
		if n := utf8.RuneCountInString(firstParagraph(body)); n > MaxModelApproval {
			r.log().InfoContext(ctx, "the model reads the reply as an approval, but it is too long for one; it is an instruction",
				"reason", ri.Reason, "chars", n, "max", MaxModelApproval)
			return false, false, ""
		}
		if c := classify.Classify(body); c.NeedsApproval {
			r.log().InfoContext(ctx, "the model reads the reply as an approval, but the keyword rules flag it as destructive or large; it is an instruction",
				"reason", ri.Reason, "matched", c.Matched)
			return false, false, ""
		}
		return true, false, ri.Reason
	case hermes.IntentReject:
		return false, true, ri.Reason
	}
	r.log().InfoContext(ctx, "the model reads the reply as an instruction", "intent", string(ri.Intent), "reason", ri.Reason)
	return false, false, ""
}

// unquoted returns text without its quoted lines ('>'), trimmed.
func unquoted(text string) string {
	var b strings.Builder
	for line := range strings.Lines(text) {
		if !strings.HasPrefix(strings.TrimSpace(line), ">") {
			b.WriteString(line)
		}
	}
	return strings.TrimSpace(b.String())
}

// firstParagraph returns the lines of text up to its first blank line.
func firstParagraph(text string) string {
	text = strings.TrimSpace(text)
	var b strings.Builder
	for line := range strings.Lines(text) {
		if strings.TrimSpace(line) == "" {
			break
		}
		b.WriteString(line)
	}
	return strings.TrimSpace(b.String())
}

// Decide approves or rejects an approval from its page (SPEC §7): an
// approval stores the decision, queues the execute job with the plan on
// the container's input queue (the thread's session renewed, or a new one
// opened) and wakes the container; a rejection stores it and tells the
// user on the plan's channel. Deciding an approval decided the same way
// whose decision was not carried out (a failure in between) carries it out
// now; otherwise a decided one gives DecisionAlready and an expired one
// DecisionExpired, changing nothing. An error means nothing was decided,
// or the decision is stored but not carried out yet: trying again is safe.
func (r *Router) Decide(ctx context.Context, a *hermes.Approval, approve bool) (*Decision, error) {
	ctx = logctx.With(ctx, slog.String("approval_id", a.ID), slog.String("thread_id", a.ThreadID))
	d, err := r.decide(ctx, a, approve, source{via: hermes.ViaPage, reply: a.Reply}, r.Clock.Now())
	if err == nil {
		r.log().InfoContext(ctx, "approval decided on its page", "decision", decisionWord(approve), "outcome", d.Outcome, "status", d.Approval.Status)
	}
	return d, err
}

// source is where a decision comes from.
type source struct {
	via   string              // hermes.ViaPage or hermes.ViaReply
	turn  *turn               // a reply: what routing found; nil for the page
	reply hermes.ReplyContext // where acknowledgements go
	entry *hermes.HistoryEntry
	ackID string // the reply's id, from which its acknowledgement's id derives
}

func decisionWord(approve bool) string {
	if approve {
		return "approve"
	}
	return "reject"
}

func (r *Router) decide(ctx context.Context, a *hermes.Approval, approve bool, src source, now time.Time) (*Decision, error) {
	want := hermes.ApprovalRejected
	if approve {
		want = hermes.ApprovalApproved
	}
	fresh := false
	if a.Status == hermes.ApprovalPending && !a.Expired(now) {
		got, err := r.Store.DecideApproval(ctx, a.ID, want, src.via, now)
		switch {
		case err == nil:
			a, fresh = got, true
		case hermes.IsKind(err, hermes.Conflict):
			// Decided meanwhile, or expired: look again.
			if a, err = r.Store.GetApproval(ctx, a.ID); err != nil {
				return nil, fmt.Errorf("router: reading the approval: %w", err)
			}
		default:
			return nil, fmt.Errorf("router: deciding the approval: %w", err)
		}
	}
	d := &Decision{Approval: a}
	switch {
	case a.Status == hermes.ApprovalPending || a.Status == hermes.ApprovalExpired:
		d.Outcome = DecisionExpired
	case a.Status != want || !fresh && a.DoneAt != nil:
		d.Outcome = DecisionAlready
	default:
		d.Outcome = DecisionApplied
	}
	if d.Outcome != DecisionApplied {
		if src.turn != nil {
			step := notify.AckExpired
			if d.Outcome == DecisionAlready {
				step = notify.AckAlreadyRejected
				if a.Status == hermes.ApprovalApproved {
					step = notify.AckAlreadyApproved
				}
			}
			if err := r.answer(ctx, a, *src.turn, src, step, now); err != nil {
				return nil, err
			}
		}
		return d, nil
	}

	t, err := r.approvalTurn(ctx, a, src, approve, now)
	if err != nil {
		return nil, err
	}
	if approve {
		if err := r.execute(ctx, a, d, t, src, now); err != nil {
			return nil, err
		}
	} else if err := r.answer(ctx, a, t, src, notify.AckRejected, now); err != nil {
		return nil, err
	}
	if err := r.Store.CompleteApproval(ctx, a.ID, now); err != nil {
		// Carried out but not marked: deciding the same way again carries
		// it out again, which adds nothing (the ids are derived).
		r.log().ErrorContext(ctx, "the decision was carried out but not recorded as done", "err", err)
	}
	return d, nil
}

// approvalTurn returns what carrying out a decision needs: a reply's own
// turn, or for the page the approval's project, user and thread, with the
// thread's live session (renewed, or a new one when approving: the plan's
// session may have ended while the user thought about it).
func (r *Router) approvalTurn(ctx context.Context, a *hermes.Approval, src source, approve bool, now time.Time) (turn, error) {
	if src.turn != nil {
		return *src.turn, nil
	}
	var t turn
	var err error
	gone := func(what string) error {
		return hermes.Errorf(hermes.Conflict, "the plan cannot be carried out: its %s no longer exists", what)
	}
	if t.project, err = r.Store.GetProject(ctx, a.ClientID, a.ProjectID); err != nil {
		if hermes.IsKind(err, hermes.NotFound) {
			return t, gone("project")
		}
		return t, err
	}
	if t.user, err = r.Store.GetUser(ctx, a.ClientID, a.UserID); err != nil {
		if hermes.IsKind(err, hermes.NotFound) {
			return t, gone("user")
		}
		return t, err
	}
	if t.thread, err = r.Store.GetThread(ctx, a.ThreadID); err != nil {
		if hermes.IsKind(err, hermes.NotFound) {
			return t, gone("thread")
		}
		return t, err
	}
	if !approve {
		// Nothing runs: the plan's session keeps the record.
		t.sess, err = r.Store.GetSession(ctx, a.SessionID)
		if err != nil && !hermes.IsKind(err, hermes.NotFound) {
			return t, err
		}
		return t, nil
	}
	if t.container, err = r.ensureContainer(ctx, t.project, a.UserID, hermes.ContainerID(a.ClientID, a.ProjectID, a.UserID), now); err != nil {
		return t, err
	}
	if t.sess, _, err = r.Sessions.ForThread(ctx, t.thread, t.project, a.UserID); err != nil {
		return t, err
	}
	return t, nil
}

// execute queues the execute job of an approved plan and wakes the
// container; a reply is acknowledged on its channel ("approved — working on
// it"), the page says so itself.
func (r *Router) execute(ctx context.Context, a *hermes.Approval, d *Decision, t turn, src source, now time.Time) error {
	c, stats, err := r.inputStats(ctx, t.project, a.UserID, t.container, now)
	if err != nil {
		return err
	}
	jobID := hermes.ExecuteJobID(a.ID)
	reply := a.Reply
	if src.via == hermes.ViaReply {
		reply = src.reply // answer the reply, in the same thread
	}
	job := hermes.Job{
		Version: hermes.JobVersion, ID: jobID, Type: hermes.JobExecute,
		SessionID: t.sess.ID, ThreadID: t.thread.ID, Branch: t.thread.Branch(),
		ClientID: a.ClientID, ProjectID: a.ProjectID, UserID: a.UserID,
		Instruction: a.Instruction, Reply: reply, ApprovalID: a.ID, Plan: a.Plan, CreatedAt: now,
	}
	running := c.Status == hermes.ContainerRunning
	woke, err := r.queueJob(ctx, c, &job, running)
	if err != nil {
		return err
	}
	d.JobID, d.SessionID, d.ContainerID = jobID, t.sess.ID, c.ID
	entry := src.entry
	if entry == nil { // the page
		entry = &hermes.HistoryEntry{
			ID: hermes.DeriveToken("decision", a.ID), SessionID: t.sess.ID, ThreadID: t.thread.ID, Direction: hermes.DirectionIn,
			Kind: hermes.KindInstruction, Channel: a.Reply.Channel, Text: "Approved on the approval page", CreatedAt: now,
			Meta: map[string]string{"approvalId": a.ID, "decision": "approve", "via": hermes.ViaPage},
		}
	}
	entry.SessionID = t.sess.ID
	entry.Delivery = hermes.DeliveryQueued
	entry.Meta["jobId"], entry.Meta["type"] = jobID, hermes.JobExecute
	if src.via == hermes.ViaReply {
		ack := Ack{Project: t.project, Thread: t.thread, Session: t.sess, JobID: src.ackID, Reply: reply, Text: a.Instruction,
			Queued: stats.Visible+stats.InFlight > 0, Now: now, Approval: notify.AckApproved}
		if !running && r.WakeEstimate != nil {
			ack.WakeAfter = r.WakeEstimate()
		}
		if err := r.acknowledge(ctx, ack, entry); err != nil {
			r.log().ErrorContext(ctx, "the execute job was queued but not recorded in the session's history", "job_id", jobID, "err", err)
		}
	} else if err := r.Store.AppendHistory(ctx, entry); err != nil {
		r.log().ErrorContext(ctx, "the execute job was queued but not recorded in the session's history", "job_id", jobID, "err", err)
	}
	if e, ok := events.FromHistory(entry); ok && r.Events != nil {
		r.Events.Publish(t.sess.ID, e)
	}
	if woke && r.Events != nil {
		r.Events.Publish(t.sess.ID, events.Event{ID: events.NewID(now), Type: events.Waking, SessionID: t.sess.ID, JobID: jobID,
			Data: map[string]any{"containerId": c.ID}, At: now})
	}
	r.log().InfoContext(ctx, "approved plan queued", "job_id", jobID, "via", src.via)
	return nil
}

// answer tells the user on the channel what became of their answer to a
// plan: rejected (nothing changed), decided before, or expired. Its outbox
// id derives from the reply (or, for the page, from the approval), so it
// is sent once. The rejection must reach the outbox (an error leaves the
// decision to be carried out again); the other answers are best effort.
func (r *Router) answer(ctx context.Context, a *hermes.Approval, t turn, src source, step string, now time.Time) error {
	ackID := src.ackID
	if src.via == hermes.ViaPage {
		ackID = hermes.DeriveToken("decision", a.ID)
	}
	sess := t.sess
	if sess == nil { // the plan's session is gone: no history, the reply still goes
		sess = &hermes.Session{ID: a.SessionID}
	}
	var hist []*hermes.HistoryEntry
	if src.entry != nil {
		hist = append(hist, src.entry)
	} else {
		hist = append(hist, &hermes.HistoryEntry{
			ID: ackID, SessionID: sess.ID, ThreadID: t.thread.ID, Direction: hermes.DirectionIn,
			Kind: hermes.KindInstruction, Channel: a.Reply.Channel, Text: "Rejected on the approval page", CreatedAt: now,
			Meta: map[string]string{"approvalId": a.ID, "decision": "reject", "via": hermes.ViaPage},
		})
	}
	if r.Acknowledger != nil {
		items, err := r.ackItems(ctx, Ack{Project: t.project, Thread: t.thread, Session: sess, JobID: ackID, Reply: src.reply,
			Text: a.Instruction, Now: now, Approval: step})
		if err != nil {
			if step == notify.AckRejected {
				return fmt.Errorf("router: telling the user of the rejection: %w", err)
			}
			r.log().ErrorContext(ctx, "the answer to a plan was not queued", "err", err)
		}
		for _, it := range items {
			hist = append(hist, &hermes.HistoryEntry{
				ID: it.ID, SessionID: sess.ID, ThreadID: t.thread.ID, Direction: hermes.DirectionOut,
				Kind: it.Kind, Channel: it.Channel, Text: it.Text, CreatedAt: now.Add(time.Millisecond),
				Meta: map[string]string{"outboxId": it.ID, "approvalId": a.ID},
			})
		}
	}
	if t.sess == nil {
		return nil
	}
	if err := r.Store.AppendHistory(ctx, hist...); err != nil {
		r.log().ErrorContext(ctx, "the answer to a plan was not recorded in the session's history", "err", err)
	}
	return nil
}
