package router_test

// Tests of the router (SPEC §2 steps 1–6, §4, §8) against the real SQLite
// store and queues, a manual clock, the real session lifecycle and the real
// acknowledger. The package is router_test because relay imports router.

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/directory"
	"github.com/webordinary/hermes/internal/hermestest"
	"github.com/webordinary/hermes/internal/lifecycle"
	"github.com/webordinary/hermes/internal/mail"
	"github.com/webordinary/hermes/internal/relay"
	"github.com/webordinary/hermes/internal/router"
	"github.com/webordinary/hermes/internal/sqlite"
)

// The seeded directory.
const (
	ameliaEmail = "edit@amelia.example.com"
	ameliaSMS   = "+15550100001"
	ameliaChat  = "C0123"
	scottEmail  = "scott@example.com"
	scottPhone  = "+15550100002"
	scottChat   = "U0456"
	joEmail     = "jo@example.com"
	otherEmail  = "www@other.example.com"
	annEmail    = "ann@other.example.com"

	scottContainer = "amelia_site_scott"
	scottInput     = "webordinary-input-amelia_site_scott"
	scottOutput    = "webordinary-output-amelia_site_scott"
	scottDLQ       = "webordinary-dlq-amelia_site_scott"
	joInput        = "webordinary-input-amelia_site_jo"
	annInput       = "webordinary-input-other_www_ann"
)

var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// env is one router on a fresh database.
type env struct {
	t        *testing.T
	ctx      context.Context
	db       *sqlite.DB
	clock    *hermestest.Clock
	sessions *lifecycle.Sessions
	r        *router.Router
	runner   *fakeRunner
}

type envOption func(*env)

// withStore routes through a wrapper of the database (failure injection);
// the sessions keep using the database itself.
func withStore(wrap func(hermes.Store) hermes.Store) envOption {
	return func(e *env) { e.r.Store = wrap(e.r.Store) }
}

func withQueues(wrap func(hermes.Queues) hermes.Queues) envOption {
	return func(e *env) { e.r.Queues = wrap(e.r.Queues) }
}

func withRouter(f func(*router.Router)) envOption {
	return func(e *env) { f(e.r) }
}

func withRunner() envOption {
	return func(e *env) {
		e.runner = &fakeRunner{}
		e.r.Runner = e.runner
	}
}

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	ctx := t.Context()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hermes.db"))
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	clock := hermestest.NewClock(t0)
	seed(t, ctx, db)
	log := slog.New(slog.DiscardHandler)
	sessions := &lifecycle.Sessions{Store: db, Clock: clock.Now, TTL: 30 * time.Minute, PublicBase: "http://hermes.test", Log: log}
	e := &env{t: t, ctx: ctx, db: db, clock: clock, sessions: sessions}
	e.r = &router.Router{
		Store: db, Queues: db, Sessions: sessions, Clock: clock.Now, Log: log,
		Acknowledger: &relay.Acks{FromEmail: "hermes@localhost"},
		PendingCap:   router.DefaultPendingCap,
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

func seed(t *testing.T, ctx context.Context, db *sqlite.DB) {
	t.Helper()
	trees := []*directory.ClientTree{
		{
			Client: hermes.Client{ID: "amelia", Name: "Amelia Stamps"},
			Projects: []*hermes.Project{{
				ID: "site", Name: "Amelia", RepoURL: "https://github.com/ameliastamps/amelia-astro.git",
				EmailAddresses: []string{ameliaEmail}, SMSNumbers: []string{ameliaSMS}, SlackChannels: []string{ameliaChat},
			}},
			Users: []*hermes.User{
				{ID: "scott", Name: "Scott", Emails: []string{scottEmail}, Phones: []string{scottPhone}, ChatIDs: []string{scottChat}},
				{ID: "jo", Name: "Jo", Emails: []string{joEmail}},
			},
		},
		{
			Client:   hermes.Client{ID: "other", Name: "Other Co"},
			Projects: []*hermes.Project{{ID: "www", RepoURL: "https://example.com/other/www.git", EmailAddresses: []string{otherEmail}}},
			Users:    []*hermes.User{{ID: "ann", Name: "Ann", Emails: []string{annEmail}}},
		},
	}
	for _, tr := range trees {
		tr.Normalize()
		v := &hermes.ValidationError{}
		tr.Validate(v, "")
		if err := v.Err(); err != nil {
			t.Fatalf("seed %s: %v", tr.ID, err)
		}
		if err := directory.Create(ctx, db, tr, t0); err != nil {
			t.Fatalf("seed %s: %v", tr.ID, err)
		}
	}
}

// --- messages ---

// emailMsg is an email from scott to amelia's site. hints are completed as
// the email intake completes them: the thread id of a Hermes Message-ID in
// In-Reply-To/References, and the conversation token of the subject or text.
//
// Message ids may be written with or without angle brackets; like the
// intake's parser, the message gets them without.
func emailMsg(msgID, subject, text string, inReplyTo, refs []string) *hermes.Message {
	msgID = strings.TrimSuffix(strings.TrimPrefix(msgID, "<"), ">")
	inReplyTo, refs = bare(inReplyTo), bare(refs)
	h := hermes.ThreadHints{MessageID: msgID, InReplyTo: inReplyTo, References: refs}
	if tid, ok := mail.ThreadFromHeaders(inReplyTo, refs); ok {
		h.ThreadID = tid
	}
	if tok, ok := mail.FindToken(subject); ok {
		h.Token = tok
	} else if tok, ok := mail.FindToken(text); ok {
		h.Token = tok
	}
	id := msgID
	if id == "" {
		id = "sha256:" + hermes.DeriveToken(subject, text)
	}
	return &hermes.Message{
		Channel: hermes.ChannelEmail, ChannelID: "email:" + strings.ToLower(id) + "/" + ameliaEmail,
		From: scottEmail, To: ameliaEmail, Subject: subject, Text: text, Thread: h,
	}
}

func bare(ids []string) []string {
	var out []string
	for _, id := range ids {
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">"))
	}
	return out
}

