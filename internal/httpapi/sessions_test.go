package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webordinary/hermes"
)

// Shared helpers of the package's tests (sessions, admin, auth, bad input,
// health).

const activatePath = "/api/sessions/activate"

// activateBody is the usual activation body for amelia/site/scott.
func activateBody() map[string]string {
	return map[string]string{"clientId": "amelia", "userId": "scott", "instruction": "make the header blue"}
}

// sessionStatus is the body of GET /api/sessions/{id}/status.
type sessionStatus struct {
	SessionID       string    `json:"sessionId"`
	Status          string    `json:"status"`
	Reason          string    `json:"reason"`
	ThreadID        string    `json:"threadId"`
	ClientID        string    `json:"clientId"`
	ProjectID       string    `json:"projectId"`
	UserID          string    `json:"userId"`
	ContainerID     string    `json:"containerId"`
	ContainerStatus string    `json:"containerStatus"`
	LastActivity    time.Time `json:"lastActivity"`
	ExpiresAt       time.Time `json:"expiresAt"`
	PreviewURL      string    `json:"previewUrl"`
}

// sessionSummary is one entry of GET /api/sessions/client/{clientId}.
type sessionSummary struct {
	SessionID    string    `json:"sessionId"`
	UserID       string    `json:"userId"`
	ProjectID    string    `json:"projectId"`
	Status       string    `json:"status"`
	PreviewURL   string    `json:"previewUrl"`
	LastActivity time.Time `json:"lastActivity"`
	CreatedAt    time.Time `json:"createdAt"`
}

func (a *testAPI) status(t *testing.T, id string) sessionStatus {
	t.Helper()
	var st sessionStatus
	a.do(t, request{Method: "GET", Path: "/api/sessions/" + id + "/status", Key: adminKey}).want(t, http.StatusOK).JSON(t, &st)
	return st
}

