package httpapi

import (
	"context"
	"net/http"
	"sync"
	"time"
)

type check struct {
	Status    string  `json:"status"` // ok or fail
	LatencyMS float64 `json:"latencyMs"`
	Error     string  `json:"error,omitempty"`
}

type healthResponse struct {
	Status  string           `json:"status"` // ok or unavailable
	Version string           `json:"version,omitempty"`
	Checks  map[string]check `json:"checks,omitempty"`
}

// checkTimeout bounds each health check.
const checkTimeout = 2 * time.Second

// run runs one check with a short deadline and reports it; detail is what
// a failure says (errors are logged, never shown: they may name internals).
func (s *Server) run(ctx context.Context, name, detail string, fn func(context.Context) error) check {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	start := time.Now()
	err := fn(ctx)
	c := check{Status: "ok", LatencyMS: float64(time.Since(start).Microseconds()) / 1000}
	if err != nil {
		c.Status, c.Error = "fail", detail
		s.Log.WarnContext(ctx, "health: check failed", "check", name, "err", err)
	}
	return c
}

// checkStore pings the store.
func (s *Server) checkStore(ctx context.Context) check {
	return s.run(ctx, "store", "the store does not answer", s.Store.Ping)
}

// respond writes the health of checks: 200 when all are ok, else 503.
func (s *Server) respond(w http.ResponseWriter, checks map[string]check) {
	resp := healthResponse{Status: "ok", Version: s.Version, Checks: checks}
	status := http.StatusOK
	for _, c := range checks {
		if c.Status != "ok" {
			resp.Status, status = "unavailable", http.StatusServiceUnavailable
		}
	}
	writeJSON(w, status, resp)
}

// handleHealth checks the store and every other check of s.Checks for
// real, at once: 200 when all answer, else 503.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	checks := map[string]check{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	add := func(name string, c check) {
		mu.Lock()
		checks[name] = c
		mu.Unlock()
	}
	wg.Go(func() { add("store", s.checkStore(r.Context())) })
	for name, fn := range s.Checks {
		wg.Go(func() { add(name, s.run(r.Context(), name, name+": no answer", fn)) })
	}
	wg.Wait()
	s.respond(w, checks)
}

// handleLive answers 200 while the process serves HTTP at all.
func (s *Server) handleLive(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, healthResponse{Status: "ok"})
}

// handleReady answers 200 when Hermes has started, is not shutting down and
// its store answers (the other checks do not count: see Server.Checks);
// load balancers stop sending traffic on 503.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() {
		writeJSON(w, http.StatusServiceUnavailable, healthResponse{Status: "unavailable"})
		return
	}
	s.respond(w, map[string]check{"store": s.checkStore(r.Context())})
}