// simple is a first email: a Message-ID, nothing else.
func simple(msgID, text string) *hermes.Message {
	return emailMsg(msgID, "Edit request", text, nil, nil)
}

func from(m *hermes.Message, sender string) *hermes.Message {
	m.From = sender
	return m
}

func to(m *hermes.Message, rcpt string) *hermes.Message {
	m.To = rcpt
	m.ChannelID = m.ChannelID[:strings.LastIndexByte(m.ChannelID, '/')+1] + strings.ToLower(rcpt)
	return m
}

// smsMsg is an SMS from scott to amelia's number.
func smsMsg(sid, text string) *hermes.Message {
	return &hermes.Message{Channel: hermes.ChannelSMS, ChannelID: sid, From: scottPhone, To: ameliaSMS, Text: text}
}

// chatMsg is a Slack message from scott in amelia's channel; threadTS is
// the thread it replies in ("" for a top-level message, whose own ts keys
// its thread, as the Slack adapter does).
func chatMsg(eventID, ts, threadTS, text string) *hermes.Message {
	key := threadTS
	if key == "" {
		key = ts
	}
	return &hermes.Message{Channel: hermes.ChannelChat, ChannelID: eventID, From: scottChat, To: ameliaChat, Text: text,
		Thread: hermes.ThreadHints{ChatThread: key}}
}

// apiMsg is a POST /api/messages from an authenticated caller.
func apiMsg(id, userID, text, threadID string) *hermes.Message {
	return &hermes.Message{Channel: hermes.ChannelAPI, ChannelID: id, ClientID: "amelia", UserID: userID, Text: text,
		Thread: hermes.ThreadHints{ThreadID: threadID, NewThread: threadID == ""}}
}

// --- helpers ---

func (e *env) route(m *hermes.Message) *router.Outcome {
	e.t.Helper()
	out, err := e.r.Route(e.ctx, m)
	if err != nil {
		e.t.Fatalf("Route(%s %s): %v", m.Channel, m.ChannelID, err)
	}
	return out
}

// queued routes m and requires it to be queued.
func (e *env) queued(m *hermes.Message) *router.Outcome {
	e.t.Helper()
	out := e.route(m)
	if out.Status != router.Queued {
		e.t.Fatalf("Route(%s %s) = %+v, want queued", m.Channel, m.ChannelID, out)
	}
	return out
}

// depth is the number of messages on a queue (visible and in flight); 0
// when the queue does not exist.
func (e *env) depth(queue string) int {
	e.t.Helper()
	st, err := e.db.Stats(e.ctx, queue)
	if hermes.IsKind(err, hermes.NotFound) {
		return 0
	}
	if err != nil {
		e.t.Fatalf("Stats(%s): %v", queue, err)
	}
	return st.Visible + st.InFlight
}

type queuedJob struct {
	hermes.Job
	Raw   map[string]any
	Attrs map[string]string
}

// jobs reads every visible message of a queue and makes it visible again.
// Each call counts one receive per message: a job queue moves a message to
// its DLQ at the fourth receive, so call this at most three times a queue.
func (e *env) jobs(queue string) []queuedJob {
	e.t.Helper()
	var ds []hermes.Delivery
	for {
		got, err := e.db.Receive(e.ctx, queue, hermes.MaxReceiveBatch, 0, 0)
		if err != nil {
			e.t.Fatalf("Receive(%s): %v", queue, err)
		}
		if len(got) == 0 {
			break
		}
		ds = append(ds, got...)
	}
	var out []queuedJob
	for _, d := range ds {
		if err := e.db.ChangeVisibility(e.ctx, queue, d.Receipt, 0); err != nil {
			e.t.Fatalf("ChangeVisibility: %v", err)
		}
		var j queuedJob
		if err := json.Unmarshal([]byte(d.Body), &j.Job); err != nil {
			e.t.Fatalf("job body %q: %v", d.Body, err)
		}
		if err := json.Unmarshal([]byte(d.Body), &j.Raw); err != nil {
			e.t.Fatalf("job body %q: %v", d.Body, err)
		}
		j.Attrs = d.Attributes
		out = append(out, j)
	}
	return out
}

// outbox returns every outbox item, oldest first.
func (e *env) outbox() []*hermes.OutboxItem {
	e.t.Helper()
	items, _, err := e.db.ListOutbox(e.ctx, "", 1000, "")
	if err != nil {
		e.t.Fatalf("ListOutbox: %v", err)
	}
	slices.Reverse(items)
	return items
}

func (e *env) outboxFor(threadID string) []*hermes.OutboxItem {
	var out []*hermes.OutboxItem
	for _, it := range e.outbox() {
		if it.ThreadID == threadID {
			out = append(out, it)
		}
	}
	return out
}

func (e *env) sessionsOf(clientID string) []*hermes.Session {
	e.t.Helper()
	ss, _, err := e.db.ListSessions(e.ctx, clientID, nil, 1000, "")
	if err != nil {
		e.t.Fatalf("ListSessions: %v", err)
	}
	return ss
}

