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
	// Deactivated is called after a session moves to draining by
	// Deactivate (not again for a repeated deactivate): the container is
	// released there.
	Deactivated func(ctx context.Context, s *hermes.Session)
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

// ForThread returns the thread's live session with its lease renewed, or
// opens a new one (status initializing, lease now+TTL) when the thread has
// none. A session that was deactivated (draining) or whose lease passed is
// ended first: a new message starts a new session on the same thread. The
// bool reports whether the session is new. Safe against concurrent calls
// for one thread: the store keeps one live session per thread, and the
// loser of a race uses the winner's session.
func (s *Sessions) ForThread(ctx context.Context, t *hermes.Thread, p *hermes.Project, userID string) (*hermes.Session, bool, error) {
	now := s.Clock.Now()
	for range 3 {
		live, err := s.Store.LiveSessionForThread(ctx, t.ID)
		if err == nil {
			reason := ""
			renewed, uerr := s.Store.UpdateSession(ctx, live.ID, func(x *hermes.Session) error {
				reason = ""
				switch {
				case !x.Status.Live():
					return errGone
				case x.Status == hermes.SessionDraining:
					reason = hermes.ReasonDeactivated
					return x.Expire(now, reason)
				case x.LeaseExpired(now):
					reason = hermes.ReasonLease
					return x.Expire(now, reason)
				}
				x.LastActivity, x.ExpiresAt = now, now.Add(s.TTL)
				return nil
			})
			switch {
			case errors.Is(uerr, errGone):
				continue
			case uerr != nil:
				return nil, false, fmt.Errorf("lifecycle.ForThread: %w", uerr)
			case reason == "":
				return renewed, false, nil
			}
			s.expired(ctx, renewed, reason)
		} else if !hermes.IsKind(err, hermes.NotFound) {
			return nil, false, fmt.Errorf("lifecycle.ForThread: %w", err)
		}
		sess := &hermes.Session{
			ID: hermes.NewToken(), ThreadID: t.ID, ClientID: p.ClientID, ProjectID: p.ID, UserID: userID,
			ContainerID: hermes.ContainerID(p.ClientID, p.ID, userID),
			Status:      hermes.SessionInitializing, CreatedAt: now, LastActivity: now, ExpiresAt: now.Add(s.TTL),
		}
		sess.PreviewURL = hermes.PreviewURL(p, s.PublicBase, t.ID, sess.ID, userID)
		err = s.Store.CreateSession(ctx, sess)
		if err == nil {
			if s.Hooks.Created != nil {
				s.Hooks.Created()
			}
			s.log(ctx).InfoContext(logctx.With(ctx, slog.String("session_id", sess.ID), slog.String("thread_id", t.ID),
				slog.String("container_id", sess.ContainerID)), "session created", "client_id", sess.ClientID, "project_id", sess.ProjectID, "user_id", sess.UserID)
			return sess, true, nil
		}
		if !hermes.IsKind(err, hermes.Conflict) {
			return nil, false, fmt.Errorf("lifecycle.ForThread: %w", err)
		}
		// Another message of the thread opened a session first: use it.
	}
	return nil, false, hermes.Errorf(hermes.Unavailable, "the session of thread %s keeps changing; retry", t.ID)
}

// errGone: the session ended between reading and updating it.
var errGone = errors.New("session ended meanwhile")

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
	if s.Hooks.Deactivated != nil {
		s.Hooks.Deactivated(ctx, sess)
	}
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
