package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

type health struct {
	Status  string `json:"status"`
	Version string `json:"version"`
	Checks  map[string]struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	} `json:"checks"`
}

func TestHealth(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	cases := []struct {
		path   string
		status int
		store  string // checks.store.status; "" when not reported
	}{
		{"/health", http.StatusOK, "ok"},
		{"/health/live", http.StatusOK, ""},
		{"/health/ready", http.StatusOK, "ok"},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			var h health
			// Health needs no credentials, and a bad key does not matter.
			for _, k := range []string{"", "not-a-key-0123456789"} {
				r := a.do(t, request{Method: "GET", Path: tc.path, Key: k}).want(t, tc.status)
				if ct := r.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("content type %q", ct)
				}
				r.JSON(t, &h)
			}
			if h.Status != "ok" {
				t.Errorf("status %q", h.Status)
			}
			if got := h.Checks["store"].Status; got != tc.store {
				t.Errorf("checks.store %q, want %q", got, tc.store)
			}
			if tc.path == "/health" && h.Version != "test" {
				t.Errorf("version %q", h.Version)
			}
		})
	}

	t.Run("not ready", func(t *testing.T) {
		a.Server.SetReady(false)
		var h health
		a.do(t, request{Method: "GET", Path: "/health/ready"}).want(t, http.StatusServiceUnavailable).JSON(t, &h)
		if h.Status != "unavailable" {
			t.Errorf("status %q", h.Status)
		}
		// Liveness and health do not depend on readiness.
		a.do(t, request{Method: "GET", Path: "/health/live"}).want(t, http.StatusOK)
		a.do(t, request{Method: "GET", Path: "/health"}).want(t, http.StatusOK)
		a.Server.SetReady(true)
		a.do(t, request{Method: "GET", Path: "/health/ready"}).want(t, http.StatusOK)
	})
}

func TestHealthStoreDown(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	if err := a.Store.Close(); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/health", "/health/ready"} {
		t.Run(path, func(t *testing.T) {
			var h health
			r := a.do(t, request{Method: "GET", Path: path}).want(t, http.StatusServiceUnavailable)
			r.JSON(t, &h)
			if h.Status != "unavailable" || h.Checks["store"].Status != "fail" || h.Checks["store"].Error == "" {
				t.Errorf("health %+v", h)
			}
			if strings.Contains(string(r.Body), "sql:") || strings.Contains(string(r.Body), "hermes.db") {
				t.Errorf("health reveals internals: %s", r.Body)
			}
		})
	}
	a.do(t, request{Method: "GET", Path: "/health/live"}).want(t, http.StatusOK)
	// API calls fail cleanly with a problem, not a crash.
	r := a.do(t, request{Method: "GET", Path: "/api/sessions/client/amelia", Key: ameliaKey})
	if r.StatusCode < 500 {
		t.Errorf("listing with the store closed: %d", r.StatusCode)
	}
	p := r.Problem(t)
	if strings.Contains(p.Detail, "sql") {
		t.Errorf("detail reveals internals: %q", p.Detail)
	}
}

