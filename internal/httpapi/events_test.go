package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/events"
	"github.com/webordinary/hermes/internal/relay"
)

// sseEvent is one server-sent event as a client reads it; comments have
// Type ":".
type sseEvent struct {
	ID, Type string
	Event    events.Event
}

// sseStream reads a text/event-stream response in the background.
type sseStream struct {
	t      *testing.T
	resp   *http.Response
	events chan sseEvent
	cancel context.CancelFunc
}

// openEvents opens GET /api/sessions/{id}/events with a real HTTP client.
func openEvents(t *testing.T, baseURL, sessionID, key string, header map[string]string) *sseStream {
	t.Helper()
	return openEventsBuffered(t, baseURL, sessionID, key, header, 1000)
}

// openEventsBuffered is openEvents whose reader stops reading the
// connection while buffer events wait to be taken.
func openEventsBuffered(t *testing.T, baseURL, sessionID, key string, header map[string]string, buffer int) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", baseURL+"/api/sessions/"+sessionID+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &sseStream{t: t, resp: resp, events: make(chan sseEvent, buffer), cancel: cancel}
	t.Cleanup(s.close)
	go s.read()
	return s
}

func (s *sseStream) close() {
	s.cancel()
	s.resp.Body.Close()
}

func (s *sseStream) read() {
	defer close(s.events)
	sc := bufio.NewScanner(s.resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var cur sseEvent
	var data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.Type != "" {
				if err := json.Unmarshal([]byte(data), &cur.Event); err != nil {
					cur.Type = "bad-json: " + err.Error()
				}
				s.events <- cur
			}
			cur, data = sseEvent{}, ""
		case strings.HasPrefix(line, ":"):
			s.events <- sseEvent{Type: ":"}
		case strings.HasPrefix(line, "id: "):
			cur.ID = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			cur.Type = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data += strings.TrimPrefix(line, "data: ")
		case strings.HasPrefix(line, "retry: "):
		default:
			s.events <- sseEvent{Type: "bad-line: " + line}
		}
	}
}

// next returns the next event, skipping comments; ok is false when the
// stream ended.
func (s *sseStream) next() (sseEvent, bool) {
	s.t.Helper()
	for {
		select {
		case e, ok := <-s.events:
			if !ok {
				return e, false
			}
			if e.Type == ":" {
				continue
			}
			if strings.HasPrefix(e.Type, "bad") || e.ID != e.Event.ID || e.Type != e.Event.Type {
				s.t.Fatalf("malformed event: %+v", e)
			}
			return e, true
		case <-time.After(10 * time.Second):
			s.t.Fatal("no event within 10s")
		}
	}
}

func (s *sseStream) want(typ string) sseEvent {
	s.t.Helper()
	e, ok := s.next()
	if !ok {
		s.t.Fatalf("stream ended, want a %s event", typ)
	}
	if e.Type != typ {
		s.t.Fatalf("event %s (%+v), want %s", e.Type, e.Event, typ)
	}
	return e
}

// ended waits for the end of the stream (no more events).
func (s *sseStream) ended() {
	s.t.Helper()
	if e, ok := s.next(); ok {
		s.t.Fatalf("event %+v, want the end of the stream", e)
	}
}

// quiet checks that no event arrives for a while.
func (s *sseStream) quiet(d time.Duration) {
	s.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case e, ok := <-s.events:
			if !ok {
				s.t.Fatal("stream ended")
			}
			if e.Type != ":" {
				s.t.Fatalf("unexpected event %+v", e)
			}
		case <-deadline:
			return
		}
	}
}

// eventsAPI is the test API with an events hub wired into the router, a
// results relay and the server.
func eventsAPI(t *testing.T, buffer int) (*testAPI, *events.Hub, *relay.Results) {
	t.Helper()
	a := newTestAPI(t)
	hub := events.NewHub(buffer, a.Clock.Now)
	a.Router.Events = hub
	a.Server.Events = hub
	res := &relay.Results{Store: a.Store, Queues: a.Store, Clock: a.Clock.Now, Events: hub, Wait: time.Millisecond, Log: a.Server.Log}
	return a, hub, res
}

// takeJob takes the next job off scott's input queue.
func takeJob(t *testing.T, a *testAPI) hermes.Job {
	t.Helper()
	ds, err := a.Store.Receive(context.Background(), "webordinary-input-amelia_site_scott", 1, 0, time.Hour)
	if err != nil || len(ds) != 1 {
		t.Fatalf("receive: %v %v", ds, err)
	}
	var j hermes.Job
	if err := json.Unmarshal([]byte(ds[0].Body), &j); err != nil {
		t.Fatal(err)
	}
	return j
}

