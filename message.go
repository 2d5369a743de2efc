package hermes

import "time"

// Message is an inbound message from any channel, normalised: every channel
// adapter turns its wire format into one and hands it to the router.
type Message struct {
	Channel string // ChannelEmail, ChannelSMS, ChannelChat or ChannelAPI
	// ChannelID is the channel's own id of the message (SES message id or
	// Message-ID, Twilio MessageSid, Slack event id, API message id): the
	// key that makes redeliveries harmless.
	ChannelID string
	// From is the sender's identity on the channel: an email address
	// (lowercase), an E.164 number or a chat user id. Adapters only pass
	// senders whose identity the channel verified (SES verdicts, Twilio and
	// Slack signatures); the router still checks membership.
	From string
	// To is the address the message was sent to: a project's email address,
	// SMS number or chat channel. Empty for the API channel.
	To string
	// ClientID, ProjectID and UserID are set by the API channel, whose
	// caller is authenticated; other channels leave them for the router.
	ClientID, ProjectID, UserID string
	Subject                     string
	Text                        string // the instruction: new text only
	Thread                      ThreadHints
	ReceivedAt                  time.Time
}

// ThreadHints are what a message says about its conversation (SPEC §4).
type ThreadHints struct {
	ThreadID   string   // an explicit thread (API), or one a Hermes Message-ID named
	MessageID  string   // email: the message's own Message-ID
	InReplyTo  []string // email
	References []string // email, oldest first
	Token      string   // a conversation token found in the subject or text
	ChatThread string   // chat: the platform's thread key (Slack thread_ts, else ts)
	NewThread  bool     // SMS: the sender asked for a new conversation
}

// Job is an instruction for an edit container, sent as JSON on its input
// queue. The schema is versioned (JobVersion) and documented in docs/jobs.md.
type Job struct {
	Version     int          `json:"version"`
	ID          string       `json:"jobId"`
	Type        string       `json:"type"` // JobInstruction, JobPlan, JobExecute, JobControl
	SessionID   string       `json:"sessionId"`
	ThreadID    string       `json:"threadId"`
	Branch      string       `json:"branch"`
	ClientID    string       `json:"clientId"`
	ProjectID   string       `json:"projectId"`
	UserID      string       `json:"userId"`
	Instruction string       `json:"instruction,omitempty"`
	Reply       ReplyContext `json:"reply"`
	// Plan approval (SPEC §7): a plan job proposes without changing
	// anything; an execute job carries the approved plan.
	ApprovalID string    `json:"approvalId,omitempty"`
	Plan       string    `json:"plan,omitempty"`
	Control    string    `json:"control,omitempty"` // control jobs: "deactivate"
	CreatedAt  time.Time `json:"createdAt"`
}

// JobVersion is the version of the job schema this build writes.
const JobVersion = 1

// Job types.
const (
	JobInstruction = "instruction"
	JobPlan        = "plan"
	JobExecute     = "execute"
	JobControl     = "control"

	// ControlDeactivate is the control job that stops a container: the
	// worker interrupts its job, checkpoints and exits.
	ControlDeactivate = "deactivate"
)

// ResultMessage is what an edit container reports for a job, as JSON on its
// output queue (webordinary-output-{containerId}); Hermes relays it to the
// user once (docs/jobs.md, "Results"). The embedded Result gives jobId,
// success, summary, filesChanged, commit, branch, previewUrl, error,
// interrupted and finishedAt; the session keeps it as lastResult.
type ResultMessage struct {
	Version   int          `json:"version"` // ResultVersion
	Type      string       `json:"type"`    // ResultDone, ResultInterrupted, ResultPlan, ResultError
	SessionID string       `json:"sessionId"`
	ThreadID  string       `json:"threadId"`
	Reply     ReplyContext `json:"reply"` // the job's reply context, echoed back
	StartedAt time.Time    `json:"startedAt"`
	Result
}

// ResultVersion is the version of the result schema this build reads.
const ResultVersion = 1

// Result types.
const (
	ResultDone        = "result"      // the instruction was applied (or failed: success false)
	ResultInterrupted = "interrupted" // a newer message stopped it; partial work was checkpointed
	ResultPlan        = "plan"        // plan mode: the summary is the proposed plan, nothing changed
	ResultError       = "error"       // the job could not be applied
	// ResultStarted is a notice, not a result: the worker has started the
	// job. It carries version, type, jobId, sessionId, threadId, reply and
	// startedAt only, and is answered with an event, never with a reply.
	ResultStarted = "started"
	// ResultProgress is a notice too: the worker's progress note, in
	// summary. Answered with an event only.
	ResultProgress = "progress"
)

// ReplyContext is where and how the result of a job is answered.
type ReplyContext struct {
	Channel    string   `json:"channel"`
	To         string   `json:"to,omitempty"`   // the user's address on the channel
	From       string   `json:"from,omitempty"` // the project's address the message came to
	Subject    string   `json:"subject,omitempty"`
	MessageID  string   `json:"messageId,omitempty"`  // the inbound message, for In-Reply-To
	References []string `json:"references,omitempty"` // the inbound message's References`
	ChatThread string   `json:"chatThread,omitempty"`
	Token      string   `json:"token,omitempty"`
}

