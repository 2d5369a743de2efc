package lifecycle

import (
	"context"
	"errors"
	"time"

	"github.com/webordinary/hermes"
)

// errSkip aborts the expiry of a session that is no longer due.
var errSkip = errors.New("not due")

// reapBatch is how many due sessions one store query returns.
const reapBatch = 100

// Reap expires every live session whose lease has passed, returning how
// many this call expired. Each expiry is a compare-and-set: a session that
// another reaper (in this process or another) expired, or that a keepalive
// renewed, in the meantime is skipped, so each session is expired once.
func (s *Sessions) Reap(ctx context.Context) (int, error) {
	now := s.Clock.Now()
	won := 0
	seen := map[string]bool{}
	for {
		due, err := s.Store.ListLeaseExpired(ctx, now, reapBatch)
		if err != nil {
			return won, err
		}
		progress := false
		for _, d := range due {
			if seen[d.ID] {
				continue
			}
			seen[d.ID], progress = true, true
			reason := hermes.ReasonLease
			sess, err := s.Store.UpdateSession(ctx, d.ID, func(x *hermes.Session) error {
				if !x.Status.Live() || !x.LeaseExpired(now) {
					return errSkip
				}
				reason = hermes.ReasonLease
				if x.Status == hermes.SessionDraining {
					reason = hermes.ReasonDeactivated
				}
				return x.Expire(now, reason)
			})
			switch {
			case errors.Is(err, errSkip), hermes.IsKind(err, hermes.NotFound):
			case err != nil:
				return won, err
			default:
				won++
				s.expired(ctx, sess, reason)
			}
		}
		if len(due) < reapBatch || !progress {
			return won, nil
		}
	}
}

// Reaper runs Reap every interval, and at once when kicked, until ctx ends.
type Reaper struct {
	Sessions *Sessions
	Interval time.Duration
	kick     chan struct{}
}

// NewReaper returns a reaper of sessions running every interval.
func NewReaper(s *Sessions, interval time.Duration) *Reaper {
	return &Reaper{Sessions: s, Interval: interval, kick: make(chan struct{}, 1)}
}

// Kick asks the reaper to run now; it never blocks.
func (r *Reaper) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run reaps until ctx is done. Failures are logged and retried at the next
// tick: the reaper never stops on its own.
func (r *Reaper) Run(ctx context.Context) {
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		if n, err := r.Sessions.Reap(ctx); err != nil && ctx.Err() == nil {
			r.Sessions.log(ctx).WarnContext(ctx, "reaper: expiring sessions failed", "err", err)
		} else if n > 0 {
			r.Sessions.log(ctx).InfoContext(ctx, "reaper: sessions expired", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.kick:
		}
	}
}
