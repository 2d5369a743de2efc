package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/hermestest"
	"github.com/webordinary/hermes/internal/sqlite"
)

// TestQueues runs the contract of hermes.Queues against SQLite. Reopen opens
// the same file again, as a second Hermes process would.
func TestQueues(t *testing.T) {
	hermestest.QueueSuite(t, hermestest.QueueOpener{
		New: func(t *testing.T) hermes.Queues {
			db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "q.db"))
			if err != nil {
				t.Fatalf("sqlite.Open: %v", err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		},
		Reopen: func(t *testing.T, q hermes.Queues) hermes.Queues {
			db, err := sqlite.Open(t.Context(), q.(*sqlite.DB).Path())
			if err != nil {
				t.Fatalf("sqlite.Open again: %v", err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		},
	})
}