// countSessions counts the stored sessions of every status.
func (a *testAPI) countSessions(t *testing.T) int {
	t.Helper()
	n, err := a.Store.CountSessions(context.Background(), hermes.SessionStatuses...)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// countClients counts the stored clients.
func (a *testAPI) countClients(t *testing.T) int {
	t.Helper()
	cs, err := a.Store.ListClients(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(cs)
}

func (a *testAPI) reap(t *testing.T) int {
	t.Helper()
	n, err := a.Sessions.Reap(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// metric scrapes /metrics and returns the value of one series, written as
// in the exposition format (`name` or `name{label="v"}`); -1 when absent.
func (a *testAPI) metric(t *testing.T, series string) float64 {
	t.Helper()
	r := a.do(t, request{Method: "GET", Path: "/metrics"}).want(t, http.StatusOK)
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	return -1
}

func wantMetric(t *testing.T, a *testAPI, series string, want float64) {
	t.Helper()
	if got := a.metric(t, series); got != want {
		t.Errorf("metric %s = %v, want %v", series, got, want)
	}
}

func TestActivate(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	cases := []struct {
		name   string
		key    string
		body   map[string]string
		status int
		detail string // for problems: a part of detail
	}{
		{name: "project omitted, client has one", key: adminKey, body: activateBody(), status: http.StatusCreated},
		{name: "project named", key: ameliaKey, status: http.StatusCreated,
			body: map[string]string{"clientId": "amelia", "projectId": "site", "userId": "jo", "instruction": "fix the typo"}},
		{name: "project omitted, client has two", key: otherKey, status: http.StatusUnprocessableEntity, detail: "projectId is required",
			body: map[string]string{"clientId": "other", "userId": "ann", "instruction": "x"}},
		{name: "unknown client", key: adminKey, status: http.StatusNotFound, detail: `client "nobody"`,
			body: map[string]string{"clientId": "nobody", "userId": "scott", "instruction": "x"}},
		{name: "unknown project", key: adminKey, status: http.StatusUnprocessableEntity, detail: `no project "blog"`,
			body: map[string]string{"clientId": "amelia", "projectId": "blog", "userId": "scott", "instruction": "x"}},
		{name: "unknown user", key: adminKey, status: http.StatusUnprocessableEntity, detail: `no user "ann"`,
			body: map[string]string{"clientId": "amelia", "userId": "ann", "instruction": "x"}},
		{name: "user of another client", key: adminKey, status: http.StatusUnprocessableEntity, detail: `no user "scott"`,
			body: map[string]string{"clientId": "other", "projectId": "one", "userId": "scott", "instruction": "x"}},
		{name: "client key for another client", key: ameliaKey, status: http.StatusNotFound, detail: `client "other"`,
			body: map[string]string{"clientId": "other", "projectId": "one", "userId": "ann", "instruction": "x"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := a.countSessions(t)
			r := a.do(t, request{Method: "POST", Path: activatePath, Key: tc.key, Body: tc.body}).want(t, tc.status)
			if tc.status != http.StatusCreated {
				p := r.Problem(t)
				if !strings.Contains(p.Detail, tc.detail) {
					t.Errorf("detail %q does not mention %q", p.Detail, tc.detail)
				}
				if n := a.countSessions(t); n != before {
					t.Errorf("sessions: %d, want %d (nothing stored)", n, before)
				}
				return
			}
			var out struct {
				SessionID, ThreadID, Status, PreviewURL, ContainerID string
			}
			r.JSON(t, &out)
			user := tc.body["userId"]
			if !hermes.ValidTokenID(out.SessionID) || !hermes.ValidTokenID(out.ThreadID) || out.SessionID == out.ThreadID {
				t.Errorf("sessionId %q, threadId %q: want two distinct token ids", out.SessionID, out.ThreadID)
			}
			if out.Status != "initializing" {
				t.Errorf("status %q, want initializing", out.Status)
			}
			if want := "amelia_site_" + user; out.ContainerID != want {
				t.Errorf("containerId %q, want %q", out.ContainerID, want)
			}
			if want := "http://hermes.test/preview/amelia/site/" + out.ThreadID + "/"; out.PreviewURL != want {
				t.Errorf("previewUrl %q, want %q", out.PreviewURL, want)
			}
			if loc, want := r.Header.Get("Location"), "/api/sessions/"+out.SessionID+"/status"; loc != want {
				t.Errorf("Location %q, want %q", loc, want)
			}
			if n := a.countSessions(t); n != before+1 {
				t.Errorf("sessions: %d, want %d", n, before+1)
			}
		})
	}
}

func TestSessionStatus(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	id := a.activate(t, ameliaKey)

	r := a.do(t, request{Method: "GET", Path: "/api/sessions/" + id + "/status", Key: ameliaKey}).want(t, http.StatusOK)
	var raw map[string]any
	r.JSON(t, &raw)
	for _, f := range []string{"sessionId", "status", "threadId", "clientId", "projectId", "userId", "containerId",
		"containerStatus", "lastActivity", "expiresAt", "previewUrl"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("status body lacks %s: %s", f, r.Body)
		}
	}
	if s, _ := raw["lastActivity"].(string); s == "" {
		t.Errorf("lastActivity %v is not a string", raw["lastActivity"])
	} else if _, err := time.Parse(time.RFC3339, s); err != nil {
		t.Errorf("lastActivity %q is not RFC 3339: %v", s, err)
	}

	var st sessionStatus
	r.JSON(t, &st)
	want := sessionStatus{
		SessionID: id, Status: "initializing", ThreadID: st.ThreadID, ClientID: "amelia", ProjectID: "site", UserID: "scott",
		ContainerID: "amelia_site_scott", ContainerStatus: "stopped", LastActivity: testStart, ExpiresAt: testStart.Add(30 * time.Minute),
		PreviewURL: "http://hermes.test/preview/amelia/site/" + st.ThreadID + "/",
	}
	if !st.LastActivity.Equal(want.LastActivity) || !st.ExpiresAt.Equal(want.ExpiresAt) {
		t.Errorf("lastActivity %v, expiresAt %v; want %v, %v", st.LastActivity, st.ExpiresAt, want.LastActivity, want.ExpiresAt)
	}
	st.LastActivity, st.ExpiresAt = want.LastActivity, want.ExpiresAt
	if st != want {
		t.Errorf("status\n got %+v\nwant %+v", st, want)
	}
	if !hermes.ValidTokenID(st.ThreadID) {
		t.Errorf("threadId %q is not a token id", st.ThreadID)
	}

	cases := []struct {
		name   string
		key    string
		id     string
		status int
	}{
		{"admin", adminKey, id, http.StatusOK},
		{"own client", ameliaKey, id, http.StatusOK},
		{"other client", otherKey, id, http.StatusNotFound},
		{"unknown", adminKey, hermes.NewToken(), http.StatusNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := a.do(t, request{Method: "GET", Path: "/api/sessions/" + tc.id + "/status", Key: tc.key}).want(t, tc.status)
			if tc.status != http.StatusOK {
				r.Problem(t)
			}
		})
	}
}

func TestKeepalive(t *testing.T) {
	t.Parallel()

	type keepalive struct {
		SessionID string    `json:"sessionId"`
		Status    string    `json:"status"`
		TTL       int64     `json:"ttl"`
		ExpiresAt time.Time `json:"expiresAt"`
	}
	keep := func(t *testing.T, a *testAPI, key, id string) *response {
		t.Helper()
		return a.do(t, request{Method: "POST", Path: "/api/sessions/" + id + "/keepalive", Key: key})
	}

	t.Run("extends the lease", func(t *testing.T) {
		t.Parallel()
		a := newTestAPI(t)
		id := a.activate(t, ameliaKey)
		a.Clock.Advance(10 * time.Minute)
		var k keepalive
		keep(t, a, ameliaKey, id).want(t, http.StatusOK).JSON(t, &k)
		want := a.Clock.Now().Add(30 * time.Minute)
		if !k.ExpiresAt.Equal(want) {
			t.Errorf("expiresAt %v, want %v", k.ExpiresAt, want)
		}
		if k.TTL != k.ExpiresAt.Unix() || k.TTL != want.Unix() {
			t.Errorf("ttl %d, want epoch seconds of expiresAt %d", k.TTL, want.Unix())
		}
		if k.Status != "initializing" || k.SessionID != id {
			t.Errorf("keepalive %+v", k)
		}
		st := a.status(t, id)
		if !st.ExpiresAt.Equal(want) || !st.LastActivity.Equal(a.Clock.Now()) {
			t.Errorf("stored lease %v, last activity %v; want %v, %v", st.ExpiresAt, st.LastActivity, want, a.Clock.Now())
		}
		// A renewed lease is not reaped at the old expiry.
		a.Clock.Advance(25 * time.Minute)
		if n := a.reap(t); n != 0 {
			t.Errorf("reaped %d renewed sessions", n)
		}
	})

	cases := []struct {
		name  string
		setup func(t *testing.T, a *testAPI) (key, id string)
		want  int
		after string // the session's status afterwards, if it exists
	}{
		{"unknown", func(t *testing.T, a *testAPI) (string, string) { return adminKey, hermes.NewToken() }, http.StatusNotFound, ""},
		{"another client's session", func(t *testing.T, a *testAPI) (string, string) { return otherKey, a.activate(t, ameliaKey) },
			http.StatusNotFound, "initializing"},
		{"deactivated", func(t *testing.T, a *testAPI) (string, string) {
			id := a.activate(t, ameliaKey)
			a.do(t, request{Method: "POST", Path: "/api/sessions/" + id + "/deactivate", Key: ameliaKey}).want(t, http.StatusAccepted)
			return ameliaKey, id
		}, http.StatusConflict, "draining"},
		{"expired by the reaper", func(t *testing.T, a *testAPI) (string, string) {
			id := a.activate(t, ameliaKey)
			a.Clock.Advance(31 * time.Minute)
			if n := a.reap(t); n != 1 {
				t.Fatalf("reaped %d, want 1", n)
			}
			return ameliaKey, id
		}, http.StatusConflict, "expired"},
		{"lease passed, not yet reaped", func(t *testing.T, a *testAPI) (string, string) {
			id := a.activate(t, ameliaKey)
			a.Clock.Advance(30 * time.Minute) // exactly at the lease's end: passed
			return ameliaKey, id
		}, http.StatusConflict, "expired"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t)
			key, id := tc.setup(t, a)
			before := a.countSessions(t)
			keep(t, a, key, id).want(t, tc.want).Problem(t)
			if n := a.countSessions(t); n != before {
				t.Errorf("keepalive changed the number of sessions from %d to %d", before, n)
			}
			if tc.after == "" {
				a.do(t, request{Method: "GET", Path: "/api/sessions/" + id + "/status", Key: adminKey}).want(t, http.StatusNotFound)
				return
			}
			st := a.status(t, id)
			if st.Status != tc.after {
				t.Errorf("status after keepalive %q, want %q", st.Status, tc.after)
			}
			if tc.name == "lease passed, not yet reaped" {
				if st.Reason != hermes.ReasonLease {
					t.Errorf("reason %q, want lease", st.Reason)
				}
				wantMetric(t, a, `hermes_sessions_expired_total{reason="lease"}`, 1)
				if n := a.reap(t); n != 0 {
					t.Errorf("reaper expired %d sessions that keepalive expired", n)
				}
				// Still refused.
				keep(t, a, key, id).want(t, http.StatusConflict)
			}
		})
	}
}

