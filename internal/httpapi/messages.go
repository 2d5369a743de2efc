package httpapi

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"sync"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/router"
)

// errBusy answers a message refused because the container has too many
// jobs waiting.
var errBusy = &httpError{status: http.StatusTooManyRequests, msg: "too many requests are waiting for this editor; try again in a few minutes"}

var messageIDPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`) })

// messageRequest is the body of POST /api/messages.
type messageRequest struct {
	ClientID  string `json:"clientId"`
	ProjectID string `json:"projectId"`
	UserID    string `json:"userId"`
	Text      string `json:"text"`
	ThreadID  string `json:"threadId"`
	// MessageID is the caller's id of the message: sending the same id
	// again is acknowledged and not routed twice. Generated when absent.
	MessageID string `json:"messageId"`
}

type messageResponse struct {
	MessageID   string `json:"messageId"`
	ThreadID    string `json:"threadId,omitempty"`
	SessionID   string `json:"sessionId,omitempty"`
	ContainerID string `json:"containerId,omitempty"`
	JobID       string `json:"jobId,omitempty"`
	Status      string `json:"status"`           // queued, duplicate or answered
	Reason      string `json:"reason,omitempty"` // answered: how
}

func (s *Server) handleMessage(w http.ResponseWriter, r *http.Request) error {
	var req messageRequest
	if err := decodeJSON(w, r, &req, maxBodyBytes); err != nil {
		return err
	}
	var v hermes.ValidationError
	targetFields(&v, req.ClientID, req.ProjectID, req.UserID)
	instructionField(&v, "text", req.Text)
	if req.ThreadID != "" && !hermes.ValidTokenID(req.ThreadID) {
		v.Add("threadId", "%q is not a thread id", req.ThreadID)
	}
	if req.MessageID != "" && !messageIDPattern().MatchString(req.MessageID) {
		v.Add("messageId", "must be 1-128 letters, digits or ._:-")
	}
	if err := v.Err(); err != nil {
		return err
	}
	if !principalFrom(r.Context()).CanSeeClient(req.ClientID) {
		return hermes.Errorf(hermes.NotFound, "client %q not found", req.ClientID)
	}
	if req.MessageID == "" {
		req.MessageID = hermes.NewToken()
	}
	return s.routeAPI(r.Context(), w, req.MessageID, &hermes.Message{
		ClientID: req.ClientID, ProjectID: req.ProjectID, UserID: req.UserID, Text: req.Text,
		Thread: hermes.ThreadHints{ThreadID: req.ThreadID, NewThread: req.ThreadID == ""},
	})
}

// routeAPI routes a message of the API channel and answers 202.
func (s *Server) routeAPI(ctx context.Context, w http.ResponseWriter, messageID string, m *hermes.Message) error {
	m.Channel = hermes.ChannelAPI
	// Ids are per client: two clients may use the same message id.
	m.ChannelID = m.ClientID + "/" + messageID
	out, err := s.Router.Route(ctx, m)
	if err != nil {
		return err
	}
	if out.Status == router.Busy {
		return errBusy
	}
	writeJSON(w, http.StatusAccepted, messageResponse{MessageID: messageID, ThreadID: out.ThreadID, SessionID: out.SessionID,
		ContainerID: out.ContainerID, JobID: out.JobID, Status: out.Status, Reason: out.Reason})
	return nil
}

type sessionMessageRequest struct {
	Instruction string `json:"instruction"`
	MessageID   string `json:"messageId"`
}

// handleSessionMessage sends a follow-up instruction on a session's thread.
func (s *Server) handleSessionMessage(w http.ResponseWriter, r *http.Request) error {
	sess, err := s.session(r)
	if err != nil {
		return err
	}
	var req sessionMessageRequest
	if err := decodeJSON(w, r, &req, maxBodyBytes); err != nil {
		return err
	}
	var v hermes.ValidationError
	instructionField(&v, "instruction", req.Instruction)
	if req.MessageID != "" && !messageIDPattern().MatchString(req.MessageID) {
		v.Add("messageId", "must be 1-128 letters, digits or ._:-")
	}
	if err := v.Err(); err != nil {
		return err
	}
	if req.MessageID == "" {
		req.MessageID = hermes.NewToken()
	}
	return s.routeAPI(r.Context(), w, req.MessageID, &hermes.Message{
		ClientID: sess.ClientID, ProjectID: sess.ProjectID, UserID: sess.UserID, Text: req.Instruction,
		Thread: hermes.ThreadHints{ThreadID: sess.ThreadID},
	})
}

// handleOutbox lists outbound replies, newest first: all of them for
// admins, the caller's client's for a client scope (pages may then hold
// fewer than limit items; follow the cursor).
func (s *Server) handleOutbox(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	status := hermes.OutboxStatus(q.Get("status"))
	switch status {
	case "", hermes.OutboxPending, hermes.OutboxSent, hermes.OutboxFailed:
	default:
		return hermes.Errorf(hermes.Invalid, "status must be pending, sent or failed")
	}
	limit := defaultPageSize
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxPageSize {
			return hermes.Errorf(hermes.Invalid, "limit must be an integer from 1 to %d", maxPageSize)
		}
		limit = n
	}
	page, next, err := s.Store.ListOutbox(r.Context(), status, limit, q.Get("cursor"))
	if err != nil {
		return err
	}
	p := principalFrom(r.Context())
	out := make([]*hermes.OutboxItem, 0, len(page))
	for _, it := range page {
		if p.CanSeeClient(it.ClientID) {
			out = append(out, it)
		}
	}
	if next != "" {
		w.Header().Set("X-Next-Cursor", next)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
