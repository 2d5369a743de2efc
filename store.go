package hermes

import (
	"context"
	"time"
)

// Store is the durable state of Hermes. The embedded adapter is SQLite
// (internal/sqlite); the production one is DynamoDB. Both run the same
// contract suite (internal/hermestest.StoreSuite), which is the executable
// form of the comments below.
//
// Common rules: stores keep times in UTC with millisecond precision (the
// objects passed in get those normalised times); ids are
// validated by callers before they reach a store; every method honours ctx;
// a failure of the backend itself is Unavailable or Internal. Objects passed
// in are not retained; objects returned are the caller's own copies.
type Store interface {
	Directory
	Sessions
	Intake
	Outbox
	Containers
	Approvals

	// Ping checks that the backend answers; it backs /health.
	Ping(ctx context.Context) error
	// Close releases the store. Calls after Close fail.
	Close() error
}

// Directory holds clients, their projects and their users.
//
// Addresses are unique: an email address, SMS number or chat channel belongs
// to at most one project (across all clients), and a user identity (email,
// phone, chat id) to at most one user of a client. A write that would break
// this fails with Conflict and changes nothing.
type Directory interface {
	// CreateClient stores a new client, setting CreatedAt and UpdatedAt to
	// now. Conflict if the id exists.
	CreateClient(ctx context.Context, c *Client, now time.Time) error
	// GetClient returns the client. NotFound if there is none.
	GetClient(ctx context.Context, id string) (*Client, error)
	// ListClients returns every client ordered by id.
	ListClients(ctx context.Context) ([]*Client, error)
	// UpdateClient replaces the client's fields (keeping CreatedAt, setting
	// UpdatedAt to now). NotFound if there is none.
	UpdateClient(ctx context.Context, c *Client, now time.Time) error
	// DeleteClient removes the client with its projects, users, threads and
	// (ended) sessions with their history. NotFound if there is none;
	// Conflict while any of its sessions is live.
	DeleteClient(ctx context.Context, id string) error

	// CreateProject stores a new project of an existing client. NotFound if
	// the client does not exist; Conflict if the project id exists or one of
	// its addresses belongs to another project.
	CreateProject(ctx context.Context, p *Project, now time.Time) error
	// GetProject returns the project. NotFound if there is none.
	GetProject(ctx context.Context, clientID, projectID string) (*Project, error)
	// ListProjects returns the client's projects ordered by id (empty when
	// the client has none or does not exist).
	ListProjects(ctx context.Context, clientID string) ([]*Project, error)
	// UpdateProject replaces the project (keeping CreatedAt). NotFound if
	// there is none; Conflict if one of its addresses belongs to another
	// project.
	UpdateProject(ctx context.Context, p *Project, now time.Time) error
	// DeleteProject removes the project. NotFound if there is none;
	// Conflict while one of its sessions is live.
	DeleteProject(ctx context.Context, clientID, projectID string) error
	// ProjectByAddress returns the project reached at an address of the
	// given kind (AddressEmail, AddressSMS, AddressChat). Email addresses
	// are matched in lowercase. NotFound if no project has it.
	ProjectByAddress(ctx context.Context, kind, address string) (*Project, error)

	// CreateUser stores a new user of an existing client. NotFound if the
	// client does not exist; Conflict if the user id exists or one of the
	// identities belongs to another user of the client.
	CreateUser(ctx context.Context, u *User, now time.Time) error
	// GetUser returns the user. NotFound if there is none.
	GetUser(ctx context.Context, clientID, userID string) (*User, error)
	// ListUsers returns the client's users ordered by id (empty when the
	// client has none or does not exist).
	ListUsers(ctx context.Context, clientID string) ([]*User, error)
	// UpdateUser replaces the user (keeping CreatedAt). NotFound if there is
	// none; Conflict if an identity belongs to another user of the client.
	UpdateUser(ctx context.Context, u *User, now time.Time) error
	// DeleteUser removes the user. NotFound if there is none; Conflict while
	// one of the user's sessions is live.
	DeleteUser(ctx context.Context, clientID, userID string) error
	// UserByIdentity returns the user of the client that owns an identity of
	// the given kind; email identities are matched in lowercase. NotFound if
	// none does.
	UserByIdentity(ctx context.Context, clientID, kind, identity string) (*User, error)
}

