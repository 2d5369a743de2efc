package hermestest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webordinary/hermes"
)

// StoreOpener tells StoreSuite how to get stores of the adapter under test.
type StoreOpener struct {
	// New returns an empty, ready store on a database of its own. It is
	// called at the start of every subtest, and subtests run in parallel,
	// so the stores it returns must not share any state. The suite closes
	// the store with t.Cleanup: New must not close it itself, but may
	// register cleanups of its own (such as t.TempDir), which run after the
	// store is closed. New reports its own failures with t.Fatal.
	New func(t *testing.T) hermes.Store

	// Reopen, when not nil, returns a second, independent handle on the
	// same database as s, a store that New returned in the same test: for
	// SQLite another Open of the same file (its own *sql.DB, as a second
	// Hermes process would have), for DynamoDB another client on the same
	// table. The concurrency subtests spread their writers over both
	// handles. The suite closes the handle with t.Cleanup. When Reopen is
	// nil those subtests use s alone, and the subtest that checks the two
	// handles see each other's writes is skipped.
	Reopen func(t *testing.T, s hermes.Store) hermes.Store
}

// StoreSuite runs the contract of hermes.Store, as written on the interface
// in store.go, against the stores that o opens. Each subtest opens its own
// store, so a failure names one contract point. Fixtures use fixed times
// (whole milliseconds from Base); nothing sleeps or reads the wall clock.
func StoreSuite(t *testing.T, o StoreOpener) {
	t.Helper()
	if o.New == nil {
		t.Fatal("hermestest.StoreSuite: StoreOpener.New is nil")
	}
	x := &suite{o: o}
	groups := []struct {
		name string
		run  func(*testing.T)
	}{
		{"Ping", x.testPing},
		{"Close", x.testClose},
		{"CancelledContext", x.testCancelledContext},
		{"Clients", x.testClients},
		{"Projects", x.testProjects},
		{"Users", x.testUsers},
		{"ProjectAddresses", x.testProjectAddresses},
		{"UserIdentities", x.testUserIdentities},
		{"DeleteWhileLive", x.testDeleteWhileLive},
		{"DeleteClientCascades", x.testDeleteClientCascades},
		{"Threads", x.testThreads},
		{"Sessions", x.testSessions},
		{"UpdateSession", x.testUpdateSession},
		{"Concurrency", x.testConcurrency},
		{"ListSessions", x.testListSessions},
		{"ListLeaseExpired", x.testListLeaseExpired},
		{"CountSessions", x.testCountSessions},
		{"History", x.testHistory},
		{"RoundTrip", x.testRoundTrip},
		{"Copies", x.testCopies},
		{"ThreadLookup", x.testThreadLookup}, // storesuite_intake.go
		{"Intake", x.testIntake},
		{"Outbox", x.testOutbox},
		{"Containers", x.testContainers},
		{"Approvals", x.testApprovals}, // storesuite_approvals.go
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel() // every subtest has a store of its own
			g.run(t)
		})
	}
}

// Base is the fixed time the suite's fixtures start from.
var Base = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// at returns Base plus d.
func at(d time.Duration) time.Time { return Base.Add(d) }

type suite struct{ o StoreOpener }

// env is one subtest's store with helpers that fail the test on errors.
type env struct {
	t   *testing.T
	ctx context.Context
	s   hermes.Store
	x   *suite
}

func (x *suite) open(t *testing.T) *env {
	t.Helper()
	s := x.o.New(t)
	if s == nil {
		t.Fatal("StoreOpener.New returned a nil store")
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &env{t: t, ctx: t.Context(), s: s, x: x}
}

// handles returns the store and, when the opener can, a second handle on
// the same database.
func (e *env) handles() []hermes.Store {
	e.t.Helper()
	if e.x.o.Reopen == nil {
		return []hermes.Store{e.s}
	}
	s2 := e.x.o.Reopen(e.t, e.s)
	if s2 == nil {
		e.t.Fatal("StoreOpener.Reopen returned a nil store")
	}
	e.t.Cleanup(func() {
		if err := s2.Close(); err != nil {
			e.t.Errorf("Close of the reopened handle: %v", err)
		}
	})
	return []hermes.Store{e.s, s2}
}

func (e *env) must(what string, err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
}

// wantKind fails the test unless err is of kind k.
func wantKind(t testing.TB, what string, err error, k hermes.Kind) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s: got no error, want a %s error", what, k)
	case !hermes.IsKind(err, k):
		t.Errorf("%s: got a %s error (%v), want a %s error", what, hermes.ErrorKind(err), err, k)
	}
}

// ---------------------------------------------------------------------------
// Fixtures

type validator interface {
	Validate(v *hermes.ValidationError, prefix string)
}

// valid stops the test when a fixture breaks the rules callers enforce
// before a store sees an object: that would be a bug of the suite.
func valid(t testing.TB, what string, v validator) {
	t.Helper()
	var ve hermes.ValidationError
	v.Validate(&ve, "")
	if err := ve.Err(); err != nil {
		t.Fatalf("hermestest bug: fixture %s is invalid: %v", what, err)
	}
}

func newClient(id string) *hermes.Client {
	return &hermes.Client{ID: id, Name: "Client " + id}
}

// newProject returns a normalised project with the given addresses.
func newProject(clientID, id string, emails, sms, chat []string) *hermes.Project {
	p := &hermes.Project{
		ClientID:       clientID,
		ID:             id,
		Name:           "Site " + id,
		RepoURL:        "https://git.example.com/" + clientID + "/" + id + ".git",
		EmailAddresses: slices.Clone(emails),
		SMSNumbers:     slices.Clone(sms),
		SlackChannels:  slices.Clone(chat),
	}
	return p.Normalize()
}

// newUser returns a normalised user with the given identities.
func newUser(clientID, id string, emails, phones, chat []string) *hermes.User {
	u := &hermes.User{
		ClientID: clientID,
		ID:       id,
		Name:     "User " + id,
		Emails:   slices.Clone(emails),
		Phones:   slices.Clone(phones),
		ChatIDs:  slices.Clone(chat),
	}
	return u.Normalize()
}

func newThread(clientID, projectID, userID string, created time.Time) *hermes.Thread {
	return &hermes.Thread{
		ID:        hermes.NewToken(),
		ClientID:  clientID,
		ProjectID: projectID,
		UserID:    userID,
		Channel:   hermes.ChannelEmail,
		Subject:   "Please change the opening hours",
		CreatedAt: created,
		UpdatedAt: created,
	}
}

func newSession(th *hermes.Thread, status hermes.SessionStatus, created, expires time.Time) *hermes.Session {
	return &hermes.Session{
		ID:           hermes.NewToken(),
		ThreadID:     th.ID,
		ClientID:     th.ClientID,
		ProjectID:    th.ProjectID,
		UserID:       th.UserID,
		ContainerID:  hermes.ContainerID(th.ClientID, th.ProjectID, th.UserID),
		Status:       status,
		PreviewURL:   "https://preview.example.com/" + th.ID + "/",
		CreatedAt:    created,
		LastActivity: created,
		ExpiresAt:    expires,
	}
}

func newEntry(s *hermes.Session, created time.Time, kind, text string) *hermes.HistoryEntry {
	h := &hermes.HistoryEntry{
		ID:        hermes.NewSortableID(created),
		SessionID: s.ID,
		ThreadID:  s.ThreadID,
		Direction: hermes.DirectionOut,
		Kind:      kind,
		Channel:   hermes.ChannelEmail,
		Text:      text,
		CreatedAt: created,
	}
	if kind == hermes.KindInstruction {
		h.Direction, h.Delivery = hermes.DirectionIn, hermes.DeliveryPending
		h.Meta = map[string]string{"messageId": "<" + h.ID + "@mail.example.com>"}
	}
	return h
}

// owner names the client, project and user that a thread belongs to.
type owner struct{ client, project, user string }

// createClient stores c at now and returns what the store must hold.
func (e *env) createClient(c *hermes.Client, now time.Time) *hermes.Client {
	e.t.Helper()
	valid(e.t, "client "+c.ID, c)
	e.must("CreateClient "+c.ID, e.s.CreateClient(e.ctx, cloneClient(c), now))
	w := cloneClient(c)
	w.CreatedAt, w.UpdatedAt = now, now
	return w
}

func (e *env) createProject(p *hermes.Project, now time.Time) *hermes.Project {
	e.t.Helper()
	valid(e.t, "project "+p.ID, p)
	e.must("CreateProject "+p.ClientID+"/"+p.ID, e.s.CreateProject(e.ctx, cloneProject(p), now))
	w := cloneProject(p)
	w.CreatedAt, w.UpdatedAt = now, now
	return w
}

func (e *env) createUser(u *hermes.User, now time.Time) *hermes.User {
	e.t.Helper()
	valid(e.t, "user "+u.ID, u)
	e.must("CreateUser "+u.ClientID+"/"+u.ID, e.s.CreateUser(e.ctx, cloneUser(u), now))
	w := cloneUser(u)
	w.CreatedAt, w.UpdatedAt = now, now
	return w
}

// world stores a client with one project ("site") and one user ("owner").
func (e *env) world(clientID string) owner {
	e.t.Helper()
	e.createClient(newClient(clientID), Base)
	e.createProject(newProject(clientID, "site", nil, nil, nil), Base)
	e.createUser(newUser(clientID, "owner", nil, nil, nil), Base)
	return owner{clientID, "site", "owner"}
}

func (e *env) thread(o owner, created time.Time) *hermes.Thread {
	e.t.Helper()
	th := newThread(o.client, o.project, o.user, created)
	e.must("CreateThread", e.s.CreateThread(e.ctx, cloneThread(th)))
	return th
}

// session stores a session of th in the given status and returns what the
// store must hold. An expired session is created live, then expired at
// created+1s through UpdateSession, as Hermes does.
func (e *env) session(th *hermes.Thread, status hermes.SessionStatus, created, expires time.Time, history ...*hermes.HistoryEntry) *hermes.Session {
	e.t.Helper()
	s := newSession(th, status, created, expires)
	for _, h := range history {
		h.SessionID, h.ThreadID = s.ID, th.ID
	}
	if status == hermes.SessionExpired {
		s.Status = hermes.SessionActive
	}
	e.must("CreateSession", e.s.CreateSession(e.ctx, cloneSession(s), cloneEntries(history)...))
	s.Version = 1
	if status == hermes.SessionExpired {
		e.expire(s, created.Add(time.Second))
	}
	return s
}

// expire expires s in the store at now and updates s to match.
func (e *env) expire(s *hermes.Session, now time.Time) {
	e.t.Helper()
	got, err := e.s.UpdateSession(e.ctx, s.ID, func(x *hermes.Session) error {
		return x.Expire(now, hermes.ReasonDeactivated)
	})
	e.must("UpdateSession (expire)", err)
	e.must("Expire", s.Expire(now, hermes.ReasonDeactivated))
	if got.Version <= s.Version {
		e.t.Errorf("UpdateSession returned Version %d, want more than %d", got.Version, s.Version)
	}
	s.Version = got.Version
}

// ---------------------------------------------------------------------------
// Ping, Close, cancelled contexts