func (e *env) session(id string) *hermes.Session {
	e.t.Helper()
	s, err := e.db.GetSession(e.ctx, id)
	if err != nil {
		e.t.Fatalf("GetSession(%s): %v", id, err)
	}
	return s
}

func (e *env) thread(id string) *hermes.Thread {
	e.t.Helper()
	th, err := e.db.GetThread(e.ctx, id)
	if err != nil {
		e.t.Fatalf("GetThread(%s): %v", id, err)
	}
	return th
}

func (e *env) history(sessionID string) []*hermes.HistoryEntry {
	e.t.Helper()
	h, err := e.db.ListHistory(e.ctx, sessionID)
	if err != nil {
		e.t.Fatalf("ListHistory: %v", err)
	}
	return h
}

func (e *env) queues() []string {
	e.t.Helper()
	qs, err := e.db.ListQueues(e.ctx, "")
	if err != nil {
		e.t.Fatalf("ListQueues: %v", err)
	}
	return qs
}

func (e *env) setContainerStatus(id string, s hermes.ContainerStatus) {
	e.t.Helper()
	if _, err := e.db.UpdateContainer(e.ctx, id, func(c *hermes.Container) error {
		c.Status = s
		return nil
	}); err != nil {
		e.t.Fatalf("UpdateContainer: %v", err)
	}
}

func (e *env) setAcknowledge(clientID, projectID string, on bool) {
	e.t.Helper()
	p, err := e.db.GetProject(e.ctx, clientID, projectID)
	if err != nil {
		e.t.Fatal(err)
	}
	p.Acknowledge = &on
	if err := e.db.UpdateProject(e.ctx, p, e.clock.Now()); err != nil {
		e.t.Fatal(err)
	}
}

// fakeRunner records wakes.
type fakeRunner struct {
	mu    sync.Mutex
	wakes []string
	err   error
}

func (f *fakeRunner) Wake(_ context.Context, c *hermes.Container) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wakes = append(f.wakes, c.ID)
	return f.err
}

func (f *fakeRunner) Stop(context.Context, *hermes.Container) error { return nil }

func (f *fakeRunner) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.wakes)
}

// flakyStore fails chosen methods a number of times, then passes through.
type flakyStore struct {
	hermes.Store
	failHistory atomic.Int32 // AppendHistory calls to fail
	failTouch   atomic.Int32 // TouchThread calls to fail
	failDone    atomic.Int32 // CompleteMessage calls to fail
}

var errInjected = hermes.Errorf(hermes.Unavailable, "injected failure")

func (s *flakyStore) AppendHistory(ctx context.Context, entries ...*hermes.HistoryEntry) error {
	if s.failHistory.Add(-1) >= 0 {
		return errInjected
	}
	return s.Store.AppendHistory(ctx, entries...)
}

func (s *flakyStore) TouchThread(ctx context.Context, id string, now time.Time) error {
	if s.failTouch.Add(-1) >= 0 {
		return errInjected
	}
	return s.Store.TouchThread(ctx, id, now)
}

func (s *flakyStore) CompleteMessage(ctx context.Context, channel, id string, now time.Time) error {
	if s.failDone.Add(-1) >= 0 {
		return errInjected
	}
	return s.Store.CompleteMessage(ctx, channel, id, now)
}

// flakyQueues fails Send a number of times.
type flakyQueues struct {
	hermes.Queues
	failSend atomic.Int32
}

func (q *flakyQueues) Send(ctx context.Context, queue, body string, attrs map[string]string) (string, error) {
	if q.failSend.Add(-1) >= 0 {
		return "", errInjected
	}
	return q.Queues.Send(ctx, queue, body, attrs)
}

// --- sender verification (§8) ---

