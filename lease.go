package hermes

import (
	"context"
	"time"
)

// Leases are named, expiring locks held by one process at a time, so that
// a background loop that must not run twice at once (the reaper, the
// container reconcile, the queue clean-up, the dead-job scan) runs on one
// replica only while the others stand by. Stores offer them beside Store:
// a backend without them leaves those loops running on every replica.
type Leases interface {
	// AcquireLease gives the named lease to holder until now+ttl when it
	// is free, expired at now, or already holder's (a renewal), and
	// reports whether holder has it. Another holder's live lease is never
	// taken.
	AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error)
	// ReleaseLease frees the lease if holder has it (a graceful shutdown
	// hands it over at once); otherwise it does nothing.
	ReleaseLease(ctx context.Context, name, holder string) error
}
