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
