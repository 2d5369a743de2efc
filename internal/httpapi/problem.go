package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/webordinary/hermes"
)

// statusOf is the one table from error kinds to HTTP statuses.
var statusOf = map[hermes.Kind]int{
	hermes.Internal:      http.StatusInternalServerError,
	hermes.Invalid:       http.StatusBadRequest,
	hermes.Unauthorized:  http.StatusUnauthorized,
	hermes.Forbidden:     http.StatusForbidden,
	hermes.NotFound:      http.StatusNotFound,
	hermes.Conflict:      http.StatusConflict,
	hermes.Unprocessable: http.StatusUnprocessableEntity,
	hermes.TooLarge:      http.StatusRequestEntityTooLarge,
	hermes.Unavailable:   http.StatusServiceUnavailable,
}

// httpError is an error whose status has no domain kind (405, 415).
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// Problem is an RFC 9457 problem document. Extension members: requestId,
// and errors listing every invalid field.
type Problem struct {
	Type      string              `json:"type"`
	Title     string              `json:"title"`
	Status    int                 `json:"status"`
	Detail    string              `json:"detail,omitempty"`
	Instance  string              `json:"instance,omitempty"`
	RequestID string              `json:"requestId,omitempty"`
	Errors    []hermes.FieldError `json:"errors,omitempty"`
}

// writeProblem answers with the problem that err describes. Internal and
// Unavailable errors are logged with their cause; callers see only a safe
// message.
func writeProblem(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	p := Problem{Type: "about:blank", Instance: r.URL.Path, RequestID: w.Header().Get("X-Request-Id")}
	var he *httpError
	if errors.As(err, &he) {
		p.Status, p.Detail = he.status, he.msg
	} else {
		kind := hermes.ErrorKind(err)
		p.Status = statusOf[kind]
		p.Detail = hermes.ErrorMessage(err)
		var ve *hermes.ValidationError
		if errors.As(err, &ve) {
			p.Errors = ve.Fields
		}
		switch kind {
		case hermes.Internal, hermes.Unavailable:
			log.ErrorContext(r.Context(), "request failed", "status", p.Status, "err", err)
		default:
			log.DebugContext(r.Context(), "request rejected", "status", p.Status, "err", err)
		}
		if kind == hermes.Unauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hermes"`)
		}
		if kind == hermes.Unavailable {
			w.Header().Set("Retry-After", "5")
		}
	}
	p.Title = http.StatusText(p.Status)
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