func TestSenderVerification(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		msg    *hermes.Message
		reason string
	}{
		{"email to an unknown address", to(simple("<a1@mail.example.com>", "make it blue"), "nobody@amelia.example.com"), router.ReasonUnknownRecipient},
		{"email to another domain", to(simple("<a2@mail.example.com>", "make it blue"), "edit@example.org"), router.ReasonUnknownRecipient},
		{"email from a stranger", from(simple("<a3@mail.example.com>", "make it blue"), "mallory@example.net"), router.ReasonUnknownSender},
		{"email from a member of another client", from(simple("<a4@mail.example.com>", "make it blue"), annEmail), router.ReasonUnknownSender},
		{"email from amelia's member to the other client", to(simple("<a5@mail.example.com>", "make it blue"), otherEmail), router.ReasonUnknownSender},
		{"email from the project's own address", from(simple("<a6@mail.example.com>", "make it blue"), ameliaEmail), router.ReasonUnknownSender},
		{"sms to an unknown number", &hermes.Message{Channel: hermes.ChannelSMS, ChannelID: "SM1", From: scottPhone, To: "+15550109999", Text: "hi"}, router.ReasonUnknownRecipient},
		{"sms from an unknown number", &hermes.Message{Channel: hermes.ChannelSMS, ChannelID: "SM2", From: "+15550109998", To: ameliaSMS, Text: "hi"}, router.ReasonUnknownSender},
		{"sms from scott's email as identity", &hermes.Message{Channel: hermes.ChannelSMS, ChannelID: "SM3", From: scottEmail, To: ameliaSMS, Text: "hi"}, router.ReasonUnknownSender},
		{"chat in an unknown channel", &hermes.Message{Channel: hermes.ChannelChat, ChannelID: "Ev1", From: scottChat, To: "C9999", Text: "hi", Thread: hermes.ThreadHints{ChatThread: "1.1"}}, router.ReasonUnknownRecipient},
		{"chat from an unknown user", &hermes.Message{Channel: hermes.ChannelChat, ChannelID: "Ev2", From: "U9999", To: ameliaChat, Text: "hi", Thread: hermes.ThreadHints{ChatThread: "1.2"}}, router.ReasonUnknownSender},
		{"chat with the channel id as sender", &hermes.Message{Channel: hermes.ChannelChat, ChannelID: "Ev3", From: ameliaChat, To: ameliaChat, Text: "hi", Thread: hermes.ThreadHints{ChatThread: "1.3"}}, router.ReasonUnknownSender},
		// The email address of a project is not an SMS number and so on:
		// addresses are looked up by kind.
		{"sms to the project's email address", &hermes.Message{Channel: hermes.ChannelSMS, ChannelID: "SM4", From: scottPhone, To: ameliaEmail, Text: "hi"}, router.ReasonUnknownRecipient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			out := e.route(tc.msg)
			if out.Status != router.Dropped || out.Reason != tc.reason {
				t.Fatalf("outcome %+v, want dropped/%s", out, tc.reason)
			}
			if out.JobID != "" || out.ThreadID != "" || out.SessionID != "" || out.ContainerID != "" {
				t.Errorf("a dropped outcome names things: %+v", out)
			}
			if qs := e.queues(); len(qs) != 0 {
				t.Errorf("queues created for a dropped message: %v", qs)
			}
			if items := e.outbox(); len(items) != 0 {
				t.Errorf("outbox items for a dropped message (backscatter): %+v", items[0])
			}
			for _, c := range []string{"amelia", "other"} {
				if ss := e.sessionsOf(c); len(ss) != 0 {
					t.Errorf("sessions of %s created for a dropped message: %+v", c, ss[0])
				}
			}
			if cs, err := e.db.ListContainers(e.ctx); err != nil || len(cs) != 0 {
				t.Errorf("containers for a dropped message: %v %v", cs, err)
			}
			// A dropped message is done: its redelivery is a duplicate.
			if again := e.route(tc.msg); again.Status != router.Duplicate {
				t.Errorf("redelivery of a dropped message: %+v, want duplicate", again)
			}
		})
	}
}

func TestSenderCaseInsensitive(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, from, to string }{
		{"upper-case sender", "Scott@Example.COM", ameliaEmail},
		{"upper-case recipient", scottEmail, "EDIT@Amelia.Example.Com"},
		{"both", "SCOTT@EXAMPLE.COM", "Edit@AMELIA.example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			m := simple("<case@mail.example.com>", "make it blue")
			m.From, m.To = tc.from, tc.to
			out := e.queued(m)
			if out.ContainerID != scottContainer {
				t.Errorf("container %q, want %q", out.ContainerID, scottContainer)
			}
			if n := e.depth(scottInput); n != 1 {
				t.Errorf("%d jobs, want 1", n)
			}
		})
	}
}

// A member of one client writing to another client's address with a thread
// or token of that client is still dropped: hints never authenticate.
func TestForeignSenderWithHintsDropped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := e.queued(simple("<f1@mail.example.com>", "make it blue"))
	th := e.thread(first.ThreadID)
	m := from(emailMsg("<f2@other.example.com>", "Re: x "+mail.FormatToken(th.Token), "also red", nil, []string{"f1@mail.example.com"}), annEmail)
	m.Thread.ThreadID = th.ID
	if out := e.route(m); out.Status != router.Dropped || out.Reason != router.ReasonUnknownSender {
		t.Fatalf("outcome %+v, want dropped/unknown-sender", out)
	}
	if n := e.depth(scottInput); n != 1 {
		t.Errorf("%d jobs on scott's queue, want 1", n)
	}
	if n := len(e.outbox()); n != 1 {
		t.Errorf("%d outbox items, want 1 (the first ack)", n)
	}
}

// --- jobs (§2 step 4) ---

