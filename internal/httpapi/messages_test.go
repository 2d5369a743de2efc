package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/httpapi"
)

// Tests of the API channel (POST /api/messages, POST
// /api/sessions/{sessionId}/messages) and of the introspection routes
// (GET /api/outbox, GET /api/containers), plus the helpers the inbound
// channel tests share: the jobs on a container's input queue and the
// outbox as the store holds them.

// scottInput is the input queue of amelia/site/scott's container.
const scottInput = "webordinary-input-amelia_site_scott"

// accepted is the 202 body of the message routes.
type accepted struct {
	MessageID   string `json:"messageId"`
	ThreadID    string `json:"threadId"`
	SessionID   string `json:"sessionId"`
	ContainerID string `json:"containerId"`
	JobID       string `json:"jobId"`
	Status      string `json:"status"`
}

// message sends POST /api/messages and returns the 202 body.
func (a *testAPI) message(t *testing.T, key string, body map[string]any) accepted {
	t.Helper()
	var out accepted
	a.do(t, request{Method: "POST", Path: "/api/messages", Key: key, Body: body}).want(t, http.StatusAccepted).JSON(t, &out)
	return out
}

// scottSays is a message of amelia/site/scott.
func scottSays(text string, extra ...any) map[string]any {
	m := map[string]any{"clientId": "amelia", "projectId": "site", "userId": "scott", "text": text}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i].(string)] = extra[i+1]
	}
	return m
}

// stats returns a queue's counts, zero for a queue that does not exist.
func (a *testAPI) stats(t *testing.T, queue string) hermes.QueueStats {
	t.Helper()
	st, err := a.Store.Stats(context.Background(), queue)
	if err != nil && !hermes.IsKind(err, hermes.NotFound) {
		t.Fatal(err)
	}
	return st
}

// allQueued counts the messages, visible or in flight, on every queue.
func (a *testAPI) allQueued(t *testing.T) int {
	t.Helper()
	names, err := a.Store.ListQueues(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, q := range names {
		st := a.stats(t, q)
		n += st.Visible + st.InFlight
	}
	return n
}

// receiveJobs receives every visible job of the queue (they stay in
// flight), oldest first.
func (a *testAPI) receiveJobs(t *testing.T, queue string) []hermes.Job {
	t.Helper()
	var jobs []hermes.Job
	for {
		ds, err := a.Store.Receive(context.Background(), queue, 10, 0, 0)
		if hermes.IsKind(err, hermes.NotFound) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			return jobs
		}
		for _, d := range ds {
			var j hermes.Job
			if err := json.Unmarshal([]byte(d.Body), &j); err != nil {
				t.Fatalf("job %s: %v", d.Body, err)
			}
			if d.Attributes["jobId"] != j.ID || d.Attributes["type"] != j.Type || d.Attributes["threadId"] != j.ThreadID || d.Attributes["sessionId"] != j.SessionID {
				t.Errorf("job %s: attributes %v do not match the body", j.ID, d.Attributes)
			}
			jobs = append(jobs, j)
		}
	}
}

// oneJob receives the queue's jobs and fails unless there is exactly one.
func (a *testAPI) oneJob(t *testing.T, queue string) hermes.Job {
	t.Helper()
	jobs := a.receiveJobs(t, queue)
	if len(jobs) != 1 {
		t.Fatalf("%s: %d jobs, want 1: %+v", queue, len(jobs), jobs)
	}
	return jobs[0]
}

// outbox returns every outbox item, newest first, as the store has them
// (with the raw email).
func (a *testAPI) outbox(t *testing.T) []*hermes.OutboxItem {
	t.Helper()
	items, _, err := a.Store.ListOutbox(context.Background(), "", 1000, "")
	if err != nil {
		t.Fatal(err)
	}
	return items
}

// counts is what a rejected message must leave unchanged.
type counts struct{ queued, outbox int }

func (a *testAPI) counts(t *testing.T) counts {
	t.Helper()
	return counts{a.allQueued(t), len(a.outbox(t))}
}

