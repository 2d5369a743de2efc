// Package httpapi is Hermes's HTTP interface: the REST API for edit
// sessions and the directory, health, metrics and the OpenAPI document. All
// routes are listed in one place (routes); errors are RFC 9457 problems.
package httpapi

import (
	"context"
	_ "embed"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/events"
	"github.com/webordinary/hermes/internal/lifecycle"
	"github.com/webordinary/hermes/internal/metrics"
	"github.com/webordinary/hermes/internal/preview"
	"github.com/webordinary/hermes/internal/router"
)

// Server serves Hermes's HTTP routes.
type Server struct {
	Store    hermes.Store
	Sessions *lifecycle.Sessions
	Router   *router.Router
	Queues   hermes.Queues
	Inbound  *Inbound // webhook channels; nil serves none
	Auth     *Authenticator
	Metrics  *metrics.Metrics
	Log      *slog.Logger
	Clock    hermes.Clock
	BasePath string // "" or "/hermes"
	Version  string
	// Previews serves the published previews (package preview) at
	// /preview/{clientId}/{projectId}/{threadId}/…; nil answers every
	// preview request 404.
	Previews http.Handler
	// Runner wakes a container after its dead jobs are redriven (nil
	// leaves them to the reconcile loop) and when an operator wakes or
	// stops it (POST /api/containers/{containerId}/wake and /stop; 503
	// when nil).
	Runner hermes.Runner
	// Events is the hub of session events streamed at
	// /api/sessions/{sessionId}/events; nil streams only the history.
	Events *events.Hub
	// EventsHeartbeat is how often an idle event stream gets a comment
	// and its session's status is checked; DefaultEventsHeartbeat when 0.
	EventsHeartbeat time.Duration
	// Checks are GET /health's checks besides the store's, by name (the
	// queues, the container runner's orchestrator): each returns nil when
	// what it checks answers. They count for /health only, never for
	// /health/ready: a replica whose orchestrator is down still takes
	// messages and queues them, so load balancers must keep it.
	Checks map[string]func(context.Context) error
	// PublicURL (HERMES_PUBLIC_URL) is the origin approval forms may come
	// from; https makes their CSRF cookie Secure (approvals.go).
	PublicURL string

	approvalLimit rateLimiter // requests to approval pages per client address

	ready   atomic.Bool
	mux     *http.ServeMux
	actions map[string]map[string]http.Handler // method → session action → handler
}

// SetReady marks the server ready (or not) for /health/ready; Hermes is not
// ready before start-up ends and once shutdown begins.
func (s *Server) SetReady(ok bool) { s.ready.Store(ok) }

// Handler returns the server's handler with its middleware chain.
func (s *Server) Handler() http.Handler {
	s.mux = http.NewServeMux()
	s.routes(s.mux)
	return s.withRequestContext(s.withBasePath(s.withRecover(s.withMetrics(s.mux))))
}

