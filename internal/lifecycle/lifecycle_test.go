package lifecycle_test

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/directory"
	"github.com/webordinary/hermes/internal/hermestest"
	"github.com/webordinary/hermes/internal/lifecycle"
	"github.com/webordinary/hermes/internal/sqlite"
)

var start = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

const ttl = 30 * time.Minute

// expiries records Hooks.Expired calls.
type expiries struct {
	mu      sync.Mutex
	reasons map[string]int
}

func (e *expiries) hook(reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.reasons == nil {
		e.reasons = map[string]int{}
	}
	e.reasons[reason]++
}

func (e *expiries) count(reason string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.reasons[reason]
}

func (e *expiries) total() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, c := range e.reasons {
		n += c
	}
	return n
}

func openStore(t *testing.T, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// seed stores client amelia with project site and user scott.
func seed(t *testing.T, store hermes.Directory) {
	t.Helper()
	tree := &directory.ClientTree{
		Client:   hermes.Client{ID: "amelia", Name: "Amelia"},
		Projects: []*hermes.Project{{ID: "site", RepoURL: "/srv/amelia.git"}},
		Users:    []*hermes.User{{ID: "scott"}},
	}
	tree.Normalize()
	if err := directory.Create(context.Background(), store, tree, start); err != nil {
		t.Fatal(err)
	}
}

type fixture struct {
	store    *sqlite.DB
	clock    *hermestest.Clock
	sessions *lifecycle.Sessions
	expired  *expiries
	created  *atomic.Int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	store := openStore(t, filepath.Join(t.TempDir(), "hermes.db"))
	seed(t, store)
	f := &fixture{store: store, clock: hermestest.NewClock(start), expired: &expiries{}, created: new(atomic.Int64)}
	f.sessions = &lifecycle.Sessions{Store: store, Clock: f.clock.Now, TTL: ttl, PublicBase: "http://hermes.test",
		Hooks: lifecycle.Hooks{Created: func() { f.created.Add(1) }, Expired: f.expired.hook}}
	return f
}

func (f *fixture) activate(t *testing.T) *hermes.Session {
	t.Helper()
	return openSession(t, f.sessions, f.store)
}

// openSession opens a session for amelia/site/scott on a new thread.
func openSession(t *testing.T, s *lifecycle.Sessions, store hermes.Store) *hermes.Session {
	t.Helper()
	ctx := context.Background()
	now := s.Clock.Now()
	th := &hermes.Thread{ID: hermes.NewToken(), ClientID: "amelia", ProjectID: "site", UserID: "scott", Channel: hermes.ChannelAPI,
		Token: hermes.NewToken()[:8], CreatedAt: now, UpdatedAt: now}
	if err := store.CreateThread(ctx, th); err != nil {
		t.Fatal(err)
	}
	p, err := store.GetProject(ctx, "amelia", "site")
	if err != nil {
		t.Fatal(err)
	}
	sess, created, err := s.ForThread(ctx, th, p, "scott")
	if err != nil || !created {
		t.Fatalf("ForThread: %v (created %v)", err, created)
	}
	return sess
}

func (f *fixture) get(t *testing.T, id string) *hermes.Session {
	t.Helper()
	s, err := f.store.GetSession(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestForThread(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.activate(t)
	if s.Status != hermes.SessionInitializing || s.ProjectID != "site" || s.ContainerID != "amelia_site_scott" ||
		!s.ExpiresAt.Equal(start.Add(ttl)) || !s.CreatedAt.Equal(start) || s.PreviewURL == "" {
		t.Errorf("session %+v", s)
	}
	if got := f.get(t, s.ID); got.ThreadID != s.ThreadID || got.Version != 1 {
		t.Errorf("stored %+v", got)
	}
	if f.created.Load() != 1 {
		t.Errorf("Created hook called %d times", f.created.Load())
	}
	ctx := context.Background()
	th, _ := f.store.GetThread(ctx, s.ThreadID)
	p, _ := f.store.GetProject(ctx, "amelia", "site")

	// A later message renews the same session.
	f.clock.Advance(time.Minute)
	again, created, err := f.sessions.ForThread(ctx, th, p, "scott")
	if err != nil || created || again.ID != s.ID || !again.ExpiresAt.Equal(start.Add(time.Minute+ttl)) {
		t.Fatalf("renew: %+v created=%v err=%v", again, created, err)
	}
	// After the lease passed, the old session is expired and a new one opens.
	f.clock.Advance(ttl)
	fresh, created, err := f.sessions.ForThread(ctx, th, p, "scott")
	if err != nil || !created || fresh.ID == s.ID {
		t.Fatalf("after lease: %+v created=%v err=%v", fresh, created, err)
	}
	if old := f.get(t, s.ID); old.Status != hermes.SessionExpired || old.Reason != hermes.ReasonLease {
		t.Errorf("old session %+v", old)
	}
	// A deactivated (draining) session is ended by the next message.
	if _, err := f.sessions.Deactivate(ctx, fresh.ID); err != nil {
		t.Fatal(err)
	}
	third, created, err := f.sessions.ForThread(ctx, th, p, "scott")
	if err != nil || !created || third.ID == fresh.ID {
		t.Fatalf("after deactivate: %+v created=%v err=%v", third, created, err)
	}
	if old := f.get(t, fresh.ID); old.Status != hermes.SessionExpired || old.Reason != hermes.ReasonDeactivated {
		t.Errorf("deactivated session %+v", old)
	}

	// Concurrent messages of one thread share one new session.
	th2 := &hermes.Thread{ID: hermes.NewToken(), ClientID: "amelia", ProjectID: "site", UserID: "scott", CreatedAt: start, UpdatedAt: start}
	if err := f.store.CreateThread(ctx, th2); err != nil {
		t.Fatal(err)
	}
	ids := make(chan string, 10)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			s, _, err := f.sessions.ForThread(ctx, th2, p, "scott")
			if err != nil {
				t.Error(err)
				return
			}
			ids <- s.ID
		})
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		seen[id] = true
	}
	if len(seen) != 1 {
		t.Errorf("concurrent ForThread opened %d sessions, want 1", len(seen))
	}
}