// unchanged fails the test if anything was queued or put in the outbox
// since before was taken.
func (a *testAPI) unchanged(t *testing.T, why string, before counts) {
	t.Helper()
	if now := a.counts(t); now != before {
		t.Errorf("%s: queued %d → %d, outbox %d → %d; want no change", why, before.queued, now.queued, before.outbox, now.outbox)
	}
}

// wantJob checks a job against the response that announced it.
func wantJob(t *testing.T, j hermes.Job, out accepted, instruction string) {
	t.Helper()
	if j.Version != 1 || j.Type != hermes.JobInstruction || j.ID != out.JobID || j.SessionID != out.SessionID ||
		j.ThreadID != out.ThreadID || j.Branch != "thread-"+out.ThreadID || j.Instruction != instruction {
		t.Errorf("job %+v\ndoes not match %+v with instruction %q", j, out, instruction)
	}
}

func TestMessageNewThreadAndFollowUps(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)

	first := a.message(t, ameliaKey, scottSays("make the header blue"))
	if first.Status != "queued" || !hermes.ValidTokenID(first.ThreadID) || !hermes.ValidTokenID(first.SessionID) ||
		!hermes.ValidTokenID(first.JobID) || first.ContainerID != "amelia_site_scott" || first.MessageID == "" {
		t.Fatalf("first message: %+v", first)
	}
	if st := a.stats(t, scottInput); st.Visible != 1 {
		t.Fatalf("input queue after one message: %+v", st)
	}
	j := a.oneJob(t, scottInput)
	wantJob(t, j, first, "make the header blue")
	if j.ClientID != "amelia" || j.ProjectID != "site" || j.UserID != "scott" || j.Reply.Channel != hermes.ChannelAPI {
		t.Errorf("job identity: %+v", j)
	}

	// A follow-up naming the thread lands on the same thread and session.
	a.Clock.Advance(time.Second)
	follow := a.message(t, ameliaKey, scottSays("and the footer green", "threadId", first.ThreadID))
	if follow.ThreadID != first.ThreadID || follow.SessionID != first.SessionID || follow.JobID == first.JobID || follow.Status != "queued" {
		t.Errorf("follow-up %+v, first %+v", follow, first)
	}
	wantJob(t, a.oneJob(t, scottInput), follow, "and the footer green")

	// Without a threadId, another thread and session.
	other := a.message(t, adminKey, scottSays("new page for the March show"))
	if other.ThreadID == first.ThreadID || other.SessionID == first.SessionID {
		t.Errorf("a message without threadId joined thread %s", other.ThreadID)
	}
	a.oneJob(t, scottInput)

	// The session's history holds the instructions, oldest first.
	var hist []struct{ Kind, Text, Direction string }
	a.do(t, request{Method: "GET", Path: "/api/sessions/" + first.SessionID + "/messages", Key: ameliaKey}).want(t, http.StatusOK).JSON(t, &hist)
	var texts []string
	for _, h := range hist {
		if h.Direction == "in" {
			texts = append(texts, h.Text)
		}
	}
	if !slices.Equal(texts, []string{"make the header blue", "and the footer green"}) {
		t.Errorf("history %+v", hist)
	}

	// The API channel is acknowledged by its HTTP answer: no outbox items.
	if items := a.outbox(t); len(items) != 0 {
		t.Errorf("outbox after API messages: %+v", items)
	}
}

