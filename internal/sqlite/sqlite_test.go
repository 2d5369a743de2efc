package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/hermestest"
	"github.com/webordinary/hermes/internal/sqlite"
)

// TestStore runs the contract of hermes.Store against SQLite. Reopen opens
// the same file again, as a second Hermes process would.
func TestStore(t *testing.T) {
	hermestest.StoreSuite(t, hermestest.StoreOpener{
		New: func(t *testing.T) hermes.Store {
			db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "hermes.db"))
			if err != nil {
				t.Fatalf("sqlite.Open: %v", err)
			}
			return db
		},
		Reopen: func(t *testing.T, s hermes.Store) hermes.Store {
			db, err := sqlite.Open(t.Context(), s.(*sqlite.DB).Path())
			if err != nil {
				t.Fatalf("sqlite.Open again: %v", err)
			}
			return db
		},
	})
}

// TestLeases runs the contract of hermes.Leases against SQLite.
func TestLeases(t *testing.T) {
	hermestest.LeaseSuite(t, func(t *testing.T) hermes.Leases {
		db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "hermes.db"))
		if err != nil {
			t.Fatalf("sqlite.Open: %v", err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}