// routes lists every route. Callers are named in the comments.
func (s *Server) routes(mux *http.ServeMux) {
	// Load balancers, container health checks, `hermes healthcheck`.
	mux.HandleFunc("GET /health", s.handleHealth)
	mux.HandleFunc("GET /health/live", s.handleLive)
	mux.HandleFunc("GET /health/ready", s.handleReady)
	// Prometheus.
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Metrics.Registry, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.Log.Handler(), slog.LevelWarn)}))
	// API clients and tooling.
	mux.HandleFunc("GET /openapi.json", s.handleOpenAPI)

	// Sessions: the reference contract (site front-ends, scripts).
	// The mux cannot hold both /api/sessions/client/{clientId} and
	// /api/sessions/{sessionId}/status (both match /api/sessions/client/status),
	// so a session's sub-resources are dispatched by sessionActions; session
	// ids never equal "client".
	mux.Handle("POST /api/sessions/activate", s.authed(s.handleActivate))
	mux.Handle("GET /api/sessions/client/{clientId}", s.authed(s.handleListSessions))
	s.sessionActions(mux, map[string]apiFunc{
		"GET /api/sessions/{sessionId}/status":      s.handleStatus,
		"GET /api/sessions/{sessionId}/messages":    s.handleHistory,
		"POST /api/sessions/{sessionId}/keepalive":  s.handleKeepalive,
		"POST /api/sessions/{sessionId}/deactivate": s.handleDeactivate,
		"POST /api/sessions/{sessionId}/messages":   s.handleSessionMessage,
		"GET /api/sessions/{sessionId}/events":      s.handleEvents, // site front-ends, dashboards (SSE)
	})
	// The API channel: chat front-ends, scripts (admin or the client's scope).
	mux.Handle("POST /api/messages", s.authed(s.handleMessage))
	// Inbound channels: HTTP email (admin key), Twilio and Slack (their signatures).
	mux.Handle("POST /inbound/email", s.admin(s.handleInboundEmail))
	mux.Handle("POST /inbound/sms/twilio", s.handle(s.handleTwilio))
	mux.Handle("POST /inbound/chat/slack", s.handle(s.handleSlack))
	// Introspection: operators and dashboards.
	mux.Handle("GET /api/outbox", s.authed(s.handleOutbox))
	mux.Handle("GET /api/containers", s.authed(s.handleContainers))
	mux.Handle("GET /api/containers/{containerId}", s.authed(s.handleGetContainer))
	// Containers: operators (admin scope).
	mux.Handle("POST /api/containers/{containerId}/wake", s.admin(s.handleWakeContainer))
	mux.Handle("POST /api/containers/{containerId}/stop", s.admin(s.handleStopContainer))
	// Dead jobs: operators (admin scope).
	mux.Handle("GET /api/dead-jobs", s.admin(s.handleDeadJobs))
	mux.Handle("POST /api/containers/{containerId}/dead-jobs/redrive", s.admin(s.handleRedriveDeadJobs))
	mux.Handle("DELETE /api/containers/{containerId}/dead-jobs", s.admin(s.handlePurgeDeadJobs))

	// Previews: browsers, from the links in replies and session status
	// (public: the thread id is the unguessable part). The path without a
	// slash is registered too, so that the handler, not the mux, redirects
	// it: the mux's redirect would drop the base path.
	previews := s.Previews
	if previews == nil {
		previews = s.handle(func(w http.ResponseWriter, _ *http.Request) error {
			w.Header().Set("Content-Security-Policy", preview.ContentSecurityPolicy)
			return hermes.Errorf(hermes.NotFound, "no preview has been published for this thread yet")
		})
	}
	mux.Handle("GET /preview/{clientId}/{projectId}/{threadId}", previews)
	mux.Handle("GET /preview/{clientId}/{projectId}/{threadId}/{path...}", previews)

	// Approval pages: browsers, from the plan's link in a reply (public:
	// the token is the credential; HTML pages, CSRF-protected forms).
	mux.HandleFunc("GET /approvals/{token}", s.handleApprovalPage)
	mux.HandleFunc("POST /approvals/{token}", s.handleApprovalDecision)

	// Directory: operators and provisioning scripts (admin scope).
	mux.Handle("POST /api/clients", s.admin(s.handleCreateClient))
	mux.Handle("GET /api/clients", s.admin(s.handleListClients))
	mux.Handle("GET /api/clients/{clientId}", s.admin(s.handleGetClient))
	mux.Handle("PUT /api/clients/{clientId}", s.admin(s.handlePutClient))
	mux.Handle("DELETE /api/clients/{clientId}", s.admin(s.handleDeleteClient))
	mux.Handle("POST /api/clients/{clientId}/projects", s.admin(s.handleCreateProject))
	mux.Handle("GET /api/clients/{clientId}/projects", s.admin(s.handleListProjects))
	mux.Handle("GET /api/clients/{clientId}/projects/{projectId}", s.admin(s.handleGetProject))
	mux.Handle("PUT /api/clients/{clientId}/projects/{projectId}", s.admin(s.handlePutProject))
	mux.Handle("DELETE /api/clients/{clientId}/projects/{projectId}", s.admin(s.handleDeleteProject))
	mux.Handle("POST /api/clients/{clientId}/users", s.admin(s.handleCreateUser))
	mux.Handle("GET /api/clients/{clientId}/users", s.admin(s.handleListUsers))
	mux.Handle("GET /api/clients/{clientId}/users/{userId}", s.admin(s.handleGetUser))
	mux.Handle("PUT /api/clients/{clientId}/users/{userId}", s.admin(s.handlePutUser))
	mux.Handle("DELETE /api/clients/{clientId}/users/{userId}", s.admin(s.handleDeleteUser))

	// Everything else: a 404 or 405 problem.
	mux.HandleFunc("/", s.handleUnmatched)
}