func TestDeactivate(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	id := a.activate(t, ameliaKey)
	other := a.activate(t, ameliaKey)

	type deactivated struct{ SessionID, Status, Message string }
	deact := func(t *testing.T, key, id string) *response {
		t.Helper()
		return a.do(t, request{Method: "POST", Path: "/api/sessions/" + id + "/deactivate", Key: key})
	}
	steps := []struct {
		name   string
		key    string
		id     string
		status int
		state  string // the body's status
	}{
		{"first", ameliaKey, id, http.StatusAccepted, "draining"},
		{"again is idempotent", ameliaKey, id, http.StatusAccepted, "draining"},
		{"by admin", adminKey, id, http.StatusAccepted, "draining"},
		{"unknown", adminKey, hermes.NewToken(), http.StatusNotFound, ""},
		{"another client's session", otherKey, other, http.StatusNotFound, ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			r := deact(t, s.key, s.id).want(t, s.status)
			if s.status != http.StatusAccepted {
				r.Problem(t)
				return
			}
			var d deactivated
			r.JSON(t, &d)
			if d.Status != s.state || d.SessionID != s.id || d.Message == "" {
				t.Errorf("deactivate: %+v, want status %s and a message", d, s.state)
			}
		})
	}
	if st := a.status(t, other); st.Status != "initializing" {
		t.Errorf("the other session is %s after a refused deactivation", st.Status)
	}
	if st := a.status(t, id); st.Status != "draining" {
		t.Fatalf("status %q, want draining", st.Status)
	}

	// The reaper expires the draining session (and only it) with reason
	// deactivated.
	if n := a.reap(t); n != 1 {
		t.Fatalf("Reap expired %d sessions, want 1", n)
	}
	st := a.status(t, id)
	if st.Status != "expired" || st.Reason != hermes.ReasonDeactivated {
		t.Errorf("after Reap: status %q reason %q, want expired/deactivated", st.Status, st.Reason)
	}
	if st := a.status(t, other); st.Status != "initializing" {
		t.Errorf("the live session is %s after Reap", st.Status)
	}
	// Deactivating an expired session still succeeds and changes nothing.
	var d deactivated
	deact(t, ameliaKey, id).want(t, http.StatusAccepted).JSON(t, &d)
	if d.Status != "expired" {
		t.Errorf("deactivate of an expired session: %+v", d)
	}
	if st2 := a.status(t, id); st2 != st {
		t.Errorf("deactivating an expired session changed it:\n%+v\n%+v", st, st2)
	}
	wantMetric(t, a, `hermes_sessions_expired_total{reason="deactivated"}`, 1)
}