func TestJob(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	m := emailMsg("<CAJob1@mail.example.com>", "Header colour", "Make the header blue",
		[]string{"root@mail.example.com"}, []string{"root@mail.example.com"})
	out := e.queued(m)
	wantJobID := hermes.DeriveToken("job", hermes.ChannelEmail, m.ChannelID)
	if out.JobID != wantJobID {
		t.Errorf("jobId %q, want %q (derived from the channel id)", out.JobID, wantJobID)
	}
	if out.ContainerID != scottContainer || !out.NewSession || out.SessionID == "" || !hermes.ValidTokenID(out.ThreadID) {
		t.Errorf("outcome %+v", out)
	}
	th := e.thread(out.ThreadID)
	jobs := e.jobs(scottInput)
	if len(jobs) != 1 {
		t.Fatalf("%d jobs on %s, want 1", len(jobs), scottInput)
	}
	j := jobs[0]
	want := hermes.Job{
		Version: 1, ID: wantJobID, Type: hermes.JobInstruction, SessionID: out.SessionID, ThreadID: out.ThreadID,
		Branch: "thread-" + out.ThreadID, ClientID: "amelia", ProjectID: "site", UserID: "scott",
		Instruction: "Make the header blue", CreatedAt: t0,
		Reply: hermes.ReplyContext{
			Channel: hermes.ChannelEmail, To: scottEmail, From: ameliaEmail, Subject: "Header colour",
			MessageID: "CAJob1@mail.example.com", References: []string{"root@mail.example.com"}, Token: th.Token,
		},
	}
	got := j.Job
	if !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("createdAt %v, want %v", got.CreatedAt, want.CreatedAt)
	}
	got.CreatedAt = want.CreatedAt
	if gj, wj := mustJSON(t, got), mustJSON(t, want); gj != wj {
		t.Errorf("job\n got %s\nwant %s", gj, wj)
	}
	// The wire names of the versioned schema.
	for _, k := range []string{"version", "jobId", "type", "sessionId", "threadId", "branch", "clientId", "projectId", "userId", "instruction", "reply", "createdAt"} {
		if _, ok := j.Raw[k]; !ok {
			t.Errorf("job JSON has no %q: %v", k, j.Raw)
		}
	}
	if v, _ := j.Raw["version"].(float64); v != 1 {
		t.Errorf("version %v, want 1", j.Raw["version"])
	}
	if len(th.Token) != 8 || !mail.ValidToken(th.Token) {
		t.Errorf("thread token %q is not a conversation token", th.Token)
	}
	wantAttrs := map[string]string{"jobId": wantJobID, "type": "instruction", "threadId": out.ThreadID, "sessionId": out.SessionID}
	for k, v := range wantAttrs {
		if j.Attrs[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, j.Attrs[k], v)
		}
	}
	// Only scott's container has queues, and all three.
	wantQueues := []string{scottDLQ, scottInput, scottOutput}
	if qs := e.queues(); !slices.Equal(qs, wantQueues) {
		t.Errorf("queues %v, want %v", qs, wantQueues)
	}
	c, err := e.db.GetContainer(e.ctx, scottContainer)
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientID != "amelia" || c.ProjectID != "site" || c.UserID != "scott" || c.Status != hermes.ContainerStopped ||
		c.Queues != hermes.QueueSetFor("webordinary-", scottContainer) {
		t.Errorf("container %+v", c)
	}
	// The session names the same container and thread.
	s := e.session(out.SessionID)
	if s.ContainerID != scottContainer || s.ThreadID != out.ThreadID || s.UserID != "scott" || s.ProjectID != "site" {
		t.Errorf("session %+v", s)
	}
	if want := "http://hermes.test/preview/amelia/site/" + out.ThreadID + "/"; s.PreviewURL != want {
		t.Errorf("preview %q, want %q", s.PreviewURL, want)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The job id depends on the channel and the channel id only: a message
// routed by another Hermes (another store) gets the same id; another id or
// another channel gets another.
func TestJobIDDeterministic(t *testing.T) {
	t.Parallel()
	a, b := newEnv(t), newEnv(t)
	m1 := func() *hermes.Message { return simple("<det@mail.example.com>", "make it blue") }
	outA, outB := a.queued(m1()), b.queued(m1())
	if outA.JobID != outB.JobID {
		t.Errorf("same channel id, job ids %q and %q", outA.JobID, outB.JobID)
	}
	if outA.ThreadID != outB.ThreadID {
		t.Errorf("same Message-ID, thread ids %q and %q (derived ids must not depend on the store)", outA.ThreadID, outB.ThreadID)
	}
	other := a.queued(simple("<det2@mail.example.com>", "make it blue"))
	if other.JobID == outA.JobID {
		t.Error("another channel id gave the same job id")
	}
	sms := a.queued(smsMsg(outA.JobID, "make it blue")) // same id string, another channel
	if sms.JobID == outA.JobID {
		t.Error("another channel gave the same job id")
	}
}

// A job received three times without being deleted lands in the DLQ (the
// redrive policy of the input queue).
func TestJobRedrive(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	out := e.queued(simple("<dlq@mail.example.com>", "make it blue"))
	for i := 1; i <= hermes.DefaultMaxReceive; i++ {
		ds, err := e.db.Receive(e.ctx, scottInput, 1, 0, 0)
		if err != nil || len(ds) != 1 {
			t.Fatalf("receive %d: %v %v", i, ds, err)
		}
		if ds[0].ReceiveCount != i || ds[0].Attributes["jobId"] != out.JobID {
			t.Fatalf("receive %d: count %d, attrs %v", i, ds[0].ReceiveCount, ds[0].Attributes)
		}
		// Still pending while in flight (the job counts against the cap).
		if st, _ := e.db.Stats(e.ctx, scottInput); st.InFlight != 1 {
			t.Errorf("in flight %d, want 1", st.InFlight)
		}
		if err := e.db.ChangeVisibility(e.ctx, scottInput, ds[0].Receipt, 0); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := e.db.Receive(e.ctx, scottInput, 1, 0, 0)
	if err != nil || len(ds) != 0 {
		t.Fatalf("fourth receive: %v %v, want nothing", ds, err)
	}
	if n := e.depth(scottInput); n != 0 {
		t.Errorf("input depth %d, want 0", n)
	}
	dead, err := e.db.Receive(e.ctx, scottDLQ, 1, 0, 0)
	if err != nil || len(dead) != 1 {
		t.Fatalf("DLQ: %v %v", dead, err)
	}
	var j hermes.Job
	if err := json.Unmarshal([]byte(dead[0].Body), &j); err != nil || j.ID != out.JobID {
		t.Errorf("dead job %+v (%v), want %s", j, err, out.JobID)
	}
}

// The queue set is created once and survives the process forgetting it:
// another router on the same store finds the queues and reuses them.
func TestQueueSetIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.queued(simple("<q1@mail.example.com>", "one"))
	// A fresh router (a restarted process) on the same store.
	r2 := &router.Router{Store: e.r.Store, Queues: e.r.Queues, Sessions: e.r.Sessions, Clock: e.r.Clock, Log: e.r.Log, Acknowledger: e.r.Acknowledger}
	if out, err := r2.Route(e.ctx, simple("<q2@mail.example.com>", "two")); err != nil || out.Status != router.Queued {
		t.Fatalf("second router: %+v %v", out, err)
	}
	if n := e.depth(scottInput); n != 2 {
		t.Errorf("depth %d, want 2 (re-creating the queue set must keep its messages)", n)
	}
	if qs := e.queues(); len(qs) != 3 {
		t.Errorf("queues %v", qs)
	}
	// Jo gets a queue set of her own.
	e.queued(from(simple("<q3@mail.example.com>", "three"), joEmail))
	if n := e.depth(joInput); n != 1 {
		t.Errorf("jo's depth %d, want 1", n)
	}
	if n := e.depth(scottInput); n != 2 {
		t.Errorf("scott's depth %d, want 2", n)
	}
}

// --- dedup (§2 step 1) ---

func TestDuplicate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		msg   func() *hermes.Message
		queue string
	}{
		{"email", func() *hermes.Message { return simple("<dup@mail.example.com>", "make it blue") }, scottInput},
		{"sms", func() *hermes.Message { return smsMsg("SMdup", "make it blue") }, scottInput},
		{"chat", func() *hermes.Message { return chatMsg("EvDup", "1700000000.000100", "", "make it blue") }, scottInput},
		{"api", func() *hermes.Message { return apiMsg("msg-dup", "scott", "make it blue", "") }, scottInput},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			first := e.queued(tc.msg())
			items := len(e.outbox())
			e.clock.Advance(time.Minute)
			second := e.route(tc.msg())
			if second.Status != router.Duplicate {
				t.Fatalf("second outcome %+v, want duplicate", second)
			}
			if n := e.depth(tc.queue); n != 1 {
				t.Errorf("%d jobs, want 1", n)
			}
			if n := len(e.outbox()); n != items {
				t.Errorf("outbox grew from %d to %d on a duplicate", items, n)
			}
			if h := e.history(first.SessionID); len(h) != items+1 {
				t.Errorf("history %d entries, want %d", len(h), items+1)
			}
			// A duplicate does not renew the lease.
			if s := e.session(first.SessionID); !s.ExpiresAt.Equal(t0.Add(30 * time.Minute)) {
				t.Errorf("lease %v moved on a duplicate", s.ExpiresAt)
			}
		})
	}
}

func TestDuplicateConcurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 10
	var (
		wg                     sync.WaitGroup
		mu                     sync.Mutex
		queued, dupes, waiting int
		unexpected             []string
	)
	for range n {
		wg.Go(func() {
			out, err := e.r.Route(e.ctx, simple("<race@mail.example.com>", "make it blue"))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil && hermes.IsKind(err, hermes.Unavailable):
				waiting++
			case err != nil:
				unexpected = append(unexpected, err.Error())
			case out.Status == router.Queued:
				queued++
			case out.Status == router.Duplicate:
				dupes++
			default:
				unexpected = append(unexpected, out.Status)
			}
		})
	}
	wg.Wait()
	if len(unexpected) > 0 {
		t.Fatalf("unexpected results: %v", unexpected)
	}
	if queued != 1 || queued+dupes+waiting != n {
		t.Errorf("queued %d, duplicate %d, in progress %d; want exactly one queued", queued, dupes, waiting)
	}
	if d := e.depth(scottInput); d != 1 {
		t.Errorf("%d jobs, want 1", d)
	}
	if items := e.outbox(); len(items) != 1 {
		t.Errorf("%d outbox items, want 1", len(items))
	}
	if ss := e.sessionsOf("amelia"); len(ss) != 1 {
		t.Errorf("%d sessions, want 1", len(ss))
	}
	// Once done, every redelivery is a duplicate.
	if out := e.route(simple("<race@mail.example.com>", "make it blue")); out.Status != router.Duplicate {
		t.Errorf("after the race: %+v", out)
	}
}

// Distinct messages of one conversation routed at once share one thread and
// one session, each with its own job.
func TestConcurrentConversation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 8
	outs := make([]*router.Outcome, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := "<conv" + string(rune('a'+i)) + "@mail.example.com>"
			outs[i], errs[i] = e.r.Route(e.ctx, emailMsg(id, "Re: site", "change "+id, []string{"root@mail.example.com"}, []string{"root@mail.example.com"}))
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			// A lost race on the session may ask for a retry; it must say so.
			if !hermes.IsKind(errs[i], hermes.Unavailable) {
				t.Fatalf("message %d: %v", i, errs[i])
			}
			t.Logf("message %d asked for a retry: %v", i, errs[i])
			continue
		}
		if outs[i].Status != router.Queued || outs[i].ThreadID != outs[0].ThreadID || outs[i].SessionID != outs[0].SessionID {
			t.Errorf("message %d: %+v, first %+v", i, outs[i], outs[0])
		}
	}
	if ss := e.sessionsOf("amelia"); len(ss) != 1 {
		t.Errorf("%d sessions, want 1", len(ss))
	}
}