// Sessions holds threads, sessions and their history.
type Sessions interface {
	// CreateThread stores a new thread. Conflict if the id exists.
	CreateThread(ctx context.Context, t *Thread) error
	// GetThread returns the thread. NotFound if there is none.
	GetThread(ctx context.Context, id string) (*Thread, error)
	// ThreadByToken returns the thread with the conversation token. NotFound
	// if none has it. Tokens are unique: CreateThread fails with Conflict on
	// a token another thread holds.
	ThreadByToken(ctx context.Context, token string) (*Thread, error)
	// AddThreadRefs records references to an existing thread — email
	// Message-IDs ("<id>" forms are the caller's business) or chat thread
	// keys — so that later messages naming them find it. A reference
	// already recorded for any thread is left as it is (the first thread
	// keeps it). NotFound if the thread does not exist.
	AddThreadRefs(ctx context.Context, threadID string, refs ...string) error
	// ThreadByRef returns the thread a reference was recorded for. NotFound
	// if none.
	ThreadByRef(ctx context.Context, ref string) (*Thread, error)
	// LatestThread returns the user's most recently updated thread on the
	// project. NotFound if the user has none there.
	LatestThread(ctx context.Context, clientID, projectID, userID string) (*Thread, error)
	// TouchThread sets the thread's UpdatedAt to now (a message arrived on
	// it). NotFound if it does not exist.
	TouchThread(ctx context.Context, id string, now time.Time) error

	// CreateSession stores a new session of an existing thread together
	// with the session's first history entries (e.g. the instruction that
	// opened it), all or nothing. Version is set to 1. NotFound if the
	// thread does not exist; Conflict if the id exists or if the thread
	// already has a live session: a thread never has two.
	CreateSession(ctx context.Context, s *Session, history ...*HistoryEntry) error
	// GetSession returns the session. NotFound if there is none.
	GetSession(ctx context.Context, id string) (*Session, error)
	// LiveSessionForThread returns the thread's live (non-expired) session.
	// NotFound if it has none.
	LiveSessionForThread(ctx context.Context, threadID string) (*Session, error)
	// UpdateSession applies fn to the current session and stores the result
	// if nobody changed the session in between (compare-and-set on
	// Version); when somebody did, it reads again and re-applies fn, so fn
	// always decides on the latest state and must have no side effects. An
	// error from fn aborts the update and is returned as is. It returns the
	// stored session with its new Version. NotFound if there is none.
	UpdateSession(ctx context.Context, id string, fn func(*Session) error) (*Session, error)
	// ListSessions returns a page of the client's sessions, newest first
	// (by CreatedAt, then id), restricted to the given statuses (all when
	// empty). The cursor is opaque: "" starts at the beginning, and the
	// returned next cursor is "" after the last page. Limit is 1–1000.
	// Invalid if the cursor is not one this store issued.
	ListSessions(ctx context.Context, clientID string, statuses []SessionStatus, limit int, cursor string) (page []*Session, next string, err error)
	// ListLeaseExpired returns up to limit live sessions whose lease has
	// passed at now (ExpiresAt <= now), oldest lease first.
	ListLeaseExpired(ctx context.Context, now time.Time, limit int) ([]*Session, error)
	// CountSessions returns how many sessions are in each of the statuses.
	CountSessions(ctx context.Context, statuses ...SessionStatus) (int, error)

	// AppendHistory adds entries to the history of an existing session.
	// Entries are unique by id: appending an id again is a no-op, so a
	// retried append never duplicates. NotFound if the session does not
	// exist.
	AppendHistory(ctx context.Context, entries ...*HistoryEntry) error
	// ListHistory returns the session's history, oldest first (by CreatedAt,
	// then id). Empty for an unknown session.
	ListHistory(ctx context.Context, sessionID string) ([]*HistoryEntry, error)
}

// Intake remembers which channel messages have been seen, so that a
// redelivery is acknowledged and not routed again, and a message being
// routed when its handler crashed is routed again rather than lost.
type Intake interface {
	// ClaimMessage claims a channel message (channel + id) for routing
	// until now+lease. It returns DedupNew when the caller now owns it (first
	// sight, or an earlier claim expired without completing), DedupInProgress
	// while another claim holds it, and DedupDone once CompleteMessage
	// recorded it.
	ClaimMessage(ctx context.Context, channel, id string, now time.Time, lease time.Duration) (DedupState, error)
	// CompleteMessage records that the message was routed (or deliberately
	// dropped): later claims answer DedupDone. Idempotent.
	CompleteMessage(ctx context.Context, channel, id string, now time.Time) error
	// ReleaseMessage gives up a claim so that a redelivery is routed at
	// once (routing failed in a way a retry may fix). Idempotent.
	ReleaseMessage(ctx context.Context, channel, id string) error
}