func TestBasePath(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, withBasePath("/hermes"))
	if !strings.HasSuffix(a.URL, "/hermes") {
		t.Fatalf("URL %q does not end in the base path", a.URL)
	}
	root := *a // the same server, without the prefix
	root.URL = strings.TrimSuffix(a.URL, "/hermes")

	// Routes answer under the base path.
	a.do(t, request{Method: "GET", Path: "/health"}).want(t, http.StatusOK)
	a.do(t, request{Method: "GET", Path: "/api/clients", Key: adminKey}).want(t, http.StatusOK)
	r := a.do(t, request{Method: "POST", Path: activatePath, Key: ameliaKey, Body: activateBody()}).want(t, http.StatusCreated)
	var out struct{ SessionID, ThreadID, PreviewURL string }
	r.JSON(t, &out)
	if loc, want := r.Header.Get("Location"), "/hermes/api/sessions/"+out.SessionID+"/status"; loc != want {
		t.Errorf("Location %q, want %q", loc, want)
	}
	if want := "http://hermes.test/hermes/preview/amelia/site/" + out.ThreadID + "/"; out.PreviewURL != want {
		t.Errorf("previewUrl %q, want %q", out.PreviewURL, want)
	}
	// The Location can be followed from the server's root.
	root.do(t, request{Method: "GET", Path: r.Header.Get("Location"), Key: ameliaKey}).want(t, http.StatusOK)

	// Pagination links carry the base path.
	a.activate(t, ameliaKey)
	r = a.do(t, request{Method: "GET", Path: "/api/sessions/client/amelia?limit=1", Key: ameliaKey}).want(t, http.StatusOK)
	link := r.Header.Get("Link")
	if !strings.HasPrefix(link, "</hermes/api/sessions/client/amelia?") {
		t.Fatalf("Link %q lacks the base path", link)
	}
	next := strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
	var page []sessionSummary
	root.do(t, request{Method: "GET", Path: next, Key: ameliaKey}).want(t, http.StatusOK).JSON(t, &page)
	if len(page) != 1 {
		t.Errorf("next page has %d sessions, want 1", len(page))
	}

	// Nothing answers outside the base path.
	outside := []struct{ method, path string }{
		{"GET", "/health"},
		{"GET", "/health/live"},
		{"GET", "/metrics"},
		{"GET", "/openapi.json"},
		{"GET", "/api/clients"},
		{"GET", "/api/sessions/" + out.SessionID + "/status"},
		{"GET", "/hermesx/health"},
		{"GET", "/"},
	}
	for _, o := range outside {
		t.Run("outside "+o.path, func(t *testing.T) {
			r := root.do(t, request{Method: o.method, Path: o.path, Key: adminKey}).want(t, http.StatusNotFound)
			p := r.Problem(t)
			if p.Status != http.StatusNotFound {
				t.Errorf("problem status %d", p.Status)
			}
			if id := r.Header.Get("X-Request-Id"); id == "" || p.RequestID != id {
				t.Errorf("X-Request-Id %q, problem requestId %q", id, p.RequestID)
			}
		})
	}
	// Method problems are still reported under the base path.
	r = a.do(t, request{Method: "DELETE", Path: "/api/sessions/" + out.SessionID + "/status", Key: ameliaKey}).want(t, http.StatusMethodNotAllowed)
	r.Problem(t)
	if allow := r.Header.Get("Allow"); allow != "GET" {
		t.Errorf("Allow %q", allow)
	}
	a.do(t, request{Method: "GET", Path: "/api/nope", Key: ameliaKey}).want(t, http.StatusNotFound).Problem(t)
}

func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	var doc map[string]any
	r := a.do(t, request{Method: "GET", Path: "/openapi.json"}).want(t, http.StatusOK)
	r.JSON(t, &doc)
	if _, ok := doc["openapi"]; !ok {
		t.Errorf("/openapi.json has no openapi member")
	}
}

// TestHealthChecks: GET /health runs every check and is 503 when one
// fails (naming it, without its error); /health/ready counts the store
// only, so a replica whose orchestrator is down keeps its traffic.
func TestHealthChecks(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	var runnerDown atomic.Bool
	a.Server.Checks = map[string]func(context.Context) error{
		"queues": func(context.Context) error { return nil },
		"runner": func(context.Context) error {
			if runnerDown.Load() {
				return errors.New("ecs.DescribeClusters: connection refused to 10.0.0.7")
			}
			return nil
		},
	}
	var h health
	a.do(t, request{Method: "GET", Path: "/health"}).want(t, http.StatusOK).JSON(t, &h)
	for _, name := range []string{"store", "queues", "runner"} {
		if h.Checks[name].Status != "ok" {
			t.Errorf("checks.%s = %+v", name, h.Checks[name])
		}
	}
	runnerDown.Store(true)
	r := a.do(t, request{Method: "GET", Path: "/health"}).want(t, http.StatusServiceUnavailable)
	h = health{}
	r.JSON(t, &h)
	if h.Status != "unavailable" || h.Checks["runner"].Status != "fail" || h.Checks["runner"].Error != "runner: no answer" ||
		h.Checks["queues"].Status != "ok" || h.Checks["store"].Status != "ok" {
		t.Errorf("health %+v", h)
	}
	if strings.Contains(string(r.Body), "10.0.0.7") {
		t.Errorf("health reveals the check's error: %s", r.Body)
	}
	h = health{}
	a.do(t, request{Method: "GET", Path: "/health/ready"}).want(t, http.StatusOK).JSON(t, &h)
	if len(h.Checks) != 1 || h.Checks["store"].Status != "ok" {
		t.Errorf("ready %+v", h)
	}
}
