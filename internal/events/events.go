// Package events is the live event stream of edit sessions (SPEC §5): the
// router, the results relay, the dead-job loop and the container runner
// publish what happens to a session's jobs, and the API streams it to
// subscribers as server-sent events (GET /api/sessions/{sessionId}/events;
// docs/events.md).
//
// The hub is in-process and keeps nothing: what a subscriber must not miss
// is also in the session's history, which the API replays on connect, and
// events that come from history entries carry ids derived from the entries,
// so a replayed event and its live twin are recognised as one.
package events

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/webordinary/hermes"
)

// Event types.
const (
	Queued      = "queued"      // a job is on the container's input queue
	Waking      = "waking"      // the container is being started
	Started     = "started"     // the worker began a job
	Progress    = "progress"    // the worker's progress note
	Result      = "result"      // a job's result (applied)
	Interrupted = "interrupted" // a newer message stopped the job; its work was checkpointed
	Plan        = "plan"        // a plan waiting for approval
	Error       = "error"       // a job failed, or could not be applied (dead job)
	Expired     = "expired"     // the session ended; the stream ends with it
)

// Event is one thing that happened to a session.
type Event struct {
	// ID sorts by time: 13 digits of Unix milliseconds, "-", and a
	// lowercase suffix (the history entry's id for events that come from
	// the history). It is the SSE id, so Last-Event-ID resumes after it.
	ID        string         `json:"id"`
	Type      string         `json:"type"`
	SessionID string         `json:"sessionId"`
	JobID     string         `json:"jobId,omitempty"`
	Data      map[string]any `json:"data,omitempty"`
	At        time.Time      `json:"at"`
}

// Publisher takes events for a session's subscribers. It never blocks.
type Publisher interface {
	Publish(sessionID string, e Event)
}

// IDAt returns the event id for time at with suffix (lowercase letters
// and digits).
func IDAt(at time.Time, suffix string) string {
	ms := max(at.UnixMilli(), 0)
	return fmt.Sprintf("%013d-%s", ms, suffix)
}

// NewID returns a fresh event id at time at.
func NewID(at time.Time) string { return IDAt(at, hermes.NewToken()) }

