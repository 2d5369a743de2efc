package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/lifecycle"
	"github.com/webordinary/hermes/internal/router"
)

// activateRequest is the body of POST /api/sessions/activate.
type activateRequest struct {
	ClientID    string `json:"clientId"`
	ProjectID   string `json:"projectId"`
	UserID      string `json:"userId"`
	Instruction string `json:"instruction"`
}

type activateResponse struct {
	SessionID   string               `json:"sessionId"`
	ThreadID    string               `json:"threadId"`
	Status      hermes.SessionStatus `json:"status"`
	PreviewURL  string               `json:"previewUrl"`
	ContainerID string               `json:"containerId"`
	ExpiresAt   time.Time            `json:"expiresAt"`
}

// maxWait bounds ?wait=ready.
const maxWait = 60 * time.Second

func (s *Server) handleActivate(w http.ResponseWriter, r *http.Request) error {
	waitFor, err := parseWait(r.URL.Query())
	if err != nil {
		return err
	}
	var req activateRequest
	if err := decodeJSON(w, r, &req, maxBodyBytes); err != nil {
		return err
	}
	var v hermes.ValidationError
	targetFields(&v, req.ClientID, req.ProjectID, req.UserID)
	instructionField(&v, "instruction", req.Instruction)
	if err := v.Err(); err != nil {
		return err
	}
	if !principalFrom(r.Context()).CanSeeClient(req.ClientID) {
		return hermes.Errorf(hermes.NotFound, "client %q not found", req.ClientID)
	}
	out, err := s.Router.Route(r.Context(), &hermes.Message{
		Channel: hermes.ChannelAPI, ChannelID: "activate-" + hermes.NewToken(),
		ClientID: req.ClientID, ProjectID: req.ProjectID, UserID: req.UserID, Text: req.Instruction,
		Thread: hermes.ThreadHints{NewThread: true},
	})
	if err != nil {
		return err
	}
	if out.Status == router.Busy {
		return errBusy
	}
	sess, err := s.Store.GetSession(r.Context(), out.SessionID)
	if err != nil {
		return err
	}
	if waitFor > 0 {
		sess = s.waitReady(r.Context(), sess, waitFor)
	}
	w.Header().Set("Location", s.BasePath+"/api/sessions/"+sess.ID+"/status")
	writeJSON(w, http.StatusCreated, activateResponse{
		SessionID: sess.ID, ThreadID: sess.ThreadID, Status: sess.Status, PreviewURL: sess.PreviewURL,
		ContainerID: sess.ContainerID, ExpiresAt: sess.ExpiresAt,
	})
	return nil
}

