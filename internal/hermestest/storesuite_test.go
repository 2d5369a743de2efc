package hermestest

import (
	"cmp"
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webordinary/hermes"
)

// TestStoreSuite runs the suite against refStore, a plain in-memory
// reference implementation of the contract, so that the suite itself is
// checked: every failure here is a bug of the suite or of refStore.
func TestStoreSuite(t *testing.T) {
	StoreSuite(t, StoreOpener{
		New: func(t *testing.T) hermes.Store { return &refHandle{db: newRefDB()} },
		Reopen: func(t *testing.T, s hermes.Store) hermes.Store {
			return &refHandle{db: s.(*refHandle).db}
		},
	})
}

// TestStoreSuiteWithoutReopen checks that the suite runs with New alone.
func TestStoreSuiteWithoutReopen(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	StoreSuite(t, StoreOpener{
		New: func(t *testing.T) hermes.Store { return &refHandle{db: newRefDB()} },
	})
}

type refDB struct {
	mu       sync.Mutex
	clients  map[string]*hermes.Client
	projects map[[2]string]*hermes.Project // client, project
	users    map[[2]string]*hermes.User
	threads  map[string]*hermes.Thread
	sessions map[string]*hermes.Session
	history  map[string]*hermes.HistoryEntry

	refs       map[string]string // thread reference → thread id
	intake     map[[2]string]*refClaim
	outbox     map[string]*hermes.OutboxItem
	claimed    map[string]time.Time // outbox id → end of its claim
	containers map[string]*hermes.Container
	approvals  map[string]*hermes.Approval // storesuite_approvals_test.go
}

// refClaim is the intake record of one channel message.
type refClaim struct {
	until time.Time // the claim holds while now is before until
	done  bool
}

func newRefDB() *refDB {
	return &refDB{
		clients:  map[string]*hermes.Client{},
		projects: map[[2]string]*hermes.Project{},
		users:    map[[2]string]*hermes.User{},
		threads:  map[string]*hermes.Thread{},
		sessions: map[string]*hermes.Session{},
		history:  map[string]*hermes.HistoryEntry{},

		refs:       map[string]string{},
		intake:     map[[2]string]*refClaim{},
		outbox:     map[string]*hermes.OutboxItem{},
		claimed:    map[string]time.Time{},
		containers: map[string]*hermes.Container{},
		approvals:  map[string]*hermes.Approval{},
	}
}

// refHandle is one handle on a refDB; closing it does not affect others.
type refHandle struct {
	db     *refDB
	closed bool
	cmu    sync.Mutex
}

var _ hermes.Store = (*refHandle)(nil)

func (h *refHandle) lock(ctx context.Context) (*refDB, func(), error) {
	h.cmu.Lock()
	closed := h.closed
	h.cmu.Unlock()
	if closed {
		return nil, nil, hermes.Errorf(hermes.Internal, "store closed")
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, hermes.E("ref", hermes.Unavailable, err)
	}
	h.db.mu.Lock()
	return h.db, h.db.mu.Unlock, nil
}