func (x *suite) testPing(t *testing.T) {
	e := x.open(t)
	if err := e.s.Ping(e.ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func (x *suite) testClose(t *testing.T) {
	s := x.o.New(t)
	if s == nil {
		t.Fatal("StoreOpener.New returned a nil store")
	}
	ctx := t.Context()
	if err := s.CreateClient(ctx, newClient("acme"), Base); err != nil {
		t.Fatalf("CreateClient: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Ping(ctx); err == nil {
		t.Error("Ping after Close: got no error")
	}
	if _, err := s.GetClient(ctx, "acme"); err == nil {
		t.Error("GetClient after Close: got no error")
	}
	if err := s.CreateClient(ctx, newClient("other"), Base); err == nil {
		t.Error("CreateClient after Close: got no error")
	}
}

func (x *suite) testCancelledContext(t *testing.T) {
	e := x.open(t)
	o := e.world("acme")
	e.createClient(newClient("spare"), Base)
	e.createProject(newProject("acme", "spare", nil, nil, nil), Base)
	e.createUser(newUser("acme", "spare", nil, nil, nil), Base)
	th := e.thread(o, Base)
	s := e.session(th, hermes.SessionActive, Base, at(time.Hour))
	th2 := e.thread(o, Base)
	entry := newEntry(s, at(time.Second), hermes.KindAck, "on it")

	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	calls := []struct {
		name string
		call func() error
	}{
		{"Ping", func() error { return e.s.Ping(ctx) }},
		{"CreateClient", func() error { return e.s.CreateClient(ctx, newClient("newco"), Base) }},
		{"GetClient", func() error { _, err := e.s.GetClient(ctx, "acme"); return err }},
		{"ListClients", func() error { _, err := e.s.ListClients(ctx); return err }},
		{"UpdateClient", func() error { return e.s.UpdateClient(ctx, newClient("acme"), at(time.Minute)) }},
		{"DeleteClient", func() error { return e.s.DeleteClient(ctx, "spare") }},
		{"CreateProject", func() error {
			return e.s.CreateProject(ctx, newProject("acme", "blog", nil, nil, nil), Base)
		}},
		{"GetProject", func() error { _, err := e.s.GetProject(ctx, "acme", "site"); return err }},
		{"ListProjects", func() error { _, err := e.s.ListProjects(ctx, "acme"); return err }},
		{"UpdateProject", func() error {
			return e.s.UpdateProject(ctx, newProject("acme", "site", nil, nil, nil), at(time.Minute))
		}},
		{"DeleteProject", func() error { return e.s.DeleteProject(ctx, "acme", "spare") }},
		{"ProjectByAddress", func() error {
			_, err := e.s.ProjectByAddress(ctx, hermes.AddressEmail, "edit@example.com")
			return err
		}},
		{"CreateUser", func() error { return e.s.CreateUser(ctx, newUser("acme", "ann", nil, nil, nil), Base) }},
		{"GetUser", func() error { _, err := e.s.GetUser(ctx, "acme", "owner"); return err }},
		{"ListUsers", func() error { _, err := e.s.ListUsers(ctx, "acme"); return err }},
		{"UpdateUser", func() error {
			return e.s.UpdateUser(ctx, newUser("acme", "owner", nil, nil, nil), at(time.Minute))
		}},
		{"DeleteUser", func() error { return e.s.DeleteUser(ctx, "acme", "spare") }},
		{"UserByIdentity", func() error {
			_, err := e.s.UserByIdentity(ctx, "acme", hermes.AddressEmail, "ann@example.com")
			return err
		}},
		{"CreateThread", func() error { return e.s.CreateThread(ctx, newThread("acme", "site", "owner", Base)) }},
		{"GetThread", func() error { _, err := e.s.GetThread(ctx, th.ID); return err }},
		{"CreateSession", func() error {
			return e.s.CreateSession(ctx, newSession(th2, hermes.SessionInitializing, Base, at(time.Hour)))
		}},
		{"GetSession", func() error { _, err := e.s.GetSession(ctx, s.ID); return err }},
		{"LiveSessionForThread", func() error { _, err := e.s.LiveSessionForThread(ctx, th.ID); return err }},
		{"UpdateSession", func() error {
			_, err := e.s.UpdateSession(ctx, s.ID, func(x *hermes.Session) error { x.PreviewURL += "x"; return nil })
			return err
		}},
		{"ListSessions", func() error { _, _, err := e.s.ListSessions(ctx, "acme", nil, 10, ""); return err }},
		{"ListLeaseExpired", func() error { _, err := e.s.ListLeaseExpired(ctx, at(2*time.Hour), 10); return err }},
		{"CountSessions", func() error { _, err := e.s.CountSessions(ctx, hermes.SessionActive); return err }},
		{"AppendHistory", func() error { return e.s.AppendHistory(ctx, entry) }},
		{"ListHistory", func() error { _, err := e.s.ListHistory(ctx, s.ID); return err }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); err == nil {
				t.Errorf("%s with a cancelled context: got no error", c.name)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Clients

func (x *suite) testClients(t *testing.T) {
	t.Run("CreateSetsTimestamps", func(t *testing.T) {
		e := x.open(t)
		c := &hermes.Client{ID: "acme", Name: "Acme Bakery", CreatedAt: at(-99 * time.Hour), UpdatedAt: at(99 * time.Hour)}
		e.must("CreateClient", e.s.CreateClient(e.ctx, c, at(time.Second)))
		got, err := e.s.GetClient(e.ctx, "acme")
		e.must("GetClient", err)
		checkEqual(t, "GetClient", got, &hermes.Client{ID: "acme", Name: "Acme Bakery", CreatedAt: at(time.Second), UpdatedAt: at(time.Second)})
	})
	t.Run("CreateDuplicate", func(t *testing.T) {
		e := x.open(t)
		want := e.createClient(newClient("acme"), Base)
		dup := &hermes.Client{ID: "acme", Name: "Someone else"}
		wantKind(t, "CreateClient of an existing id", e.s.CreateClient(e.ctx, dup, at(time.Minute)), hermes.Conflict)
		got, err := e.s.GetClient(e.ctx, "acme")
		e.must("GetClient", err)
		checkEqual(t, "GetClient after the conflict", got, want)
	})
	t.Run("GetUnknown", func(t *testing.T) {
		e := x.open(t)
		_, err := e.s.GetClient(e.ctx, "nobody")
		wantKind(t, "GetClient of an unknown id", err, hermes.NotFound)
	})
	t.Run("ListOrderedByID", func(t *testing.T) {
		e := x.open(t)
		got, err := e.s.ListClients(e.ctx)
		e.must("ListClients", err)
		if len(got) != 0 {
			t.Errorf("ListClients of an empty store: got %d clients, want none", len(got))
		}
		var want []*hermes.Client
		for i, id := range []string{"b", "a1", "9z", "ab", "a-b", "zz-top"} {
			want = append(want, e.createClient(newClient(id), at(time.Duration(i)*time.Second)))
		}
		slices.SortFunc(want, func(a, b *hermes.Client) int { return strings.Compare(a.ID, b.ID) })
		got, err = e.s.ListClients(e.ctx)
		e.must("ListClients", err)
		checkEqual(t, "ListClients", got, want)
	})
	t.Run("UpdateKeepsCreatedAt", func(t *testing.T) {
		e := x.open(t)
		e.createClient(newClient("acme"), Base)
		upd := &hermes.Client{ID: "acme", Name: "Acme Bakery & Sons", CreatedAt: at(-5 * time.Hour), UpdatedAt: at(5 * time.Hour)}
		e.must("UpdateClient", e.s.UpdateClient(e.ctx, upd, at(time.Minute)))
		got, err := e.s.GetClient(e.ctx, "acme")
		e.must("GetClient", err)
		checkEqual(t, "GetClient after UpdateClient", got,
			&hermes.Client{ID: "acme", Name: "Acme Bakery & Sons", CreatedAt: Base, UpdatedAt: at(time.Minute)})
	})
	t.Run("UpdateUnknown", func(t *testing.T) {
		e := x.open(t)
		wantKind(t, "UpdateClient of an unknown id", e.s.UpdateClient(e.ctx, newClient("nobody"), Base), hermes.NotFound)
		_, err := e.s.GetClient(e.ctx, "nobody")
		wantKind(t, "GetClient after a failed UpdateClient", err, hermes.NotFound)
	})
	t.Run("Delete", func(t *testing.T) {
		e := x.open(t)
		e.createClient(newClient("acme"), Base)
		keep := e.createClient(newClient("other"), Base)
		e.must("DeleteClient", e.s.DeleteClient(e.ctx, "acme"))
		_, err := e.s.GetClient(e.ctx, "acme")
		wantKind(t, "GetClient of a deleted client", err, hermes.NotFound)
		got, err := e.s.ListClients(e.ctx)
		e.must("ListClients", err)
		checkEqual(t, "ListClients after DeleteClient", got, []*hermes.Client{keep})
		wantKind(t, "DeleteClient again", e.s.DeleteClient(e.ctx, "acme"), hermes.NotFound)
	})
	t.Run("DeleteUnknown", func(t *testing.T) {
		e := x.open(t)
		wantKind(t, "DeleteClient of an unknown id", e.s.DeleteClient(e.ctx, "nobody"), hermes.NotFound)
	})
}

// ---------------------------------------------------------------------------
// Projects

func (x *suite) testProjects(t *testing.T) {
	t.Run("CreateSetsTimestamps", func(t *testing.T) {
		e := x.open(t)
		e.createClient(newClient("acme"), Base)
		p := newProject("acme", "site", []string{"edit@acme.example.com"}, nil, nil)
		p.CreatedAt, p.UpdatedAt = at(-9*time.Hour), at(9*time.Hour)
		valid(t, "project", p)
		e.must("CreateProject", e.s.CreateProject(e.ctx, cloneProject(p), at(time.Second)))
		got, err := e.s.GetProject(e.ctx, "acme", "site")
		e.must("GetProject", err)
		p.CreatedAt, p.UpdatedAt = at(time.Second), at(time.Second)
		checkEqual(t, "GetProject", got, p)
	})
	t.Run("CreateForUnknownClient", func(t *testing.T) {
		e := x.open(t)
		p := newProject("nobody", "site", []string{"edit@nobody.example.com"}, nil, nil)
		wantKind(t, "CreateProject of an unknown client", e.s.CreateProject(e.ctx, p, Base), hermes.NotFound)
		_, err := e.s.GetProject(e.ctx, "nobody", "site")
		wantKind(t, "GetProject after the failed create", err, hermes.NotFound)
		_, err = e.s.ProjectByAddress(e.ctx, hermes.AddressEmail, "edit@nobody.example.com")
		wantKind(t, "ProjectByAddress after the failed create", err, hermes.NotFound)
	})
	t.Run("CreateDuplicate", func(t *testing.T) {
		e := x.open(t)
		e.createClient(newClient("acme"), Base)
		want := e.createProject(newProject("acme", "site", nil, nil, nil), Base)
		dup := newProject("acme", "site", []string{"dup@acme.example.com"}, nil, nil)
		dup.Name = "Duplicate"
		wantKind(t, "CreateProject of an existing id", e.s.CreateProject(e.ctx, dup, at(time.Minute)), hermes.Conflict)
		got, err := e.s.GetProject(e.ctx, "acme", "site")
		e.must("GetProject", err)
		checkEqual(t, "GetProject after the conflict", got, want)
		_, err = e.s.ProjectByAddress(e.ctx, hermes.AddressEmail, "dup@acme.example.com")
		wantKind(t, "ProjectByAddress of the duplicate's address", err, hermes.NotFound)
	})
	t.Run("SameIDInTwoClients", func(t *testing.T) {
		e := x.open(t)
		e.createClient(newClient("acme"), Base)
		e.createClient(newClient("globex"), Base)
		a := e.createProject(newProject("acme", "site", nil, nil, nil), Base)
		g := e.createProject(newProject("globex", "site", nil, nil, nil), at(time.Second))
		for _, want := range []*hermes.Project{a, g} {
			got, err := e.s.GetProject(e.ctx, want.ClientID, "site")
			e.must("GetProject", err)
			checkEqual(t, "GetProject "+want.ClientID+"/site", got, want)
		}
	})
	t.Run("GetUnknown", func(t *testing.T) {
		e := x.open(t)
		e.createClient(newClient("acme"), Base)
		e.createClient(newClient("globex"), Base)
		e.createProject(newProject("acme", "site", nil, nil, nil), Base)
		for _, c := range []struct{ client, project string }{{"acme", "blog"}, {"globex", "site"}, {"nobody", "site"}} {
			_, err := e.s.GetProject(e.ctx, c.client, c.project)
			wantKind(t, "GetProject "+c.client+"/"+c.project, err, hermes.NotFound)
		}
	})
	t.Run("ListOrderedByID", func(t *testing.T) {
		e := x.open(t)
		e.createClient(newClient("acme"), Base)
		e.createClient(newClient("globex"), Base)
		e.createProject(newProject("globex", "aaa", nil, nil, nil), Base)
		var want []*hermes.Project
		for i, id := range []string{"site", "blog-2", "blog", "9", "shop"} {
			want = append(want, e.createProject(newProject("acme", id, nil, nil, nil), at(time.Duration(i)*time.Second)))
		}
		slices.SortFunc(want, func(a, b *hermes.Project) int { return strings.Compare(a.ID, b.ID) })
		got, err := e.s.ListProjects(e.ctx, "acme")
		e.must("ListProjects", err)
		checkEqual(t, "ListProjects", got, want)
		e.createClient(newClient("empty"), Base)
		for _, c := range []string{"empty", "nobody"} {
			got, err := e.s.ListProjects(e.ctx, c)
			e.must("ListProjects "+c, err)
			if len(got) != 0 {
				t.Errorf("ListProjects of client %q: got %d projects, want none", c, len(got))
			}
		}
	})
	t.Run("UpdateReplaces", func(t *testing.T) {
		e := x.open(t)
		e.createClient(newClient("acme"), Base)
		orig := fullProject("acme", "site")
		e.createProject(orig, Base)
		upd := newProject("acme", "site", []string{"new@acme.example.com"}, []string{"+15550100077"}, nil)
		upd.Name, upd.DefaultBranch, upd.BusyPolicy = "Renamed", "production", hermes.BusyInterrupt
		upd.Agent = hermes.Agent{Kind: hermes.AgentClaude, Model: "claude-sonnet-4-5", Args: []string{"--verbose"}}
		upd.CreatedAt, upd.UpdatedAt = at(-time.Hour), at(time.Hour)
		valid(t, "updated project", upd)
		e.must("UpdateProject", e.s.UpdateProject(e.ctx, cloneProject(upd), at(time.Minute)))
		got, err := e.s.GetProject(e.ctx, "acme", "site")
		e.must("GetProject", err)
		upd.CreatedAt, upd.UpdatedAt = Base, at(time.Minute)
		checkEqual(t, "GetProject after UpdateProject", got, upd)
	})
	t.Run("UpdateUnknown", func(t *testing.T) {
		e := x.open(t)
		e.createClient(newClient("acme"), Base)
		for _, p := range []*hermes.Project{newProject("acme", "blog", nil, nil, nil), newProject("nobody", "site", nil, nil, nil)} {
			wantKind(t, "UpdateProject "+p.ClientID+"/"+p.ID, e.s.UpdateProject(e.ctx, p, Base), hermes.NotFound)
			_, err := e.s.GetProject(e.ctx, p.ClientID, p.ID)
			wantKind(t, "GetProject after the failed update", err, hermes.NotFound)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		e := x.open(t)
		e.createClient(newClient("acme"), Base)
		e.createClient(newClient("globex"), Base)
		e.createProject(newProject("acme", "site", nil, nil, nil), Base)
		keep := e.createProject(newProject("acme", "blog", nil, nil, nil), Base)
		other := e.createProject(newProject("globex", "site", nil, nil, nil), Base)
		e.must("DeleteProject", e.s.DeleteProject(e.ctx, "acme", "site"))
		_, err := e.s.GetProject(e.ctx, "acme", "site")
		wantKind(t, "GetProject of a deleted project", err, hermes.NotFound)
		got, err := e.s.ListProjects(e.ctx, "acme")
		e.must("ListProjects", err)
		checkEqual(t, "ListProjects after DeleteProject", got, []*hermes.Project{keep})
		g, err := e.s.GetProject(e.ctx, "globex", "site")
		e.must("GetProject of the other client's project of the same id", err)
		checkEqual(t, "GetProject globex/site", g, other)
		wantKind(t, "DeleteProject again", e.s.DeleteProject(e.ctx, "acme", "site"), hermes.NotFound)
		wantKind(t, "DeleteProject of an unknown client", e.s.DeleteProject(e.ctx, "nobody", "site"), hermes.NotFound)
	})
}

// fullProject sets every field of a project (Build, command agent,
// Acknowledge false, all address kinds).
func fullProject(clientID, id string) *hermes.Project {
	ack := false
	p := &hermes.Project{
		ClientID:           clientID,
		ID:                 id,
		Name:               "Full Site — ünïcode",
		RepoURL:            "ssh://git@git.example.com/" + clientID + "/" + id + ".git",
		DefaultBranch:      "develop",
		EmailAddresses:     []string{"edit@" + id + "." + clientID + ".example.com", "web@" + id + "." + clientID + ".example.com"},
		SMSNumbers:         []string{"+15550100001", "+447700900123"},
		SlackChannels:      []string{"C0" + strings.ToUpper(id), "T01:C02"},
		PreviewURLTemplate: "https://{project}.{client}.preview.example.com/{thread}/{session}/?u={user}",
		Build:              &hermes.Build{Command: []string{"npm", "run", "build", "--", "--base=/x y/"}, OutputDir: "dist/site"},
		Agent:              hermes.Agent{Kind: hermes.AgentCommand, Command: []string{"/usr/local/bin/edit", "--fast", ""}},
		BusyPolicy:         hermes.BusyQueue,
		Acknowledge:        &ack,
	}
	return p.Normalize()
}

// ---------------------------------------------------------------------------
// Users

func (x *suite) testUsers(t *testing.T) {
	t.Run("CreateSetsTimestamps", func(t *testing.T) {
		e := x.open(t)
		e.createClient(newClient("acme"), Base)
		u := newUser("acme", "ann", []string{"ann@acme.example.com"}, []string{"+15550100002"}, []string{"U0ANN"})
		u.CreatedAt, u.UpdatedAt = at(-9*time.Hour), at(9*time.Hour)
		valid(t, "user", u)
		e.must("CreateUser", e.s.CreateUser(e.ctx, cloneUser(u), at(time.Second)))
		got, err := e.s.GetUser(e.ctx, "acme", "ann")
		e.must("GetUser", err)
		u.CreatedAt, u.UpdatedAt = at(time.Second), at(time.Second)
		checkEqual(t, "GetUser", got, u)
	})
	t.Run("CreateForUnknownClient", func(t *testing.T) {
		e := x.open(t)
		u := newUser("nobody", "ann", []string{"ann@example.com"}, nil, nil)
		wantKind(t, "CreateUser of an unknown client", e.s.CreateUser(e.ctx, u, Base), hermes.NotFound)
		_, err := e.s.GetUser(e.ctx, "nobody", "ann")
		wantKind(t, "GetUser after the failed create", err, hermes.NotFound)
	})
	t.Run("CreateDuplicate", func(t *testing.T) {
		e := x.open(t)
		e.createClient(newClient("acme"), Base)
		want := e.createUser(newUser("acme", "ann", nil, nil, nil), Base)
		dup := newUser("acme", "ann", []string{"dup@acme.example.com"}, nil, nil)
		wantKind(t, "CreateUser of an existing id", e.s.CreateUser(e.ctx, dup, at(time.Minute)), hermes.Conflict)
		got, err := e.s.GetUser(e.ctx, "acme", "ann")
		e.must("GetUser", err)
		checkEqual(t, "GetUser after the conflict", got, want)
		_, err = e.s.UserByIdentity(e.ctx, "acme", hermes.AddressEmail, "dup@acme.example.com")
		wantKind(t, "UserByIdentity of the duplicate's email", err, hermes.NotFound)
	})
	t.Run("SameIDInTwoClients", func(t *testing.T) {
		e := x.open(t)
		e.createClient(newClient("acme"), Base)
		e.createClient(newClient("globex"), Base)
		a := e.createUser(newUser("acme", "ann", nil, nil, nil), Base)
		g := e.createUser(newUser("globex", "ann", nil, nil, nil), at(time.Second))
		for _, want := range []*hermes.User{a, g} {
			got, err := e.s.GetUser(e.ctx, want.ClientID, "ann")
			e.must("GetUser", err)
			checkEqual(t, "GetUser "+want.ClientID+"/ann", got, want)
		}
	})
	t.Run("GetUnknown", func(t *testing.T) {
		e := x.open(t)
		e.createClient(newClient("acme"), Base)
		e.createClient(newClient("globex"), Base)
		e.createUser(newUser("acme", "ann", nil, nil, nil), Base)
		for _, c := range []struct{ client, user string }{{"acme", "bob"}, {"globex", "ann"}, {"nobody", "ann"}} {
			_, err := e.s.GetUser(e.ctx, c.client, c.user)
			wantKind(t, "GetUser "+c.client+"/"+c.user, err, hermes.NotFound)
		}
	})
	t.Run("ListOrderedByID", func(t *testing.T) {
		e := x.open(t)
		e.createClient(newClient("acme"), Base)
		e.createClient(newClient("globex"), Base)
		e.createUser(newUser("globex", "aaa", nil, nil, nil), Base)
		var want []*hermes.User
		for i, id := range []string{"zoe", "ann-2", "ann", "007", "bob"} {
			want = append(want, e.createUser(newUser("acme", id, nil, nil, nil), at(time.Duration(i)*time.Second)))
		}
		slices.SortFunc(want, func(a, b *hermes.User) int { return strings.Compare(a.ID, b.ID) })
		got, err := e.s.ListUsers(e.ctx, "acme")
		e.must("ListUsers", err)
		checkEqual(t, "ListUsers", got, want)
		e.createClient(newClient("empty"), Base)
		got, err = e.s.ListUsers(e.ctx, "empty")
		e.must("ListUsers of a client without users", err)
		if len(got) != 0 {
			t.Errorf("ListUsers of a client without users: got %d users, want none", len(got))
		}
	})
	t.Run("UpdateReplaces", func(t *testing.T) {
		e := x.open(t)
		e.createClient(newClient("acme"), Base)
		e.createUser(newUser("acme", "ann", []string{"ann@acme.example.com"}, []string{"+15550100002"}, []string{"U0ANN"}), Base)
		upd := newUser("acme", "ann", []string{"ann.smith@acme.example.com", "ann@home.example.com"}, nil, []string{"U0ANN2"})
		upd.Name = "Ann Smith"
		upd.CreatedAt, upd.UpdatedAt = at(-time.Hour), at(time.Hour)
		valid(t, "updated user", upd)
		e.must("UpdateUser", e.s.UpdateUser(e.ctx, cloneUser(upd), at(time.Minute)))
		got, err := e.s.GetUser(e.ctx, "acme", "ann")
		e.must("GetUser", err)
		upd.CreatedAt, upd.UpdatedAt = Base, at(time.Minute)
		checkEqual(t, "GetUser after UpdateUser", got, upd)
	})
	t.Run("UpdateUnknown", func(t *testing.T) {
		e := x.open(t)
		e.createClient(newClient("acme"), Base)
		for _, u := range []*hermes.User{newUser("acme", "bob", nil, nil, nil), newUser("nobody", "ann", nil, nil, nil)} {
			wantKind(t, "UpdateUser "+u.ClientID+"/"+u.ID, e.s.UpdateUser(e.ctx, u, Base), hermes.NotFound)
			_, err := e.s.GetUser(e.ctx, u.ClientID, u.ID)
			wantKind(t, "GetUser after the failed update", err, hermes.NotFound)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		e := x.open(t)
		e.createClient(newClient("acme"), Base)
		e.createClient(newClient("globex"), Base)
		e.createUser(newUser("acme", "ann", nil, nil, nil), Base)
		keep := e.createUser(newUser("acme", "bob", nil, nil, nil), Base)
		other := e.createUser(newUser("globex", "ann", nil, nil, nil), Base)
		e.must("DeleteUser", e.s.DeleteUser(e.ctx, "acme", "ann"))
		_, err := e.s.GetUser(e.ctx, "acme", "ann")
		wantKind(t, "GetUser of a deleted user", err, hermes.NotFound)
		got, err := e.s.ListUsers(e.ctx, "acme")
		e.must("ListUsers", err)
		checkEqual(t, "ListUsers after DeleteUser", got, []*hermes.User{keep})
		g, err := e.s.GetUser(e.ctx, "globex", "ann")
		e.must("GetUser of the other client's user of the same id", err)
		checkEqual(t, "GetUser globex/ann", g, other)
		wantKind(t, "DeleteUser again", e.s.DeleteUser(e.ctx, "acme", "ann"), hermes.NotFound)
		wantKind(t, "DeleteUser of an unknown client", e.s.DeleteUser(e.ctx, "nobody", "ann"), hermes.NotFound)
	})
}

// ---------------------------------------------------------------------------
// Address uniqueness

func (x *suite) testProjectAddresses(t *testing.T) {
	const (
		shopEmail = "sales@shop.example.com"
		shopSMS   = "+15550100001"
		shopChat  = "C0SHOP"
	)
	// setup stores acme/shop with one address of each kind, and a second
	// client globex.
	setup := func(t *testing.T) (*env, *hermes.Project) {
		e := x.open(t)
		e.createClient(newClient("acme"), Base)
		e.createClient(newClient("globex"), Base)
		shop := e.createProject(newProject("acme", "shop", []string{shopEmail}, []string{shopSMS}, []string{shopChat}), Base)
		return e, shop
	}
	wantAt := func(t *testing.T, e *env, kind, addr string, want *hermes.Project) {
		t.Helper()
		got, err := e.s.ProjectByAddress(e.ctx, kind, addr)
		if want == nil {
			wantKind(t, fmt.Sprintf("ProjectByAddress(%s, %s)", kind, addr), err, hermes.NotFound)
			return
		}
		if err != nil {
			t.Errorf("ProjectByAddress(%s, %s): %v", kind, addr, err)
			return
		}
		checkEqual(t, fmt.Sprintf("ProjectByAddress(%s, %s)", kind, addr), got, want)
	}

	// Each case takes one of shop's addresses and adds a free one of
	// another kind, which must stay free after the conflict.
	cases := []struct {
		kind                string
		emails, sms, chat   []string
		freeKind, freeValue string
	}{
		{hermes.AddressEmail, []string{"new@blog.example.com", shopEmail}, []string{"+15550100099"}, nil, hermes.AddressSMS, "+15550100099"},
		{hermes.AddressSMS, []string{"new@blog.example.com"}, []string{shopSMS}, nil, hermes.AddressEmail, "new@blog.example.com"},
		{hermes.AddressChat, []string{"new@blog.example.com"}, nil, []string{"C0FREE", shopChat}, hermes.AddressEmail, "new@blog.example.com"},
	}
	for _, c := range cases {
		t.Run("CreateTaken/"+c.kind, func(t *testing.T) {
			e, shop := setup(t)
			for _, client := range []string{"acme", "globex"} {
				p := newProject(client, "blog", c.emails, c.sms, c.chat)
				valid(t, "project", p)
				wantKind(t, "CreateProject "+client+"/blog with a "+c.kind+" address of acme/shop",
					e.s.CreateProject(e.ctx, p, at(time.Minute)), hermes.Conflict)
				_, err := e.s.GetProject(e.ctx, client, "blog")
				wantKind(t, "GetProject "+client+"/blog after the conflict", err, hermes.NotFound)
			}
			wantAt(t, e, c.freeKind, c.freeValue, nil)
			wantAt(t, e, hermes.AddressEmail, shopEmail, shop)
			wantAt(t, e, hermes.AddressSMS, shopSMS, shop)
			wantAt(t, e, hermes.AddressChat, shopChat, shop)
		})
		t.Run("UpdateTaken/"+c.kind, func(t *testing.T) {
			e, shop := setup(t)
			for _, client := range []string{"acme", "globex"} {
				blog := e.createProject(newProject(client, "blog", []string{"blog@" + client + ".example.com"}, nil, nil), Base)
				upd := newProject(client, "blog", c.emails, c.sms, c.chat)
				upd.Name = "Renamed"
				wantKind(t, "UpdateProject "+client+"/blog to a "+c.kind+" address of acme/shop",
					e.s.UpdateProject(e.ctx, upd, at(time.Minute)), hermes.Conflict)
				got, err := e.s.GetProject(e.ctx, client, "blog")
				e.must("GetProject", err)
				checkEqual(t, "GetProject "+client+"/blog after the conflict", got, blog)
				wantAt(t, e, hermes.AddressEmail, "blog@"+client+".example.com", blog)
			}
			wantAt(t, e, c.freeKind, c.freeValue, nil)
			wantAt(t, e, hermes.AddressEmail, shopEmail, shop)
			wantAt(t, e, hermes.AddressSMS, shopSMS, shop)
			wantAt(t, e, hermes.AddressChat, shopChat, shop)
		})
	}
	t.Run("UpdateKeepsOwnAddresses", func(t *testing.T) {
		e, shop := setup(t)
		upd := cloneProject(shop)
		upd.Name = "Shop, renamed"
		upd.SMSNumbers = append(upd.SMSNumbers, "+15550100055")
		e.must("UpdateProject with its own addresses", e.s.UpdateProject(e.ctx, cloneProject(upd), at(time.Minute)))
		upd.UpdatedAt = at(time.Minute)
		wantAt(t, e, hermes.AddressEmail, shopEmail, upd)
		wantAt(t, e, hermes.AddressSMS, "+15550100055", upd)
	})
	t.Run("DropFreesAddress", func(t *testing.T) {
		e, shop := setup(t)
		upd := cloneProject(shop)
		upd.EmailAddresses, upd.SMSNumbers, upd.SlackChannels = []string{"shop@acme.example.com"}, []string{}, []string{}
		e.must("UpdateProject", e.s.UpdateProject(e.ctx, cloneProject(upd), at(time.Minute)))
		upd.UpdatedAt = at(time.Minute)
		wantAt(t, e, hermes.AddressEmail, shopEmail, nil)
		wantAt(t, e, hermes.AddressSMS, shopSMS, nil)
		wantAt(t, e, hermes.AddressChat, shopChat, nil)
		wantAt(t, e, hermes.AddressEmail, "shop@acme.example.com", upd)
		other := e.createProject(newProject("globex", "shop", []string{shopEmail}, []string{shopSMS}, []string{shopChat}), at(2*time.Minute))
		wantAt(t, e, hermes.AddressEmail, shopEmail, other)
		wantAt(t, e, hermes.AddressSMS, shopSMS, other)
		wantAt(t, e, hermes.AddressChat, shopChat, other)
	})
	t.Run("DeleteFreesAddress", func(t *testing.T) {
		e, _ := setup(t)
		e.must("DeleteProject", e.s.DeleteProject(e.ctx, "acme", "shop"))
		wantAt(t, e, hermes.AddressEmail, shopEmail, nil)
		wantAt(t, e, hermes.AddressSMS, shopSMS, nil)
		wantAt(t, e, hermes.AddressChat, shopChat, nil)
		other := e.createProject(newProject("globex", "shop", []string{shopEmail}, []string{shopSMS}, []string{shopChat}), at(time.Minute))
		wantAt(t, e, hermes.AddressSMS, shopSMS, other)
	})
	t.Run("ByAddress", func(t *testing.T) {
		e, shop := setup(t)
		blog := e.createProject(newProject("globex", "blog", []string{"blog@globex.example.com"}, nil, []string{"C0BLOG"}), Base)
		wantAt(t, e, hermes.AddressEmail, shopEmail, shop)
		wantAt(t, e, hermes.AddressEmail, "Sales@Shop.EXAMPLE.com", shop)
		wantAt(t, e, hermes.AddressSMS, shopSMS, shop)
		wantAt(t, e, hermes.AddressChat, shopChat, shop)
		wantAt(t, e, hermes.AddressEmail, "blog@globex.example.com", blog)
		wantAt(t, e, hermes.AddressChat, "C0BLOG", blog)
		// The kind is part of the key.
		wantAt(t, e, hermes.AddressSMS, shopEmail, nil)
		wantAt(t, e, hermes.AddressEmail, shopChat, nil)
		wantAt(t, e, hermes.AddressChat, shopSMS, nil)
		wantAt(t, e, hermes.AddressEmail, "nobody@shop.example.com", nil)
		wantAt(t, e, hermes.AddressSMS, "+15550100999", nil)
	})
}

func (x *suite) testUserIdentities(t *testing.T) {
	const (
		annEmail = "ann@example.com"
		annPhone = "+15550100002"
		annChat  = "U0ANN"
	)
	setup := func(t *testing.T) (*env, *hermes.User) {
		e := x.open(t)
		e.createClient(newClient("acme"), Base)
		e.createClient(newClient("globex"), Base)
		ann := e.createUser(newUser("acme", "ann", []string{annEmail}, []string{annPhone}, []string{annChat}), Base)
		return e, ann
	}
	wantOf := func(t *testing.T, e *env, client, kind, id string, want *hermes.User) {
		t.Helper()
		what := fmt.Sprintf("UserByIdentity(%s, %s, %s)", client, kind, id)
		got, err := e.s.UserByIdentity(e.ctx, client, kind, id)
		if want == nil {
			wantKind(t, what, err, hermes.NotFound)
			return
		}
		if err != nil {
			t.Errorf("%s: %v", what, err)
			return
		}
		checkEqual(t, what, got, want)
	}

	t.Run("SameIdentityInTwoClients", func(t *testing.T) {
		e, ann := setup(t)
		other := e.createUser(newUser("globex", "ann-g", []string{annEmail}, []string{annPhone}, []string{annChat}), at(time.Second))
		for _, k := range []struct{ kind, id string }{{hermes.AddressEmail, annEmail}, {hermes.AddressSMS, annPhone}, {hermes.AddressChat, annChat}} {
			wantOf(t, e, "acme", k.kind, k.id, ann)
			wantOf(t, e, "globex", k.kind, k.id, other)
		}
	})
	cases := []struct {
		kind                  string
		emails, phones, chats []string
		freeKind, freeValue   string
	}{
		{hermes.AddressEmail, []string{"bob@example.com", annEmail}, []string{"+15550100098"}, nil, hermes.AddressSMS, "+15550100098"},
		{hermes.AddressSMS, []string{"bob@example.com"}, []string{annPhone}, nil, hermes.AddressEmail, "bob@example.com"},
		{hermes.AddressChat, []string{"bob@example.com"}, nil, []string{"U0BOB", annChat}, hermes.AddressEmail, "bob@example.com"},
	}
	for _, c := range cases {
		t.Run("CreateTaken/"+c.kind, func(t *testing.T) {
			e, ann := setup(t)
			u := newUser("acme", "bob", c.emails, c.phones, c.chats)
			valid(t, "user", u)
			wantKind(t, "CreateUser with a "+c.kind+" identity of acme/ann", e.s.CreateUser(e.ctx, u, at(time.Minute)), hermes.Conflict)
			_, err := e.s.GetUser(e.ctx, "acme", "bob")
			wantKind(t, "GetUser after the conflict", err, hermes.NotFound)
			wantOf(t, e, "acme", c.freeKind, c.freeValue, nil)
			wantOf(t, e, "acme", hermes.AddressEmail, annEmail, ann)
			wantOf(t, e, "acme", hermes.AddressSMS, annPhone, ann)
			wantOf(t, e, "acme", hermes.AddressChat, annChat, ann)
		})
		t.Run("UpdateTaken/"+c.kind, func(t *testing.T) {
			e, ann := setup(t)
			bob := e.createUser(newUser("acme", "bob", []string{"bob@acme.example.com"}, nil, nil), Base)
			upd := newUser("acme", "bob", c.emails, c.phones, c.chats)
			upd.Name = "Renamed"
			wantKind(t, "UpdateUser to a "+c.kind+" identity of acme/ann", e.s.UpdateUser(e.ctx, upd, at(time.Minute)), hermes.Conflict)
			got, err := e.s.GetUser(e.ctx, "acme", "bob")
			e.must("GetUser", err)
			checkEqual(t, "GetUser after the conflict", got, bob)
			wantOf(t, e, "acme", hermes.AddressEmail, "bob@acme.example.com", bob)
			wantOf(t, e, "acme", c.freeKind, c.freeValue, nil)
			wantOf(t, e, "acme", hermes.AddressEmail, annEmail, ann)
			wantOf(t, e, "acme", hermes.AddressSMS, annPhone, ann)
			wantOf(t, e, "acme", hermes.AddressChat, annChat, ann)
		})
	}
	t.Run("UpdateKeepsOwnIdentities", func(t *testing.T) {
		e, ann := setup(t)
		upd := cloneUser(ann)
		upd.Name = "Ann Smith"
		upd.Phones = append(upd.Phones, "+15550100056")
		e.must("UpdateUser with its own identities", e.s.UpdateUser(e.ctx, cloneUser(upd), at(time.Minute)))
		upd.UpdatedAt = at(time.Minute)
		wantOf(t, e, "acme", hermes.AddressEmail, annEmail, upd)
		wantOf(t, e, "acme", hermes.AddressSMS, "+15550100056", upd)
	})
	t.Run("DropFreesIdentity", func(t *testing.T) {
		e, ann := setup(t)
		upd := cloneUser(ann)
		upd.Emails, upd.Phones, upd.ChatIDs = []string{"ann@acme.example.com"}, []string{}, []string{}
		e.must("UpdateUser", e.s.UpdateUser(e.ctx, cloneUser(upd), at(time.Minute)))
		upd.UpdatedAt = at(time.Minute)
		wantOf(t, e, "acme", hermes.AddressEmail, annEmail, nil)
		wantOf(t, e, "acme", hermes.AddressSMS, annPhone, nil)
		wantOf(t, e, "acme", hermes.AddressChat, annChat, nil)
		wantOf(t, e, "acme", hermes.AddressEmail, "ann@acme.example.com", upd)
		bob := e.createUser(newUser("acme", "bob", []string{annEmail}, []string{annPhone}, []string{annChat}), at(2*time.Minute))
		wantOf(t, e, "acme", hermes.AddressEmail, annEmail, bob)
		wantOf(t, e, "acme", hermes.AddressSMS, annPhone, bob)
		wantOf(t, e, "acme", hermes.AddressChat, annChat, bob)
	})
	t.Run("DeleteFreesIdentity", func(t *testing.T) {
		e, _ := setup(t)
		e.must("DeleteUser", e.s.DeleteUser(e.ctx, "acme", "ann"))
		wantOf(t, e, "acme", hermes.AddressEmail, annEmail, nil)
		wantOf(t, e, "acme", hermes.AddressSMS, annPhone, nil)
		wantOf(t, e, "acme", hermes.AddressChat, annChat, nil)
		bob := e.createUser(newUser("acme", "bob", []string{annEmail}, []string{annPhone}, []string{annChat}), at(time.Minute))
		wantOf(t, e, "acme", hermes.AddressChat, annChat, bob)
	})
	t.Run("ByIdentity", func(t *testing.T) {
		e, ann := setup(t)
		bob := e.createUser(newUser("acme", "bob", []string{"bob@example.com"}, nil, []string{"U0BOB"}), Base)
		wantOf(t, e, "acme", hermes.AddressEmail, annEmail, ann)
		wantOf(t, e, "acme", hermes.AddressSMS, annPhone, ann)
		wantOf(t, e, "acme", hermes.AddressChat, annChat, ann)
		wantOf(t, e, "acme", hermes.AddressEmail, "bob@example.com", bob)
		wantOf(t, e, "acme", hermes.AddressChat, "U0BOB", bob)
		// Another client, or a client that does not exist, does not see them.
		wantOf(t, e, "globex", hermes.AddressEmail, annEmail, nil)
		wantOf(t, e, "nobody", hermes.AddressEmail, annEmail, nil)
		// The kind is part of the key.
		wantOf(t, e, "acme", hermes.AddressSMS, annEmail, nil)
		wantOf(t, e, "acme", hermes.AddressEmail, annChat, nil)
		wantOf(t, e, "acme", hermes.AddressChat, annPhone, nil)
		wantOf(t, e, "acme", hermes.AddressEmail, "carol@example.com", nil)
	})
}

// ---------------------------------------------------------------------------
// Deletes and live sessions

func (x *suite) testDeleteWhileLive(t *testing.T) {
	for _, status := range []hermes.SessionStatus{hermes.SessionInitializing, hermes.SessionActive, hermes.SessionDraining} {
		t.Run(string(status), func(t *testing.T) {
			e := x.open(t)
			o := e.world("acme")
			e.createProject(newProject("acme", "blog", nil, nil, nil), Base)
			e.createUser(newUser("acme", "bob", nil, nil, nil), Base)
			th := e.thread(o, Base)
			s := e.session(th, status, Base, at(time.Hour))

			wantKind(t, "DeleteUser while the user's session is "+string(status), e.s.DeleteUser(e.ctx, "acme", "owner"), hermes.Conflict)
			wantKind(t, "DeleteProject while the project's session is "+string(status), e.s.DeleteProject(e.ctx, "acme", "site"), hermes.Conflict)
			wantKind(t, "DeleteClient while the client's session is "+string(status), e.s.DeleteClient(e.ctx, "acme"), hermes.Conflict)
			if _, err := e.s.GetUser(e.ctx, "acme", "owner"); err != nil {
				t.Errorf("GetUser after the refused delete: %v", err)
			}
			if _, err := e.s.GetProject(e.ctx, "acme", "site"); err != nil {
				t.Errorf("GetProject after the refused delete: %v", err)
			}
			if _, err := e.s.GetClient(e.ctx, "acme"); err != nil {
				t.Errorf("GetClient after the refused delete: %v", err)
			}
			// Another user and project of the client have no live session.
			if err := e.s.DeleteUser(e.ctx, "acme", "bob"); err != nil {
				t.Errorf("DeleteUser of a user without a live session: %v", err)
			}
			if err := e.s.DeleteProject(e.ctx, "acme", "blog"); err != nil {
				t.Errorf("DeleteProject of a project without a live session: %v", err)
			}

			e.expire(s, at(time.Minute))
			if err := e.s.DeleteUser(e.ctx, "acme", "owner"); err != nil {
				t.Errorf("DeleteUser once the session is expired: %v", err)
			}
			if err := e.s.DeleteProject(e.ctx, "acme", "site"); err != nil {
				t.Errorf("DeleteProject once the session is expired: %v", err)
			}
			if err := e.s.DeleteClient(e.ctx, "acme"); err != nil {
				t.Errorf("DeleteClient once the session is expired: %v", err)
			}
		})
	}
	t.Run("ClientOnceExpired", func(t *testing.T) {
		e := x.open(t)
		o := e.world("acme")
		s := e.session(e.thread(o, Base), hermes.SessionActive, Base, at(time.Hour))
		wantKind(t, "DeleteClient while its session is live", e.s.DeleteClient(e.ctx, "acme"), hermes.Conflict)
		e.expire(s, at(time.Minute))
		if err := e.s.DeleteClient(e.ctx, "acme"); err != nil {
			t.Fatalf("DeleteClient (with its project and user) once the session is expired: %v", err)
		}
		_, err := e.s.GetClient(e.ctx, "acme")
		wantKind(t, "GetClient after DeleteClient", err, hermes.NotFound)
	})
	t.Run("LeasePassedIsStillLive", func(t *testing.T) {
		// Live means "not expired": a session whose lease has passed but
		// that the reaper has not expired yet still blocks deletes.
		e := x.open(t)
		o := e.world("acme")
		e.session(e.thread(o, Base), hermes.SessionActive, Base, at(time.Minute))
		wantKind(t, "DeleteClient while a session with a passed lease is active", e.s.DeleteClient(e.ctx, "acme"), hermes.Conflict)
	})
}

func (x *suite) testDeleteClientCascades(t *testing.T) {
	e := x.open(t)
	e.createClient(newClient("acme"), Base)
	e.createProject(newProject("acme", "shop", []string{"sales@shop.example.com"}, []string{"+15550100001"}, []string{"C0SHOP"}), Base)
	e.createProject(newProject("acme", "blog", []string{"blog@acme.example.com"}, nil, nil), Base)
	e.createUser(newUser("acme", "ann", []string{"ann@example.com"}, []string{"+15550100002"}, []string{"U0ANN"}), Base)
	e.createUser(newUser("acme", "bob", []string{"bob@example.com"}, nil, nil), Base)
	// An expired session of acme does not block the delete.
	e.session(newThreadStored(e, owner{"acme", "shop", "ann"}), hermes.SessionExpired, Base, at(time.Hour))

	// globex shares a user email and has a live session: neither matters.
	gc := e.createClient(newClient("globex"), Base)
	gp := e.createProject(newProject("globex", "shop", []string{"shop@globex.example.com"}, nil, nil), Base)
	gu := e.createUser(newUser("globex", "ann", []string{"ann@example.com"}, nil, nil), Base)
	e.session(newThreadStored(e, owner{"globex", "shop", "ann"}), hermes.SessionActive, Base, at(time.Hour))

	e.must("DeleteClient", e.s.DeleteClient(e.ctx, "acme"))

	_, err := e.s.GetClient(e.ctx, "acme")
	wantKind(t, "GetClient acme", err, hermes.NotFound)
	for _, id := range []string{"shop", "blog"} {
		_, err := e.s.GetProject(e.ctx, "acme", id)
		wantKind(t, "GetProject acme/"+id, err, hermes.NotFound)
	}
	for _, id := range []string{"ann", "bob"} {
		_, err := e.s.GetUser(e.ctx, "acme", id)
		wantKind(t, "GetUser acme/"+id, err, hermes.NotFound)
	}
	if ps, err := e.s.ListProjects(e.ctx, "acme"); err != nil || len(ps) != 0 {
		t.Errorf("ListProjects acme: got %d projects, %v; want none", len(ps), err)
	}
	for _, a := range []struct{ kind, addr string }{
		{hermes.AddressEmail, "sales@shop.example.com"}, {hermes.AddressSMS, "+15550100001"},
		{hermes.AddressChat, "C0SHOP"}, {hermes.AddressEmail, "blog@acme.example.com"},
	} {
		_, err := e.s.ProjectByAddress(e.ctx, a.kind, a.addr)
		wantKind(t, "ProjectByAddress "+a.addr, err, hermes.NotFound)
	}

	// globex is untouched.
	if got, err := e.s.GetClient(e.ctx, "globex"); err != nil {
		t.Errorf("GetClient globex: %v", err)
	} else {
		checkEqual(t, "GetClient globex", got, gc)
	}
	if got, err := e.s.ProjectByAddress(e.ctx, hermes.AddressEmail, "shop@globex.example.com"); err != nil {
		t.Errorf("ProjectByAddress of globex's address: %v", err)
	} else {
		checkEqual(t, "ProjectByAddress of globex's address", got, gp)
	}
	if got, err := e.s.UserByIdentity(e.ctx, "globex", hermes.AddressEmail, "ann@example.com"); err != nil {
		t.Errorf("UserByIdentity of globex's user: %v", err)
	} else {
		checkEqual(t, "UserByIdentity of globex's user", got, gu)
	}
	if cs, err := e.s.ListClients(e.ctx); err != nil {
		t.Errorf("ListClients: %v", err)
	} else {
		checkEqual(t, "ListClients after DeleteClient", cs, []*hermes.Client{gc})
	}

	// A new client of the same id starts empty, and the old addresses are free.
	e.createClient(newClient("acme"), at(time.Hour))
	if ps, err := e.s.ListProjects(e.ctx, "acme"); err != nil || len(ps) != 0 {
		t.Errorf("ListProjects of the recreated client: got %d projects, %v; want none", len(ps), err)
	}
	if us, err := e.s.ListUsers(e.ctx, "acme"); err != nil || len(us) != 0 {
		t.Errorf("ListUsers of the recreated client: got %d users, %v; want none", len(us), err)
	}
	_, err = e.s.UserByIdentity(e.ctx, "acme", hermes.AddressEmail, "ann@example.com")
	wantKind(t, "UserByIdentity of a deleted user's email in the recreated client", err, hermes.NotFound)
	p := newProject("globex", "blog", []string{"sales@shop.example.com", "blog@acme.example.com"}, []string{"+15550100001"}, []string{"C0SHOP"})
	valid(t, "project", p)
	if err := e.s.CreateProject(e.ctx, p, at(time.Hour)); err != nil {
		t.Errorf("CreateProject with the deleted client's addresses: %v", err)
	}
}

func newThreadStored(e *env, o owner) *hermes.Thread {
	e.t.Helper()
	return e.thread(o, Base)
}

// ---------------------------------------------------------------------------
// Threads

func (x *suite) testThreads(t *testing.T) {
	t.Run("CreateGet", func(t *testing.T) {
		e := x.open(t)
		o := e.world("acme")
		th := newThread(o.client, o.project, o.user, at(time.Second))
		th.UpdatedAt = at(time.Minute)
		e.must("CreateThread", e.s.CreateThread(e.ctx, cloneThread(th)))
		got, err := e.s.GetThread(e.ctx, th.ID)
		e.must("GetThread", err)
		checkEqual(t, "GetThread", got, th)
	})
	t.Run("CreateDuplicate", func(t *testing.T) {
		e := x.open(t)
		o := e.world("acme")
		th := e.thread(o, Base)
		dup := cloneThread(th)
		dup.Subject, dup.Channel = "Another subject", hermes.ChannelSMS
		wantKind(t, "CreateThread of an existing id", e.s.CreateThread(e.ctx, dup), hermes.Conflict)
		got, err := e.s.GetThread(e.ctx, th.ID)
		e.must("GetThread", err)
		checkEqual(t, "GetThread after the conflict", got, th)
	})
	t.Run("GetUnknown", func(t *testing.T) {
		e := x.open(t)
		_, err := e.s.GetThread(e.ctx, hermes.NewToken())
		wantKind(t, "GetThread of an unknown id", err, hermes.NotFound)
	})
}

// ---------------------------------------------------------------------------
// Sessions

func (x *suite) testSessions(t *testing.T) {
	t.Run("CreateGet", func(t *testing.T) {
		e := x.open(t)
		o := e.world("acme")
		th := e.thread(o, Base)
		s := newSession(th, hermes.SessionInitializing, at(time.Second), at(time.Hour))
		s.Version = 42
		h1 := newEntry(s, at(time.Second), hermes.KindInstruction, "Change the opening hours to 9–5.")
		h2 := newEntry(s, at(2*time.Second), hermes.KindAck, "On it.")
		e.must("CreateSession", e.s.CreateSession(e.ctx, cloneSession(s), cloneEntries([]*hermes.HistoryEntry{h2, h1})...))
		s.Version = 1
		got, err := e.s.GetSession(e.ctx, s.ID)
		e.must("GetSession", err)
		checkEqual(t, "GetSession (Version must be 1)", got, s)
		hs, err := e.s.ListHistory(e.ctx, s.ID)
		e.must("ListHistory", err)
		checkEqual(t, "ListHistory of the new session", hs, []*hermes.HistoryEntry{h1, h2})
		live, err := e.s.LiveSessionForThread(e.ctx, th.ID)
		e.must("LiveSessionForThread", err)
		checkEqual(t, "LiveSessionForThread", live, s)
	})
	t.Run("CreateDuplicateID", func(t *testing.T) {
		e := x.open(t)
		o := e.world("acme")
		s := e.session(e.thread(o, Base), hermes.SessionActive, Base, at(time.Hour))
		th2 := e.thread(o, Base)
		dup := newSession(th2, hermes.SessionInitializing, at(time.Minute), at(time.Hour))
		dup.ID = s.ID
		h := newEntry(dup, at(time.Minute), hermes.KindInstruction, "duplicate")
		wantKind(t, "CreateSession of an existing id", e.s.CreateSession(e.ctx, dup, h), hermes.Conflict)
		got, err := e.s.GetSession(e.ctx, s.ID)
		e.must("GetSession", err)
		checkEqual(t, "GetSession after the conflict", got, s)
		_, err = e.s.LiveSessionForThread(e.ctx, th2.ID)
		wantKind(t, "LiveSessionForThread of the duplicate's thread", err, hermes.NotFound)
		hs, err := e.s.ListHistory(e.ctx, s.ID)
		e.must("ListHistory", err)
		if len(hs) != 0 {
			t.Errorf("ListHistory after the conflict: got %d entries, want none (the refused session's entry must not be stored)", len(hs))
		}
	})
	t.Run("OneLivePerThread", func(t *testing.T) {
		e := x.open(t)
		o := e.world("acme")
		th := e.thread(o, Base)
		first := e.session(th, hermes.SessionActive, Base, at(time.Hour))
		for _, status := range []hermes.SessionStatus{hermes.SessionInitializing, hermes.SessionActive, hermes.SessionDraining} {
			second := newSession(th, status, at(time.Minute), at(time.Hour))
			h := newEntry(second, at(time.Minute), hermes.KindInstruction, "a second instruction")
			wantKind(t, "CreateSession ("+string(status)+") on a thread with a live session",
				e.s.CreateSession(e.ctx, second, h), hermes.Conflict)
			_, err := e.s.GetSession(e.ctx, second.ID)
			wantKind(t, "GetSession of the refused session", err, hermes.NotFound)
			hs, err := e.s.ListHistory(e.ctx, second.ID)
			e.must("ListHistory of the refused session", err)
			if len(hs) != 0 {
				t.Errorf("ListHistory of the refused session: got %d entries, want none (all or nothing)", len(hs))
			}
		}
		live, err := e.s.LiveSessionForThread(e.ctx, th.ID)
		e.must("LiveSessionForThread", err)
		checkEqual(t, "LiveSessionForThread", live, first)

		e.expire(first, at(2*time.Minute))
		_, err = e.s.LiveSessionForThread(e.ctx, th.ID)
		wantKind(t, "LiveSessionForThread once its only session is expired", err, hermes.NotFound)

		second := newSession(th, hermes.SessionInitializing, at(3*time.Minute), at(time.Hour))
		h := newEntry(second, at(3*time.Minute), hermes.KindInstruction, "a later instruction")
		e.must("CreateSession once the first session is expired", e.s.CreateSession(e.ctx, cloneSession(second), cloneEntry(h)))
		second.Version = 1
		live, err = e.s.LiveSessionForThread(e.ctx, th.ID)
		e.must("LiveSessionForThread", err)
		checkEqual(t, "LiveSessionForThread after the new session", live, second)
		got, err := e.s.GetSession(e.ctx, first.ID)
		e.must("GetSession of the expired session", err)
		checkEqual(t, "GetSession of the expired session", got, first)
		hs, err := e.s.ListHistory(e.ctx, second.ID)
		e.must("ListHistory", err)
		checkEqual(t, "ListHistory of the new session", hs, []*hermes.HistoryEntry{h})
	})
	t.Run("GetUnknown", func(t *testing.T) {
		e := x.open(t)
		_, err := e.s.GetSession(e.ctx, hermes.NewToken())
		wantKind(t, "GetSession of an unknown id", err, hermes.NotFound)
	})
	t.Run("LiveSessionForThreadNotFound", func(t *testing.T) {
		e := x.open(t)
		o := e.world("acme")
		_, err := e.s.LiveSessionForThread(e.ctx, hermes.NewToken())
		wantKind(t, "LiveSessionForThread of an unknown thread", err, hermes.NotFound)
		th := e.thread(o, Base)
		_, err = e.s.LiveSessionForThread(e.ctx, th.ID)
		wantKind(t, "LiveSessionForThread of a thread without sessions", err, hermes.NotFound)
		e.session(th, hermes.SessionExpired, Base, at(time.Hour))
		_, err = e.s.LiveSessionForThread(e.ctx, th.ID)
		wantKind(t, "LiveSessionForThread of a thread whose session is expired", err, hermes.NotFound)
		// Another thread's live session is not this thread's.
		e.session(e.thread(o, Base), hermes.SessionActive, Base, at(time.Hour))
		_, err = e.s.LiveSessionForThread(e.ctx, th.ID)
		wantKind(t, "LiveSessionForThread while only another thread has a live session", err, hermes.NotFound)
	})
	t.Run("LiveSessionForThreadEachLiveStatus", func(t *testing.T) {
		e := x.open(t)
		o := e.world("acme")
		for _, status := range []hermes.SessionStatus{hermes.SessionInitializing, hermes.SessionActive, hermes.SessionDraining} {
			th := e.thread(o, Base)
			e.session(th, hermes.SessionExpired, Base, at(time.Hour))
			s := e.session(th, status, at(time.Minute), at(time.Minute)) // lease passed: still live
			got, err := e.s.LiveSessionForThread(e.ctx, th.ID)
			if err != nil {
				t.Errorf("LiveSessionForThread with a %s session: %v", status, err)
				continue
			}
			checkEqual(t, "LiveSessionForThread with a "+string(status)+" session", got, s)
		}
	})
}

// ---------------------------------------------------------------------------
// UpdateSession

func (x *suite) testUpdateSession(t *testing.T) {
	t.Run("StoresAndReturnsNewVersion", func(t *testing.T) {
		e := x.open(t)
		o := e.world("acme")
		th := e.thread(o, Base)
		s := e.session(th, hermes.SessionInitializing, Base, at(time.Hour))

		var seen *hermes.Session
		result := fullResult(th)
		got, err := e.s.UpdateSession(e.ctx, s.ID, func(x *hermes.Session) error {
			seen = cloneSession(x)
			x.Status = hermes.SessionActive
			x.ContainerID = "acme_site_owner-2"
			x.PreviewURL = "https://preview.example.com/new/"
			x.LastActivity = at(time.Minute)
			x.ExpiresAt = at(2 * time.Hour)
			x.LastResult = cloneResult(result)
			return nil
		})
		e.must("UpdateSession", err)
		checkEqual(t, "the session fn was given", seen, s)
		want := cloneSession(s)
		want.Status, want.ContainerID, want.PreviewURL = hermes.SessionActive, "acme_site_owner-2", "https://preview.example.com/new/"
		want.LastActivity, want.ExpiresAt, want.LastResult = at(time.Minute), at(2*time.Hour), result
		if got == nil {
			t.Fatal("UpdateSession returned a nil session")
		}
		if got.Version <= s.Version {
			t.Errorf("UpdateSession returned Version %d, want more than %d", got.Version, s.Version)
		}
		want.Version = got.Version
		checkEqual(t, "UpdateSession's result", got, want)
		stored, err := e.s.GetSession(e.ctx, s.ID)
		e.must("GetSession", err)
		checkEqual(t, "GetSession after UpdateSession", stored, want)

		// A second update sees the first and raises Version again.
		got2, err := e.s.UpdateSession(e.ctx, s.ID, func(x *hermes.Session) error {
			seen = cloneSession(x)
			x.LastResult = nil
			x.Status = hermes.SessionDraining
			return nil
		})
		e.must("second UpdateSession", err)
		checkEqual(t, "the session fn was given the second time", seen, want)
		if got2.Version <= want.Version {
			t.Errorf("second UpdateSession returned Version %d, want more than %d", got2.Version, want.Version)
		}
		want.LastResult, want.Status, want.Version = nil, hermes.SessionDraining, got2.Version
		stored, err = e.s.GetSession(e.ctx, s.ID)
		e.must("GetSession", err)
		checkEqual(t, "GetSession after the second UpdateSession", stored, want)
	})
	t.Run("Unknown", func(t *testing.T) {
		e := x.open(t)
		_, err := e.s.UpdateSession(e.ctx, hermes.NewToken(), func(x *hermes.Session) error { x.PreviewURL = "x"; return nil })
		wantKind(t, "UpdateSession of an unknown id", err, hermes.NotFound)
	})
	fnErrors := []struct {
		name string
		err  error
	}{
		{"PlainError", errors.New("hermestest: fn refuses")},
		{"HermesError", hermes.Errorf(hermes.Unprocessable, "hermestest: fn refuses")},
	}
	for _, c := range fnErrors {
		t.Run("FnError/"+c.name, func(t *testing.T) {
			e := x.open(t)
			o := e.world("acme")
			s := e.session(e.thread(o, Base), hermes.SessionActive, Base, at(time.Hour))
			got, err := e.s.UpdateSession(e.ctx, s.ID, func(x *hermes.Session) error {
				x.Status, x.PreviewURL = hermes.SessionDraining, "https://changed.example.com/"
				return c.err
			})
			if err != c.err {
				t.Errorf("UpdateSession whose fn fails: got error %v (%T), want fn's error returned as is", err, err)
			}
			if got != nil {
				t.Errorf("UpdateSession whose fn fails: got a session, want nil")
			}
			stored, err := e.s.GetSession(e.ctx, s.ID)
			e.must("GetSession", err)
			checkEqual(t, "GetSession after fn failed (nothing stored, Version unchanged)", stored, s)
		})
	}
	t.Run("ExpireTwice", func(t *testing.T) {
		e := x.open(t)
		o := e.world("acme")
		s := e.session(e.thread(o, Base), hermes.SessionActive, Base, at(time.Hour))
		got, err := e.s.UpdateSession(e.ctx, s.ID, func(x *hermes.Session) error { return x.Expire(at(time.Minute), hermes.ReasonLease) })
		e.must("UpdateSession (Expire)", err)
		if got.Status != hermes.SessionExpired || got.Reason != hermes.ReasonLease {
			t.Errorf("after Expire: status %q reason %q, want %q %q", got.Status, got.Reason, hermes.SessionExpired, hermes.ReasonLease)
		}
		_, err = e.s.UpdateSession(e.ctx, s.ID, func(x *hermes.Session) error { return x.Expire(at(2*time.Minute), hermes.ReasonDeactivated) })
		wantKind(t, "UpdateSession expiring an expired session", err, hermes.Conflict)
		stored, err := e.s.GetSession(e.ctx, s.ID)
		e.must("GetSession", err)
		checkEqual(t, "GetSession after the refused second Expire", stored, got)
	})
}

func fullResult(th *hermes.Thread) *hermes.Result {
	return &hermes.Result{
		JobID:        hermes.NewToken(),
		Success:      true,
		Summary:      "Changed the opening hours on the contact page.",
		FilesChanged: []string{"src/contact.html", "src/footer.html"},
		Commit:       "0123456789abcdef0123456789abcdef01234567",
		Branch:       th.Branch(),
		PreviewURL:   "https://preview.example.com/" + th.ID + "/",
		Error:        "warning: 1 image not optimised",
		Interrupted:  true,
		FinishedAt:   at(90 * time.Second),
	}
}

// ---------------------------------------------------------------------------
// Concurrency

func (x *suite) testConcurrency(t *testing.T) {
	const n = 20

	t.Run("ExpireRace", func(t *testing.T) {
		e := x.open(t)
		hs := e.handles()
		o := e.world("acme")
		s := e.session(e.thread(o, Base), hermes.SessionActive, Base, at(time.Hour))
		results := make([]*hermes.Session, n)
		errs := make([]error, n)
		race(n, func(i int) {
			results[i], errs[i] = hs[i%len(hs)].UpdateSession(e.ctx, s.ID, func(x *hermes.Session) error {
				runtime.Gosched() // widen the window between read and write
				return x.Expire(at(time.Minute+time.Duration(i)*time.Millisecond), hermes.ReasonLease)
			})
		})
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Errorf("writers %d and %d both expired the session", winner, i)
			case err == nil:
				winner = i
			default:
				wantKind(t, fmt.Sprintf("writer %d", i), err, hermes.Conflict)
			}
		}
		if winner < 0 {
			t.Fatal("no writer expired the session")
		}
		want := cloneSession(s)
		e.must("Expire", want.Expire(at(time.Minute+time.Duration(winner)*time.Millisecond), hermes.ReasonLease))
		want.Version = results[winner].Version
		checkEqual(t, "the winner's result", results[winner], want)
		stored, err := e.s.GetSession(e.ctx, s.ID)
		e.must("GetSession", err)
		checkEqual(t, "GetSession after the race", stored, want)
	})

	t.Run("NoLostUpdates", func(t *testing.T) {
		e := x.open(t)
		hs := e.handles()
		o := e.world("acme")
		s := e.session(e.thread(o, Base), hermes.SessionActive, Base, at(time.Hour))
		results := make([]*hermes.Session, n)
		errs := make([]error, n)
		race(n, func(i int) {
			results[i], errs[i] = hs[i%len(hs)].UpdateSession(e.ctx, s.ID, func(x *hermes.Session) error {
				runtime.Gosched() // widen the window between read and write
				x.LastActivity = x.LastActivity.Add(time.Millisecond)
				x.PreviewURL += "+"
				return nil
			})
		})
		versions := map[int64]int{}
		var last int64
		for i, err := range errs {
			if err != nil {
				t.Errorf("writer %d: %v", i, err)
				continue
			}
			if v := results[i].Version; v <= s.Version {
				t.Errorf("writer %d got Version %d, want more than %d", i, v, s.Version)
			} else if j, dup := versions[v]; dup {
				t.Errorf("writers %d and %d both got Version %d: one update overwrote the other", j, i, v)
			} else {
				versions[v] = i
				last = max(last, v)
			}
		}
		want := cloneSession(s)
		want.LastActivity = s.LastActivity.Add(n * time.Millisecond)
		want.PreviewURL = s.PreviewURL + strings.Repeat("+", n)
		want.Version = last
		stored, err := e.s.GetSession(e.ctx, s.ID)
		e.must("GetSession", err)
		checkEqual(t, fmt.Sprintf("GetSession after %d concurrent increments", n), stored, want)
	})

	t.Run("CreateSessionRace", func(t *testing.T) {
		e := x.open(t)
		hs := e.handles()
		o := e.world("acme")
		th := e.thread(o, Base)
		sessions := make([]*hermes.Session, n)
		entries := make([]*hermes.HistoryEntry, n)
		for i := range n {
			sessions[i] = newSession(th, hermes.SessionInitializing, at(time.Duration(i)*time.Millisecond), at(time.Hour))
			entries[i] = newEntry(sessions[i], sessions[i].CreatedAt, hermes.KindInstruction, fmt.Sprintf("instruction %d", i))
		}
		errs := make([]error, n)
		race(n, func(i int) {
			errs[i] = hs[i%len(hs)].CreateSession(e.ctx, cloneSession(sessions[i]), cloneEntry(entries[i]))
		})
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Errorf("CreateSession %d and %d both succeeded on one thread", winner, i)
			case err == nil:
				winner = i
			default:
				wantKind(t, fmt.Sprintf("CreateSession %d", i), err, hermes.Conflict)
			}
		}
		if winner < 0 {
			t.Fatal("no CreateSession succeeded")
		}
		want := sessions[winner]
		want.Version = 1
		live, err := e.s.LiveSessionForThread(e.ctx, th.ID)
		e.must("LiveSessionForThread", err)
		checkEqual(t, "LiveSessionForThread after the race", live, want)
		for i := range n {
			hist, err := e.s.ListHistory(e.ctx, sessions[i].ID)
			e.must("ListHistory", err)
			if i == winner {
				checkEqual(t, "ListHistory of the winner", hist, []*hermes.HistoryEntry{entries[i]})
				continue
			}
			if len(hist) != 0 {
				t.Errorf("ListHistory of loser %d: got %d entries, want none", i, len(hist))
			}
			_, err = e.s.GetSession(e.ctx, sessions[i].ID)
			wantKind(t, fmt.Sprintf("GetSession of loser %d", i), err, hermes.NotFound)
		}
	})

	t.Run("TwoHandles", func(t *testing.T) {
		if x.o.Reopen == nil {
			t.Skip("StoreOpener.Reopen is nil")
		}
		e := x.open(t)
		hs := e.handles()
		a, b := hs[0], hs[1]
		ctx := e.ctx
		c := e.createClient(newClient("acme"), Base)
		got, err := b.GetClient(ctx, "acme")
		if err != nil {
			t.Fatalf("GetClient on the second handle of a client created on the first: %v", err)
		}
		checkEqual(t, "GetClient on the second handle", got, c)
		o := e.world("globex")
		s := e.session(e.thread(o, Base), hermes.SessionActive, Base, at(time.Hour))
		v := s.Version
		for i := range 4 {
			h := hs[i%2]
			r, err := h.UpdateSession(ctx, s.ID, func(x *hermes.Session) error {
				if x.Version != v {
					return fmt.Errorf("fn saw Version %d, want %d written by the other handle", x.Version, v)
				}
				x.PreviewURL += "+"
				return nil
			})
			if err != nil {
				t.Fatalf("UpdateSession %d alternating handles: %v", i, err)
			}
			v = r.Version
		}
		stored, err := a.GetSession(ctx, s.ID)
		e.must("GetSession", err)
		if stored.PreviewURL != s.PreviewURL+"++++" || stored.Version != v {
			t.Errorf("after 4 updates alternating handles: PreviewURL %q Version %d, want %q %d", stored.PreviewURL, stored.Version, s.PreviewURL+"++++", v)
		}
	})
}

// race runs f(0)…f(n-1) in n goroutines released together.
func race(n int, f func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			f(i)
		})
	}
	close(start)
	wg.Wait()
}

// ---------------------------------------------------------------------------
// ListSessions, ListLeaseExpired, CountSessions

// sessionSet is a store with sessions of two clients, acme (7) and globex
// (3), in every status, with ties on CreatedAt.
type sessionSet struct {
	e      *env
	acme   []*hermes.Session // newest first
	globex []*hermes.Session // newest first
}

func (x *suite) sessionSet(t *testing.T) *sessionSet {
	e := x.open(t)
	oa, og := e.world("acme"), e.world("globex")
	mk := func(o owner, status hermes.SessionStatus, created time.Duration) *hermes.Session {
		return e.session(e.thread(o, Base), status, at(created), at(created+time.Hour))
	}
	ss := &sessionSet{e: e}
	for _, s := range []*hermes.Session{
		mk(oa, hermes.SessionInitializing, 0),
		mk(oa, hermes.SessionActive, time.Minute),
		mk(oa, hermes.SessionActive, time.Minute),
		mk(og, hermes.SessionInitializing, 30*time.Second),
		mk(oa, hermes.SessionDraining, 2*time.Minute),
		mk(og, hermes.SessionActive, time.Minute),
		mk(oa, hermes.SessionExpired, 3*time.Minute),
		mk(oa, hermes.SessionExpired, 3*time.Minute),
		mk(og, hermes.SessionExpired, 5*time.Minute),
		mk(oa, hermes.SessionActive, 4*time.Minute),
	} {
		if s.ClientID == "acme" {
			ss.acme = append(ss.acme, s)
		} else {
			ss.globex = append(ss.globex, s)
		}
	}
	newestFirst(ss.acme)
	newestFirst(ss.globex)
	return ss
}

func newestFirst(ss []*hermes.Session) {
	slices.SortFunc(ss, func(a, b *hermes.Session) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
}

func withStatus(ss []*hermes.Session, statuses ...hermes.SessionStatus) []*hermes.Session {
	var out []*hermes.Session
	for _, s := range ss {
		if len(statuses) == 0 || slices.Contains(statuses, s.Status) {
			out = append(out, s)
		}
	}
	return out
}

// listAll pages through ListSessions and returns every session it gave.
// Pages may be shorter than limit (the contract does not promise full
// pages) but never longer, and the listing must end with a "" cursor.
func (e *env) listAll(clientID string, statuses []hermes.SessionStatus, limit int) []*hermes.Session {
	e.t.Helper()
	var all []*hermes.Session
	cursor := ""
	for page := 0; page < 100; page++ {
		got, next, err := e.s.ListSessions(e.ctx, clientID, statuses, limit, cursor)
		if err != nil {
			e.t.Fatalf("ListSessions(%s, %v, %d) page %d: %v", clientID, statuses, limit, page, err)
		}
		if len(got) > limit {
			e.t.Errorf("ListSessions(%s, %v, %d) page %d: got %d sessions, more than the limit", clientID, statuses, limit, page, len(got))
		}
		all = append(all, got...)
		if next == "" {
			return all
		}
		if next == cursor {
			e.t.Fatalf("ListSessions(%s, %v, %d) page %d returned the cursor it was given", clientID, statuses, limit, page)
		}
		cursor = next
	}
	e.t.Fatalf("ListSessions(%s, %v, %d): no empty cursor after 100 pages", clientID, statuses, limit)
	return nil
}

func sessionIDs(ss []*hermes.Session) []string {
	ids := make([]string, len(ss))
	for i, s := range ss {
		ids[i] = fmt.Sprintf("%s(%s %s)", s.ID[:6], s.CreatedAt.Format("15:04:05.000"), s.Status)
	}
	return ids
}

func checkSessions(t testing.TB, what string, got, want []*hermes.Session) {
	t.Helper()
	if len(got) != len(want) || !slices.EqualFunc(got, want, func(a, b *hermes.Session) bool { return a.ID == b.ID }) {
		t.Errorf("%s: got sessions\n  %v\nwant\n  %v", what, sessionIDs(got), sessionIDs(want))
		return
	}
	checkEqual(t, what, got, want)
}

func (x *suite) testListSessions(t *testing.T) {
	t.Run("NewestFirst", func(t *testing.T) {
		ss := x.sessionSet(t)
		got, next, err := ss.e.s.ListSessions(ss.e.ctx, "acme", nil, 1000, "")
		ss.e.must("ListSessions", err)
		checkSessions(t, "ListSessions acme", got, ss.acme)
		if next != "" {
			t.Errorf("ListSessions of every session: next cursor %q, want \"\"", next)
		}
		got, next, err = ss.e.s.ListSessions(ss.e.ctx, "globex", []hermes.SessionStatus{}, 1000, "")
		ss.e.must("ListSessions", err)
		checkSessions(t, "ListSessions globex", got, ss.globex)
		if next != "" {
			t.Errorf("ListSessions of every session: next cursor %q, want \"\"", next)
		}
	})
	t.Run("Paginate", func(t *testing.T) {
		ss := x.sessionSet(t)
		// Limit 2 over 7 sessions: the last page is short, so it must come
		// with the empty cursor.
		checkSessions(t, "ListSessions acme by pages of 2", ss.e.listAll("acme", nil, 2), ss.acme)
		for _, limit := range []int{1, 3, 6, 7, 8} {
			checkSessions(t, fmt.Sprintf("ListSessions acme by pages of %d", limit), ss.e.listAll("acme", nil, limit), ss.acme)
		}
		active := []hermes.SessionStatus{hermes.SessionActive, hermes.SessionExpired}
		checkSessions(t, "ListSessions acme active+expired by pages of 2", ss.e.listAll("acme", active, 2), withStatus(ss.acme, active...))
		checkSessions(t, "ListSessions acme active+expired by pages of 1", ss.e.listAll("acme", active, 1), withStatus(ss.acme, active...))
	})
	t.Run("FirstPage", func(t *testing.T) {
		ss := x.sessionSet(t)
		got, next, err := ss.e.s.ListSessions(ss.e.ctx, "acme", nil, 2, "")
		ss.e.must("ListSessions", err)
		if len(got) == 0 || next == "" {
			t.Fatalf("first page of 2 of 7 sessions: got %d sessions and cursor %q, want sessions and a cursor", len(got), next)
		}
		checkSessions(t, "first page", got, ss.acme[:len(got)])
	})
	statusCases := []struct {
		name     string
		statuses []hermes.SessionStatus
	}{
		{"Nil", nil},
		{"Empty", []hermes.SessionStatus{}},
		{"Initializing", []hermes.SessionStatus{hermes.SessionInitializing}},
		{"Active", []hermes.SessionStatus{hermes.SessionActive}},
		{"Draining", []hermes.SessionStatus{hermes.SessionDraining}},
		{"Expired", []hermes.SessionStatus{hermes.SessionExpired}},
		{"InitializingDraining", []hermes.SessionStatus{hermes.SessionDraining, hermes.SessionInitializing}},
		{"Live", []hermes.SessionStatus{hermes.SessionInitializing, hermes.SessionActive, hermes.SessionDraining}},
		{"All", hermes.SessionStatuses},
	}
	t.Run("StatusFilter", func(t *testing.T) {
		ss := x.sessionSet(t)
		for _, c := range statusCases {
			t.Run(c.name, func(t *testing.T) {
				got, next, err := ss.e.s.ListSessions(ss.e.ctx, "acme", c.statuses, 1000, "")
				if err != nil {
					t.Fatalf("ListSessions(%v): %v", c.statuses, err)
				}
				checkSessions(t, fmt.Sprintf("ListSessions acme %v", c.statuses), got, withStatus(ss.acme, c.statuses...))
				if next != "" {
					t.Errorf("next cursor %q, want \"\"", next)
				}
				checkSessions(t, fmt.Sprintf("ListSessions globex %v", c.statuses), ss.e.listAll("globex", c.statuses, 1), withStatus(ss.globex, c.statuses...))
			})
		}
	})
	t.Run("FollowsUpdates", func(t *testing.T) {
		ss := x.sessionSet(t)
		e := ss.e
		s := ss.acme[0] // the newest, active
		e.expire(s, at(10*time.Minute))
		for _, c := range statusCases {
			checkSessions(t, fmt.Sprintf("ListSessions acme %v after an expiry", c.statuses),
				e.listAll("acme", c.statuses, 2), withStatus(ss.acme, c.statuses...))
		}
	})
	t.Run("OtherClients", func(t *testing.T) {
		ss := x.sessionSet(t)
		for _, c := range []string{"nobody", "empty"} {
			if c == "empty" {
				ss.e.createClient(newClient("empty"), Base)
			}
			got, next, err := ss.e.s.ListSessions(ss.e.ctx, c, nil, 10, "")
			ss.e.must("ListSessions "+c, err)
			if len(got) != 0 || next != "" {
				t.Errorf("ListSessions of client %q: got %d sessions and cursor %q, want none and \"\"", c, len(got), next)
			}
		}
	})
	t.Run("InvalidCursor", func(t *testing.T) {
		ss := x.sessionSet(t)
		for _, cursor := range []string{"not a cursor", "!!!!", "{}", "%00", "\x00\xff", strings.Repeat("~", 300)} {
			_, _, err := ss.e.s.ListSessions(ss.e.ctx, "acme", nil, 2, cursor)
			wantKind(t, fmt.Sprintf("ListSessions with cursor %q", cursor), err, hermes.Invalid)
		}
	})
}

func (x *suite) testListLeaseExpired(t *testing.T) {
	now := at(time.Hour)
	setup := func(t *testing.T) (*env, []*hermes.Session) {
		e := x.open(t)
		oa, og := e.world("acme"), e.world("globex")
		mk := func(o owner, status hermes.SessionStatus, expires time.Time) *hermes.Session {
			return e.session(e.thread(o, Base), status, Base, expires)
		}
		a := mk(oa, hermes.SessionActive, now.Add(-3*time.Minute))
		b := mk(oa, hermes.SessionActive, now.Add(-time.Minute))
		c := mk(og, hermes.SessionDraining, now.Add(-2*time.Minute))
		d := mk(og, hermes.SessionInitializing, now) // ExpiresAt == now: passed
		mk(oa, hermes.SessionActive, now.Add(time.Millisecond))
		mk(og, hermes.SessionActive, now.Add(time.Hour))
		mk(oa, hermes.SessionExpired, now.Add(-5*time.Minute)) // expired at Base+1s: not live
		return e, []*hermes.Session{a, c, b, d}
	}
	t.Run("OldestFirst", func(t *testing.T) {
		e, want := setup(t)
		got, err := e.s.ListLeaseExpired(e.ctx, now, 100)
		e.must("ListLeaseExpired", err)
		checkSessions(t, "ListLeaseExpired", got, want)
	})
	t.Run("Limit", func(t *testing.T) {
		e, want := setup(t)
		for _, limit := range []int{1, 2, 3, 4} {
			got, err := e.s.ListLeaseExpired(e.ctx, now, limit)
			e.must("ListLeaseExpired", err)
			checkSessions(t, fmt.Sprintf("ListLeaseExpired limit %d", limit), got, want[:limit])
		}
	})
	t.Run("AtEarlierTimes", func(t *testing.T) {
		e, want := setup(t)
		for _, c := range []struct {
			now  time.Time
			want []*hermes.Session
		}{
			{now.Add(-3 * time.Minute), want[:1]},
			{now.Add(-3*time.Minute - time.Millisecond), nil},
			{now.Add(-time.Millisecond), want[:3]},
			{Base, nil},
		} {
			got, err := e.s.ListLeaseExpired(e.ctx, c.now, 100)
			e.must("ListLeaseExpired", err)
			checkSessions(t, "ListLeaseExpired at "+c.now.Format(time.RFC3339Nano), got, c.want)
		}
	})
	t.Run("ExcludesExpired", func(t *testing.T) {
		e, want := setup(t)
		e.expire(want[0], now)
		got, err := e.s.ListLeaseExpired(e.ctx, now, 100)
		e.must("ListLeaseExpired", err)
		checkSessions(t, "ListLeaseExpired once the oldest is expired", got, want[1:])
	})
}

func (x *suite) testCountSessions(t *testing.T) {
	t.Run("Empty", func(t *testing.T) {
		e := x.open(t)
		n, err := e.s.CountSessions(e.ctx, hermes.SessionStatuses...)
		e.must("CountSessions", err)
		if n != 0 {
			t.Errorf("CountSessions of an empty store: %d, want 0", n)
		}
	})
	t.Run("ByStatus", func(t *testing.T) {
		ss := x.sessionSet(t)
		all := append(slices.Clone(ss.acme), ss.globex...)
		check := func(when string) {
			t.Helper()
			for _, statuses := range [][]hermes.SessionStatus{
				{hermes.SessionInitializing}, {hermes.SessionActive}, {hermes.SessionDraining}, {hermes.SessionExpired},
				{hermes.SessionInitializing, hermes.SessionDraining},
				{hermes.SessionInitializing, hermes.SessionActive, hermes.SessionDraining},
				hermes.SessionStatuses,
			} {
				n, err := ss.e.s.CountSessions(ss.e.ctx, statuses...)
				ss.e.must("CountSessions", err)
				if want := len(withStatus(all, statuses...)); n != want {
					t.Errorf("CountSessions(%v) %s: %d, want %d", statuses, when, n, want)
				}
			}
		}
		check("")
		ss.e.expire(ss.acme[0], at(10*time.Minute))
		check("after an expiry")
	})
}

// ---------------------------------------------------------------------------
// History

func (x *suite) testHistory(t *testing.T) {
	setup := func(t *testing.T) (*env, *hermes.Session) {
		e := x.open(t)
		o := e.world("acme")
		return e, e.session(e.thread(o, Base), hermes.SessionActive, Base, at(time.Hour))
	}
	list := func(t *testing.T, e *env, id string) []*hermes.HistoryEntry {
		t.Helper()
		hs, err := e.s.ListHistory(e.ctx, id)
		e.must("ListHistory", err)
		return hs
	}
	t.Run("AppendIdempotent", func(t *testing.T) {
		e, s := setup(t)
		h1 := newEntry(s, at(time.Second), hermes.KindInstruction, "first")
		h2 := newEntry(s, at(2*time.Second), hermes.KindAck, "second")
		e.must("AppendHistory", e.s.AppendHistory(e.ctx, cloneEntry(h1)))
		e.must("AppendHistory of the same entry again", e.s.AppendHistory(e.ctx, cloneEntry(h1)))
		changed := cloneEntry(h1)
		changed.Text, changed.Meta = "changed on retry", map[string]string{"retry": "1"}
		e.must("AppendHistory of the same id with other content", e.s.AppendHistory(e.ctx, changed))
		checkEqual(t, "ListHistory after appending one id three times (the first write stays)", list(t, e, s.ID), []*hermes.HistoryEntry{h1})
		e.must("AppendHistory of an old and a new entry", e.s.AppendHistory(e.ctx, cloneEntry(h1), cloneEntry(h2)))
		checkEqual(t, "ListHistory after appending an old and a new entry", list(t, e, s.ID), []*hermes.HistoryEntry{h1, h2})
	})
	t.Run("AppendUnknownSession", func(t *testing.T) {
		e, s := setup(t)
		ghost := cloneSession(s)
		ghost.ID = hermes.NewToken()
		h := newEntry(ghost, at(time.Second), hermes.KindAck, "to nobody")
		wantKind(t, "AppendHistory to an unknown session", e.s.AppendHistory(e.ctx, h), hermes.NotFound)
		if hs := list(t, e, ghost.ID); len(hs) != 0 {
			t.Errorf("ListHistory of the unknown session: got %d entries, want none", len(hs))
		}
	})
	t.Run("ListUnknownSession", func(t *testing.T) {
		e := x.open(t)
		hs, err := e.s.ListHistory(e.ctx, hermes.NewToken())
		e.must("ListHistory of an unknown session", err)
		if len(hs) != 0 {
			t.Errorf("ListHistory of an unknown session: got %d entries, want none", len(hs))
		}
	})
	t.Run("OldestFirst", func(t *testing.T) {
		e, s := setup(t)
		var want []*hermes.HistoryEntry
		add := func(created time.Duration, idAt time.Duration, text string) *hermes.HistoryEntry {
			h := newEntry(s, at(created), hermes.KindPlan, text)
			h.ID = hermes.NewSortableID(at(idAt)) // ids need not follow CreatedAt
			want = append(want, h)
			return h
		}
		late := add(5*time.Second, time.Second, "late, with an early id")
		early := add(2*time.Second, 9*time.Second, "early, with a late id")
		tie1 := add(3*time.Second, 3*time.Second, "tie 1")
		tie2 := add(3*time.Second, 3*time.Second, "tie 2")
		tie3 := add(3*time.Second, 3*time.Second, "tie 3")
		first := add(time.Second, time.Second, "first")
		e.must("AppendHistory", e.s.AppendHistory(e.ctx, cloneEntries([]*hermes.HistoryEntry{tie2, late})...))
		e.must("AppendHistory", e.s.AppendHistory(e.ctx, cloneEntry(early)))
		e.must("AppendHistory", e.s.AppendHistory(e.ctx, cloneEntries([]*hermes.HistoryEntry{tie3, first, tie1})...))
		slices.SortFunc(want, func(a, b *hermes.HistoryEntry) int {
			return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
		})
		checkEqual(t, "ListHistory (by CreatedAt, then id)", list(t, e, s.ID), want)
	})
	t.Run("PerSession", func(t *testing.T) {
		e, s := setup(t)
		o := owner{s.ClientID, s.ProjectID, s.UserID}
		s2 := e.session(e.thread(o, Base), hermes.SessionActive, Base, at(time.Hour))
		h1 := newEntry(s, at(time.Second), hermes.KindAck, "for s")
		h2 := newEntry(s2, at(time.Second), hermes.KindAck, "for s2")
		e.must("AppendHistory", e.s.AppendHistory(e.ctx, cloneEntry(h1), cloneEntry(h2)))
		checkEqual(t, "ListHistory s", list(t, e, s.ID), []*hermes.HistoryEntry{h1})
		checkEqual(t, "ListHistory s2", list(t, e, s2.ID), []*hermes.HistoryEntry{h2})
	})
	t.Run("ExpiredSession", func(t *testing.T) {
		// History is kept and appended to after a session expires (a
		// result can arrive after the lease ended).
		e, s := setup(t)
		h1 := newEntry(s, at(time.Second), hermes.KindInstruction, "before")
		e.must("AppendHistory", e.s.AppendHistory(e.ctx, cloneEntry(h1)))
		e.expire(s, at(time.Minute))
		h2 := newEntry(s, at(2*time.Minute), hermes.KindResult, "after")
		e.must("AppendHistory to an expired session", e.s.AppendHistory(e.ctx, cloneEntry(h2)))
		checkEqual(t, "ListHistory of an expired session", list(t, e, s.ID), []*hermes.HistoryEntry{h1, h2})
	})
}

// ---------------------------------------------------------------------------
// Round trips and copies

func (x *suite) testRoundTrip(t *testing.T) {
	t.Run("Projects", func(t *testing.T) {
		e := x.open(t)
		e.createClient(newClient("acme"), Base)
		ack := true
		claude := newProject("acme", "claude", []string{"claude@acme.example.com"}, nil, nil)
		claude.Agent = hermes.Agent{Kind: hermes.AgentClaude, Model: "claude-opus-4-1", Args: []string{"--max-turns", "20"}}
		claude.Acknowledge = &ack
		claude.PreviewURLTemplate = "http://localhost:8080/{thread}"
		bare := newProject("acme", "bare", nil, nil, nil)
		for _, p := range []*hermes.Project{fullProject("acme", "full"), claude, bare} {
			want := e.createProject(p, at(time.Second))
			got, err := e.s.GetProject(e.ctx, "acme", p.ID)
			e.must("GetProject", err)
			checkEqual(t, "GetProject "+p.ID, got, want)
			for kind, addrs := range p.Addresses() {
				for _, a := range addrs {
					got, err := e.s.ProjectByAddress(e.ctx, kind, a)
					e.must("ProjectByAddress", err)
					checkEqual(t, "ProjectByAddress "+a, got, want)
				}
			}
			ps, err := e.s.ListProjects(e.ctx, "acme")
			e.must("ListProjects", err)
			i := slices.IndexFunc(ps, func(q *hermes.Project) bool { return q.ID == p.ID })
			if i < 0 {
				t.Errorf("ListProjects lacks %s", p.ID)
				continue
			}
			checkEqual(t, "ListProjects' "+p.ID, ps[i], want)
		}
	})
	t.Run("Users", func(t *testing.T) {
		e := x.open(t)
		e.createClient(newClient("acme"), Base)
		u := newUser("acme", "ann", []string{"ann@example.com", "ann.smith@acme.example.com"}, []string{"+15550100002", "+447700900124"}, []string{"U0ANN", "W0ANN@acme"})
		u.Name = "Ann Smith — ünïcode"
		want := e.createUser(u, at(time.Second))
		got, err := e.s.GetUser(e.ctx, "acme", "ann")
		e.must("GetUser", err)
		checkEqual(t, "GetUser", got, want)
		for kind, ids := range u.Identities() {
			for _, id := range ids {
				got, err := e.s.UserByIdentity(e.ctx, "acme", kind, id)
				e.must("UserByIdentity", err)
				checkEqual(t, "UserByIdentity "+id, got, want)
			}
		}
		us, err := e.s.ListUsers(e.ctx, "acme")
		e.must("ListUsers", err)
		checkEqual(t, "ListUsers", us, []*hermes.User{want})
	})
	t.Run("Sessions", func(t *testing.T) {
		e := x.open(t)
		o := e.world("acme")
		th := newThread(o.client, o.project, o.user, at(time.Second))
		th.Channel, th.Subject, th.UpdatedAt = hermes.ChannelChat, "", at(time.Minute)
		e.must("CreateThread", e.s.CreateThread(e.ctx, cloneThread(th)))
		s := newSession(th, hermes.SessionDraining, at(2*time.Second), at(time.Hour))
		s.Reason = "operator note"
		s.LastActivity = at(3 * time.Second)
		s.LastResult = fullResult(th)
		h := newEntry(s, at(2*time.Second), hermes.KindInstruction, "Make the logo bigger.\nAnd blue. ✓")
		h.Meta = map[string]string{"messageId": "<a@b>", "from": "ann@example.com", "empty": ""}
		e.must("CreateSession", e.s.CreateSession(e.ctx, cloneSession(s), cloneEntry(h)))
		s.Version = 1
		gotTh, err := e.s.GetThread(e.ctx, th.ID)
		e.must("GetThread", err)
		checkEqual(t, "GetThread", gotTh, th)
		got, err := e.s.GetSession(e.ctx, s.ID)
		e.must("GetSession", err)
		checkEqual(t, "GetSession", got, s)
		live, err := e.s.LiveSessionForThread(e.ctx, th.ID)
		e.must("LiveSessionForThread", err)
		checkEqual(t, "LiveSessionForThread", live, s)
		page, _, err := e.s.ListSessions(e.ctx, "acme", nil, 10, "")
		e.must("ListSessions", err)
		checkEqual(t, "ListSessions", page, []*hermes.Session{s})
		exp, err := e.s.ListLeaseExpired(e.ctx, at(2*time.Hour), 10)
		e.must("ListLeaseExpired", err)
		checkEqual(t, "ListLeaseExpired", exp, []*hermes.Session{s})
		hs, err := e.s.ListHistory(e.ctx, s.ID)
		e.must("ListHistory", err)
		checkEqual(t, "ListHistory", hs, []*hermes.HistoryEntry{h})

		h2 := newEntry(s, at(4*time.Second), hermes.KindResult, "Done.")
		h2.Direction, h2.Channel = hermes.DirectionOut, hermes.ChannelChat
		e.must("AppendHistory", e.s.AppendHistory(e.ctx, cloneEntry(h2)))
		hs, err = e.s.ListHistory(e.ctx, s.ID)
		e.must("ListHistory", err)
		checkEqual(t, "ListHistory after AppendHistory", hs, []*hermes.HistoryEntry{h, h2})
	})
	t.Run("TimesComeBackInUTC", func(t *testing.T) {
		// Times written in another zone come back as the same instant in UTC.
		e := x.open(t)
		zone := time.FixedZone("UTC+5:30", 5*3600+1800)
		local := func(d time.Duration) time.Time { return at(d).In(zone) }
		e.must("CreateClient", e.s.CreateClient(e.ctx, newClient("acme"), local(time.Second)))
		c, err := e.s.GetClient(e.ctx, "acme")
		e.must("GetClient", err)
		checkEqual(t, "GetClient", c, &hermes.Client{ID: "acme", Name: "Client acme", CreatedAt: at(time.Second), UpdatedAt: at(time.Second)})
		e.createProject(newProject("acme", "site", nil, nil, nil), Base)
		e.createUser(newUser("acme", "owner", nil, nil, nil), Base)
		th := newThread("acme", "site", "owner", local(time.Second))
		e.must("CreateThread", e.s.CreateThread(e.ctx, cloneThread(th)))
		s := newSession(th, hermes.SessionActive, local(2*time.Second), local(time.Hour))
		s.LastResult = fullResult(th)
		s.LastResult.FinishedAt = local(3 * time.Second)
		h := newEntry(s, local(2*time.Second), hermes.KindAck, "ok")
		e.must("CreateSession", e.s.CreateSession(e.ctx, cloneSession(s), cloneEntry(h)))
		s.Version = 1
		gotTh, err := e.s.GetThread(e.ctx, th.ID)
		e.must("GetThread", err)
		checkEqual(t, "GetThread", gotTh, th)
		got, err := e.s.GetSession(e.ctx, s.ID)
		e.must("GetSession", err)
		checkEqual(t, "GetSession", got, s)
		hs, err := e.s.ListHistory(e.ctx, s.ID)
		e.must("ListHistory", err)
		checkEqual(t, "ListHistory", hs, []*hermes.HistoryEntry{h})
		exp, err := e.s.ListLeaseExpired(e.ctx, local(time.Hour), 10)
		e.must("ListLeaseExpired", err)
		checkEqual(t, "ListLeaseExpired with a zoned now", exp, []*hermes.Session{s})
	})
}

func (x *suite) testCopies(t *testing.T) {
	t.Run("PassedInNotRetained", func(t *testing.T) {
		e := x.open(t)
		e.createClient(newClient("acme"), Base)
		p := fullProject("acme", "site")
		want := cloneProject(p)
		want.CreatedAt, want.UpdatedAt = Base, Base
		e.must("CreateProject", e.s.CreateProject(e.ctx, p, Base))
		p.Name, p.EmailAddresses[0], p.Build.Command[0], p.Agent.Command[0], *p.Acknowledge = "mutated", "mutated@example.com", "mutated", "mutated", true
		got, err := e.s.GetProject(e.ctx, "acme", "site")
		e.must("GetProject", err)
		checkEqual(t, "GetProject after mutating the created project", got, want)

		e.createUser(newUser("acme", "owner", nil, nil, nil), Base)
		th := e.thread(owner{"acme", "site", "owner"}, Base)
		s := newSession(th, hermes.SessionActive, Base, at(time.Hour))
		s.LastResult = fullResult(th)
		h := newEntry(s, Base, hermes.KindInstruction, "hello")
		wantS, wantH := cloneSession(s), cloneEntry(h)
		wantS.Version = 1
		e.must("CreateSession", e.s.CreateSession(e.ctx, s, h))
		s.Status, s.LastResult.FilesChanged[0], h.Text, h.Meta["messageId"] = hermes.SessionExpired, "mutated", "mutated", "mutated"
		gotS, err := e.s.GetSession(e.ctx, wantS.ID)
		e.must("GetSession", err)
		checkEqual(t, "GetSession after mutating the created session", gotS, wantS)
		hs, err := e.s.ListHistory(e.ctx, wantS.ID)
		e.must("ListHistory", err)
		checkEqual(t, "ListHistory after mutating the created entry", hs, []*hermes.HistoryEntry{wantH})
	})
	t.Run("ReturnedAreCopies", func(t *testing.T) {
		e := x.open(t)
		e.createClient(newClient("acme"), Base)
		want := e.createProject(fullProject("acme", "site"), Base)
		got, err := e.s.GetProject(e.ctx, "acme", "site")
		e.must("GetProject", err)
		got.Name, got.EmailAddresses[0], got.Build.Command[0], *got.Acknowledge = "mutated", "mutated@example.com", "mutated", true
		ps, err := e.s.ListProjects(e.ctx, "acme")
		e.must("ListProjects", err)
		ps[0].SMSNumbers[0] = "+19999999999"
		got, err = e.s.GetProject(e.ctx, "acme", "site")
		e.must("GetProject", err)
		checkEqual(t, "GetProject after mutating returned projects", got, want)

		e.createUser(newUser("acme", "owner", nil, nil, nil), Base)
		th := e.thread(owner{"acme", "site", "owner"}, Base)
		s := newSession(th, hermes.SessionActive, Base, at(time.Hour))
		s.LastResult = fullResult(th)
		h := newEntry(s, Base, hermes.KindInstruction, "hello")
		e.must("CreateSession", e.s.CreateSession(e.ctx, cloneSession(s), cloneEntry(h)))
		s.Version = 1
		gs, err := e.s.GetSession(e.ctx, s.ID)
		e.must("GetSession", err)
		gs.Status, gs.LastResult.FilesChanged[0] = hermes.SessionExpired, "mutated"
		us, err := e.s.UpdateSession(e.ctx, s.ID, func(x *hermes.Session) error { return nil })
		e.must("UpdateSession", err)
		s.Version = us.Version
		us.PreviewURL, us.LastResult.Summary = "mutated", "mutated"
		hs, err := e.s.ListHistory(e.ctx, s.ID)
		e.must("ListHistory", err)
		hs[0].Text, hs[0].Meta["messageId"] = "mutated", "mutated"
		gs, err = e.s.GetSession(e.ctx, s.ID)
		e.must("GetSession", err)
		checkEqual(t, "GetSession after mutating returned sessions", gs, s)
		hs, err = e.s.ListHistory(e.ctx, s.ID)
		e.must("ListHistory", err)
		checkEqual(t, "ListHistory after mutating returned entries", hs, []*hermes.HistoryEntry{h})
	})
}

// ---------------------------------------------------------------------------
// Deep copies

func cloneClient(c *hermes.Client) *hermes.Client { x := *c; return &x }

func cloneProject(p *hermes.Project) *hermes.Project {
	x := *p
	x.EmailAddresses = slices.Clone(p.EmailAddresses)
	x.SMSNumbers = slices.Clone(p.SMSNumbers)
	x.SlackChannels = slices.Clone(p.SlackChannels)
	if p.Build != nil {
		b := *p.Build
		b.Command = slices.Clone(b.Command)
		x.Build = &b
	}
	x.Agent.Command = slices.Clone(p.Agent.Command)
	x.Agent.Args = slices.Clone(p.Agent.Args)
	if p.Acknowledge != nil {
		a := *p.Acknowledge
		x.Acknowledge = &a
	}
	return &x
}

func cloneUser(u *hermes.User) *hermes.User {
	x := *u
	x.Emails = slices.Clone(u.Emails)
	x.Phones = slices.Clone(u.Phones)
	x.ChatIDs = slices.Clone(u.ChatIDs)
	return &x
}

func cloneThread(t *hermes.Thread) *hermes.Thread { x := *t; return &x }

func cloneSession(s *hermes.Session) *hermes.Session {
	x := *s
	x.LastResult = cloneResult(s.LastResult)
	return &x
}

func cloneResult(r *hermes.Result) *hermes.Result {
	if r == nil {
		return nil
	}
	x := *r
	x.FilesChanged = slices.Clone(r.FilesChanged)
	return &x
}

func cloneEntry(h *hermes.HistoryEntry) *hermes.HistoryEntry {
	x := *h
	if h.Meta != nil {
		x.Meta = make(map[string]string, len(h.Meta))
		for k, v := range h.Meta {
			x.Meta[k] = v
		}
	}
	return &x
}

func cloneEntries(hs []*hermes.HistoryEntry) []*hermes.HistoryEntry {
	out := make([]*hermes.HistoryEntry, len(hs))
	for i, h := range hs {
		out[i] = cloneEntry(h)
	}
	return out
}

// ---------------------------------------------------------------------------
// Comparison

var timeType = reflect.TypeFor[time.Time]()

// checkEqual reports every difference between got and want. Times are equal
// when they are the same instant and got is in UTC (stores keep times in
// UTC); a nil slice or map equals an empty one (the contract does not tell
// them apart); everything else must be deeply equal.
func checkEqual(t testing.TB, what string, got, want any) bool {
	t.Helper()
	var diffs []string
	diffValue(&diffs, "", reflect.ValueOf(got), reflect.ValueOf(want))
	if len(diffs) == 0 {
		return true
	}
	if len(diffs) > 12 {
		diffs = append(diffs[:12], fmt.Sprintf("… and %d more", len(diffs)-12))
	}
	t.Errorf("%s differs from what was written:\n  %s", what, strings.Join(diffs, "\n  "))
	return false
}

func diffValue(out *[]string, path string, got, want reflect.Value) {
	add := func(format string, args ...any) {
		p := path
		if p == "" {
			p = "value"
		}
		*out = append(*out, p+": "+fmt.Sprintf(format, args...))
	}
	if !got.IsValid() || !want.IsValid() {
		if got.IsValid() != want.IsValid() {
			add("got %v, want %v", got, want)
		}
		return
	}
	if got.Type() != want.Type() {
		add("got a %s, want a %s", got.Type(), want.Type())
		return
	}
	if want.Type() == timeType {
		g, w := got.Interface().(time.Time), want.Interface().(time.Time)
		switch {
		case !g.Equal(w):
			add("got %s, want %s", g.Format(time.RFC3339Nano), w.Format(time.RFC3339Nano))
		case g.Location() != time.UTC:
			add("got %s (zone %q), want the same instant in UTC", g.Format(time.RFC3339Nano), g.Location())
		}
		return
	}
	switch want.Kind() {
	case reflect.Pointer, reflect.Interface:
		if got.IsNil() || want.IsNil() {
			if got.IsNil() != want.IsNil() {
				add("got %s, want %s", nilOr(got), nilOr(want))
			}
			return
		}
		diffValue(out, path, got.Elem(), want.Elem())
	case reflect.Struct:
		for i := range want.NumField() {
			f := want.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			diffValue(out, join(path, f.Name), got.Field(i), want.Field(i))
		}
	case reflect.Slice, reflect.Array:
		if got.Len() != want.Len() {
			add("got %d elements %s, want %d %s", got.Len(), short(got), want.Len(), short(want))
			return
		}
		for i := range want.Len() {
			diffValue(out, fmt.Sprintf("%s[%d]", path, i), got.Index(i), want.Index(i))
		}
	case reflect.Map:
		if got.Len() != want.Len() {
			add("got %s, want %s", short(got), short(want))
			return
		}
		for _, k := range want.MapKeys() {
			g := got.MapIndex(k)
			if !g.IsValid() {
				add("got %s, want %s", short(got), short(want))
				return
			}
			diffValue(out, fmt.Sprintf("%s[%v]", path, k), g, want.MapIndex(k))
		}
	default:
		if !reflect.DeepEqual(got.Interface(), want.Interface()) {
			add("got %#v, want %#v", got.Interface(), want.Interface())
		}
	}
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func nilOr(v reflect.Value) string {
	if v.IsNil() {
		return "nil"
	}
	return "non-nil"
}

func short(v reflect.Value) string {
	s := fmt.Sprintf("%v", v.Interface())
	if v.Kind() == reflect.Slice {
		if _, ok := v.Interface().([]string); !ok && v.Len() > 0 {
			// Slices of records: name them by id where they have one.
			var ids []string
			for i := range v.Len() {
				e := reflect.Indirect(v.Index(i))
				if e.Kind() == reflect.Struct {
					if f := e.FieldByName("ID"); f.IsValid() {
						ids = append(ids, fmt.Sprint(f.Interface()))
						continue
					}
				}
				ids = append(ids, "?")
			}
			s = "[" + strings.Join(ids, " ") + "]"
		}
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
