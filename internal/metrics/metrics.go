// Package metrics holds Hermes's Prometheus metrics. Each Hermes instance
// has its own registry (so tests in one process do not collide), served at
// /metrics.
package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/webordinary/hermes"
)

// Metrics are the instruments that the rest of Hermes updates.
type Metrics struct {
	Registry *prometheus.Registry

	HTTPRequests    *prometheus.CounterVec   // route, method, code
	HTTPDuration    *prometheus.HistogramVec // route, method
	SessionsCreated prometheus.Counter
	SessionsExpired *prometheus.CounterVec // reason
	Panics          prometheus.Counter

	MessagesRouted    *prometheus.CounterVec // channel
	MessagesDropped   *prometheus.CounterVec // channel, reason
	MessagesDuplicate *prometheus.CounterVec // channel
	MessagesRejected  *prometheus.CounterVec // channel, reason: bad signatures, broken input

	RepliesSent   *prometheus.CounterVec // channel
	RepliesFailed *prometheus.CounterVec // channel

	ResultsRelayed *prometheus.CounterVec // kind: result, error, interrupted, plan
	WakeSeconds    prometheus.Histogram   // wake requested → the worker's first heartbeat
	ResultsDropped *prometheus.CounterVec // reason

	// CircuitState is each outside service's breaker state (BreakerState).
	CircuitState *prometheus.GaugeVec // service
}

// New registers Hermes's metrics, the Go runtime and process collectors, and
// hermes_active_sessions, which counts live sessions in store at each scrape
// (so it is right with several replicas on one store).
func New(store hermes.Sessions, log *slog.Logger) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hermes_http_requests_total",
			Help: "HTTP requests served, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hermes_http_request_duration_seconds",
			Help:    "Time to serve HTTP requests, by route pattern and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		SessionsCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hermes_sessions_created_total",
			Help: "Edit sessions created by this instance.",
		}),
		SessionsExpired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hermes_sessions_expired_total",
			Help: "Edit sessions this instance moved to expired, by reason (lease, deactivated).",
		}, []string{"reason"}),
		Panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hermes_http_panics_total",
			Help: "Panics recovered while serving HTTP requests.",
		}),
		MessagesRouted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hermes_messages_routed_total",
			Help: "Inbound messages queued as jobs, by channel.",
		}, []string{"channel"}),
		MessagesDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hermes_messages_dropped_total",
			Help: "Inbound messages not executed, by channel and reason (unknown-sender, unknown-recipient, auto, empty, verdict).",
		}, []string{"channel", "reason"}),
		MessagesDuplicate: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hermes_messages_duplicate_total",
			Help: "Redelivered inbound messages acknowledged without routing again, by channel.",
		}, []string{"channel"}),
		MessagesRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hermes_messages_rejected_total",
			Help: "Inbound requests refused before routing (bad signature, malformed input), by channel and reason.",
		}, []string{"channel", "reason"}),
	}
	m.RepliesSent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hermes_replies_sent_total",
		Help: "Outbox items delivered, by channel.",
	}, []string{"channel"})
	m.RepliesFailed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hermes_replies_failed_total",
		Help: "Outbox items given up on after their last attempt, by channel.",
	}, []string{"channel"})
	m.ResultsRelayed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hermes_results_relayed_total",
		Help: "Container results recorded and answered, by kind.",
	}, []string{"kind"})
	m.ResultsDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hermes_results_dropped_total",
		Help: "Container results dropped (malformed, unknown session, mismatch, gave up), by reason.",
	}, []string{"reason"})
	m.WakeSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "hermes_container_wake_seconds",
		Help:    "Time from a container's wake to its worker's first heartbeat (the wait quoted in acknowledgements).",
		Buckets: []float64{.05, .1, .15, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
	})
	m.CircuitState = newCircuitState()
	reg.MustRegister(m.RepliesSent, m.RepliesFailed, m.ResultsRelayed, m.ResultsDropped, m.WakeSeconds, m.CircuitState)
	reg.MustRegister(m.HTTPRequests, m.HTTPDuration, m.SessionsCreated, m.SessionsExpired, m.Panics,
		m.MessagesRouted, m.MessagesDropped, m.MessagesDuplicate, m.MessagesRejected,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&activeSessions{store: store, log: log,
			desc: prometheus.NewDesc("hermes_active_sessions",
				"Live edit sessions (initializing or active) in the store; the reference's ActiveSessionCount.", nil, nil)})
	return m
}

// activeSessions counts live sessions at scrape time.
type activeSessions struct {
	store hermes.Sessions
	log   *slog.Logger
	desc  *prometheus.Desc
}

func (a *activeSessions) Describe(ch chan<- *prometheus.Desc) { ch <- a.desc }

func (a *activeSessions) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := a.store.CountSessions(ctx, hermes.SessionInitializing, hermes.SessionActive)
	if err != nil {
		a.log.Warn("metrics: counting active sessions failed", "err", err)
		ch <- prometheus.NewInvalidMetric(a.desc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(a.desc, prometheus.GaugeValue, float64(n))
}