// OutboxStatus is the delivery state of an outbound message.
type OutboxStatus string

const (
	OutboxPending OutboxStatus = "pending"
	OutboxSent    OutboxStatus = "sent"
	OutboxFailed  OutboxStatus = "failed" // gave up after the last attempt
)

// OutboxItem is one reply waiting for, or done with, delivery. Every reply
// goes through the outbox, so a crash never loses or repeats one.
type OutboxItem struct {
	ID            string            `json:"id"`
	Channel       string            `json:"channel"`
	To            string            `json:"to"`
	From          string            `json:"from,omitempty"`
	Subject       string            `json:"subject,omitempty"`
	Text          string            `json:"text"`
	HTML          string            `json:"html,omitempty"`
	Kind          string            `json:"kind"` // ack, result, plan, error, interrupted, busy
	Status        OutboxStatus      `json:"status"`
	Attempts      int               `json:"attempts"`
	LastError     string            `json:"lastError,omitempty"`
	NextAttemptAt time.Time         `json:"nextAttemptAt"`
	ThreadID      string            `json:"threadId"`
	SessionID     string            `json:"sessionId,omitempty"`
	ClientID      string            `json:"clientId"`
	CreatedAt     time.Time         `json:"createdAt"`
	SentAt        *time.Time        `json:"sentAt,omitempty"`
	Headers       map[string]string `json:"headers,omitempty"` // email: Message-ID, In-Reply-To, References
	Raw           []byte            `json:"-"`                 // email: the composed message, sent byte for byte on every attempt
}

// Container is what Hermes knows of one user's edit container on a project.
type Container struct {
	ID        string          `json:"containerId"`
	ClientID  string          `json:"clientId"`
	ProjectID string          `json:"projectId"`
	UserID    string          `json:"userId"`
	Status    ContainerStatus `json:"status"`
	Detail    string          `json:"detail,omitempty"` // busy/idle, or why it failed
	Queues    QueueSet        `json:"queues"`
	// QueuesState is where the queue set is in its idle clean-up
	// (internal/lifecycle.QueueCleanup): "" in use, QueuesRetiring,
	// QueuesDeleting, QueuesDeleted (Queues is then empty, and the router
	// makes the set again for the next message). QueuesStateAt is when it
	// got there.
	QueuesState   string     `json:"queuesState,omitempty"`
	QueuesStateAt *time.Time `json:"queuesStateAt,omitempty"`
	LastHeartbeat *time.Time `json:"lastHeartbeat"`
	// Task is the orchestrator's handle of the container's latest start:
	// the ECS task ARN (empty for the local runner, and before the first
	// start). It stays after the task stops, for operators.
	Task string `json:"task,omitempty"`
	// StartClaim is the token of the start claimed last: a runner moves
	// the container to starting with a fresh token in one compare-and-set
	// write, and only the caller whose token it wrote starts a task, so
	// concurrent wakes across Hermes replicas start one. StartedAt is when
	// that claim was made (a starting container whose claim is older than
	// the runner's start timeout may be claimed again).
	StartClaim string     `json:"startClaim,omitempty"`
	StartedAt  *time.Time `json:"startedAt,omitempty"`
	// StartFailures counts the starts in a row that failed before the
	// worker's first heartbeat; the runner gives up (status error) after a
	// few.
	StartFailures int       `json:"startFailures,omitempty"`
	CreatedAt     time.Time `json:"createdAt"`
	UpdatedAt     time.Time `json:"updatedAt"`
	Version       int64     `json:"-"`
}

// Queue-set clean-up states (Container.QueuesState). A container stopped
// for long with empty queues is marked retiring; a message in the grace
// period that follows takes it back (the router clears the mark), else the
// clean-up moves it to deleting, deletes the three queues and marks it
// deleted. The router answers Unavailable (retry soon) while a clean-up
// deletes, and makes the set again for a message once it is deleted, or
// when a clean-up left it deleting for longer than QueuesDeletingTimeout.
const (
	QueuesRetiring = "retiring"
	QueuesDeleting = "deleting"
	QueuesDeleted  = "deleted"
	// QueuesDeletingTimeout is how long a clean-up may take to delete a
	// queue set; after it, the router takes the container back.
	QueuesDeletingTimeout = time.Minute
)

// QueueSet names a container's three queues.
type QueueSet struct {
	Input  string `json:"input"`
	Output string `json:"output"`
	DLQ    string `json:"dlq"`
}

// QueueSetFor returns the queue names of a container under prefix
// ("webordinary-" by default): {prefix}input-{id}, {prefix}output-{id},
// {prefix}dlq-{id}.
func QueueSetFor(prefix, containerID string) QueueSet {
	return QueueSet{
		Input:  prefix + "input-" + containerID,
		Output: prefix + "output-" + containerID,
		DLQ:    prefix + "dlq-" + containerID,
	}
}

// DedupState is how far a channel message has got.
type DedupState string

const (
	DedupNew        DedupState = "new"         // first sight: the caller now owns it
	DedupInProgress DedupState = "in-progress" // another worker holds it: retry later
	DedupDone       DedupState = "done"        // routed before: acknowledge, don't route
)
