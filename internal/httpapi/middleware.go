package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/logctx"
)

// withBasePath serves every route under the base path and nothing outside
// it.
func (s *Server) withBasePath(next http.Handler) http.Handler {
	if s.BasePath == "" {
		return next
	}
	strip := http.StripPrefix(s.BasePath, next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != s.BasePath && !strings.HasPrefix(r.URL.Path, s.BasePath+"/") {
			writeProblem(w, r, s.Log, &httpError{status: http.StatusNotFound, msg: "no route for " + r.URL.Path})
			return
		}
		strip.ServeHTTP(w, r)
	})
}

var requestIDPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`) })

// withRequestContext gives every request an id (the caller's X-Request-Id
// when it is well-formed, else a new one), echoes it, puts it on every log
// line of the request, and sets headers every response carries.
func (s *Server) withRequestContext(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !requestIDPattern().MatchString(id) {
			id = hermes.NewToken()[:20]
		}
		h := w.Header()
		h.Set("X-Request-Id", id)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r.WithContext(logctx.With(r.Context(), slog.String("request_id", id))))
	})
}

// withRecover turns a panic into a logged, counted 500 problem; the client
// never sees the panic.
func (s *Server) withRecover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &statusWriter{ResponseWriter: w}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.Metrics.Panics.Inc()
			s.Log.ErrorContext(r.Context(), "panic serving request", "panic", v, "stack", string(debug.Stack()))
			if !rw.wrote {
				writeProblem(rw, r, s.Log, hermes.Errorf(hermes.Internal, "panic"))
			}
		}()
		next.ServeHTTP(rw, r)
	})
}

// withMetrics counts and times requests by route pattern (never by raw
// path, which would have unbounded cardinality) and writes the access log.
func (s *Server) withMetrics(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw, ok := w.(*statusWriter)
		if !ok {
			sw = &statusWriter{ResponseWriter: w}
		}
		label := new(string)
		r = r.WithContext(context.WithValue(r.Context(), routeKey{}, label))
		mux.ServeHTTP(sw, r) // sets r.Pattern
		elapsed := time.Since(start)
		route := *label
		if route == "" {
			route = r.Pattern
			if i := strings.IndexByte(route, ' '); i >= 0 {
				route = route[i+1:]
			}
		}
		if route == "/" || route == "" {
			route = "unmatched"
		}
		code := sw.status
		if code == 0 {
			code = http.StatusOK
		}
		s.Metrics.HTTPRequests.WithLabelValues(route, r.Method, strconv.Itoa(code)).Inc()
		s.Metrics.HTTPDuration.WithLabelValues(route, r.Method).Observe(elapsed.Seconds())
		level := slog.LevelInfo
		if strings.HasPrefix(route, "/health") || route == "/metrics" {
			level = slog.LevelDebug
		}
		s.Log.Log(r.Context(), level, "http request", "method", r.Method, "path", hermes.RedactApprovalTokens(r.URL.Path), "route", route,
			"status", code, "bytes", sw.bytes, "duration_ms", float64(elapsed.Microseconds())/1000, "remote", r.RemoteAddr)
	})
}

type routeKey struct{}

// setRoute names the route of r for metrics and logs when its mux pattern
// is not specific enough.
func setRoute(r *http.Request, route string) {
	if p, ok := r.Context().Value(routeKey{}).(*string); ok {
		*p = route
	}
}

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer (flush,
// deadlines for streams).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