func TestReapExpiresOnlyDueSessions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	first := f.activate(t) // lease ends at start+30m
	f.clock.Advance(10 * time.Minute)
	second := f.activate(t) // lease ends at start+40m
	drained := f.activate(t)
	if _, err := f.sessions.Deactivate(ctx, drained.ID); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name    string
		at      time.Time
		reaped  int
		expired map[string]string // session id → reason, of every expired session
	}{
		{"draining session only", start.Add(10 * time.Minute), 1, map[string]string{drained.ID: hermes.ReasonDeactivated}},
		{"just before the first lease", start.Add(ttl - time.Millisecond), 0, map[string]string{drained.ID: hermes.ReasonDeactivated}},
		{"at the first lease", start.Add(ttl), 1, map[string]string{drained.ID: hermes.ReasonDeactivated, first.ID: hermes.ReasonLease}},
		{"again: nothing new", start.Add(ttl + time.Minute), 0, map[string]string{drained.ID: hermes.ReasonDeactivated, first.ID: hermes.ReasonLease}},
		{"after the second lease", start.Add(2 * time.Hour), 1,
			map[string]string{drained.ID: hermes.ReasonDeactivated, first.ID: hermes.ReasonLease, second.ID: hermes.ReasonLease}},
	}
	for _, s := range steps {
		ok := t.Run(s.name, func(t *testing.T) {
			f.clock.Set(s.at)
			n, err := f.sessions.Reap(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n != s.reaped {
				t.Errorf("Reap = %d, want %d", n, s.reaped)
			}
			for _, id := range []string{first.ID, second.ID, drained.ID} {
				got := f.get(t, id)
				reason, want := s.expired[id]
				if want != (got.Status == hermes.SessionExpired) || got.Reason != reason {
					t.Errorf("session %s: %s (%q), want expired=%v (%q)", id, got.Status, got.Reason, want, reason)
				}
			}
		})
		if !ok {
			t.FailNow()
		}
	}
	if f.expired.count(hermes.ReasonLease) != 2 || f.expired.count(hermes.ReasonDeactivated) != 1 {
		t.Errorf("Expired hook: %v", f.expired.reasons)
	}
}

