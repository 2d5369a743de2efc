package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/events"
)

// DefaultEventsHeartbeat is how often an idle event stream gets a comment
// line (keeping proxies from closing it) and the session's status is
// checked, to end the stream once the session has expired.
const DefaultEventsHeartbeat = 15 * time.Second

// eventsRetry is the reconnection delay suggested to EventSource clients.
const eventsRetry = 3 * time.Second

// handleEvents streams a session's events as server-sent events
// (docs/events.md): first the session's history as events (after
// Last-Event-ID when the client resumes), then live events from the hub
// until the session expires (an expired event ends the stream), the client
// goes, the subscriber falls too far behind (the client reconnects with
// Last-Event-ID and misses nothing the history holds), or the server shuts
// down. ?follow=false ends the stream after the replay.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) error {
	sess, err := s.session(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	follow := true
	switch q.Get("follow") {
	case "", "true":
	case "false":
		follow = false
	default:
		return hermes.Errorf(hermes.Invalid, "follow must be true or false")
	}
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = q.Get("lastEventId")
	}
	if last != "" && !events.ValidID(last) {
		return hermes.Errorf(hermes.Invalid, "Last-Event-ID %q is not an event id of this stream", last)
	}
	ctx := r.Context()
	// Subscribe before reading the history: an event published meanwhile
	// is then in one or the other (or both: its id tells).
	var live <-chan events.Event
	if follow && sess.Status.Live() && s.Events != nil {
		sub := s.Events.Subscribe(ctx, sess.ID)
		defer sub.Close()
		live = sub.C
	}
	hist, err := s.Store.ListHistory(ctx, sess.ID)
	if err != nil {
		return err
	}

	heartbeat := s.EventsHeartbeat
	if heartbeat <= 0 {
		heartbeat = DefaultEventsHeartbeat
	}
	rc := http.NewResponseController(w)
	// The stream outlives the server's read and write timeouts: no read
	// deadline (the server notices a client that goes), and a write
	// deadline renewed before every write.
	_ = rc.SetReadDeadline(time.Time{})
	sse := &sseWriter{w: w, rc: rc, timeout: 2*heartbeat + 15*time.Second}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // proxies: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	if err := sse.write(fmt.Sprintf("retry: %d\n\n", eventsRetry.Milliseconds())); err != nil {
		return nil
	}

	seen := map[string]bool{}
	send := func(e events.Event) error {
		if seen[e.ID] {
			return nil
		}
		seen[e.ID] = true
		if last != "" && e.ID <= last {
			return nil
		}
		return sse.event(e)
	}
	for _, entry := range hist {
		if e, ok := events.FromHistory(entry); ok {
			if err := send(e); err != nil {
				return nil
			}
		}
	}
	if !sess.Status.Live() {
		_ = send(expiredEvent(sess))
		return nil
	}
	if !follow {
		return nil
	}
	if err := sse.flush(); err != nil {
		return nil
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-live:
			if !ok {
				return nil // dropped as too slow, or the server is shutting down
			}
			if err := send(e); err != nil {
				return nil
			}
		case <-tick.C:
			cur, err := s.Store.GetSession(ctx, sess.ID)
			if err == nil && !cur.Status.Live() {
				_ = send(expiredEvent(cur))
				return nil
			}
			if err := sse.write(": keep-alive\n\n"); err != nil {
				return nil
			}
		}
	}
}

// expiredEvent is the last event of an expired session's stream; its id
// derives from the expiry, so a replay repeats it.
func expiredEvent(s *hermes.Session) events.Event {
	at := s.LastActivity.UTC()
	return events.Event{ID: events.IDAt(at, "expired"), Type: events.Expired, SessionID: s.ID, At: at,
		Data: map[string]any{"reason": s.Reason}}
}

// sseWriter writes server-sent events, flushing each.
type sseWriter struct {
	w       io.Writer
	rc      *http.ResponseController
	timeout time.Duration
}

func (s *sseWriter) event(e events.Event) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	// JSON has no raw line breaks, so one data line carries it.
	return s.write("id: " + e.ID + "\nevent: " + e.Type + "\ndata: " + string(data) + "\n\n")
}

func (s *sseWriter) write(text string) error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	if _, err := io.WriteString(s.w, text); err != nil {
		return err
	}
	return s.flush()
}

func (s *sseWriter) flush() error { return s.rc.Flush() }