// apiFunc is a handler that returns its error; handle turns it into a
// problem response.
type apiFunc func(w http.ResponseWriter, r *http.Request) error

func (s *Server) handle(fn apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			writeProblem(w, r, s.Log, err)
		}
	})
}

// authed requires an authenticated caller, available to fn through
// principalFrom.
func (s *Server) authed(fn apiFunc) http.Handler {
	return s.handle(func(w http.ResponseWriter, r *http.Request) error {
		p, err := s.Auth.Authenticate(r)
		if err != nil {
			return err
		}
		return fn(w, r.WithContext(withPrincipal(r.Context(), p)))
	})
}

// admin requires a caller with the admin scope (403 otherwise).
func (s *Server) admin(fn apiFunc) http.Handler {
	return s.authed(func(w http.ResponseWriter, r *http.Request) error {
		if !principalFrom(r.Context()).Admin() {
			return hermes.Errorf(hermes.Forbidden, "this route needs the admin scope")
		}
		return fn(w, r)
	})
}

// sessionActions registers "METHOD /api/sessions/{sessionId}/{action}" for
// each method of routes, dispatching on the action and labelling metrics
// with the route's own pattern.
func (s *Server) sessionActions(mux *http.ServeMux, routes map[string]apiFunc) {
	const prefix = "/api/sessions/{sessionId}/"
	byMethod := map[string]map[string]http.Handler{}
	s.actions = byMethod
	for pattern, fn := range routes {
		method, path, _ := strings.Cut(pattern, " ")
		if byMethod[method] == nil {
			byMethod[method] = map[string]http.Handler{}
		}
		byMethod[method][strings.TrimPrefix(path, prefix)] = s.authed(fn)
	}
	for method, actions := range byMethod {
		mux.HandleFunc(method+" "+prefix+"{action}", func(w http.ResponseWriter, r *http.Request) {
			action := r.PathValue("action")
			h, ok := actions[action]
			if !ok {
				s.handleUnmatched(w, r) // other methods of this action, or of a route such as GET /api/sessions/client/{clientId}
				return
			}
			setRoute(r, prefix+action)
			h.ServeHTTP(w, r)
		})
	}
}

var allowProbe = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch}

// handleUnmatched answers 405 with Allow when the path exists under other
// methods, else 404.
func (s *Server) handleUnmatched(w http.ResponseWriter, r *http.Request) {
	s.unmatched(w, r, func(m string) bool {
		probe := r.Clone(context.Background())
		probe.Method = m
		_, pattern := s.mux.Handler(probe)
		if strings.HasSuffix(pattern, "{action}") {
			_, ok := s.actions[m][path.Base(r.URL.Path)]
			return ok
		}
		return pattern != "/" && pattern != ""
	})
}

// unmatched answers 405 listing the methods for which has reports a route,
// or 404 when there is none.
func (s *Server) unmatched(w http.ResponseWriter, r *http.Request, has func(method string) bool) {
	var allow []string
	for _, m := range allowProbe {
		if has(m) {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		for _, m := range allow {
			w.Header().Add("Allow", m)
		}
		writeProblem(w, r, s.Log, &httpError{status: http.StatusMethodNotAllowed, msg: "method " + r.Method + " is not allowed here"})
		return
	}
	writeProblem(w, r, s.Log, &httpError{status: http.StatusNotFound, msg: "no route for " + r.URL.Path})
}

//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI document describing the routes.
func OpenAPI() []byte { return openAPIDoc }

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openAPIDoc)
}
