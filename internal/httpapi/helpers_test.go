package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/config"
	"github.com/webordinary/hermes/internal/directory"
	"github.com/webordinary/hermes/internal/emailin"
	"github.com/webordinary/hermes/internal/hermestest"
	"github.com/webordinary/hermes/internal/httpapi"
	"github.com/webordinary/hermes/internal/lifecycle"
	"github.com/webordinary/hermes/internal/metrics"
	"github.com/webordinary/hermes/internal/preview"
	"github.com/webordinary/hermes/internal/relay"
	"github.com/webordinary/hermes/internal/router"
	"github.com/webordinary/hermes/internal/ses"
	"github.com/webordinary/hermes/internal/sqlite"
)

// Keys of the test API.
const (
	adminKey  = "test-admin-key-0123456789"
	ameliaKey = "test-amelia-key-0123456789" // scope client:amelia
	otherKey  = "test-other-key-0123456789"  // scope client:other
)

var testStart = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// testAPI is Hermes's HTTP API on a real SQLite store in a temp dir, served
// by httptest, with a manual clock.
type testAPI struct {
	URL      string
	Store    *sqlite.DB
	Clock    *hermestest.Clock
	Sessions *lifecycle.Sessions
	Server   *httpapi.Server
	Router   *router.Router
	Metrics  *metrics.Metrics
}

type apiOption func(*apiSetup)

type apiSetup struct {
	basePath string
	jwt      config.JWTConfig
	ttl      time.Duration
	inbound  func(*httpapi.Inbound)
	previews string
	logTo    func([]byte) // every log line, at debug level
}

func withBasePath(p string) apiOption      { return func(s *apiSetup) { s.basePath = p } }
func withJWT(j config.JWTConfig) apiOption { return func(s *apiSetup) { s.jwt = j } }
func withTTL(d time.Duration) apiOption    { return func(s *apiSetup) { s.ttl = d } }

// withPreviews serves the previews published under root (see
// publishPreview).
func withPreviews(root string) apiOption { return func(s *apiSetup) { s.previews = root } }

// withInbound serves the inbound channels: f adjusts an Inbound whose email
// intake routes through the test router (strict SES policy); set the Twilio
// and Slack secrets to serve those channels.
func withInbound(f func(*httpapi.Inbound)) apiOption {
	return func(s *apiSetup) { s.inbound = f }
}

func key(k string, scope string) config.APIKey {
	sc, err := config.ParseScope(scope)
	if err != nil {
		panic(err)
	}
	return config.APIKey{Hash: sha(k), Scope: sc}
}