func TestKeepalive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("renews", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		s := f.activate(t)
		f.clock.Advance(ttl - time.Millisecond)
		got, err := f.sessions.Keepalive(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := f.clock.Now().Add(ttl); !got.ExpiresAt.Equal(want) || !got.LastActivity.Equal(f.clock.Now()) {
			t.Errorf("expiresAt %v lastActivity %v, want %v", got.ExpiresAt, got.LastActivity, want)
		}
		f.clock.Advance(ttl - time.Millisecond)
		if n, _ := f.sessions.Reap(ctx); n != 0 {
			t.Errorf("reaped a renewed session")
		}
	})

	t.Run("after the lease passed", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		s := f.activate(t)
		f.clock.Advance(ttl + time.Second)
		_, err := f.sessions.Keepalive(ctx, s.ID)
		if !hermes.IsKind(err, hermes.Conflict) {
			t.Fatalf("Keepalive after the lease: %v, want Conflict", err)
		}
		got := f.get(t, s.ID)
		if got.Status != hermes.SessionExpired || got.Reason != hermes.ReasonLease {
			t.Errorf("session %s (%s), want expired (lease)", got.Status, got.Reason)
		}
		if f.expired.count(hermes.ReasonLease) != 1 {
			t.Errorf("Expired hook: %v", f.expired.reasons)
		}
		// The reaper finds nothing left, and a second keepalive changes nothing.
		if n, err := f.sessions.Reap(ctx); n != 0 || err != nil {
			t.Errorf("Reap = %d, %v", n, err)
		}
		if _, err := f.sessions.Keepalive(ctx, s.ID); !hermes.IsKind(err, hermes.Conflict) {
			t.Errorf("second Keepalive: %v", err)
		}
		if again := f.get(t, s.ID); again.Version != got.Version || f.expired.total() != 1 {
			t.Errorf("second Keepalive changed the session (version %d → %d) or expired it again (%v)", got.Version, again.Version, f.expired.reasons)
		}
	})

	t.Run("draining, expired, unknown", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		s := f.activate(t)
		if _, err := f.sessions.Deactivate(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.sessions.Keepalive(ctx, s.ID); !hermes.IsKind(err, hermes.Conflict) {
			t.Errorf("draining: %v", err)
		}
		f.sessions.Reap(ctx)
		if _, err := f.sessions.Keepalive(ctx, s.ID); !hermes.IsKind(err, hermes.Conflict) {
			t.Errorf("expired: %v", err)
		}
		if _, err := f.sessions.Keepalive(ctx, hermes.NewToken()); !hermes.IsKind(err, hermes.NotFound) {
			t.Errorf("unknown: %v", err)
		}
		if n, _ := f.store.CountSessions(ctx, hermes.SessionStatuses...); n != 1 {
			t.Errorf("%d sessions: Keepalive created one", n)
		}
	})
}

func TestDeactivate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	kicks := 0
	f.sessions.Kick = func() { kicks++ }
	s := f.activate(t)
	for i := range 2 {
		got, err := f.sessions.Deactivate(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != hermes.SessionDraining || !got.ExpiresAt.Equal(start) {
			t.Errorf("call %d: %s expires %v", i, got.Status, got.ExpiresAt)
		}
	}
	if kicks != 1 {
		t.Errorf("the reaper was kicked %d times, want once", kicks)
	}
	if _, err := f.sessions.Deactivate(ctx, hermes.NewToken()); !hermes.IsKind(err, hermes.NotFound) {
		t.Errorf("unknown: %v", err)
	}
}

func TestConcurrentReapersOnOneStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "hermes.db")
	dbA, dbB := openStore(t, path), openStore(t, path) // two processes' worth of handles
	seed(t, dbA)
	clock := hermestest.NewClock(start)
	exp := &expiries{}
	mk := func(db *sqlite.DB) *lifecycle.Sessions {
		return &lifecycle.Sessions{Store: db, Clock: clock.Now, TTL: ttl, PublicBase: "http://hermes.test", Hooks: lifecycle.Hooks{Expired: exp.hook}}
	}
	procA, procB := mk(dbA), mk(dbB)

	const n = 50
	ids := make([]string, 0, n)
	for i := range n {
		p := procA
		if i%2 == 1 {
			p = procB
		}
		s := openSession(t, p, dbA)
		ids = append(ids, s.ID)
	}
	clock.Advance(ttl)

	const perProcess = 4
	var total atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 2*perProcess)
	for _, p := range []*lifecycle.Sessions{procA, procB} {
		for range perProcess {
			wg.Go(func() {
				got, err := p.Reap(ctx)
				if err != nil {
					errs <- err
				}
				total.Add(int64(got))
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Reap: %v", err)
	}
	if total.Load() != n {
		t.Errorf("reapers expired %d sessions in total, want %d", total.Load(), n)
	}
	if exp.total() != n || exp.count(hermes.ReasonLease) != n {
		t.Errorf("Expired hook called %v, want %d × lease", exp.reasons, n)
	}
	for _, id := range ids {
		s, err := dbB.GetSession(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		// Created at version 1, expired once: version 2.
		if s.Status != hermes.SessionExpired || s.Reason != hermes.ReasonLease || s.Version != 2 {
			t.Errorf("session %s: %s (%s) version %d, want expired once", id, s.Status, s.Reason, s.Version)
		}
	}
	if c, _ := dbA.CountSessions(ctx, hermes.SessionExpired); c != n {
		t.Errorf("%d expired sessions, want %d", c, n)
	}
}

// signallingStore tells, through ran, each time a reaper lists due sessions.
type signallingStore struct {
	*sqlite.DB
	ran chan struct{}
}

func (s *signallingStore) ListLeaseExpired(ctx context.Context, now time.Time, limit int) ([]*hermes.Session, error) {
	out, err := s.DB.ListLeaseExpired(ctx, now, limit)
	select {
	case s.ran <- struct{}{}:
	default:
	}
	return out, err
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReaperRun(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	store := &signallingStore{DB: f.store, ran: make(chan struct{}, 16)}
	f.sessions.Store = store
	s := f.activate(t)
	other := f.activate(t)

	r := lifecycle.NewReaper(f.sessions, time.Hour)
	r.Kick() // Kick never blocks, even with nobody running
	r.Kick()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	waitRun := func(t *testing.T) {
		t.Helper()
		select {
		case <-store.ran:
		case <-time.After(10 * time.Second):
			t.Fatal("the reaper did not run")
		}
	}
	waitRun(t) // the run at start
	waitRun(t) // the kick sent before Run started
	status := func(id string) hermes.SessionStatus {
		x, err := f.store.GetSession(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return x.Status
	}
	if status(s.ID) != hermes.SessionInitializing {
		t.Fatal("expired before its lease")
	}

	// With an hourly interval, only a kick makes the reaper run now.
	f.clock.Advance(ttl)
	if _, err := f.sessions.Keepalive(context.Background(), other.ID); !hermes.IsKind(err, hermes.Conflict) {
		t.Fatalf("keepalive: %v", err) // expires other at once: leaves s to the reaper
	}
	r.Kick()
	waitFor(t, "the kicked reaper to expire the session", func() bool { return status(s.ID) == hermes.SessionExpired })
	if x, _ := f.store.GetSession(context.Background(), s.ID); x.Reason != hermes.ReasonLease {
		t.Errorf("reason %q", x.Reason)
	}

	// Deactivate kicks the reaper through Sessions.Kick.
	f.sessions.Kick = r.Kick
	third := f.activate(t)
	if _, err := f.sessions.Deactivate(context.Background(), third.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deactivated session to expire", func() bool { return status(third.ID) == hermes.SessionExpired })
	if f.expired.count(hermes.ReasonDeactivated) != 1 || f.expired.count(hermes.ReasonLease) != 2 {
		t.Errorf("Expired hook: %v", f.expired.reasons)
	}

	// Run returns once its context ends.
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestReaperRunStopsWhenCancelled(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := lifecycle.NewReaper(f.sessions, time.Millisecond) // busy: cancellation must still win
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.Run(ctx)
		close(done)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	// A cancelled context before Run starts: Run returns at once.
	done2 := make(chan struct{})
	go func() {
		lifecycle.NewReaper(f.sessions, time.Hour).Run(ctx)
		close(done2)
	}()
	select {
	case <-done2:
	case <-time.After(10 * time.Second):
		t.Fatal("Run with a cancelled context did not return")
	}
}
