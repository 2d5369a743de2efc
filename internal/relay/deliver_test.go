package relay_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/hermestest"
	"github.com/webordinary/hermes/internal/relay"
	"github.com/webordinary/hermes/internal/sqlite"
)

// recorder is a channel transport at the network boundary: it records
// what it was asked to send and fails as told.
type recorder struct {
	mu   sync.Mutex
	sent []string
	fail func(it *hermes.OutboxItem) error
}

func (r *recorder) Send(_ context.Context, it *hermes.OutboxItem) error {
	if r.fail != nil {
		if err := r.fail(it); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.sent = append(r.sent, it.ID)
	r.mu.Unlock()
	return nil
}

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func setup(t *testing.T) (*sqlite.DB, *hermestest.Clock) {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hermes.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, hermestest.NewClock(t0)
}

func enqueue(t *testing.T, db *sqlite.DB, channel string, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		it := &hermes.OutboxItem{ID: hermes.NewToken(), Channel: channel, To: "scott@example.com", Text: "Got it", Kind: "ack",
			ThreadID: hermes.NewToken(), CreatedAt: t0, NextAttemptAt: t0}
		if err := db.EnqueueOutbox(context.Background(), it); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, it.ID)
	}
	return ids
}

func status(t *testing.T, db *sqlite.DB, id string) *hermes.OutboxItem {
	t.Helper()
	it, err := db.GetOutbox(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return it
}

func TestDeliverOutcomes(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	t.Run("sent", func(t *testing.T) {
		db, clock := setup(t)
		rec := &recorder{}
		d := &relay.Deliverer{Store: db, Senders: map[string]hermes.Sender{"email": rec}, Clock: clock.Now, Log: log}
		ids := enqueue(t, db, "email", 3)
		if n, err := d.DeliverDue(ctx); err != nil || n != 3 {
			t.Fatalf("%d %v", n, err)
		}
		for _, id := range ids {
			if it := status(t, db, id); it.Status != hermes.OutboxSent || it.Attempts != 1 || it.SentAt == nil {
				t.Errorf("%+v", it)
			}
		}
		if n, _ := d.DeliverDue(ctx); n != 0 || len(rec.sent) != 3 {
			t.Errorf("sent items were claimed again: %d, %d sends", n, len(rec.sent))
		}
	})
	t.Run("retried with backoff, then sent", func(t *testing.T) {
		db, clock := setup(t)
		tries := 0
		rec := &recorder{fail: func(*hermes.OutboxItem) error {
			tries++
			if tries < 3 {
				return hermes.Errorf(hermes.Unavailable, "server busy")
			}
			return nil
		}}
		d := &relay.Deliverer{Store: db, Senders: map[string]hermes.Sender{"email": rec}, Clock: clock.Now, Log: log}
		id := enqueue(t, db, "email", 1)[0]
		for attempt := 1; attempt <= 3; attempt++ {
			if n, _ := d.DeliverDue(ctx); n != 1 {
				t.Fatalf("attempt %d: nothing due", attempt)
			}
			it := status(t, db, id)
			if attempt < 3 {
				if it.Status != hermes.OutboxPending || it.Attempts != attempt || it.LastError == "" || !it.NextAttemptAt.After(clock.Now()) {
					t.Fatalf("after attempt %d: %+v", attempt, it)
				}
				if n, _ := d.DeliverDue(ctx); n != 0 {
					t.Fatal("retried before its backoff")
				}
				clock.Set(it.NextAttemptAt)
			} else if it.Status != hermes.OutboxSent {
				t.Fatalf("after attempt 3: %+v", it)
			}
		}
	})
	t.Run("permanent failure", func(t *testing.T) {
		db, clock := setup(t)
		rec := &recorder{fail: func(*hermes.OutboxItem) error { return hermes.Errorf(hermes.Invalid, "550 no such user") }}
		failed := 0
		d := &relay.Deliverer{Store: db, Senders: map[string]hermes.Sender{"email": rec}, Clock: clock.Now, Log: log, Failed: func(string) { failed++ }}
		id := enqueue(t, db, "email", 1)[0]
		d.DeliverDue(ctx)
		if it := status(t, db, id); it.Status != hermes.OutboxFailed || failed != 1 {
			t.Fatalf("%+v (failed count %d)", it, failed)
		}
	})
	t.Run("gives up after the last attempt", func(t *testing.T) {
		db, clock := setup(t)
		rec := &recorder{fail: func(*hermes.OutboxItem) error { return errors.New("connection refused") }}
		d := &relay.Deliverer{Store: db, Senders: map[string]hermes.Sender{"email": rec}, Clock: clock.Now, Log: log, MaxAttempts: 3}
		id := enqueue(t, db, "email", 1)[0]
		for range 3 {
			d.DeliverDue(ctx)
			clock.Advance(time.Hour)
		}
		if it := status(t, db, id); it.Status != hermes.OutboxFailed || it.Attempts != 3 {
			t.Fatalf("%+v", it)
		}
	})
	t.Run("no transport: kept", func(t *testing.T) {
		db, clock := setup(t)
		d := &relay.Deliverer{Store: db, Senders: map[string]hermes.Sender{}, Clock: clock.Now, Log: log}
		id := enqueue(t, db, "sms", 1)[0]
		d.DeliverDue(ctx)
		if it := status(t, db, id); it.Status != hermes.OutboxPending || !it.NextAttemptAt.After(t0.Add(30*time.Minute)) {
			t.Fatalf("%+v", it)
		}
	})
}

// Two deliverers (two replicas) on one outbox send every item once.
func TestDeliverOnceAcrossReplicas(t *testing.T) {
	db, clock := setup(t)
	db2, err := sqlite.Open(context.Background(), db.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	rec := &recorder{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ids := enqueue(t, db, "email", 40)
	var wg sync.WaitGroup
	for _, s := range []*sqlite.DB{db, db2, db, db2} {
		d := &relay.Deliverer{Store: s, Senders: map[string]hermes.Sender{"email": rec}, Clock: clock.Now, Log: log}
		wg.Go(func() {
			for {
				n, err := d.DeliverDue(context.Background())
				if err != nil {
					t.Error(err)
				}
				if n == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	seen := map[string]int{}
	for _, id := range rec.sent {
		seen[id]++
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("item %s sent %d times", id, seen[id])
		}
	}
}

func TestBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 5 * time.Second, 2: 10 * time.Second, 5: 80 * time.Second, 12: 10 * time.Minute} {
		got := relay.Backoff(n)
		if got < want*8/10 || got > want*12/10 {
			t.Errorf("Backoff(%d) = %s, want %s ±20%%", n, got, want)
		}
	}
}