func utc(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

func (h *refHandle) Ping(ctx context.Context) error {
	_, unlock, err := h.lock(ctx)
	if err != nil {
		return err
	}
	unlock()
	return nil
}

func (h *refHandle) Close() error {
	h.cmu.Lock()
	defer h.cmu.Unlock()
	h.closed = true
	return nil
}

func (h *refHandle) CreateClient(ctx context.Context, c *hermes.Client, now time.Time) error {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if db.clients[c.ID] != nil {
		return hermes.Errorf(hermes.Conflict, "client exists")
	}
	x := cloneClient(c)
	x.CreatedAt, x.UpdatedAt = utc(now), utc(now)
	db.clients[c.ID] = x
	return nil
}

func (h *refHandle) GetClient(ctx context.Context, id string) (*hermes.Client, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if c := db.clients[id]; c != nil {
		return cloneClient(c), nil
	}
	return nil, hermes.Errorf(hermes.NotFound, "no client")
}

func (h *refHandle) ListClients(ctx context.Context) ([]*hermes.Client, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out []*hermes.Client
	for _, c := range db.clients {
		out = append(out, cloneClient(c))
	}
	slices.SortFunc(out, func(a, b *hermes.Client) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (h *refHandle) UpdateClient(ctx context.Context, c *hermes.Client, now time.Time) error {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	old := db.clients[c.ID]
	if old == nil {
		return hermes.Errorf(hermes.NotFound, "no client")
	}
	x := cloneClient(c)
	x.CreatedAt, x.UpdatedAt = old.CreatedAt, utc(now)
	db.clients[c.ID] = x
	return nil
}

func (db *refDB) live(match func(*hermes.Session) bool) bool {
	for _, s := range db.sessions {
		if s.Status.Live() && match(s) {
			return true
		}
	}
	return false
}

func (h *refHandle) DeleteClient(ctx context.Context, id string) error {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if db.clients[id] == nil {
		return hermes.Errorf(hermes.NotFound, "no client")
	}
	if db.live(func(s *hermes.Session) bool { return s.ClientID == id }) {
		return hermes.Errorf(hermes.Conflict, "live session")
	}
	delete(db.clients, id)
	for k := range db.projects {
		if k[0] == id {
			delete(db.projects, k)
		}
	}
	for k := range db.users {
		if k[0] == id {
			delete(db.users, k)
		}
	}
	for tid, t := range db.threads {
		if t.ClientID == id {
			delete(db.threads, tid)
		}
	}
	for r, tid := range db.refs {
		if db.threads[tid] == nil {
			delete(db.refs, r)
		}
	}
	for aid, a := range db.approvals {
		if db.threads[a.ThreadID] == nil {
			delete(db.approvals, aid)
		}
	}
	for sid, s := range db.sessions {
		if s.ClientID == id {
			delete(db.sessions, sid)
		}
	}
	for hid, e := range db.history {
		if db.sessions[e.SessionID] == nil {
			delete(db.history, hid)
		}
	}
	return nil
}

func (db *refDB) addressTaken(p *hermes.Project) bool {
	for k, q := range db.projects {
		if k == [2]string{p.ClientID, p.ID} {
			continue
		}
		for kind, addrs := range p.Addresses() {
			for _, a := range addrs {
				if slices.Contains(q.Addresses()[kind], a) {
					return true
				}
			}
		}
	}
	return false
}

func (h *refHandle) CreateProject(ctx context.Context, p *hermes.Project, now time.Time) error {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if db.clients[p.ClientID] == nil {
		return hermes.Errorf(hermes.NotFound, "no client")
	}
	k := [2]string{p.ClientID, p.ID}
	if db.projects[k] != nil || db.addressTaken(p) {
		return hermes.Errorf(hermes.Conflict, "project or address exists")
	}
	x := cloneProject(p)
	x.CreatedAt, x.UpdatedAt = utc(now), utc(now)
	db.projects[k] = x
	return nil
}

func (h *refHandle) GetProject(ctx context.Context, clientID, projectID string) (*hermes.Project, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if p := db.projects[[2]string{clientID, projectID}]; p != nil {
		return cloneProject(p), nil
	}
	return nil, hermes.Errorf(hermes.NotFound, "no project")
}

func (h *refHandle) ListProjects(ctx context.Context, clientID string) ([]*hermes.Project, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out []*hermes.Project
	for k, p := range db.projects {
		if k[0] == clientID {
			out = append(out, cloneProject(p))
		}
	}
	slices.SortFunc(out, func(a, b *hermes.Project) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (h *refHandle) UpdateProject(ctx context.Context, p *hermes.Project, now time.Time) error {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	k := [2]string{p.ClientID, p.ID}
	old := db.projects[k]
	if old == nil {
		return hermes.Errorf(hermes.NotFound, "no project")
	}
	if db.addressTaken(p) {
		return hermes.Errorf(hermes.Conflict, "address taken")
	}
	x := cloneProject(p)
	x.CreatedAt, x.UpdatedAt = old.CreatedAt, utc(now)
	db.projects[k] = x
	return nil
}

func (h *refHandle) DeleteProject(ctx context.Context, clientID, projectID string) error {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	k := [2]string{clientID, projectID}
	if db.projects[k] == nil {
		return hermes.Errorf(hermes.NotFound, "no project")
	}
	if db.live(func(s *hermes.Session) bool { return s.ClientID == clientID && s.ProjectID == projectID }) {
		return hermes.Errorf(hermes.Conflict, "live session")
	}
	delete(db.projects, k)
	return nil
}

func (h *refHandle) ProjectByAddress(ctx context.Context, kind, address string) (*hermes.Project, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if kind == hermes.AddressEmail {
		address = strings.ToLower(address)
	}
	for _, p := range db.projects {
		if slices.Contains(p.Addresses()[kind], address) {
			return cloneProject(p), nil
		}
	}
	return nil, hermes.Errorf(hermes.NotFound, "no project")
}

func (db *refDB) identityTaken(u *hermes.User) bool {
	for k, q := range db.users {
		if k[0] != u.ClientID || k[1] == u.ID {
			continue
		}
		for kind, ids := range u.Identities() {
			for _, id := range ids {
				if slices.Contains(q.Identities()[kind], id) {
					return true
				}
			}
		}
	}
	return false
}

func (h *refHandle) CreateUser(ctx context.Context, u *hermes.User, now time.Time) error {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if db.clients[u.ClientID] == nil {
		return hermes.Errorf(hermes.NotFound, "no client")
	}
	k := [2]string{u.ClientID, u.ID}
	if db.users[k] != nil || db.identityTaken(u) {
		return hermes.Errorf(hermes.Conflict, "user or identity exists")
	}
	x := cloneUser(u)
	x.CreatedAt, x.UpdatedAt = utc(now), utc(now)
	db.users[k] = x
	return nil
}

func (h *refHandle) GetUser(ctx context.Context, clientID, userID string) (*hermes.User, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if u := db.users[[2]string{clientID, userID}]; u != nil {
		return cloneUser(u), nil
	}
	return nil, hermes.Errorf(hermes.NotFound, "no user")
}

func (h *refHandle) ListUsers(ctx context.Context, clientID string) ([]*hermes.User, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out []*hermes.User
	for k, u := range db.users {
		if k[0] == clientID {
			out = append(out, cloneUser(u))
		}
	}
	slices.SortFunc(out, func(a, b *hermes.User) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (h *refHandle) UpdateUser(ctx context.Context, u *hermes.User, now time.Time) error {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	k := [2]string{u.ClientID, u.ID}
	old := db.users[k]
	if old == nil {
		return hermes.Errorf(hermes.NotFound, "no user")
	}
	if db.identityTaken(u) {
		return hermes.Errorf(hermes.Conflict, "identity taken")
	}
	x := cloneUser(u)
	x.CreatedAt, x.UpdatedAt = old.CreatedAt, utc(now)
	db.users[k] = x
	return nil
}

func (h *refHandle) DeleteUser(ctx context.Context, clientID, userID string) error {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	k := [2]string{clientID, userID}
	if db.users[k] == nil {
		return hermes.Errorf(hermes.NotFound, "no user")
	}
	if db.live(func(s *hermes.Session) bool { return s.ClientID == clientID && s.UserID == userID }) {
		return hermes.Errorf(hermes.Conflict, "live session")
	}
	delete(db.users, k)
	return nil
}

func (h *refHandle) UserByIdentity(ctx context.Context, clientID, kind, identity string) (*hermes.User, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	for k, u := range db.users {
		if k[0] == clientID && slices.Contains(u.Identities()[kind], identity) {
			return cloneUser(u), nil
		}
	}
	return nil, hermes.Errorf(hermes.NotFound, "no user")
}

func refThread(t *hermes.Thread) *hermes.Thread {
	x := cloneThread(t)
	x.CreatedAt, x.UpdatedAt = utc(t.CreatedAt), utc(t.UpdatedAt)
	return x
}

func refSession(s *hermes.Session) *hermes.Session {
	x := cloneSession(s)
	x.CreatedAt, x.LastActivity, x.ExpiresAt = utc(s.CreatedAt), utc(s.LastActivity), utc(s.ExpiresAt)
	if x.LastResult != nil {
		x.LastResult.FinishedAt = utc(x.LastResult.FinishedAt)
	}
	return x
}

func refEntry(h *hermes.HistoryEntry) *hermes.HistoryEntry {
	x := cloneEntry(h)
	x.CreatedAt = utc(h.CreatedAt)
	return x
}

func (h *refHandle) CreateThread(ctx context.Context, t *hermes.Thread) error {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if db.threads[t.ID] != nil {
		return hermes.Errorf(hermes.Conflict, "thread exists")
	}
	if t.Token != "" && db.threadByToken(t.Token) != nil {
		return hermes.Errorf(hermes.Conflict, "token taken")
	}
	db.threads[t.ID] = refThread(t)
	return nil
}

func (h *refHandle) GetThread(ctx context.Context, id string) (*hermes.Thread, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if t := db.threads[id]; t != nil {
		return cloneThread(t), nil
	}
	return nil, hermes.Errorf(hermes.NotFound, "no thread")
}

func (h *refHandle) CreateSession(ctx context.Context, s *hermes.Session, history ...*hermes.HistoryEntry) error {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if db.threads[s.ThreadID] == nil {
		return hermes.Errorf(hermes.NotFound, "no thread")
	}
	if db.sessions[s.ID] != nil || db.live(func(x *hermes.Session) bool { return x.ThreadID == s.ThreadID }) {
		return hermes.Errorf(hermes.Conflict, "session exists")
	}
	x := refSession(s)
	x.Version = 1
	db.sessions[s.ID] = x
	for _, e := range history {
		if db.history[e.ID] == nil {
			db.history[e.ID] = refEntry(e)
		}
	}
	return nil
}

func (h *refHandle) GetSession(ctx context.Context, id string) (*hermes.Session, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if s := db.sessions[id]; s != nil {
		return cloneSession(s), nil
	}
	return nil, hermes.Errorf(hermes.NotFound, "no session")
}

func (h *refHandle) LiveSessionForThread(ctx context.Context, threadID string) (*hermes.Session, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	for _, s := range db.sessions {
		if s.ThreadID == threadID && s.Status.Live() {
			return cloneSession(s), nil
		}
	}
	return nil, hermes.Errorf(hermes.NotFound, "no live session")
}

// UpdateSession reads, applies fn without the lock and writes back with
// compare-and-set, so that the suite's races exercise the retry path.
func (h *refHandle) UpdateSession(ctx context.Context, id string, fn func(*hermes.Session) error) (*hermes.Session, error) {
	for {
		cur, err := h.GetSession(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := fn(cur); err != nil {
			return nil, err
		}
		db, unlock, err := h.lock(ctx)
		if err != nil {
			return nil, err
		}
		stored := db.sessions[id]
		if stored.Version != cur.Version {
			unlock()
			continue
		}
		x := refSession(cur)
		x.ID, x.Version = id, stored.Version+1
		db.sessions[id] = x
		unlock()
		return cloneSession(x), nil
	}
}

func encodeRefCursor(s *hermes.Session) string {
	return "ref1." + base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("%d/%s", s.CreatedAt.UnixMilli(), s.ID)))
}

func decodeRefCursor(c string) (time.Time, string, error) {
	bad := hermes.Errorf(hermes.Invalid, "bad cursor")
	rest, ok := strings.CutPrefix(c, "ref1.")
	if !ok {
		return time.Time{}, "", bad
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return time.Time{}, "", bad
	}
	ms, id, ok := strings.Cut(string(b), "/")
	n, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil || !hermes.ValidTokenID(id) {
		return time.Time{}, "", bad
	}
	return time.UnixMilli(n).UTC(), id, nil
}

func (h *refHandle) ListSessions(ctx context.Context, clientID string, statuses []hermes.SessionStatus, limit int, cursor string) ([]*hermes.Session, string, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, "", err
	}
	defer unlock()
	var all []*hermes.Session
	for _, s := range db.sessions {
		if s.ClientID == clientID && (len(statuses) == 0 || slices.Contains(statuses, s.Status)) {
			all = append(all, s)
		}
	}
	newest := func(a, b *hermes.Session) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(b.ID, a.ID))
	}
	slices.SortFunc(all, newest)
	if cursor != "" {
		at, id, err := decodeRefCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		pivot := &hermes.Session{CreatedAt: at, ID: id}
		all = slices.DeleteFunc(all, func(s *hermes.Session) bool { return newest(s, pivot) <= 0 })
	}
	next := ""
	if len(all) > limit {
		all = all[:limit]
		next = encodeRefCursor(all[limit-1])
	}
	out := make([]*hermes.Session, len(all))
	for i, s := range all {
		out[i] = cloneSession(s)
	}
	return out, next, nil
}

func (h *refHandle) ListLeaseExpired(ctx context.Context, now time.Time, limit int) ([]*hermes.Session, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out []*hermes.Session
	for _, s := range db.sessions {
		if s.Status.Live() && !s.ExpiresAt.After(now) {
			out = append(out, cloneSession(s))
		}
	}
	slices.SortFunc(out, func(a, b *hermes.Session) int {
		return cmp.Or(a.ExpiresAt.Compare(b.ExpiresAt), strings.Compare(a.ID, b.ID))
	})
	return out[:min(limit, len(out))], nil
}

func (h *refHandle) CountSessions(ctx context.Context, statuses ...hermes.SessionStatus) (int, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return 0, err
	}
	defer unlock()
	n := 0
	for _, s := range db.sessions {
		if slices.Contains(statuses, s.Status) {
			n++
		}
	}
	return n, nil
}

func (h *refHandle) AppendHistory(ctx context.Context, entries ...*hermes.HistoryEntry) error {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	for _, e := range entries {
		if db.sessions[e.SessionID] == nil {
			return hermes.Errorf(hermes.NotFound, "no session")
		}
	}
	for _, e := range entries {
		if db.history[e.ID] == nil {
			db.history[e.ID] = refEntry(e)
		}
	}
	return nil
}

func (h *refHandle) ListHistory(ctx context.Context, sessionID string) ([]*hermes.HistoryEntry, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	out := []*hermes.HistoryEntry{}
	for _, e := range db.history {
		if e.SessionID == sessionID {
			out = append(out, cloneEntry(e))
		}
	}
	slices.SortFunc(out, func(a, b *hermes.HistoryEntry) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// ---------------------------------------------------------------------------
// Thread lookups

func (db *refDB) threadByToken(token string) *hermes.Thread {
	for _, t := range db.threads {
		if t.Token == token {
			return t
		}
	}
	return nil
}

func (h *refHandle) ThreadByToken(ctx context.Context, token string) (*hermes.Thread, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if t := db.threadByToken(token); t != nil && token != "" {
		return cloneThread(t), nil
	}
	return nil, hermes.Errorf(hermes.NotFound, "no thread")
}

func (h *refHandle) AddThreadRefs(ctx context.Context, threadID string, refs ...string) error {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if db.threads[threadID] == nil {
		return hermes.Errorf(hermes.NotFound, "no thread")
	}
	for _, r := range refs {
		if _, ok := db.refs[r]; !ok {
			db.refs[r] = threadID
		}
	}
	return nil
}

func (h *refHandle) ThreadByRef(ctx context.Context, ref string) (*hermes.Thread, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if t := db.threads[db.refs[ref]]; t != nil {
		return cloneThread(t), nil
	}
	return nil, hermes.Errorf(hermes.NotFound, "no thread")
}

func (h *refHandle) LatestThread(ctx context.Context, clientID, projectID, userID string) (*hermes.Thread, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var latest *hermes.Thread
	for _, t := range db.threads {
		if t.ClientID != clientID || t.ProjectID != projectID || t.UserID != userID {
			continue
		}
		if latest == nil || cmp.Or(t.UpdatedAt.Compare(latest.UpdatedAt), strings.Compare(t.ID, latest.ID)) > 0 {
			latest = t
		}
	}
	if latest == nil {
		return nil, hermes.Errorf(hermes.NotFound, "no thread")
	}
	return cloneThread(latest), nil
}

func (h *refHandle) TouchThread(ctx context.Context, id string, now time.Time) error {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	t := db.threads[id]
	if t == nil {
		return hermes.Errorf(hermes.NotFound, "no thread")
	}
	t.UpdatedAt = utc(now)
	return nil
}

// ---------------------------------------------------------------------------
// Intake

func (h *refHandle) ClaimMessage(ctx context.Context, channel, id string, now time.Time, lease time.Duration) (hermes.DedupState, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return "", err
	}
	defer unlock()
	k := [2]string{channel, id}
	c := db.intake[k]
	switch {
	case c != nil && c.done:
		return hermes.DedupDone, nil
	case c != nil && now.Before(c.until):
		return hermes.DedupInProgress, nil
	}
	db.intake[k] = &refClaim{until: utc(now.Add(lease))}
	return hermes.DedupNew, nil
}

func (h *refHandle) CompleteMessage(ctx context.Context, channel, id string, now time.Time) error {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	db.intake[[2]string{channel, id}] = &refClaim{done: true}
	return nil
}

func (h *refHandle) ReleaseMessage(ctx context.Context, channel, id string) error {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	k := [2]string{channel, id}
	if c := db.intake[k]; c != nil && !c.done {
		delete(db.intake, k)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Outbox

func refOutbox(it *hermes.OutboxItem) *hermes.OutboxItem {
	x := cloneOutbox(it)
	x.CreatedAt, x.NextAttemptAt = utc(it.CreatedAt), utc(it.NextAttemptAt)
	if x.SentAt != nil {
		*x.SentAt = utc(*x.SentAt)
	}
	return x
}

func (h *refHandle) EnqueueOutbox(ctx context.Context, items ...*hermes.OutboxItem) error {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	for _, it := range items {
		if db.outbox[it.ID] == nil {
			x := refOutbox(it)
			x.Status = hermes.OutboxPending
			db.outbox[it.ID] = x
		}
	}
	return nil
}

func (h *refHandle) GetOutbox(ctx context.Context, id string) (*hermes.OutboxItem, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if it := db.outbox[id]; it != nil {
		return cloneOutbox(it), nil
	}
	return nil, hermes.Errorf(hermes.NotFound, "no outbox item")
}

func (h *refHandle) ListOutbox(ctx context.Context, status hermes.OutboxStatus, limit int, cursor string) ([]*hermes.OutboxItem, string, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, "", err
	}
	defer unlock()
	var all []*hermes.OutboxItem
	for _, it := range db.outbox {
		if status == "" || it.Status == status {
			all = append(all, it)
		}
	}
	newest := func(a, b *hermes.OutboxItem) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(b.ID, a.ID))
	}
	slices.SortFunc(all, newest)
	if cursor != "" {
		at, id, err := decodeRefCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		pivot := &hermes.OutboxItem{CreatedAt: at, ID: id}
		all = slices.DeleteFunc(all, func(it *hermes.OutboxItem) bool { return newest(it, pivot) <= 0 })
	}
	next := ""
	if len(all) > limit {
		all = all[:limit]
		last := all[limit-1]
		next = encodeRefCursor(&hermes.Session{CreatedAt: last.CreatedAt, ID: last.ID})
	}
	return cloneOutboxes(all), next, nil
}

func (h *refHandle) ClaimOutbox(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*hermes.OutboxItem, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var due []*hermes.OutboxItem
	for id, it := range db.outbox {
		if it.Status == hermes.OutboxPending && !it.NextAttemptAt.After(now) && !now.Before(db.claimed[id]) {
			due = append(due, it)
		}
	}
	slices.SortFunc(due, func(a, b *hermes.OutboxItem) int {
		return cmp.Or(a.NextAttemptAt.Compare(b.NextAttemptAt), strings.Compare(a.ID, b.ID))
	})
	due = due[:min(limit, len(due))]
	for _, it := range due {
		db.claimed[it.ID] = utc(now.Add(lease))
	}
	return cloneOutboxes(due), nil
}

func (h *refHandle) FinishOutbox(ctx context.Context, id string, status hermes.OutboxStatus, now, retryAt time.Time, lastError string) error {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	it := db.outbox[id]
	if it == nil {
		return hermes.Errorf(hermes.NotFound, "no outbox item")
	}
	it.Status, it.Attempts, it.LastError = status, it.Attempts+1, lastError
	switch status {
	case hermes.OutboxSent:
		sent := utc(now)
		it.SentAt = &sent
	case hermes.OutboxPending:
		it.NextAttemptAt = utc(retryAt)
	}
	delete(db.claimed, id)
	return nil
}

// ---------------------------------------------------------------------------
// Containers

func refContainer(c *hermes.Container) *hermes.Container {
	x := cloneContainer(c)
	x.CreatedAt, x.UpdatedAt = utc(c.CreatedAt), utc(c.UpdatedAt)
	if x.LastHeartbeat != nil {
		*x.LastHeartbeat = utc(*x.LastHeartbeat)
	}
	return x
}

func (h *refHandle) EnsureContainer(ctx context.Context, c *hermes.Container) (*hermes.Container, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if old := db.containers[c.ID]; old != nil {
		return cloneContainer(old), nil
	}
	x := refContainer(c)
	x.Version = 1
	db.containers[c.ID] = x
	return cloneContainer(x), nil
}

func (h *refHandle) GetContainer(ctx context.Context, id string) (*hermes.Container, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if c := db.containers[id]; c != nil {
		return cloneContainer(c), nil
	}
	return nil, hermes.Errorf(hermes.NotFound, "no container")
}

func (h *refHandle) ListContainers(ctx context.Context) ([]*hermes.Container, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out []*hermes.Container
	for _, c := range db.containers {
		out = append(out, cloneContainer(c))
	}
	slices.SortFunc(out, func(a, b *hermes.Container) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// UpdateContainer, like UpdateSession, applies fn without the lock and
// writes back with compare-and-set.
func (h *refHandle) UpdateContainer(ctx context.Context, id string, fn func(*hermes.Container) error) (*hermes.Container, error) {
	for {
		cur, err := h.GetContainer(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := fn(cur); err != nil {
			return nil, err
		}
		db, unlock, err := h.lock(ctx)
		if err != nil {
			return nil, err
		}
		stored := db.containers[id]
		if stored.Version != cur.Version {
			unlock()
			continue
		}
		x := refContainer(cur)
		x.ID, x.Version = id, stored.Version+1
		db.containers[id] = x
		unlock()
		return cloneContainer(x), nil
	}
}
