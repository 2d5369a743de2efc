package sqlite

// Benchmarks of the store operations on the request path, each next to a
// baseline that does the least SQLite work of the same kind in the same
// database file (same pool, pragmas and IMMEDIATE transactions), so the
// ratio says what Hermes adds on top of SQLite itself:
//
//	UpdateSession, CreateSession  vs  BaselineSingleRowCommit
//	GetSession                    vs  BaselineSingleRowRead
//
// They measure; they never assert timing. Run with
//
//	go test -run '^$' -bench . -benchmem ./internal/sqlite/

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/webordinary/hermes"
)

// benchStore is a database in a temp dir with client amelia (project site,
// user scott).
type benchStore struct {
	*DB
	ctx context.Context
	now time.Time
}

func newBenchStore(b *testing.B) *benchStore {
	b.Helper()
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(b.TempDir(), "hermes.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	s := &benchStore{DB: db, ctx: ctx, now: time.Now().UTC().Truncate(time.Millisecond)}
	benchMust(b, db.CreateClient(ctx, &hermes.Client{ID: "amelia", Name: "Amelia Stamps"}, s.now))
	p := &hermes.Project{ID: "site", ClientID: "amelia", RepoURL: "/srv/amelia.git", EmailAddresses: []string{"edit@amelia.example.com"}}
	p.Normalize()
	benchMust(b, db.CreateProject(ctx, p, s.now))
	u := &hermes.User{ID: "scott", ClientID: "amelia", Name: "Scott", Emails: []string{"scott@example.com"}}
	u.Normalize()
	benchMust(b, db.CreateUser(ctx, u, s.now))
	return s
}

func benchMust(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

// thread stores a new API thread of amelia/site/scott.
func (s *benchStore) thread(b *testing.B) *hermes.Thread {
	t := &hermes.Thread{ID: hermes.NewToken(), ClientID: "amelia", ProjectID: "site", UserID: "scott",
		Channel: hermes.ChannelAPI, Subject: "make the header blue", CreatedAt: s.now, UpdatedAt: s.now}
	benchMust(b, s.CreateThread(s.ctx, t))
	return t
}

// session returns a new session of the thread shaped like the ones
// lifecycle.Activate makes, with its first history entry; it stores
// neither.
func (s *benchStore) session(th *hermes.Thread) (*hermes.Session, *hermes.HistoryEntry) {
	sess := &hermes.Session{
		ID: hermes.NewToken(), ThreadID: th.ID, ClientID: th.ClientID, ProjectID: th.ProjectID, UserID: th.UserID,
		ContainerID: hermes.ContainerID(th.ClientID, th.ProjectID, th.UserID),
		Status:      hermes.SessionInitializing, CreatedAt: s.now, LastActivity: s.now, ExpiresAt: s.now.Add(30 * time.Minute),
		PreviewURL: "http://localhost:3000/preview/amelia/site/" + th.ID + "/",
	}
	first := &hermes.HistoryEntry{
		ID: hermes.NewSortableID(s.now), SessionID: sess.ID, ThreadID: th.ID,
		Direction: hermes.DirectionIn, Kind: hermes.KindInstruction, Channel: hermes.ChannelAPI,
		Text: "make the header blue", Delivery: hermes.DeliveryPending, CreatedAt: s.now,
	}
	return sess, first
}

// storedSession stores a new thread with one live session and returns it.
func (s *benchStore) storedSession(b *testing.B) *hermes.Session {
	sess, first := s.session(s.thread(b))
	benchMust(b, s.CreateSession(s.ctx, sess, first))
	return sess
}

// BenchmarkGetSession reads one session by id: what every status, history
// and keepalive request does first.
func BenchmarkGetSession(b *testing.B) {
	s := newBenchStore(b)
	id := s.storedSession(b).ID
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.GetSession(s.ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpdateSession extends the lease as POST …/keepalive does: read,
// modify, compare-and-set write in one IMMEDIATE transaction.
func BenchmarkUpdateSession(b *testing.B) {
	s := newBenchStore(b)
	id := s.storedSession(b).ID
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now := s.now.Add(time.Duration(i) * time.Millisecond)
		_, err := s.UpdateSession(s.ctx, id, func(x *hermes.Session) error {
			x.LastActivity, x.ExpiresAt = now, now.Add(30*time.Minute)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateSession stores a session with its first history entry, as
// POST /api/sessions/activate does (the threads are made beforehand, off
// the clock: a thread has at most one live session).
func BenchmarkCreateSession(b *testing.B) {
	s := newBenchStore(b)
	type pair struct {
		s *hermes.Session
		h *hermes.HistoryEntry
	}
	todo := make([]pair, b.N)
	for i := range todo {
		sess, first := s.session(s.thread(b))
		todo[i] = pair{sess, first}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.CreateSession(s.ctx, todo[i].s, todo[i].h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListSessions reads the first page of 50 of a client's 200
// sessions, as GET /api/sessions/client/{clientId} does.
func BenchmarkListSessions(b *testing.B) {
	s := newBenchStore(b)
	for range 200 {
		s.storedSession(b)
	}
	const page = 50
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got, next, err := s.ListSessions(s.ctx, "amelia", nil, page, "")
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != page || next == "" {
			b.Fatalf("got %d sessions (next %q), want a full page of %d", len(got), next, page)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*page), "ns/session")
}

// baselineTable makes the one-column table of the baselines in the same
// database file.
func baselineTable(b *testing.B, s *benchStore) {
	if _, err := s.db.ExecContext(s.ctx, "CREATE TABLE bench_baseline (v INTEGER NOT NULL) STRICT"); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkBaselineSingleRowCommit is the floor of any write: a bare INSERT
// of one integer committed in its own IMMEDIATE transaction, through the
// same pool and pragmas as the store (WAL, synchronous NORMAL).
func BenchmarkBaselineSingleRowCommit(b *testing.B) {
	s := newBenchStore(b)
	baselineTable(b, s)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		err := s.tx(s.ctx, func(tx *txn) error {
			_, err := tx.ExecContext(s.ctx, "INSERT INTO bench_baseline (v) VALUES (?)", i)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBaselineSingleRowRead is the floor of any read: one integer
// selected by rowid through the same pool, outside a transaction as
// GetSession reads.
func BenchmarkBaselineSingleRowRead(b *testing.B) {
	s := newBenchStore(b)
	baselineTable(b, s)
	if _, err := s.db.ExecContext(s.ctx, "INSERT INTO bench_baseline (v) VALUES (42)"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var v int64
		if err := s.db.QueryRowContext(s.ctx, "SELECT v FROM bench_baseline WHERE rowid = ?", 1).Scan(&v); err != nil {
			b.Fatal(err)
		}
	}
}