func TestLeaseExpiry(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, withTTL(10*time.Minute))
	early := a.activate(t, ameliaKey)
	a.Clock.Advance(5 * time.Minute)
	late := a.activate(t, ameliaKey)

	a.Clock.Advance(5*time.Minute - time.Millisecond)
	if n := a.reap(t); n != 0 {
		t.Fatalf("Reap before any lease passed expired %d", n)
	}
	a.Clock.Advance(time.Millisecond) // early's lease ends now
	if n := a.reap(t); n != 1 {
		t.Fatalf("Reap expired %d, want 1", n)
	}
	if st := a.status(t, early); st.Status != "expired" || st.Reason != hermes.ReasonLease {
		t.Errorf("early: status %q reason %q, want expired/lease", st.Status, st.Reason)
	}
	if st := a.status(t, late); st.Status != "initializing" {
		t.Errorf("late: status %q, want initializing", st.Status)
	}
	a.Clock.Advance(time.Hour)
	if n := a.reap(t); n != 1 {
		t.Fatalf("second Reap expired %d, want 1", n)
	}
	if n := a.reap(t); n != 0 {
		t.Fatalf("third Reap expired %d, want 0", n)
	}
	if st := a.status(t, late); st.Status != "expired" || st.Reason != hermes.ReasonLease {
		t.Errorf("late: status %q reason %q, want expired/lease", st.Status, st.Reason)
	}
	wantMetric(t, a, `hermes_sessions_expired_total{reason="lease"}`, 2)
}