// parseWait reads ?wait=ready&timeout=D (a Go duration or seconds; default
// 30s, at most 60s). It returns 0 when the caller does not wait.
func parseWait(q url.Values) (time.Duration, error) {
	wait, timeout := q.Get("wait"), q.Get("timeout")
	if wait == "" {
		if timeout != "" {
			return 0, hermes.Errorf(hermes.Invalid, "timeout is only meaningful with wait=ready")
		}
		return 0, nil
	}
	if wait != "ready" {
		return 0, hermes.Errorf(hermes.Invalid, "wait must be \"ready\"")
	}
	if timeout == "" {
		return 30 * time.Second, nil
	}
	d, err := time.ParseDuration(timeout)
	if err != nil {
		n, nerr := strconv.Atoi(timeout)
		if nerr != nil {
			return 0, hermes.Errorf(hermes.Invalid, "timeout must be a duration like 20s, or seconds")
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 || d > maxWait {
		return 0, hermes.Errorf(hermes.Invalid, "timeout must be between 1s and %s", maxWait)
	}
	return d, nil
}

// waitReady polls the session until it is active (its container ready),
// it ends, or d passes; it returns the latest state it saw.
func (s *Server) waitReady(ctx context.Context, sess *hermes.Session, d time.Duration) *hermes.Session {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for sess.Status == hermes.SessionInitializing {
		select {
		case <-ctx.Done():
			return sess
		case <-t.C:
		}
		if cur, err := s.Store.GetSession(ctx, sess.ID); err == nil {
			sess = cur
		}
	}
	return sess
}

type statusResponse struct {
	SessionID       string                 `json:"sessionId"`
	Status          hermes.SessionStatus   `json:"status"`
	Reason          string                 `json:"reason,omitempty"`
	ThreadID        string                 `json:"threadId"`
	ClientID        string                 `json:"clientId"`
	ProjectID       string                 `json:"projectId"`
	UserID          string                 `json:"userId"`
	ContainerID     string                 `json:"containerId"`
	ContainerStatus hermes.ContainerStatus `json:"containerStatus"`
	CreatedAt       time.Time              `json:"createdAt"`
	LastActivity    time.Time              `json:"lastActivity"`
	ExpiresAt       time.Time              `json:"expiresAt"`
	PreviewURL      string                 `json:"previewUrl"`
	LastResult      *hermes.Result         `json:"lastResult,omitempty"`
}

// session loads the session named in the path, as NotFound when the caller
// may not see its client.
func (s *Server) session(r *http.Request) (*hermes.Session, error) {
	id := r.PathValue("sessionId")
	if !hermes.ValidTokenID(id) {
		return nil, hermes.Errorf(hermes.Invalid, "sessionId %q is malformed: expected 16-64 lowercase letters and digits", id)
	}
	sess, err := s.Store.GetSession(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if !principalFrom(r.Context()).CanSeeClient(sess.ClientID) {
		return nil, hermes.Errorf(hermes.NotFound, "session %q not found", id)
	}
	return sess, nil
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) error {
	sess, err := s.session(r)
	if err != nil {
		return err
	}
	cs := hermes.ContainerStopped
	if c, err := s.Store.GetContainer(r.Context(), sess.ContainerID); err == nil {
		cs = c.Status
	} else if !hermes.IsKind(err, hermes.NotFound) {
		return err
	}
	writeJSON(w, http.StatusOK, statusResponse{
		SessionID: sess.ID, Status: sess.Status, Reason: sess.Reason, ThreadID: sess.ThreadID,
		ClientID: sess.ClientID, ProjectID: sess.ProjectID, UserID: sess.UserID,
		ContainerID: sess.ContainerID, ContainerStatus: cs,
		CreatedAt: sess.CreatedAt, LastActivity: sess.LastActivity, ExpiresAt: sess.ExpiresAt,
		PreviewURL: sess.PreviewURL, LastResult: sess.LastResult,
	})
	return nil
}

type keepaliveResponse struct {
	SessionID string               `json:"sessionId"`
	Status    hermes.SessionStatus `json:"status"`
	TTL       int64                `json:"ttl"` // lease end in epoch seconds
	ExpiresAt time.Time            `json:"expiresAt"`
}

func (s *Server) handleKeepalive(w http.ResponseWriter, r *http.Request) error {
	sess, err := s.session(r)
	if err != nil {
		return err
	}
	sess, err = s.Sessions.Keepalive(r.Context(), sess.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, keepaliveResponse{SessionID: sess.ID, Status: sess.Status, TTL: sess.ExpiresAt.Unix(), ExpiresAt: sess.ExpiresAt})
	return nil
}

type deactivateResponse struct {
	SessionID string               `json:"sessionId"`
	Status    hermes.SessionStatus `json:"status"`
	Message   string               `json:"message"`
}

func (s *Server) handleDeactivate(w http.ResponseWriter, r *http.Request) error {
	sess, err := s.session(r)
	if err != nil {
		return err
	}
	sess, err = s.Sessions.Deactivate(r.Context(), sess.ID)
	if err != nil {
		return err
	}
	msg := "the session is draining and will expire"
	if sess.Status == hermes.SessionExpired {
		msg = "the session has already expired"
	}
	writeJSON(w, http.StatusAccepted, deactivateResponse{SessionID: sess.ID, Status: sess.Status, Message: msg})
	return nil
}

type sessionSummary struct {
	SessionID    string               `json:"sessionId"`
	ThreadID     string               `json:"threadId"`
	UserID       string               `json:"userId"`
	ProjectID    string               `json:"projectId"`
	Status       hermes.SessionStatus `json:"status"`
	PreviewURL   string               `json:"previewUrl"`
	CreatedAt    time.Time            `json:"createdAt"`
	LastActivity time.Time            `json:"lastActivity"`
	ExpiresAt    time.Time            `json:"expiresAt"`
}

const (
	defaultPageSize = 50
	maxPageSize     = 200
)

// handleListSessions lists a client's sessions, newest first: live ones
// (initializing, active) unless ?status= names others (comma-separated, or
// "all"); ?limit= and ?cursor= page through them, the next page's link in
// the Link header (rel="next") and X-Next-Cursor.
func (s *Server) handleListSessions(w http.ResponseWriter, r *http.Request) error {
	clientID := r.PathValue("clientId")
	if !hermes.ValidSlug(clientID) {
		return hermes.Errorf(hermes.Invalid, "clientId %q is malformed", clientID)
	}
	if !principalFrom(r.Context()).CanSeeClient(clientID) {
		return hermes.Errorf(hermes.NotFound, "client %q not found", clientID)
	}
	q := r.URL.Query()
	statuses := []hermes.SessionStatus{hermes.SessionInitializing, hermes.SessionActive}
	if st := q.Get("status"); st == "all" {
		statuses = nil
	} else if st != "" {
		statuses = nil
		for _, x := range strings.Split(st, ",") {
			ss := hermes.SessionStatus(strings.TrimSpace(x))
			if !ss.Valid() {
				return hermes.Errorf(hermes.Invalid, "status %q is not one of initializing, active, draining, expired, all", x)
			}
			statuses = append(statuses, ss)
		}
	}
	limit := defaultPageSize
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxPageSize {
			return hermes.Errorf(hermes.Invalid, "limit must be an integer from 1 to %d", maxPageSize)
		}
		limit = n
	}
	if _, err := s.Store.GetClient(r.Context(), clientID); err != nil {
		return err
	}
	page, next, err := s.Store.ListSessions(r.Context(), clientID, statuses, limit, q.Get("cursor"))
	if err != nil {
		return err
	}
	out := make([]sessionSummary, len(page))
	for i, x := range page {
		out[i] = sessionSummary{SessionID: x.ID, ThreadID: x.ThreadID, UserID: x.UserID, ProjectID: x.ProjectID, Status: x.Status,
			PreviewURL: x.PreviewURL, CreatedAt: x.CreatedAt, LastActivity: x.LastActivity, ExpiresAt: x.ExpiresAt}
	}
	if next != "" {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("cursor", next)
		w.Header().Set("Link", "<"+s.BasePath+r.URL.Path+"?"+nq.Encode()+`>; rel="next"`)
		w.Header().Set("X-Next-Cursor", next)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) error {
	sess, err := s.session(r)
	if err != nil {
		return err
	}
	h, err := s.Store.ListHistory(r.Context(), sess.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, h)
	return nil
}

// targetFields checks the client, project (optional) and user a request
// names.
func targetFields(v *hermes.ValidationError, clientID, projectID, userID string) {
	slugField(v, "clientId", clientID, true)
	slugField(v, "projectId", projectID, false)
	slugField(v, "userId", userID, true)
}

// instructionField checks an instruction given in field.
func instructionField(v *hermes.ValidationError, field, text string) {
	if err := lifecycle.ValidInstruction(text); err != nil {
		v.Add(field, "%s", strings.TrimPrefix(hermes.ErrorMessage(err), "instruction "))
	}
}

func slugField(v *hermes.ValidationError, field, s string, required bool) {
	switch {
	case s == "" && required:
		v.Add(field, "is required")
	case s != "" && !hermes.ValidSlug(s):
		v.Add(field, "%q must be 1-%d lowercase letters, digits or inner hyphens", s, hermes.MaxSlugLen)
	}
}
