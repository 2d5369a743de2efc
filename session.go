package hermes

import (
	"strings"
	"time"
)

// SessionStatus is where a session is in its life:
// initializing → active → draining → expired. A session that fails to start
// also ends expired, with a reason.
type SessionStatus string

const (
	SessionInitializing SessionStatus = "initializing" // created; its container is not ready yet
	SessionActive       SessionStatus = "active"       // its container is ready for instructions
	SessionDraining     SessionStatus = "draining"     // deactivated; finishing, then expires
	SessionExpired      SessionStatus = "expired"      // ended: lease passed, deactivated, or failed
)

// SessionStatuses lists every status in lifecycle order.
var SessionStatuses = []SessionStatus{SessionInitializing, SessionActive, SessionDraining, SessionExpired}

// Valid reports whether s is one of the known statuses.
func (s SessionStatus) Valid() bool {
	for _, x := range SessionStatuses {
		if s == x {
			return true
		}
	}
	return false
}

// Live reports whether a session in this status still holds a lease
// (anything but expired).
func (s SessionStatus) Live() bool { return s != SessionExpired && s != "" }

// Reasons a session expired.
const (
	ReasonLease       = "lease"       // the lease passed without a keepalive
	ReasonDeactivated = "deactivated" // an API caller deactivated it
	ReasonStartFailed = "start-failed"
)

// Thread is one conversation: an email thread, an SMS conversation, a chat
// thread or an API session. Its id is used everywhere: routing, session, the
// git branch thread-{id}, acknowledgements and replies.
type Thread struct {
	ID        string `json:"threadId"`
	ClientID  string `json:"clientId"`
	ProjectID string `json:"projectId"`
	UserID    string `json:"userId"`
	Channel   string `json:"channel"` // the channel that opened it: api, email, sms, chat
	Subject   string `json:"subject,omitempty"`
	// Token is the thread's short conversation token (8 lowercase base32
	// characters), shown in replies so that a reply on any channel finds
	// the thread again.
	Token     string    `json:"token,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Branch is the git branch of the thread's work.
func (t *Thread) Branch() string { return "thread-" + t.ID }

// Channels.
const (
	ChannelAPI   = "api"
	ChannelEmail = "email"
	ChannelSMS   = "sms"
	ChannelChat  = "chat"
)

// Session is the edit session of one thread. A thread has at most one live
// (non-expired) session at a time; a later message on an expired thread
// opens a new session for the same thread.
type Session struct {
	ID           string        `json:"sessionId"`
	ThreadID     string        `json:"threadId"`
	ClientID     string        `json:"clientId"`
	ProjectID    string        `json:"projectId"`
	UserID       string        `json:"userId"`
	ContainerID  string        `json:"containerId"`
	Status       SessionStatus `json:"status"`
	Reason       string        `json:"reason,omitempty"` // why it expired
	PreviewURL   string        `json:"previewUrl"`
	CreatedAt    time.Time     `json:"createdAt"`
	LastActivity time.Time     `json:"lastActivity"`
	ExpiresAt    time.Time     `json:"expiresAt"` // the lease; enforced by the reaper
	LastResult   *Result       `json:"lastResult,omitempty"`
	// Version increases with every stored change; stores use it for
	// compare-and-set so that two writers never both win a transition.
	Version int64 `json:"-"`
}

// LeaseExpired reports whether the lease has passed at now.
func (s *Session) LeaseExpired(now time.Time) bool { return !now.Before(s.ExpiresAt) }

// Expire moves a live session to expired with the reason. It returns a
// Conflict error when the session is expired already, so that of two
// concurrent expirations only one wins.
func (s *Session) Expire(now time.Time, reason string) error {
	if !s.Status.Live() {
		return Errorf(Conflict, "session %s is already expired", s.ID)
	}
	s.Status, s.Reason, s.LastActivity = SessionExpired, reason, now
	if s.ExpiresAt.After(now) {
		s.ExpiresAt = now
	}
	return nil
}

// Result is what a container reported for a job: kept on the session as
// lastResult and in its history.
type Result struct {
	JobID        string    `json:"jobId"`
	Success      bool      `json:"success"`
	Summary      string    `json:"summary,omitempty"`
	FilesChanged []string  `json:"filesChanged,omitempty"`
	Commit       string    `json:"commit,omitempty"`
	Branch       string    `json:"branch,omitempty"`
	PreviewURL   string    `json:"previewUrl,omitempty"`
	Error        string    `json:"error,omitempty"`
	Interrupted  bool      `json:"interrupted,omitempty"`
	FinishedAt   time.Time `json:"finishedAt"`
}

// Direction of a history entry.
const (
	DirectionIn  = "in"
	DirectionOut = "out"
)

// History entry kinds.
const (
	KindInstruction = "instruction" // an inbound instruction, as extracted
	KindAck         = "ack"
	KindResult      = "result"
	KindPlan        = "plan"
	KindError       = "error"
	KindInterrupted = "interrupted"
)

// Delivery states of an inbound instruction.
const (
	DeliveryPending = "pending" // recorded; not yet on the container's input queue
	DeliveryQueued  = "queued"  // sent to the container's input queue
)

// HistoryEntry is one inbound or outbound message of a session: an
// instruction as extracted, an acknowledgement, a result, a plan, an error.
type HistoryEntry struct {
	ID        string            `json:"id"` // sortable: history lists oldest first
	SessionID string            `json:"sessionId"`
	ThreadID  string            `json:"threadId"`
	Direction string            `json:"direction"`
	Kind      string            `json:"kind"`
	Channel   string            `json:"channel"`
	Text      string            `json:"text"`
	Delivery  string            `json:"delivery,omitempty"` // inbound instructions only
	CreatedAt time.Time         `json:"createdAt"`
	Meta      map[string]string `json:"meta,omitempty"`
}

// ContainerStatus is what Hermes knows of an edit container.
type ContainerStatus string

const (
	ContainerStopped  ContainerStatus = "stopped"
	ContainerStarting ContainerStatus = "starting"
	ContainerRunning  ContainerStatus = "running"
	ContainerStopping ContainerStatus = "stopping"
	ContainerMissing  ContainerStatus = "missing" // believed running, no heartbeat
	ContainerError    ContainerStatus = "error"
)

// PreviewURL returns the preview link of a thread: the project's template
// with its placeholders filled in when it has one, else the preview that
// Hermes serves itself under publicBase ("http://localhost:3000" plus the
// base path).
func PreviewURL(p *Project, publicBase, threadID, sessionID, userID string) string {
	if p.PreviewURLTemplate != "" {
		return strings.NewReplacer(
			"{client}", p.ClientID, "{project}", p.ID, "{thread}", threadID,
			"{session}", sessionID, "{user}", userID,
		).Replace(p.PreviewURLTemplate)
	}
	return strings.TrimRight(publicBase, "/") + "/preview/" + p.ClientID + "/" + p.ID + "/" + threadID + "/"
}