// A failure before the job is sent releases the claim: the retry routes the
// message, and exactly one job exists.
func TestRetryAfterFailureBeforeSend(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opt  envOption
	}{
		{"store fails touching the thread", withStore(func(s hermes.Store) hermes.Store {
			fs := &flakyStore{Store: s}
			fs.failTouch.Store(1)
			return fs
		})},
		{"queue send fails", withQueues(func(q hermes.Queues) hermes.Queues {
			fq := &flakyQueues{Queues: q}
			fq.failSend.Store(1)
			return fq
		})},
	}
	for _, tc := range tests {
		for _, ch := range []string{"email", "sms"} {
			t.Run(tc.name+"/"+ch, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, tc.opt)
				msg := func() *hermes.Message {
					if ch == "sms" {
						return smsMsg("SMretry", "make it blue")
					}
					return simple("<retry@mail.example.com>", "make it blue")
				}
				_, err := e.r.Route(e.ctx, msg())
				if !hermes.IsKind(err, hermes.Unavailable) {
					t.Fatalf("first attempt: %v, want the injected Unavailable error", err)
				}
				if !errors.Is(err, errInjected) {
					t.Errorf("the cause is lost: %v", err)
				}
				if n := e.depth(scottInput); n != 0 {
					t.Fatalf("%d jobs after a failed attempt", n)
				}
				if n := len(e.outbox()); n != 0 {
					t.Errorf("%d outbox items after a failed attempt", n)
				}
				out := e.route(msg())
				if out.Status != router.Queued {
					t.Fatalf("retry: %+v, want queued (the claim must be released)", out)
				}
				if n := e.depth(scottInput); n != 1 {
					t.Errorf("%d jobs, want 1", n)
				}
				if again := e.route(msg()); again.Status != router.Duplicate {
					t.Errorf("after the retry: %+v, want duplicate", again)
				}
				// The failed attempt left no second thread or session behind.
				if ss := e.sessionsOf("amelia"); len(ss) != 1 {
					t.Errorf("%d sessions, want 1", len(ss))
				}
			})
		}
	}
}

// TestFailureAfterSend: once the job is on its queue, a failure to record
// the history does not fail the message (a redelivery would queue the job
// again): it is logged, the message is complete, and its redelivery is a
// duplicate. The job is on the queue exactly once.
func TestFailureAfterSend(t *testing.T) {
	t.Parallel()
	var fs *flakyStore
	e := newEnv(t, withStore(func(s hermes.Store) hermes.Store {
		fs = &flakyStore{Store: s}
		fs.failHistory.Store(1)
		return fs
	}))
	msg := func() *hermes.Message { return simple("<late@mail.example.com>", "make it blue") }
	out := e.route(msg())
	if out.Status != router.Queued {
		t.Fatalf("first attempt: %+v, want queued despite the history failure", out)
	}
	if again := e.route(msg()); again.Status != router.Duplicate {
		t.Fatalf("redelivery: %+v, want duplicate", again)
	}
	jobs := e.jobs(scottInput)
	if len(jobs) != 1 || jobs[0].ID != out.JobID {
		t.Fatalf("jobs %+v, want one %s", jobs, out.JobID)
	}
	if n := len(e.outbox()); n != 1 {
		t.Errorf("%d outbox items, want 1 (the acknowledgement was queued before the history write)", n)
	}
}

// When remembering a routed message fails, the outcome is still queued; a
// redelivery routes it again, with the same job id.
func TestCompleteFailureRoutesAgainWithSameJobID(t *testing.T) {
	t.Parallel()
	var fs *flakyStore
	e := newEnv(t, withStore(func(s hermes.Store) hermes.Store {
		fs = &flakyStore{Store: s}
		fs.failDone.Store(1)
		return fs
	}))
	first := e.queued(simple("<done@mail.example.com>", "make it blue"))
	// The claim is still held (lease 2 minutes): a redelivery now waits.
	if _, err := e.r.Route(e.ctx, simple("<done@mail.example.com>", "make it blue")); !hermes.IsKind(err, hermes.Unavailable) {
		t.Errorf("redelivery within the claim lease: %v, want Unavailable", err)
	}
	e.clock.Advance(3 * time.Minute)
	second := e.route(simple("<done@mail.example.com>", "make it blue"))
	if second.Status != router.Queued || second.JobID != first.JobID || second.ThreadID != first.ThreadID {
		t.Errorf("redelivery after the lease: %+v, first %+v", second, first)
	}
	if n := len(e.outbox()); n != 1 {
		t.Errorf("%d outbox items, want 1 (ack ids derive from the job id)", n)
	}
}

// --- empty instructions ---

func TestEmptyText(t *testing.T) {
	t.Parallel()
	for _, text := range []string{"", "   ", "\n\t \r\n"} {
		t.Run("email/"+strings.ReplaceAll(text, "\n", `\n`), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			out := e.route(simple("<empty@mail.example.com>", text))
			if out.Status != router.Dropped || out.Reason != router.ReasonEmpty {
				t.Fatalf("outcome %+v, want dropped/empty", out)
			}
			if len(e.queues()) != 0 || len(e.outbox()) != 0 || len(e.sessionsOf("amelia")) != 0 {
				t.Error("an empty message left queues, outbox items or sessions")
			}
		})
		t.Run("sms/"+strings.ReplaceAll(text, "\n", `\n`), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			if out := e.route(smsMsg("SMempty", text)); out.Status != router.Dropped || out.Reason != router.ReasonEmpty {
				t.Fatalf("outcome %+v, want dropped/empty", out)
			}
		})
		t.Run("api/"+strings.ReplaceAll(text, "\n", `\n`), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			_, err := e.r.Route(e.ctx, apiMsg("api-empty", "scott", text, ""))
			if !hermes.IsKind(err, hermes.Invalid) {
				t.Fatalf("error %v, want Invalid", err)
			}
			if len(e.queues()) != 0 || len(e.sessionsOf("amelia")) != 0 {
				t.Error("an empty API message left queues or sessions")
			}
			// The claim was released: a corrected retry with the same id routes.
			if out := e.route(apiMsg("api-empty", "scott", "make it blue", "")); out.Status != router.Queued {
				t.Errorf("retry: %+v", out)
			}
		})
	}
}

func TestInvalidMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		msg  *hermes.Message
		kind hermes.Kind
	}{
		{"no channel", &hermes.Message{ChannelID: "x", From: scottEmail, To: ameliaEmail, Text: "hi"}, hermes.Invalid},
		{"no channel id", &hermes.Message{Channel: hermes.ChannelEmail, From: scottEmail, To: ameliaEmail, Text: "hi"}, hermes.Invalid},
		{"api: unknown client", &hermes.Message{Channel: hermes.ChannelAPI, ChannelID: "a1", ClientID: "nobody", UserID: "scott", Text: "hi"}, hermes.NotFound},
		{"api: unknown user", apiMsg("a2", "mallory", "hi", ""), hermes.Unprocessable},
		{"api: user of another client", apiMsg("a3", "ann", "hi", ""), hermes.Unprocessable},
		{"api: unknown project", &hermes.Message{Channel: hermes.ChannelAPI, ChannelID: "a4", ClientID: "amelia", ProjectID: "blog", UserID: "scott", Text: "hi"}, hermes.Unprocessable},
		{"api: instruction too long", apiMsg("a5", "scott", strings.Repeat("x", lifecycle.MaxInstructionBytes+1), ""), hermes.Invalid},
		{"api: invalid UTF-8", apiMsg("a6", "scott", "make it \xff blue", ""), hermes.Invalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			_, err := e.r.Route(e.ctx, tc.msg)
			if !hermes.IsKind(err, tc.kind) {
				t.Fatalf("error %v (kind %v), want %v", err, hermes.ErrorKind(err), tc.kind)
			}
			if len(e.queues()) != 0 || len(e.sessionsOf("amelia")) != 0 || len(e.outbox()) != 0 {
				t.Error("a refused message left queues, sessions or outbox items")
			}
		})
	}
}

// --- wake (§2 step 5) and metrics ---

func TestWake(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withRunner())
	e.queued(simple("<w1@mail.example.com>", "one"))
	if n := e.runner.count(); n != 1 {
		t.Errorf("%d wakes for a stopped container, want 1", n)
	}
	e.setContainerStatus(scottContainer, hermes.ContainerRunning)
	e.queued(simple("<w2@mail.example.com>", "two"))
	if n := e.runner.count(); n != 1 {
		t.Errorf("a running container was woken (%d wakes)", n)
	}
	// A failing wake leaves the job queued (the reconcile loop wakes later).
	e.setContainerStatus(scottContainer, hermes.ContainerStopped)
	e.runner.err = hermes.Errorf(hermes.Unavailable, "orchestrator down")
	out := e.route(simple("<w3@mail.example.com>", "three"))
	if out.Status != router.Queued || e.depth(scottInput) != 3 {
		t.Errorf("after a failed wake: %+v, depth %d", out, e.depth(scottInput))
	}
	if e.runner.wakes[len(e.runner.wakes)-1] != scottContainer {
		t.Errorf("woke %v", e.runner.wakes)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	counts := map[string]int{}
	inc := func(k string) {
		mu.Lock()
		counts[k]++
		mu.Unlock()
	}
	e := newEnv(t, withRouter(func(r *router.Router) {
		r.Metrics = router.Metrics{
			Routed:  func(ch string) { inc("routed/" + ch) },
			Dropped: func(ch, reason string) { inc("dropped/" + ch + "/" + reason) },
			Dupes:   func(ch string) { inc("dupes/" + ch) },
		}
	}))
	e.queued(simple("<m1@mail.example.com>", "one"))
	e.route(simple("<m1@mail.example.com>", "one"))
	e.route(from(simple("<m2@mail.example.com>", "two"), "mallory@example.net"))
	e.queued(smsMsg("SMm", "three"))
	want := map[string]int{"routed/email": 1, "dupes/email": 1, "dropped/email/unknown-sender": 1, "routed/sms": 1}
	mu.Lock()
	defer mu.Unlock()
	if mustJSON(t, counts) != mustJSON(t, want) {
		t.Errorf("metrics %v, want %v", counts, want)
	}
}

// A queue set that disappears (deleted by an operator, or by another
// replica cleaning up) is created again on the next message. The router
// remembers per process that it ensured a container's queues, and so keeps
// failing with NotFound ("router: queue depth: … not found") for every
// message of that container until it restarts.
func TestDeletedQueueSetIsRecreated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.queued(simple("<gone1@mail.example.com>", "one"))
	if err := e.db.DeleteQueue(e.ctx, scottInput); err != nil {
		t.Fatal(err)
	}
	out, err := e.r.Route(e.ctx, simple("<gone2@mail.example.com>", "two"))
	if err != nil {
		// At the very least the failure must be retryable, not NotFound
		// (which the API maps to 404 and intakes treat as final).
		t.Fatalf("Route after the queue was deleted: %v (kind %v)", err, hermes.ErrorKind(err))
	}
	if out.Status != router.Queued || e.depth(scottInput) != 1 {
		t.Errorf("outcome %+v, depth %d", out, e.depth(scottInput))
	}
}