// report sends a worker's message for j on scott's output queue and lets
// the relay handle it.
func report(t *testing.T, a *testAPI, res *relay.Results, j hermes.Job, typ string) {
	t.Helper()
	m := hermes.ResultMessage{Version: 1, Type: typ, SessionID: j.SessionID, ThreadID: j.ThreadID, Reply: j.Reply,
		StartedAt: a.Clock.Now(), Result: hermes.Result{JobID: j.ID, Success: true, Summary: "Made the header blue.", FinishedAt: a.Clock.Now()}}
	if typ == hermes.ResultProgress {
		m.Summary = "Editing src/components/Header.astro"
	}
	body, _ := json.Marshal(m)
	if _, err := a.Store.Send(context.Background(), "webordinary-output-amelia_site_scott", string(body), nil); err != nil {
		t.Fatal(err)
	}
	if n, err := res.Poll(context.Background()); err != nil || n != 1 {
		t.Fatalf("relay: %d %v", n, err)
	}
}

func TestEventsReplayThenLive(t *testing.T) {
	a, hub, res := eventsAPI(t, 0)
	id := a.activate(t, ameliaKey)
	j1 := takeJob(t, a)

	s := openEvents(t, a.URL, id, ameliaKey, nil)
	first := s.want(events.Queued) // replayed from the history
	if first.Event.JobID != j1.ID || first.Event.SessionID != id || first.Event.Data["text"] != "make the header blue" {
		t.Errorf("replayed queued event: %+v", first.Event)
	}
	// Live: the subscriber is registered once the replay is out.
	waitFor(t, "subscriber", func() bool { return hub.Subscribers(id) == 1 })
	a.Clock.Advance(time.Second)
	report(t, a, res, j1, hermes.ResultStarted)
	s.want(events.Started)
	report(t, a, res, j1, hermes.ResultProgress)
	if e := s.want(events.Progress); e.Event.Data["text"] != "Editing src/components/Header.astro" {
		t.Errorf("progress: %+v", e.Event)
	}
	a.Clock.Advance(time.Second)
	report(t, a, res, j1, hermes.ResultDone)
	result := s.want(events.Result)
	if result.Event.JobID != j1.ID || result.Event.Data["text"] != "Made the header blue." {
		t.Errorf("result event: %+v", result.Event)
	}
	a.Clock.Advance(time.Second)
	a.do(t, request{Method: "POST", Path: "/api/sessions/" + id + "/messages", Key: ameliaKey,
		Body: map[string]string{"instruction": "and the footer green"}}).want(t, http.StatusAccepted)
	second := s.want(events.Queued)
	if second.Event.JobID == j1.ID || second.Event.Data["text"] != "and the footer green" {
		t.Errorf("live queued event: %+v", second.Event)
	}
	if !(first.ID < result.ID && result.ID < second.ID) {
		t.Errorf("ids not increasing: %s %s %s", first.ID, result.ID, second.ID)
	}
	s.quiet(100 * time.Millisecond) // nothing twice

	// A late subscriber gets the whole history; one resuming after the
	// first event gets what followed (started and progress are live only).
	late := openEvents(t, a.URL, id, adminKey, nil)
	for _, want := range []sseEvent{first, result, second} {
		if got := late.want(want.Type); got.ID != want.ID {
			t.Errorf("replay: %s %s, want %s", got.Type, got.ID, want.ID)
		}
	}
	resumed := openEvents(t, a.URL, id, ameliaKey, map[string]string{"Last-Event-ID": first.ID})
	if got := resumed.want(events.Result); got.ID != result.ID {
		t.Errorf("resumed at %s, want %s", got.ID, result.ID)
	}
	resumed.want(events.Queued)
	resumed.quiet(50 * time.Millisecond)
}

