package hermestest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webordinary/hermes"
)

// LeaseSuite is the contract of hermes.Leases. newLeases returns a fresh,
// empty implementation for each subtest.
func LeaseSuite(t *testing.T, newLeases func(t *testing.T) hermes.Leases) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	acquire := func(t *testing.T, l hermes.Leases, name, holder string, now time.Time, ttl time.Duration) bool {
		t.Helper()
		ok, err := l.AcquireLease(ctx, name, holder, now, ttl)
		if err != nil {
			t.Fatalf("AcquireLease(%s, %s): %v", name, holder, err)
		}
		return ok
	}
	t.Run("free lease is taken, a live one is not", func(t *testing.T) {
		l := newLeases(t)
		if !acquire(t, l, "reaper", "a", t0, time.Minute) {
			t.Fatal("a free lease was refused")
		}
		if acquire(t, l, "reaper", "b", t0.Add(59*time.Second), time.Minute) {
			t.Fatal("b took a's live lease")
		}
		if !acquire(t, l, "other", "b", t0, time.Minute) {
			t.Fatal("leases are not independent by name")
		}
	})
	t.Run("renewal extends, expiry frees", func(t *testing.T) {
		l := newLeases(t)
		acquire(t, l, "reaper", "a", t0, time.Minute)
		if !acquire(t, l, "reaper", "a", t0.Add(50*time.Second), time.Minute) {
			t.Fatal("the holder could not renew")
		}
		if acquire(t, l, "reaper", "b", t0.Add(100*time.Second), time.Minute) {
			t.Fatal("b took a lease that the renewal extended")
		}
		if !acquire(t, l, "reaper", "b", t0.Add(110*time.Second), time.Minute) {
			t.Fatal("b could not take an expired lease")
		}
		if acquire(t, l, "reaper", "a", t0.Add(111*time.Second), time.Minute) {
			t.Fatal("the former holder renewed a lease it lost")
		}
	})
	t.Run("release hands over at once, only by the holder", func(t *testing.T) {
		l := newLeases(t)
		acquire(t, l, "reaper", "a", t0, time.Hour)
		if err := l.ReleaseLease(ctx, "reaper", "b"); err != nil {
			t.Fatal(err)
		}
		if acquire(t, l, "reaper", "b", t0, time.Hour) {
			t.Fatal("a release by a non-holder freed the lease")
		}
		if err := l.ReleaseLease(ctx, "reaper", "a"); err != nil {
			t.Fatal(err)
		}
		if !acquire(t, l, "reaper", "b", t0, time.Hour) {
			t.Fatal("the released lease was not free")
		}
		if err := l.ReleaseLease(ctx, "never-taken", "a"); err != nil {
			t.Fatalf("releasing a lease nobody has: %v", err)
		}
	})
	t.Run("concurrent acquirers: exactly one wins", func(t *testing.T) {
		l := newLeases(t)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				ok, err := l.AcquireLease(ctx, "reaper", string(rune('a'+i)), t0, time.Minute)
				if err != nil {
					t.Error(err)
				}
				if ok {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d holders of one lease", wins.Load())
		}
	})
}
