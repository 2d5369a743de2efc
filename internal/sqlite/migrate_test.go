package sqlite_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/sqlite"
)

// Opening a database runs each migration once, however many handles open
// it at the same time.
func TestMigrationsConcurrentOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hermes.db")
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Go(func() {
			db, err := sqlite.Open(context.Background(), path)
			if err == nil {
				err = db.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Deleting a client removes its ended sessions and threads, so a new client
// with the same id starts empty.
func TestDeleteClientRemovesSessions(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hermes.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	if err := db.CreateClient(ctx, &hermes.Client{ID: "gone", Name: "Gone"}, now); err != nil {
		t.Fatal(err)
	}
	th := &hermes.Thread{ID: hermes.NewToken(), ClientID: "gone", ProjectID: "p", UserID: "u", CreatedAt: now}
	s := &hermes.Session{ID: hermes.NewToken(), ThreadID: th.ID, ClientID: "gone", ProjectID: "p", UserID: "u",
		Status: hermes.SessionExpired, CreatedAt: now, LastActivity: now, ExpiresAt: now}
	h := &hermes.HistoryEntry{ID: hermes.NewSortableID(now), SessionID: s.ID, ThreadID: th.ID, Direction: "in", Kind: "instruction", CreatedAt: now}
	if err := db.CreateThread(ctx, th); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateSession(ctx, s, h); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteClient(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetSession(ctx, s.ID); !hermes.IsKind(err, hermes.NotFound) {
		t.Errorf("session survived its client: %v", err)
	}
	if _, err := db.GetThread(ctx, th.ID); !hermes.IsKind(err, hermes.NotFound) {
		t.Errorf("thread survived its client: %v", err)
	}
	if hs, _ := db.ListHistory(ctx, s.ID); len(hs) != 0 {
		t.Errorf("history survived its client: %d entries", len(hs))
	}
}