func TestEventsEndWhenTheSessionExpires(t *testing.T) {
	a, _, _ := eventsAPI(t, 0)
	a.Server.EventsHeartbeat = 20 * time.Millisecond
	id := a.activate(t, ameliaKey)
	s := openEvents(t, a.URL, id, ameliaKey, nil)
	s.want(events.Queued)
	// Heartbeat comments keep an idle stream alive.
	comments := 0
	for comments < 2 {
		select {
		case e, ok := <-s.events:
			if !ok || e.Type != ":" {
				t.Fatalf("want a comment, got %+v (open %v)", e, ok)
			}
			comments++
		case <-time.After(5 * time.Second):
			t.Fatal("no heartbeat")
		}
	}
	a.Clock.Advance(time.Minute)
	if _, err := a.Sessions.Deactivate(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Store.UpdateSession(context.Background(), id, func(s *hermes.Session) error {
		return s.Expire(a.Clock.Now(), hermes.ReasonDeactivated)
	}); err != nil {
		t.Fatal(err)
	}
	exp := s.want(events.Expired)
	if exp.Event.Data["reason"] != hermes.ReasonDeactivated {
		t.Errorf("expired event: %+v", exp.Event)
	}
	s.ended()

	// An expired session's stream is its replay and the expired event.
	again := openEvents(t, a.URL, id, ameliaKey, nil)
	again.want(events.Queued)
	if e := again.want(events.Expired); e.ID != exp.ID {
		t.Errorf("expired event id %s, then %s", exp.ID, e.ID)
	}
	again.ended()
}

func TestEventsAccessAndBadInput(t *testing.T) {
	a, _, _ := eventsAPI(t, 0)
	id := a.activate(t, ameliaKey)
	cases := []struct {
		path, key string
		header    map[string]string
		status    int
	}{
		{"/api/sessions/" + id + "/events", otherKey, nil, http.StatusNotFound},
		{"/api/sessions/" + id + "/events", "", nil, http.StatusUnauthorized},
		{"/api/sessions/" + strings.Repeat("z", 26) + "/events", adminKey, nil, http.StatusNotFound},
		{"/api/sessions/NOT-AN-ID/events", adminKey, nil, http.StatusBadRequest},
		{"/api/sessions/" + id + "/events", adminKey, map[string]string{"Last-Event-ID": "yesterday"}, http.StatusBadRequest},
		{"/api/sessions/" + id + "/events?lastEventId=1-2", adminKey, nil, http.StatusBadRequest},
		{"/api/sessions/" + id + "/events?follow=maybe", adminKey, nil, http.StatusBadRequest},
	}
	for _, c := range cases {
		a.do(t, request{Method: "GET", Path: c.path, Key: c.key, Header: c.header}).want(t, c.status).Problem(t)
	}
	// follow=false: the replay only, for the caller's own session.
	r := a.do(t, request{Method: "GET", Path: "/api/sessions/" + id + "/events?follow=false", Key: ameliaKey}).want(t, http.StatusOK)
	if body := string(r.Body); strings.Count(body, "event: queued\n") != 1 || !strings.HasPrefix(body, "retry: 3000\n\n") {
		t.Errorf("replay: %q", body)
	}
}

func TestEventsSlowSubscriberIsDropped(t *testing.T) {
	a, hub, _ := eventsAPI(t, 4)
	id := a.activate(t, ameliaKey)
	s := openEventsBuffered(t, a.URL, id, ameliaKey, nil, 0)
	s.want(events.Queued)
	waitFor(t, "subscriber", func() bool { return hub.Subscribers(id) == 1 })
	// The client stops reading (its reader blocks on the first event not
	// taken); big events fill the connection's buffers, then the
	// subscriber's; it is dropped, and publishing never waits.
	big := strings.Repeat("x", 64<<10)
	start := time.Now()
	published := 0
	for published < 5000 && hub.Subscribers(id) > 0 {
		hub.Publish(id, events.Event{Type: events.Progress, Data: map[string]any{"text": big}})
		published++
		if published%100 == 0 {
			time.Sleep(10 * time.Millisecond) // let the handler write what it can
		}
	}
	if hub.Subscribers(id) != 0 {
		t.Fatalf("not dropped after %d events", published)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("publishing took %s", d)
	}
	// The stream then ends (after what was buffered), and the client can
	// reconnect.
	for {
		e, ok := <-s.events
		if !ok {
			break
		}
		if e.Type != events.Progress && e.Type != ":" {
			t.Fatalf("unexpected %+v", e.Type)
		}
	}
	again := openEvents(t, a.URL, id, ameliaKey, nil)
	again.want(events.Queued)
}

func TestEventsEndWhenTheServerShutsDown(t *testing.T) {
	a, hub, _ := eventsAPI(t, 0)
	id := a.activate(t, ameliaKey)
	s := openEvents(t, a.URL, id, ameliaKey, nil)
	s.want(events.Queued)
	waitFor(t, "subscriber", func() bool { return hub.Subscribers(id) == 1 })
	hub.Close()
	s.ended()
}

// A stream outlives the server's read and write timeouts.
func TestEventsOutliveServerTimeouts(t *testing.T) {
	a, hub, _ := eventsAPI(t, 0)
	a.Server.EventsHeartbeat = 50 * time.Millisecond
	id := a.activate(t, ameliaKey)
	hs := httptest.NewUnstartedServer(a.Server.Handler())
	hs.Config.ReadTimeout = 200 * time.Millisecond
	hs.Config.WriteTimeout = 200 * time.Millisecond
	hs.Start()
	t.Cleanup(hs.Close)
	s := openEvents(t, hs.URL, id, ameliaKey, nil)
	s.want(events.Queued)
	time.Sleep(time.Second)
	hub.Publish(id, events.Event{Type: events.Waking})
	s.want(events.Waking)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