func TestListSessions(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	ctx := context.Background()
	// One session in each status, one second apart: initializing (newest),
	// active, draining, expired (oldest).
	ids := map[string]string{}
	for _, st := range []string{"expired", "draining", "active", "initializing"} {
		ids[st] = a.activate(t, ameliaKey)
		a.Clock.Advance(time.Second)
	}
	if _, err := a.Store.UpdateSession(ctx, ids["active"], func(s *hermes.Session) error { s.Status = hermes.SessionActive; return nil }); err != nil {
		t.Fatal(err)
	}
	a.do(t, request{Method: "POST", Path: "/api/sessions/" + ids["expired"] + "/deactivate", Key: ameliaKey}).want(t, http.StatusAccepted)
	if n := a.reap(t); n != 1 {
		t.Fatalf("reaped %d, want 1", n)
	}
	a.do(t, request{Method: "POST", Path: "/api/sessions/" + ids["draining"] + "/deactivate", Key: ameliaKey}).want(t, http.StatusAccepted)
	// A session of the other client, which never shows up in amelia's lists.
	a.do(t, request{Method: "POST", Path: activatePath, Key: otherKey,
		Body: map[string]string{"clientId": "other", "projectId": "two", "userId": "ann", "instruction": "x"}}).want(t, http.StatusCreated)

	cases := []struct {
		name  string
		key   string
		query string
		want  []string // statuses of the expected sessions, newest first
	}{
		{"default: live only", ameliaKey, "", []string{"initializing", "active"}},
		{"expired", ameliaKey, "?status=expired", []string{"expired"}},
		{"draining and expired", adminKey, "?status=draining,expired", []string{"draining", "expired"}},
		{"all", ameliaKey, "?status=all", []string{"initializing", "active", "draining", "expired"}},
		{"all with a large limit", ameliaKey, "?status=all&limit=200", []string{"initializing", "active", "draining", "expired"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []sessionSummary
			r := a.do(t, request{Method: "GET", Path: "/api/sessions/client/amelia" + tc.query, Key: tc.key}).want(t, http.StatusOK)
			r.JSON(t, &got)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d sessions, want %d: %s", len(got), len(tc.want), r.Body)
			}
			for i, st := range tc.want {
				if got[i].SessionID != ids[st] || got[i].Status != st {
					t.Errorf("[%d] = %s %s, want %s %s", i, got[i].SessionID, got[i].Status, ids[st], st)
				}
				if got[i].UserID != "scott" || got[i].ProjectID != "site" || got[i].PreviewURL == "" || got[i].LastActivity.IsZero() {
					t.Errorf("[%d] incomplete: %+v", i, got[i])
				}
			}
			if r.Header.Get("Link") != "" || r.Header.Get("X-Next-Cursor") != "" {
				t.Errorf("a single page has a next link: %q %q", r.Header.Get("Link"), r.Header.Get("X-Next-Cursor"))
			}
		})
	}

	bad := []struct {
		name   string
		key    string
		path   string
		status int
		detail string
	}{
		{"bogus status", ameliaKey, "/api/sessions/client/amelia?status=bogus", http.StatusBadRequest, "status"},
		{"one bogus status of two", ameliaKey, "/api/sessions/client/amelia?status=active,bogus", http.StatusBadRequest, "bogus"},
		{"limit 0", ameliaKey, "/api/sessions/client/amelia?limit=0", http.StatusBadRequest, "limit"},
		{"limit abc", ameliaKey, "/api/sessions/client/amelia?limit=abc", http.StatusBadRequest, "limit"},
		{"limit negative", ameliaKey, "/api/sessions/client/amelia?limit=-1", http.StatusBadRequest, "limit"},
		{"limit too large", ameliaKey, "/api/sessions/client/amelia?limit=100000", http.StatusBadRequest, "limit"},
		{"garbage cursor", ameliaKey, "/api/sessions/client/amelia?cursor=not-a-cursor", http.StatusBadRequest, "cursor"},
		{"base64 garbage cursor", ameliaKey, "/api/sessions/client/amelia?cursor=" + url.QueryEscape("eyJ4IjoxfQ"), http.StatusBadRequest, "cursor"},
		{"another client's key", otherKey, "/api/sessions/client/amelia", http.StatusNotFound, "amelia"},
		{"unknown client", adminKey, "/api/sessions/client/nobody", http.StatusNotFound, "nobody"},
		{"malformed client id", adminKey, "/api/sessions/client/Not_A_Slug", http.StatusBadRequest, "clientId"},
		{"no key", "", "/api/sessions/client/amelia", http.StatusUnauthorized, ""},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			p := a.do(t, request{Method: "GET", Path: tc.path, Key: tc.key}).want(t, tc.status).Problem(t)
			if !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("detail %q does not mention %q", p.Detail, tc.detail)
			}
		})
	}
}