// newTestAPI starts the API with the fixture directory of seedDirectory.
func newTestAPI(t *testing.T, opts ...apiOption) *testAPI {
	t.Helper()
	setup := apiSetup{ttl: 30 * time.Minute}
	for _, o := range opts {
		o(&setup)
	}
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hermes.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clock := hermestest.NewClock(testStart)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if setup.logTo != nil {
		log = slog.New(slog.NewTextHandler(funcWriter(setup.logTo), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	m := metrics.New(db, log)
	sessions := &lifecycle.Sessions{
		Store: db, Clock: clock.Now, TTL: setup.ttl, PublicBase: "http://hermes.test" + setup.basePath, Log: log,
		Hooks: lifecycle.Hooks{Created: m.SessionsCreated.Inc, Expired: func(r string) { m.SessionsExpired.WithLabelValues(r).Inc() }},
	}
	rt := &router.Router{Store: db, Queues: db, Sessions: sessions, Clock: clock.Now, Log: log, PendingCap: router.DefaultPendingCap,
		Acknowledger: &relay.Acks{FromEmail: "hermes@localhost"}}
	srv := &httpapi.Server{
		Store: db, Sessions: sessions, Router: rt, Queues: db, Metrics: m, Log: log, Clock: clock.Now, BasePath: setup.basePath, Version: "test",
		Auth: httpapi.NewAuthenticator([]config.APIKey{
			key(adminKey, "admin"), key(ameliaKey, "client:amelia"), key(otherKey, "client:other"),
		}, setup.jwt, clock.Now),
	}
	if setup.previews != "" {
		srv.Previews = preview.New(setup.previews, log)
	}
	if setup.inbound != nil {
		in := &httpapi.Inbound{Email: &emailin.Intake{Router: rt, Store: db, Policy: ses.DefaultPolicy(), Log: log}}
		setup.inbound(in)
		srv.Inbound = in
	}
	srv.SetReady(true)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	a := &testAPI{URL: hs.URL + setup.basePath, Store: db, Clock: clock, Sessions: sessions, Server: srv, Router: rt, Metrics: m}
	seedDirectory(t, db, clock.Now())
	return a
}

// seedDirectory stores client amelia (project site, users scott and jo) and
// client other (projects one and two, user ann).
func seedDirectory(t *testing.T, store hermes.Directory, now time.Time) {
	t.Helper()
	trees := []*directory.ClientTree{
		{Client: hermes.Client{ID: "amelia", Name: "Amelia Stamps"},
			Projects: []*hermes.Project{{ID: "site", RepoURL: "/srv/amelia.git", EmailAddresses: []string{"edit@amelia.example.com"}}},
			Users: []*hermes.User{
				{ID: "scott", Name: "Scott", Emails: []string{"scott@example.com"}, Phones: []string{"+15550100002"}},
				{ID: "jo", Name: "Jo", Emails: []string{"jo@example.com"}},
			}},
		{Client: hermes.Client{ID: "other", Name: "Other Co"},
			Projects: []*hermes.Project{{ID: "one", RepoURL: "/srv/one.git"}, {ID: "two", RepoURL: "/srv/two.git"}},
			Users:    []*hermes.User{{ID: "ann", Emails: []string{"ann@other.example.com"}}}},
	}
	for _, tr := range trees {
		tr.Normalize()
		var v hermes.ValidationError
		tr.Validate(&v, "")
		if err := v.Err(); err != nil {
			t.Fatal(err)
		}
		if err := directory.Create(context.Background(), store, tr, now); err != nil {
			t.Fatal(err)
		}
	}
}

// withLogTo sends the API's log lines (debug level and up) to f.
func withLogTo(f func([]byte)) apiOption { return func(s *apiSetup) { s.logTo = f } }

type funcWriter func([]byte)

func (f funcWriter) Write(p []byte) (int, error) {
	f(p)
	return len(p), nil
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// response is a finished exchange.
type response struct {
	*http.Response
	Body []byte
}

// JSON decodes the body into v, failing the test when it cannot.
func (r *response) JSON(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decoding %s body %q: %v", r.Request.URL.Path, r.Body, err)
	}
}

// Problem decodes an RFC 9457 body, failing the test unless the content
// type is application/problem+json.
func (r *response) Problem(t *testing.T) httpapi.Problem {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%s %s: content type %q, want application/problem+json (body %s)", r.Request.Method, r.Request.URL.Path, ct, r.Body)
	}
	var p httpapi.Problem
	r.JSON(t, &p)
	return p
}

// exchangeValidator, when set (openapi_test.go sets it), checks every
// request and response of the tests against the OpenAPI document.
var exchangeValidator func(t *testing.T, req *http.Request, reqBody []byte, resp *http.Response, respBody []byte)

// request is one test request.
type request struct {
	Method, Path string
	Key          string            // bearer credential; "" for none
	Body         any               // JSON-encoded unless []byte or string
	Header       map[string]string // extra headers (e.g. Content-Type overrides)
}

// do sends req to the API (path relative to the base path) and returns the
// response, validated against the OpenAPI document when a validator is set.
func (a *testAPI) do(t *testing.T, req request) *response {
	t.Helper()
	var body []byte
	switch b := req.Body.(type) {
	case nil:
	case []byte:
		body = b
	case string:
		body = []byte(b)
	default:
		var err error
		if body, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	hr, err := http.NewRequest(req.Method, a.URL+req.Path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if req.Key != "" {
		hr.Header.Set("Authorization", "Bearer "+req.Key)
	}
	for k, v := range req.Header {
		hr.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if exchangeValidator != nil {
		exchangeValidator(t, hr, body, resp, rb)
	}
	return &response{Response: resp, Body: rb}
}

// want fails the test unless the response has the status.
func (r *response) want(t *testing.T, status int) *response {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body: %s", r.Request.Method, r.Request.URL.Path, r.StatusCode, status, r.Body)
	}
	return r
}

// activate opens a session for amelia/site/scott and returns its id.
func (a *testAPI) activate(t *testing.T, key string) string {
	t.Helper()
	var out struct{ SessionID string }
	a.do(t, request{Method: "POST", Path: "/api/sessions/activate", Key: key,
		Body: map[string]string{"clientId": "amelia", "userId": "scott", "instruction": "make the header blue"}}).
		want(t, http.StatusCreated).JSON(t, &out)
	return out.SessionID
}