// ValidID reports whether s has the form of an event id, so that a
// Last-Event-ID header can be compared with ids safely.
func ValidID(s string) bool {
	ms, suffix, ok := strings.Cut(s, "-")
	if !ok || len(ms) != 13 || len(suffix) == 0 || len(suffix) > 64 {
		return false
	}
	if _, err := strconv.ParseUint(ms, 10, 64); err != nil {
		return false
	}
	for i := 0; i < len(suffix); i++ {
		if c := suffix[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// historyTypes maps history entry kinds to event types; other kinds
// (acknowledgements, busy replies) are not events.
var historyTypes = map[string]string{
	hermes.KindInstruction: Queued,
	hermes.KindResult:      Result,
	hermes.KindInterrupted: Interrupted,
	hermes.KindPlan:        Plan,
	hermes.KindError:       Error,
}

// FromHistory returns the event of a history entry, and false for entries
// that are not events. The id is derived from the entry (its time and id),
// so the relay's live event and the replay of the entry are the same event.
func FromHistory(h *hermes.HistoryEntry) (Event, bool) {
	typ, ok := historyTypes[h.Kind]
	if !ok || h.Kind == hermes.KindInstruction && h.Direction != hermes.DirectionIn {
		return Event{}, false
	}
	if h.Kind == hermes.KindInstruction && h.Delivery == hermes.DeliveryPending {
		return Event{}, false // recorded, not on a queue yet
	}
	suffix := strings.ToLower(h.ID)
	if !validSuffix(suffix) {
		suffix = hermes.DeriveToken(h.ID)
	}
	e := Event{ID: IDAt(h.CreatedAt, suffix), Type: typ, SessionID: h.SessionID, JobID: h.Meta["jobId"], At: h.CreatedAt.UTC()}
	data := map[string]any{"channel": h.Channel, "text": h.Text}
	for _, k := range []string{"commit", "previewUrl", "error", "reason", "approvalId"} {
		if v := h.Meta[k]; v != "" {
			data[k] = v
		}
	}
	e.Data = data
	return e, true
}

func validSuffix(s string) bool { return ValidID("0000000000000-" + s) }

// Errors a subscription ends with.
var (
	ErrSlow   = errors.New("events: the subscriber fell behind and was dropped")
	ErrClosed = errors.New("events: the hub is closed")
)

// DefaultBuffer is how many events a subscriber may fall behind by before
// it is dropped.
const DefaultBuffer = 64

// Hub delivers published events to the subscribers of each session. A
// subscriber that falls more than its buffer behind is dropped (its
// channel closed, Err ErrSlow): publishers never wait for subscribers.
// The zero value is not usable; use NewHub. A nil *Hub drops everything.
type Hub struct {
	buffer int
	clock  hermes.Clock

	mu     sync.Mutex
	subs   map[string]map[*Subscription]struct{}
	closed bool
}

// NewHub returns a hub whose subscribers each buffer up to buffer events
// (DefaultBuffer when 0 or less).
func NewHub(buffer int, clock hermes.Clock) *Hub {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	return &Hub{buffer: buffer, clock: clock, subs: map[string]map[*Subscription]struct{}{}}
}

var _ Publisher = (*Hub)(nil)

// Subscription is one subscriber of a session's events.
type Subscription struct {
	// C delivers the events; it is closed when the subscription ends
	// (Close, its context ended, dropped as slow, or the hub closed).
	C <-chan Event

	c       chan Event
	hub     *Hub
	session string
	err     error // guarded by hub.mu
	stop    func() bool
}

// Subscribe subscribes to the session's events until ctx ends or the
// subscription is closed.
func (h *Hub) Subscribe(ctx context.Context, sessionID string) *Subscription {
	c := make(chan Event, h.buffer)
	s := &Subscription{C: c, c: c, hub: h, session: sessionID}
	h.mu.Lock()
	if h.closed {
		s.err = ErrClosed
		close(c)
		h.mu.Unlock()
		return s
	}
	if h.subs[sessionID] == nil {
		h.subs[sessionID] = map[*Subscription]struct{}{}
	}
	h.subs[sessionID][s] = struct{}{}
	h.mu.Unlock()
	s.stop = context.AfterFunc(ctx, func() { h.end(s, context.Cause(ctx)) })
	return s
}

// Close ends the subscription. Idempotent.
func (s *Subscription) Close() {
	if s.stop != nil {
		s.stop()
	}
	s.hub.end(s, nil)
}

// Err says why the subscription ended: ErrSlow, ErrClosed, the context's
// error, or nil (still open, or closed by Close).
func (s *Subscription) Err() error {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	return s.err
}

// end removes s and closes its channel once, recording why (under mu).
func (h *Hub) end(s *Subscription, why error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.endLocked(s, why)
}

func (h *Hub) endLocked(s *Subscription, why error) {
	set, ok := h.subs[s.session]
	if !ok {
		return
	}
	if _, ok := set[s]; !ok {
		return
	}
	delete(set, s)
	if len(set) == 0 {
		delete(h.subs, s.session)
	}
	s.err = why
	close(s.c)
}

// Publish delivers e to the session's subscribers without waiting: a
// subscriber whose buffer is full is dropped. SessionID is set from
// sessionID; an empty ID or At is filled in.
func (h *Hub) Publish(sessionID string, e Event) {
	if h == nil {
		return
	}
	e.SessionID = sessionID
	if e.At.IsZero() {
		e.At = h.clock.Now()
	}
	e.At = e.At.UTC()
	if e.ID == "" {
		e.ID = NewID(e.At)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[sessionID] {
		select {
		case s.c <- e:
		default:
			h.endLocked(s, ErrSlow)
		}
	}
}

// Subscribers returns how many subscribers the session has.
func (h *Hub) Subscribers(sessionID string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs[sessionID])
}

// Close ends every subscription (ErrClosed) and refuses new ones: streams
// end when the server shuts down.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, set := range h.subs {
		for s := range set {
			h.endLocked(s, ErrClosed)
		}
	}
}