func TestMessageIdempotency(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	body := scottSays("make the header blue", "messageId", "msg-2026-11-01.0001:a")
	first := a.message(t, ameliaKey, body)
	if first.MessageID != "msg-2026-11-01.0001:a" || first.Status != "queued" {
		t.Fatalf("first: %+v", first)
	}
	again := a.message(t, ameliaKey, body)
	if again != (accepted{MessageID: "msg-2026-11-01.0001:a", Status: "duplicate"}) {
		t.Errorf("second send of a messageId: %+v, want only messageId and status duplicate", again)
	}
	if again := a.message(t, adminKey, body); again.Status != "duplicate" {
		t.Errorf("third send (admin): %+v", again)
	}
	if jobs := a.receiveJobs(t, scottInput); len(jobs) != 1 {
		t.Errorf("%d jobs for one messageId, want 1", len(jobs))
	}

	// Message ids are per client: another client may use the same one.
	a.do(t, request{Method: "POST", Path: "/api/messages", Key: otherKey,
		Body: map[string]any{"clientId": "other", "projectId": "one", "userId": "ann", "text": "fix the typo", "messageId": "msg-2026-11-01.0001:a"}}).
		want(t, http.StatusAccepted)
	var out accepted
	a.do(t, request{Method: "POST", Path: "/api/messages", Key: otherKey,
		Body: map[string]any{"clientId": "other", "projectId": "one", "userId": "ann", "text": "fix the typo", "messageId": "msg-2026-11-01.0001:a"}}).
		want(t, http.StatusAccepted).JSON(t, &out)
	if out.Status != "duplicate" {
		t.Errorf("other client's resend: %+v", out)
	}
	if jobs := a.receiveJobs(t, "webordinary-input-other_one_ann"); len(jobs) != 1 {
		t.Errorf("other client: %d jobs, want 1", len(jobs))
	}

	// A generated messageId is returned, and differs per message.
	x := a.message(t, ameliaKey, scottSays("one"))
	y := a.message(t, ameliaKey, scottSays("one"))
	if x.MessageID == "" || x.MessageID == y.MessageID || y.Status != "queued" {
		t.Errorf("generated ids: %+v %+v", x, y)
	}
}

func TestMessageThreadOwnership(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	ann := a.message(t, otherKey, map[string]any{"clientId": "other", "projectId": "one", "userId": "ann", "text": "fix the typo"})
	jo := a.message(t, ameliaKey, map[string]any{"clientId": "amelia", "userId": "jo", "text": "fix the footer"})
	before := a.counts(t)
	for name, thread := range map[string]string{"another client's thread": ann.ThreadID, "another user's thread": jo.ThreadID,
		"an unknown thread": strings.Repeat("q", 26)} {
		p := a.do(t, request{Method: "POST", Path: "/api/messages", Key: adminKey, Body: scottSays("continue", "threadId", thread)}).
			want(t, http.StatusUnprocessableEntity).Problem(t)
		if !strings.Contains(p.Detail, thread) {
			t.Errorf("%s: detail %q", name, p.Detail)
		}
	}
	a.unchanged(t, "messages on threads that are not scott's", before)
}

