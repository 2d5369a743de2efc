package httpapi_test

// Benchmarks of the session status route through the whole handler chain
// (base path, request id, recover, metrics and access log, mux, auth, store
// read, JSON), on a real SQLite store, called in process with a recorder so
// that no network round trip blurs the numbers; and of the floor: a bare
// http.HandlerFunc writing the same bytes. The ratio of the two is what
// Hermes costs per request on top of net/http's own handler dispatch.
//
// They measure; they never assert timing. Run with
//
//	go test -run '^$' -bench . -benchmem ./internal/httpapi/

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
	"github.com/webordinary/hermes/internal/hermestest"
	"github.com/webordinary/hermes/internal/httpapi"
	"github.com/webordinary/hermes/internal/lifecycle"
	"github.com/webordinary/hermes/internal/logctx"
	"github.com/webordinary/hermes/internal/metrics"
	"github.com/webordinary/hermes/internal/router"
	"github.com/webordinary/hermes/internal/sqlite"
)

// newBenchAPI is newTestAPI (helpers_test.go) for benchmarks, which that
// helper cannot serve because it takes a *testing.T: the same store, keys,
// directory and wiring, without the httptest server, and with the logger
// serve builds (JSON, to a discarding writer) at the given level, so the
// access log costs what it costs in production short of the write itself.
func newBenchAPI(b *testing.B, level slog.Level) (srv *httpapi.Server, h http.Handler) {
	b.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "hermes.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	clock := hermestest.NewClock(testStart)
	log := logctx.New(io.Discard, "json", level)
	m := metrics.New(db, log)
	sessions := &lifecycle.Sessions{
		Store: db, Clock: clock.Now, TTL: 30 * time.Minute, PublicBase: "http://hermes.test", Log: log,
		Hooks: lifecycle.Hooks{Created: m.SessionsCreated.Inc, Expired: func(r string) { m.SessionsExpired.WithLabelValues(r).Inc() }},
	}
	rt := &router.Router{Store: db, Queues: db, Sessions: sessions, Clock: clock.Now, Log: log}
	srv = &httpapi.Server{
		Store: db, Sessions: sessions, Router: rt, Queues: db, Metrics: m, Log: log, Clock: clock.Now, Version: "bench",
		Auth: httpapi.NewAuthenticator([]config.APIKey{
			key(adminKey, "admin"), key(ameliaKey, "client:amelia"), key(otherKey, "client:other"),
		}, config.JWTConfig{}, clock.Now),
	}
	srv.SetReady(true)
	tree := &directory.ClientTree{
		Client:   hermes.Client{ID: "amelia", Name: "Amelia Stamps"},
		Projects: []*hermes.Project{{ID: "site", RepoURL: "/srv/amelia.git", EmailAddresses: []string{"edit@amelia.example.com"}}},
		Users:    []*hermes.User{{ID: "scott", Name: "Scott", Emails: []string{"scott@example.com"}, Phones: []string{"+15550100002"}}},
	}
	tree.Normalize()
	if err := directory.Create(ctx, db, tree, clock.Now()); err != nil {
		b.Fatal(err)
	}
	return srv, srv.Handler()
}

// benchActivate opens a session for amelia/site/scott through the handler
// and returns its id.
func benchActivate(b *testing.B, h http.Handler) string {
	b.Helper()
	body := `{"clientId":"amelia","userId":"scott","instruction":"make the header blue"}`
	req := httptest.NewRequest("POST", "/api/sessions/activate", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminKey)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		b.Fatalf("activate: status %d, want 201; body %s", rec.Code, rec.Body)
	}
	var out struct{ SessionID string }
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.SessionID == "" {
		b.Fatalf("activate: body %s: %v", rec.Body, err)
	}
	return out.SessionID
}

func statusRequest(id string) *http.Request {
	req := httptest.NewRequest("GET", "/api/sessions/"+id+"/status", nil)
	req.Header.Set("Authorization", "Bearer "+ameliaKey)
	return req
}

// serveBench runs req through h b.N times, each into a fresh recorder,
// failing on any status but 200. The request is shared: no handler of the
// chain modifies the request it is given.
func serveBench(b *testing.B, h http.Handler, req *http.Request) {
	b.ReportAllocs()
	b.ResetTimer()
	var rec *httptest.ResponseRecorder
	for i := 0; i < b.N; i++ {
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d, want 200; body %s", rec.Code, rec.Body)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	b.ReportMetric(float64(rec.Body.Len()), "body-B")
}

// BenchmarkStatus is GET /api/sessions/{id}/status through the full chain,
// with the access log at info (the default: one JSON line per request) and
// at warn (access lines filtered out before formatting).
func BenchmarkStatus(b *testing.B) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelWarn} {
		b.Run("log="+strings.ToLower(level.String()), func(b *testing.B) {
			_, h := newBenchAPI(b, level)
			serveBench(b, h, statusRequest(benchActivate(b, h)))
		})
	}
}

// BenchmarkStatusParallel is BenchmarkStatus at info from GOMAXPROCS
// goroutines at once, so contention in the chain (metrics, the store's
// connection pool) shows.
func BenchmarkStatusParallel(b *testing.B) {
	_, h := newBenchAPI(b, slog.LevelInfo)
	id := benchActivate(b, h)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := statusRequest(id)
		for pb.Next() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Errorf("status %d, want 200; body %s", rec.Code, rec.Body)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkBaselineHandler is the floor: a bare http.HandlerFunc writing
// the bytes and content headers of a real status response.
func BenchmarkBaselineHandler(b *testing.B) {
	_, h := newBenchAPI(b, slog.LevelInfo)
	req := statusRequest(benchActivate(b, h))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("status %d, want 200; body %s", rec.Code, rec.Body)
	}
	body := bytes.Clone(rec.Body.Bytes())
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	})
	serveBench(b, bare, req)
}
