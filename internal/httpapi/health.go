package httpapi

import (
	"context"
	"net/http"
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

// checkStore pings the store with a short deadline.
func (s *Server) checkStore(ctx context.Context) check {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	start := time.Now()
	err := s.Store.Ping(ctx)
	c := check{Status: "ok", LatencyMS: float64(time.Since(start).Microseconds()) / 1000}
	if err != nil {
		c.Status, c.Error = "fail", "the store does not answer"
		s.Log.WarnContext(ctx, "health: store check failed", "err", err)
	}
	return c
}

// handleHealth checks the store for real: 200 when it answers, else 503.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	c := s.checkStore(r.Context())
	resp := healthResponse{Status: "ok", Version: s.Version, Checks: map[string]check{"store": c}}
	status := http.StatusOK
	if c.Status != "ok" {
		resp.Status, status = "unavailable", http.StatusServiceUnavailable
	}
	writeJSON(w, status, resp)
}

// handleLive answers 200 while the process serves HTTP at all.
func (s *Server) handleLive(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, healthResponse{Status: "ok"})
}

// handleReady answers 200 when Hermes has started, is not shutting down and
// its store answers; load balancers stop sending traffic on 503.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() {
		writeJSON(w, http.StatusServiceUnavailable, healthResponse{Status: "unavailable"})
		return
	}
	s.handleHealth(w, r)
}