func TestMessageRejections(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.message(t, ameliaKey, scottSays("warm up")) // the queues exist
	before := a.counts(t)
	cases := []struct {
		name   string
		req    request
		status int
		fields []string // invalid fields named in errors
	}{
		{"no key", request{Method: "POST", Path: "/api/messages", Body: scottSays("x")}, http.StatusUnauthorized, nil},
		{"wrong key", request{Method: "POST", Path: "/api/messages", Key: "nope", Body: scottSays("x")}, http.StatusUnauthorized, nil},
		{"another client's key", request{Method: "POST", Path: "/api/messages", Key: otherKey, Body: scottSays("x")}, http.StatusNotFound, nil},
		{"unknown client", request{Method: "POST", Path: "/api/messages", Key: adminKey, Body: map[string]any{"clientId": "nosuch", "userId": "scott", "text": "x"}}, http.StatusNotFound, nil},
		{"unknown user", request{Method: "POST", Path: "/api/messages", Key: adminKey, Body: map[string]any{"clientId": "amelia", "userId": "nobody", "text": "x"}}, http.StatusUnprocessableEntity, nil},
		{"unknown project", request{Method: "POST", Path: "/api/messages", Key: adminKey, Body: map[string]any{"clientId": "amelia", "projectId": "blog", "userId": "scott", "text": "x"}}, http.StatusUnprocessableEntity, nil},
		{"project needed", request{Method: "POST", Path: "/api/messages", Key: otherKey, Body: map[string]any{"clientId": "other", "userId": "ann", "text": "x"}}, http.StatusUnprocessableEntity, nil},
		{"empty body", request{Method: "POST", Path: "/api/messages", Key: adminKey, Body: ""}, http.StatusBadRequest, nil},
		{"malformed JSON", request{Method: "POST", Path: "/api/messages", Key: adminKey, Body: `{"clientId":`}, http.StatusBadRequest, nil},
		{"unknown field", request{Method: "POST", Path: "/api/messages", Key: adminKey, Body: scottSays("x", "instruction", "y")}, http.StatusBadRequest, []string{"instruction"}},
		{"wrong type", request{Method: "POST", Path: "/api/messages", Key: adminKey, Body: scottSays("x", "threadId", 7)}, http.StatusBadRequest, []string{"threadId"}},
		{"missing fields", request{Method: "POST", Path: "/api/messages", Key: adminKey, Body: map[string]any{}}, http.StatusBadRequest, []string{"clientId", "userId", "text"}},
		{"malformed values", request{Method: "POST", Path: "/api/messages", Key: adminKey, Body: map[string]any{
			"clientId": "Amelia!", "projectId": "-site", "userId": "scott", "text": " \n ", "threadId": "NOT-A-THREAD", "messageId": "has space"}},
			http.StatusBadRequest, []string{"clientId", "projectId", "text", "threadId", "messageId"}},
		{"text too long", request{Method: "POST", Path: "/api/messages", Key: adminKey, Body: scottSays(strings.Repeat("x", 32<<10+1))}, http.StatusBadRequest, []string{"text"}},
		{"body too large", request{Method: "POST", Path: "/api/messages", Key: adminKey, Body: scottSays(strings.Repeat("x", 70<<10))}, http.StatusRequestEntityTooLarge, nil},
		{"not JSON", request{Method: "POST", Path: "/api/messages", Key: adminKey, Body: "text=x", Header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, http.StatusUnsupportedMediaType, nil},
	}
	for _, c := range cases {
		p := a.do(t, c.req).want(t, c.status).Problem(t)
		var got []string
		for _, e := range p.Errors {
			got = append(got, e.Field)
		}
		for _, f := range c.fields {
			if !slices.Contains(got, f) {
				t.Errorf("%s: errors %v do not name %s", c.name, got, f)
			}
		}
	}
	a.unchanged(t, "rejected messages", before)
}

func TestSessionFollowUpMessages(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	id := a.activate(t, ameliaKey)
	st := a.status(t, id)
	if st.ContainerStatus != "stopped" {
		t.Errorf("containerStatus %q before the container ran, want stopped", st.ContainerStatus)
	}
	a.receiveJobs(t, scottInput) // the activation's job

	var out accepted
	a.do(t, request{Method: "POST", Path: "/api/sessions/" + id + "/messages", Key: ameliaKey,
		Body: map[string]any{"instruction": "and make the logo bigger"}}).want(t, http.StatusAccepted).JSON(t, &out)
	if out.Status != "queued" || out.SessionID != id || out.ThreadID != st.ThreadID || out.ContainerID != "amelia_site_scott" {
		t.Fatalf("follow-up %+v; session %s thread %s", out, id, st.ThreadID)
	}
	wantJob(t, a.oneJob(t, scottInput), out, "and make the logo bigger")

	// messageId makes it idempotent.
	body := map[string]any{"instruction": "swap the photos", "messageId": "client-42"}
	a.do(t, request{Method: "POST", Path: "/api/sessions/" + id + "/messages", Key: adminKey, Body: body}).want(t, http.StatusAccepted)
	a.do(t, request{Method: "POST", Path: "/api/sessions/" + id + "/messages", Key: adminKey, Body: body}).want(t, http.StatusAccepted).JSON(t, &out)
	if out.Status != "duplicate" || out.MessageID != "client-42" {
		t.Errorf("resent messageId: %+v", out)
	}
	if n := len(a.receiveJobs(t, scottInput)); n != 1 {
		t.Errorf("%d jobs for one messageId", n)
	}

	// The status now reads the container record.
	if _, err := a.Store.UpdateContainer(context.Background(), "amelia_site_scott", func(c *hermes.Container) error {
		c.Status = hermes.ContainerRunning
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if st := a.status(t, id); st.ContainerStatus != "running" {
		t.Errorf("containerStatus %q, want running (from the container record)", st.ContainerStatus)
	}

	// After the lease passed, a new session opens on the same thread.
	a.Clock.Advance(31 * time.Minute)
	a.do(t, request{Method: "POST", Path: "/api/sessions/" + id + "/messages", Key: ameliaKey,
		Body: map[string]any{"instruction": "one more thing"}}).want(t, http.StatusAccepted).JSON(t, &out)
	if out.SessionID == id || out.ThreadID != st.ThreadID || !hermes.ValidTokenID(out.SessionID) {
		t.Errorf("after expiry: %+v; old session %s thread %s", out, id, st.ThreadID)
	}
	if old := a.status(t, id); old.Status != "expired" || old.Reason != "lease" {
		t.Errorf("old session: %s (%s), want expired (lease)", old.Status, old.Reason)
	}
	if cur := a.status(t, out.SessionID); cur.Status != "initializing" || cur.ThreadID != st.ThreadID {
		t.Errorf("new session: %+v", cur)
	}
	wantJob(t, a.oneJob(t, scottInput), out, "one more thing")

	// After deactivation, also a new session on the thread.
	second := out.SessionID
	a.do(t, request{Method: "POST", Path: "/api/sessions/" + second + "/deactivate", Key: ameliaKey}).want(t, http.StatusAccepted)
	a.do(t, request{Method: "POST", Path: "/api/sessions/" + second + "/messages", Key: ameliaKey,
		Body: map[string]any{"instruction": "actually, undo that"}}).want(t, http.StatusAccepted).JSON(t, &out)
	if out.SessionID == second || out.SessionID == id || out.ThreadID != st.ThreadID {
		t.Errorf("after deactivation: %+v", out)
	}
	a.oneJob(t, scottInput)

	// Rejections.
	before := a.counts(t)
	path := "/api/sessions/" + out.SessionID + "/messages"
	a.do(t, request{Method: "POST", Path: path, Key: otherKey, Body: map[string]any{"instruction": "x"}}).want(t, http.StatusNotFound).Problem(t)
	a.do(t, request{Method: "POST", Path: path, Body: map[string]any{"instruction": "x"}}).want(t, http.StatusUnauthorized).Problem(t)
	a.do(t, request{Method: "POST", Path: "/api/sessions/" + strings.Repeat("z", 26) + "/messages", Key: adminKey, Body: map[string]any{"instruction": "x"}}).want(t, http.StatusNotFound).Problem(t)
	a.do(t, request{Method: "POST", Path: "/api/sessions/NOT-AN-ID/messages", Key: adminKey, Body: map[string]any{"instruction": "x"}}).want(t, http.StatusBadRequest).Problem(t)
	a.do(t, request{Method: "POST", Path: path, Key: adminKey, Body: map[string]any{"instruction": ""}}).want(t, http.StatusBadRequest).Problem(t)
	a.do(t, request{Method: "POST", Path: path, Key: adminKey, Body: map[string]any{"text": "x"}}).want(t, http.StatusBadRequest).Problem(t)
	a.do(t, request{Method: "POST", Path: path, Key: adminKey, Body: map[string]any{"instruction": "x", "messageId": strings.Repeat("m", 129)}}).want(t, http.StatusBadRequest).Problem(t)
	a.do(t, request{Method: "POST", Path: path, Key: adminKey, Body: "x", Header: map[string]string{"Content-Type": "text/plain"}}).want(t, http.StatusUnsupportedMediaType).Problem(t)
	a.do(t, request{Method: "POST", Path: path, Key: adminKey, Body: map[string]any{"instruction": strings.Repeat("x", 70<<10)}}).want(t, http.StatusRequestEntityTooLarge).Problem(t)
	a.unchanged(t, "rejected follow-ups", before)
}

func TestMessagePendingCap(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	first := a.message(t, ameliaKey, scottSays("instruction 1"))
	for i := 2; i <= 10; i++ {
		out := a.message(t, ameliaKey, scottSays(fmt.Sprintf("instruction %d", i), "threadId", first.ThreadID))
		if out.Status != "queued" {
			t.Fatalf("message %d: %+v", i, out)
		}
	}
	if st := a.stats(t, scottInput); st.Visible != 10 {
		t.Fatalf("input queue: %+v, want 10 visible", st)
	}
	before := a.counts(t)
	for _, req := range []request{
		{Method: "POST", Path: "/api/messages", Key: ameliaKey, Body: scottSays("instruction 11", "threadId", first.ThreadID)},
		{Method: "POST", Path: "/api/messages", Key: adminKey, Body: scottSays("a new thread, same container")},
		{Method: "POST", Path: "/api/sessions/" + first.SessionID + "/messages", Key: ameliaKey, Body: map[string]any{"instruction": "instruction 12"}},
	} {
		p := a.do(t, req).want(t, http.StatusTooManyRequests).Problem(t)
		if p.Title != "Too Many Requests" || !strings.Contains(p.Detail, "try again") {
			t.Errorf("429 problem: %+v", p)
		}
	}
	a.unchanged(t, "messages over the cap", before)

	// Another user's container has its own cap.
	a.message(t, ameliaKey, map[string]any{"clientId": "amelia", "userId": "jo", "text": "fix the footer"})

	// A busy message was not recorded: sending it again once there is room queues it.
	a.receiveJobs(t, scottInput) // the container took them (in flight)
	retry := a.message(t, ameliaKey, scottSays("instruction 11", "threadId", first.ThreadID))
	if retry.Status != "queued" || retry.ThreadID != first.ThreadID {
		t.Errorf("after the queue drained: %+v", retry)
	}

	// A running container takes work beyond the cap.
	if _, err := a.Store.UpdateContainer(context.Background(), "amelia_site_scott", func(c *hermes.Container) error {
		c.Status = hermes.ContainerRunning
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		a.message(t, ameliaKey, scottSays(fmt.Sprintf("more %d", i), "threadId", first.ThreadID))
	}
	if st := a.stats(t, scottInput); st.Visible != 11 {
		t.Errorf("running container's queue: %+v, want 11 visible", st)
	}
}

// outboxEntry is one item of GET /api/outbox.
type outboxEntry struct {
	ID        string            `json:"id"`
	Channel   string            `json:"channel"`
	To        string            `json:"to"`
	From      string            `json:"from"`
	Subject   string            `json:"subject"`
	Text      string            `json:"text"`
	Kind      string            `json:"kind"`
	Status    string            `json:"status"`
	Attempts  int               `json:"attempts"`
	ThreadID  string            `json:"threadId"`
	SessionID string            `json:"sessionId"`
	ClientID  string            `json:"clientId"`
	CreatedAt time.Time         `json:"createdAt"`
	Headers   map[string]string `json:"headers"`
}

func (a *testAPI) listOutbox(t *testing.T, key, query string) ([]outboxEntry, string) {
	t.Helper()
	var out []outboxEntry
	r := a.do(t, request{Method: "GET", Path: "/api/outbox" + query, Key: key}).want(t, http.StatusOK)
	r.JSON(t, &out)
	return out, r.Header.Get("X-Next-Cursor")
}

func TestOutbox(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, withInbound(func(*httpapi.Inbound) {}))
	if items, next := a.listOutbox(t, adminKey, ""); len(items) != 0 || next != "" {
		t.Fatalf("empty outbox: %+v %q", items, next)
	}
	// Two email acknowledgements for amelia, and an item of client other.
	for i, subject := range []string{"Make the header blue", "New page"} {
		a.postEmail(t, adminKey, email{From: "Scott <scott@example.com>", To: "edit@amelia.example.com", Subject: subject,
			MessageID: fmt.Sprintf("<outbox-%d@mail.example.com>", i), Body: subject + " please"}.raw()).want(t, http.StatusAccepted)
		a.Clock.Advance(time.Second)
	}
	now := a.Clock.Now()
	if err := a.Store.EnqueueOutbox(context.Background(), &hermes.OutboxItem{
		ID: hermes.NewToken(), Channel: hermes.ChannelSMS, To: "+15550100077", Text: "Working on it", Kind: hermes.KindAck,
		ThreadID: hermes.NewToken(), ClientID: "other", CreatedAt: now, NextAttemptAt: now,
	}); err != nil {
		t.Fatal(err)
	}

	all, next := a.listOutbox(t, adminKey, "")
	if len(all) != 3 || next != "" {
		t.Fatalf("admin: %d items (next %q), want 3", len(all), next)
	}
	if all[0].ClientID != "other" || !strings.HasPrefix(all[1].Subject, "Re: New page [ref:") || !strings.HasPrefix(all[2].Subject, "Re: Make the header blue [ref:") {
		t.Errorf("newest first: %+v", all)
	}
	for _, it := range all[1:] {
		if it.Channel != "email" || it.Kind != "ack" || it.Status != "pending" || it.Attempts != 0 || it.To != "scott@example.com" ||
			it.From != "edit@amelia.example.com" || it.Headers["Message-ID"] == "" || it.Headers["In-Reply-To"] == "" || it.ClientID != "amelia" ||
			!hermes.ValidTokenID(it.ThreadID) || !hermes.ValidTokenID(it.SessionID) {
			t.Errorf("email ack: %+v", it)
		}
	}
	// A client sees its own items only.
	mine, _ := a.listOutbox(t, ameliaKey, "")
	if len(mine) != 2 || mine[0].ClientID != "amelia" || mine[1].ClientID != "amelia" {
		t.Errorf("amelia's view: %+v", mine)
	}
	theirs, _ := a.listOutbox(t, otherKey, "")
	if len(theirs) != 1 || theirs[0].ClientID != "other" {
		t.Errorf("other's view: %+v", theirs)
	}
	// Pages.
	page, next := a.listOutbox(t, adminKey, "?limit=2")
	if len(page) != 2 || next == "" {
		t.Fatalf("page 1: %d items, next %q", len(page), next)
	}
	rest, last := a.listOutbox(t, adminKey, "?limit=2&cursor="+next)
	if len(rest) != 1 || last != "" || rest[0].ID != all[2].ID {
		t.Errorf("page 2: %+v (next %q)", rest, last)
	}
	// Client pages are filtered after paging: a page may be empty, with a cursor.
	page, next = a.listOutbox(t, ameliaKey, "?limit=1")
	if len(page) != 0 || next == "" {
		t.Errorf("amelia's first page of one: %+v, next %q", page, next)
	}
	if pending, _ := a.listOutbox(t, adminKey, "?status=pending"); len(pending) != 3 {
		t.Errorf("pending: %d", len(pending))
	}
	if sent, _ := a.listOutbox(t, adminKey, "?status=sent"); len(sent) != 0 {
		t.Errorf("sent: %d", len(sent))
	}
	for _, q := range []string{"?status=lost", "?limit=0", "?limit=201", "?limit=x", "?cursor=nonsense"} {
		a.do(t, request{Method: "GET", Path: "/api/outbox" + q, Key: adminKey}).want(t, http.StatusBadRequest).Problem(t)
	}
	a.do(t, request{Method: "GET", Path: "/api/outbox"}).want(t, http.StatusUnauthorized).Problem(t)
}

// containerEntry is one item of GET /api/containers.
type containerEntry struct {
	ContainerID   string     `json:"containerId"`
	ClientID      string     `json:"clientId"`
	ProjectID     string     `json:"projectId"`
	UserID        string     `json:"userId"`
	Status        string     `json:"status"`
	LastHeartbeat *time.Time `json:"lastHeartbeat"`
	Queues        map[string]struct {
		Name     string `json:"name"`
		Depth    int    `json:"depth"`
		InFlight int    `json:"inFlight"`
	} `json:"queues"`
}

func (a *testAPI) containers(t *testing.T, key string) []containerEntry {
	t.Helper()
	var out []containerEntry
	a.do(t, request{Method: "GET", Path: "/api/containers", Key: key}).want(t, http.StatusOK).JSON(t, &out)
	return out
}

func TestContainers(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	if cs := a.containers(t, adminKey); len(cs) != 0 {
		t.Fatalf("before any message: %+v", cs)
	}
	first := a.message(t, ameliaKey, scottSays("one"))
	for _, text := range []string{"two", "three"} {
		a.message(t, ameliaKey, scottSays(text, "threadId", first.ThreadID))
	}
	a.message(t, ameliaKey, map[string]any{"clientId": "amelia", "userId": "jo", "text": "fix the footer"})
	a.message(t, otherKey, map[string]any{"clientId": "other", "projectId": "two", "userId": "ann", "text": "fix the typo"})
	// The container takes one job.
	if ds, err := a.Store.Receive(context.Background(), scottInput, 1, 0, 0); err != nil || len(ds) != 1 {
		t.Fatalf("receive: %v %v", ds, err)
	}

	cs := a.containers(t, adminKey)
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ContainerID)
	}
	if !slices.Equal(ids, []string{"amelia_site_jo", "amelia_site_scott", "other_two_ann"}) {
		t.Fatalf("containers %v", ids)
	}
	scott := cs[1]
	if scott.ClientID != "amelia" || scott.ProjectID != "site" || scott.UserID != "scott" || scott.Status != "stopped" || scott.LastHeartbeat != nil {
		t.Errorf("scott's container: %+v", scott)
	}
	want := map[string][3]any{
		"input":  {"webordinary-input-amelia_site_scott", 2, 1},
		"output": {"webordinary-output-amelia_site_scott", 0, 0},
		"dlq":    {"webordinary-dlq-amelia_site_scott", 0, 0},
	}
	for role, w := range want {
		q := scott.Queues[role]
		if q.Name != w[0] || q.Depth != w[1] || q.InFlight != w[2] {
			t.Errorf("%s queue: %+v, want %v", role, q, w)
		}
	}
	if jo := cs[0].Queues["input"]; jo.Depth != 1 || jo.InFlight != 0 {
		t.Errorf("jo's input queue: %+v", jo)
	}

	// Clients see their own containers.
	mine := a.containers(t, ameliaKey)
	if len(mine) != 2 || mine[0].ClientID != "amelia" || mine[1].ClientID != "amelia" {
		t.Errorf("amelia's view: %+v", mine)
	}
	if theirs := a.containers(t, otherKey); len(theirs) != 1 || theirs[0].ContainerID != "other_two_ann" {
		t.Errorf("other's view: %+v", theirs)
	}

	// The record's status and heartbeat show.
	beat := a.Clock.Now()
	if _, err := a.Store.UpdateContainer(context.Background(), "amelia_site_scott", func(c *hermes.Container) error {
		c.Status, c.Detail, c.LastHeartbeat = hermes.ContainerRunning, "busy", &beat
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var raw []map[string]any
	a.do(t, request{Method: "GET", Path: "/api/containers", Key: ameliaKey}).want(t, http.StatusOK).JSON(t, &raw)
	if raw[1]["status"] != "running" || raw[1]["detail"] != "busy" || raw[1]["lastHeartbeat"] != beat.Format(time.RFC3339) {
		t.Errorf("after a heartbeat: %v", raw[1])
	}
	if _, ok := raw[0]["lastHeartbeat"]; !ok || raw[0]["lastHeartbeat"] != nil {
		t.Errorf("lastHeartbeat must be present and null before any heartbeat: %v", raw[0])
	}
	a.do(t, request{Method: "GET", Path: "/api/containers"}).want(t, http.StatusUnauthorized).Problem(t)
}

// A message refused with 429 was not queued, so sending it again with the
// same messageId once there is room must queue it.
func TestMessageBusyRetrySameMessageID(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	for i := range 10 {
		a.message(t, ameliaKey, scottSays(fmt.Sprint("instruction ", i)))
	}
	a.do(t, request{Method: "POST", Path: "/api/messages", Key: ameliaKey, Body: scottSays("eleven", "messageId", "k-11")}).want(t, http.StatusTooManyRequests)
	a.receiveJobs(t, scottInput)
	if out := a.message(t, ameliaKey, scottSays("eleven", "messageId", "k-11")); out.Status != "queued" {
		t.Errorf("retry after 429: %+v, want queued", out)
	}
}