func TestListSessionsPagination(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	var created []string
	for range 5 {
		created = append(created, a.activate(t, ameliaKey))
		a.Clock.Advance(time.Second)
	}
	// Two sessions created at the same instant still page without loss.
	created = append(created, a.activate(t, ameliaKey), a.activate(t, ameliaKey))

	for _, limit := range []int{1, 2, 3, 7} {
		t.Run("limit "+strconv.Itoa(limit), func(t *testing.T) {
			var got []sessionSummary
			path := "/api/sessions/client/amelia?limit=" + strconv.Itoa(limit)
			pages := 0
			for path != "" {
				pages++
				if pages > 10 {
					t.Fatal("pagination does not end")
				}
				r := a.do(t, request{Method: "GET", Path: path, Key: ameliaKey}).want(t, http.StatusOK)
				var page []sessionSummary
				r.JSON(t, &page)
				if len(page) == 0 || len(page) > limit {
					t.Fatalf("page %d has %d sessions (limit %d)", pages, len(page), limit)
				}
				got = append(got, page...)
				path = ""
				if link := r.Header.Get("Link"); link != "" {
					target, ok := strings.CutSuffix(link, `>; rel="next"`)
					if !ok || !strings.HasPrefix(target, "<") {
						t.Fatalf("Link %q is not <...>; rel=\"next\"", link)
					}
					path = strings.TrimPrefix(target, "<")
					u, err := url.Parse(path)
					if err != nil {
						t.Fatal(err)
					}
					if c := r.Header.Get("X-Next-Cursor"); c == "" || u.Query().Get("cursor") != c {
						t.Errorf("X-Next-Cursor %q does not match the Link's cursor %q", c, u.Query().Get("cursor"))
					}
					if u.Query().Get("limit") != strconv.Itoa(limit) {
						t.Errorf("the next link %q lost the limit", path)
					}
				} else if r.Header.Get("X-Next-Cursor") != "" {
					t.Errorf("X-Next-Cursor without a Link")
				}
			}
			if want := (len(created) + limit - 1) / limit; pages != want {
				t.Errorf("%d pages, want %d", pages, want)
			}
			seen := map[string]bool{}
			for i, s := range got {
				if seen[s.SessionID] {
					t.Errorf("session %s listed twice", s.SessionID)
				}
				seen[s.SessionID] = true
				if i > 0 && s.CreatedAt.After(got[i-1].CreatedAt) {
					t.Errorf("[%d] created %v after [%d] %v: not newest first", i, s.CreatedAt, i-1, got[i-1].CreatedAt)
				}
			}
			if len(got) != len(created) {
				t.Fatalf("listed %d sessions, want %d", len(got), len(created))
			}
			for _, id := range created {
				if !seen[id] {
					t.Errorf("session %s never listed", id)
				}
			}
			// The five sessions of distinct instants come last, newest first.
			for i := range 5 {
				if got[len(got)-1-i].SessionID != created[i] {
					t.Errorf("position %d: %s, want %s", len(got)-1-i, got[len(got)-1-i].SessionID, created[i])
				}
			}
		})
	}
}

