// Package lifecycle owns the life of edit sessions: opening them, renewing
// and ending their leases, and the reaper that expires sessions whose lease
// has passed. Every state change is a compare-and-set through
// hermes.Store.UpdateSession, so two Hermes processes on one store never
// both win a transition.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/logctx"
)

// MaxInstructionBytes is the longest instruction accepted.
const MaxInstructionBytes = 32 << 10

// Hooks are told of transitions, for metrics. Nil hooks are skipped.
type Hooks struct {
	Created func()
	Expired func(reason string)
}

// Sessions opens, renews and ends edit sessions.
type Sessions struct {
	Store      hermes.Store
	Clock      hermes.Clock
	TTL        time.Duration // the lease a session gets on creation and keepalive
	PublicBase string        // base of Hermes's own links (public URL with base path)
	Hooks      Hooks
	Log        *slog.Logger
	// Kick, when set, asks the reaper to run now (after a deactivation).
	Kick func()
}

// ActivateRequest opens a session for a user on a project with a first
// instruction.
type ActivateRequest struct {
	ClientID    string
	ProjectID   string // may be empty when the client has exactly one project
	UserID      string
	Instruction string
	Channel     string // defaults to api
}

// Activate validates the request against the directory, then creates the
// thread and its session (status initializing, lease now+TTL) with the
// instruction recorded as the first inbound history entry, pending delivery
// to the container. NotFound for an unknown client; Unprocessable for a
// project or user the client does not have; Invalid for a bad instruction.
func (s *Sessions) Activate(ctx context.Context, req ActivateRequest) (*hermes.Session, error) {
	const op = "lifecycle.Activate"
	if err := ValidInstruction(req.Instruction); err != nil {
		return nil, err
	}
	if _, err := s.Store.GetClient(ctx, req.ClientID); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	project, err := s.resolveProject(ctx, req.ClientID, req.ProjectID)
	if err != nil {
		return nil, err
	}
	if _, err := s.Store.GetUser(ctx, req.ClientID, req.UserID); err != nil {
		if hermes.IsKind(err, hermes.NotFound) {
			return nil, hermes.Errorf(hermes.Unprocessable, "client %q has no user %q", req.ClientID, req.UserID)
		}
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	channel := req.Channel
	if channel == "" {
		channel = hermes.ChannelAPI
	}
	now := s.Clock.Now()
	thread := &hermes.Thread{
		ID: hermes.NewToken(), ClientID: req.ClientID, ProjectID: project.ID, UserID: req.UserID,
		Channel: channel, Subject: subjectOf(req.Instruction), CreatedAt: now, UpdatedAt: now,
	}
	if err := s.Store.CreateThread(ctx, thread); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	sess := &hermes.Session{
		ID: hermes.NewToken(), ThreadID: thread.ID, ClientID: req.ClientID, ProjectID: project.ID, UserID: req.UserID,
		ContainerID: hermes.ContainerID(req.ClientID, project.ID, req.UserID),
		Status:      hermes.SessionInitializing, CreatedAt: now, LastActivity: now, ExpiresAt: now.Add(s.TTL),
	}
	sess.PreviewURL = hermes.PreviewURL(project, s.PublicBase, thread.ID, sess.ID, req.UserID)
	first := &hermes.HistoryEntry{
		ID: hermes.NewSortableID(now), SessionID: sess.ID, ThreadID: thread.ID,
		Direction: hermes.DirectionIn, Kind: hermes.KindInstruction, Channel: channel,
		Text: req.Instruction, Delivery: hermes.DeliveryPending, CreatedAt: now,
	}
	if err := s.Store.CreateSession(ctx, sess, first); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if s.Hooks.Created != nil {
		s.Hooks.Created()
	}
	s.log(ctx).InfoContext(logctx.With(ctx, slog.String("session_id", sess.ID), slog.String("thread_id", thread.ID),
		slog.String("container_id", sess.ContainerID)), "session created", "client_id", sess.ClientID, "project_id", sess.ProjectID, "user_id", sess.UserID)
	return sess, nil
}

func (s *Sessions) resolveProject(ctx context.Context, clientID, projectID string) (*hermes.Project, error) {
	if projectID != "" {
		p, err := s.Store.GetProject(ctx, clientID, projectID)
		if hermes.IsKind(err, hermes.NotFound) {
			return nil, hermes.Errorf(hermes.Unprocessable, "client %q has no project %q", clientID, projectID)
		}
		return p, err
	}
	ps, err := s.Store.ListProjects(ctx, clientID)
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

// ValidInstruction checks an instruction: non-blank UTF-8 text within
// MaxInstructionBytes. Invalid otherwise.
func ValidInstruction(text string) error {
	switch {
	case strings.TrimSpace(text) == "":
		return hermes.Errorf(hermes.Invalid, "instruction must not be empty")
	case len(text) > MaxInstructionBytes:
		return hermes.Errorf(hermes.Invalid, "instruction is longer than %d bytes", MaxInstructionBytes)
	case !utf8.ValidString(text) || strings.ContainsRune(text, 0):
		return hermes.Errorf(hermes.Invalid, "instruction must be UTF-8 text without NUL bytes")
	}
	return nil
}

// subjectOf makes a one-line thread subject from an instruction.
func subjectOf(text string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(text), "\n")
	line = strings.TrimSpace(line)
	if len(line) > 80 {
		cut := 77
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		line = line[:cut] + "..."
	}
	return line
}

// Keepalive renews the session's lease to now+TTL. Conflict when the
// session is expired or draining — including a session whose lease passed
// before the reaper saw it, which Keepalive expires on the spot: a lease
// that has passed is never revived. NotFound for an unknown session.
// Keepalive never creates anything.
func (s *Sessions) Keepalive(ctx context.Context, id string) (*hermes.Session, error) {
	now := s.Clock.Now()
	lapsed := false
	sess, err := s.Store.UpdateSession(ctx, id, func(x *hermes.Session) error {
		lapsed = false
		switch {
		case x.Status == hermes.SessionExpired:
			return hermes.Errorf(hermes.Conflict, "session %s has expired; activate a new one", id)
		case x.Status == hermes.SessionDraining:
			return hermes.Errorf(hermes.Conflict, "session %s is draining after deactivation", id)
		case x.LeaseExpired(now):
			lapsed = true
			return x.Expire(now, hermes.ReasonLease)
		}
		x.LastActivity, x.ExpiresAt = now, now.Add(s.TTL)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lifecycle.Keepalive: %w", err)
	}
	if lapsed {
		s.expired(ctx, sess, hermes.ReasonLease)
		return nil, hermes.Errorf(hermes.Conflict, "session %s has expired; activate a new one", id)
	}
	return sess, nil
}

// errNoChange aborts an update that has nothing to do.
var errNoChange = errors.New("no change")

// Deactivate ends the session: a live session moves to draining with its
// lease cut to now, and the reaper expires it (a container finishing work
// will hold it in draining once containers exist). Deactivating a draining
// or expired session changes nothing and succeeds: it is idempotent.
// NotFound for an unknown session.
func (s *Sessions) Deactivate(ctx context.Context, id string) (*hermes.Session, error) {
	now := s.Clock.Now()
	sess, err := s.Store.UpdateSession(ctx, id, func(x *hermes.Session) error {
		if x.Status == hermes.SessionDraining || x.Status == hermes.SessionExpired {
			return errNoChange
		}
		x.Status, x.LastActivity, x.ExpiresAt = hermes.SessionDraining, now, now
		return nil
	})
	if errors.Is(err, errNoChange) {
		return s.Store.GetSession(ctx, id)
	}
	if err != nil {
		return nil, fmt.Errorf("lifecycle.Deactivate: %w", err)
	}
	s.log(ctx).InfoContext(ctx, "session draining", "session_id", id)
	if s.Kick != nil {
		s.Kick()
	}
	return sess, nil
}

func (s *Sessions) expired(ctx context.Context, sess *hermes.Session, reason string) {
	if s.Hooks.Expired != nil {
		s.Hooks.Expired(reason)
	}
	s.log(ctx).InfoContext(ctx, "session expired", "session_id", sess.ID, "thread_id", sess.ThreadID, "reason", reason)
}

func (s *Sessions) log(context.Context) *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}