// Outbox holds every outbound reply until it is delivered.
type Outbox interface {
	// EnqueueOutbox stores new items (status pending, due at their
	// NextAttemptAt). Unique by id: enqueueing an id again is a no-op, so a
	// retried step never sends twice.
	EnqueueOutbox(ctx context.Context, items ...*OutboxItem) error
	// GetOutbox returns one item. NotFound if there is none.
	GetOutbox(ctx context.Context, id string) (*OutboxItem, error)
	// ListOutbox returns items newest first, filtered by status when given
	// (all when empty), at most limit (1–1000), from an opaque cursor as in
	// ListSessions. Invalid for a cursor this store did not issue.
	ListOutbox(ctx context.Context, status OutboxStatus, limit int, cursor string) (page []*OutboxItem, next string, err error)
	// ClaimOutbox hands out up to limit pending items that are due at now
	// and not claimed by another sender, claiming each until now+lease.
	// Oldest due first.
	ClaimOutbox(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*OutboxItem, error)
	// FinishOutbox records an attempt: status sent (SentAt = now), failed
	// (no more attempts), or pending again with the next attempt at retryAt.
	// Attempts grows by one; lastError is kept. NotFound if there is none.
	FinishOutbox(ctx context.Context, id string, status OutboxStatus, now, retryAt time.Time, lastError string) error
}

// Containers holds what Hermes knows of edit containers.
type Containers interface {
	// EnsureContainer stores c when no container with its id exists and
	// returns the stored container either way (Version set).
	EnsureContainer(ctx context.Context, c *Container) (*Container, error)
	// GetContainer returns the container. NotFound if there is none.
	GetContainer(ctx context.Context, id string) (*Container, error)
	// ListContainers returns every container ordered by id.
	ListContainers(ctx context.Context) ([]*Container, error)
	// UpdateContainer is the compare-and-set update of a container, with
	// the rules of UpdateSession. NotFound if there is none.
	UpdateContainer(ctx context.Context, id string, fn func(*Container) error) (*Container, error)
}

// Approvals holds plan approvals (SPEC §7). An approval belongs to a thread
// and goes with it (DeleteClient removes the client's approvals too). Only
// the SHA-256 of an approval's token is stored (TokenHash); token hashes
// are unique.
type Approvals interface {
	// PutApproval stores a new approval (Status pending, Version 1). When
	// an approval with the id exists and is still pending, it replaces its
	// TokenHash, Plan and ExpiresAt (a plan result delivered again rotates
	// the token, since the old one cannot be recovered from its hash) and
	// keeps everything else; the stored approval is returned either way.
	// NotFound if the thread does not exist; Conflict if the existing
	// approval is no longer pending, or if another approval holds the token
	// hash.
	PutApproval(ctx context.Context, a *Approval) (*Approval, error)
	// GetApproval returns the approval. NotFound if there is none.
	GetApproval(ctx context.Context, id string) (*Approval, error)
	// ApprovalByTokenHash returns the approval whose token hashes to hash,
	// whatever its status. NotFound if none does.
	ApprovalByTokenHash(ctx context.Context, hash string) (*Approval, error)
	// LatestApproval returns the thread's newest approval (by CreatedAt,
	// then id), whatever its status: a reply such as "approve" answers the
	// latest plan of its thread. NotFound if the thread has none.
	LatestApproval(ctx context.Context, threadID string) (*Approval, error)
	// DecideApproval moves a pending approval to status (approved,
	// rejected or expired), recording DecidedAt = now and via, and returns
	// the stored approval. It is a compare-and-set: of concurrent
	// decisions exactly one wins. Conflict when the approval is not
	// pending (already decided or expired: read it to see which), and when
	// approving or rejecting an approval whose ExpiresAt <= now (it stays
	// pending; Approval.Expired tells the caller); Invalid for another
	// status, or for expired before ExpiresAt; NotFound if there is none.
	DecideApproval(ctx context.Context, id string, status ApprovalStatus, via string, now time.Time) (*Approval, error)
	// CompleteApproval records that an approved or rejected approval's
	// decision was carried out (DoneAt = now, kept when set already:
	// idempotent). Conflict if the approval is not decided; NotFound if
	// there is none.
	CompleteApproval(ctx context.Context, id string, now time.Time) error
}