func TestSessionMessages(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	id := a.activate(t, ameliaKey)
	var h []struct {
		ID, SessionID, Direction, Kind, Text, Delivery, Channel string
		CreatedAt                                               time.Time
	}
	a.do(t, request{Method: "GET", Path: "/api/sessions/" + id + "/messages", Key: ameliaKey}).want(t, http.StatusOK).JSON(t, &h)
	if len(h) == 0 {
		t.Fatal("empty history")
	}
	first := h[0]
	if first.Direction != "in" || first.Kind != "instruction" || first.Delivery != "queued" ||
		first.Text != "make the header blue" || first.SessionID != id || first.ID == "" || !first.CreatedAt.Equal(testStart) {
		t.Errorf("first history entry %+v", first)
	}
	a.do(t, request{Method: "GET", Path: "/api/sessions/" + id + "/messages", Key: otherKey}).want(t, http.StatusNotFound).Problem(t)
	a.do(t, request{Method: "GET", Path: "/api/sessions/" + hermes.NewToken() + "/messages", Key: adminKey}).want(t, http.StatusNotFound).Problem(t)
}

func TestActivateWait(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)

	t.Run("ready times out while initializing", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		var out struct{ SessionID, Status string }
		a.do(t, request{Method: "POST", Path: activatePath + "?wait=ready&timeout=1s", Key: ameliaKey, Body: activateBody()}).
			want(t, http.StatusCreated).JSON(t, &out)
		if d := time.Since(start); d < 900*time.Millisecond || d > 10*time.Second {
			t.Errorf("wait=ready&timeout=1s answered after %v", d)
		}
		if out.Status != "initializing" || out.SessionID == "" {
			t.Errorf("got %+v, want an initializing session", out)
		}
	})

	bad := []struct{ name, query, detail string }{
		{"wait bogus", "?wait=bogus", "wait"},
		{"timeout without wait", "?timeout=5s", "timeout"},
		{"timeout garbage", "?wait=ready&timeout=soon", "timeout"},
		{"timeout zero", "?wait=ready&timeout=0s", "timeout"},
		{"timeout too long", "?wait=ready&timeout=10m", "timeout"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := a.do(t, request{Method: "POST", Path: activatePath + tc.query, Key: ameliaKey, Body: activateBody()}).want(t, http.StatusBadRequest)
			if p := r.Problem(t); !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("detail %q does not mention %q", p.Detail, tc.detail)
			}
		})
	}
	t.Cleanup(func() {
		// Only the waiting activation stored a session.
		if n := a.countSessions(t); n != 1 {
			t.Errorf("%d sessions stored, want 1", n)
		}
	})
}

func TestSessionMetrics(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	ids := []string{a.activate(t, ameliaKey), a.activate(t, ameliaKey), a.activate(t, adminKey)}
	wantMetric(t, a, "hermes_sessions_created_total", 3)
	wantMetric(t, a, "hermes_active_sessions", 3)

	a.do(t, request{Method: "POST", Path: "/api/sessions/" + ids[0] + "/deactivate", Key: ameliaKey}).want(t, http.StatusAccepted)
	wantMetric(t, a, "hermes_active_sessions", 2) // draining is not active
	a.reap(t)
	wantMetric(t, a, `hermes_sessions_expired_total{reason="deactivated"}`, 1)

	a.Clock.Advance(time.Hour)
	a.do(t, request{Method: "POST", Path: "/api/sessions/" + ids[1] + "/keepalive", Key: ameliaKey}).want(t, http.StatusConflict)
	a.reap(t)
	wantMetric(t, a, `hermes_sessions_expired_total{reason="lease"}`, 2)
	wantMetric(t, a, `hermes_sessions_expired_total{reason="deactivated"}`, 1)
	wantMetric(t, a, "hermes_active_sessions", 0)
	wantMetric(t, a, "hermes_sessions_created_total", 3)
	if v := a.metric(t, `hermes_http_requests_total{code="201",method="POST",route="/api/sessions/activate"}`); v != 3 {
		t.Errorf("activate requests counted %v, want 3", v)
	}
}
