package relay_test

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
	"github.com/webordinary/hermes/internal/relay"
	"github.com/webordinary/hermes/internal/router"
	"github.com/webordinary/hermes/internal/sqlite"
)

const (
	ameliaEmail = "edit@amelia.example.com"
	scottEmail  = "scott@example.com"
	scottOutput = "webordinary-output-amelia_site_scott"
)

// resultsEnv is a router and a results relay on one fresh database.
type resultsEnv struct {
	t       testing.TB
	ctx     context.Context
	path    string // the database file
	db      *sqlite.DB
	clock   *hermestest.Clock
	router  *router.Router
	results *relay.Results
	kicks   atomic.Int32
	mu      sync.Mutex // guards dropped, appended to by Run's goroutines
	dropped []string
}

func newResultsEnv(t testing.TB) *resultsEnv {
	t.Helper()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "hermes.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tr := &directory.ClientTree{
		Client: hermes.Client{ID: "amelia", Name: "Amelia Stamps"},
		Projects: []*hermes.Project{{
			ID: "site", Name: "Amelia", RepoURL: "https://github.com/ameliastamps/amelia-astro.git",
			EmailAddresses: []string{ameliaEmail}, SMSNumbers: []string{"+15550100001"}, SlackChannels: []string{"C0123"},
		}},
		Users: []*hermes.User{{ID: "scott", Name: "Scott", Emails: []string{scottEmail}, Phones: []string{"+15550100002"}, ChatIDs: []string{"U0456"}}},
	}
	tr.Normalize()
	if err := directory.Create(ctx, db, tr, t0); err != nil {
		t.Fatal(err)
	}
	clock := hermestest.NewClock(t0)
	log := slog.New(slog.DiscardHandler)
	e := &resultsEnv{t: t, ctx: ctx, path: path, db: db, clock: clock}
	sessions := &lifecycle.Sessions{Store: db, Clock: clock.Now, TTL: 30 * time.Minute, PublicBase: "http://hermes.test", Log: log}
	e.router = &router.Router{
		Store: db, Queues: db, Sessions: sessions, Clock: clock.Now, Log: log,
		Acknowledger: &relay.Acks{FromEmail: "hermes@localhost"}, PendingCap: router.DefaultPendingCap,
	}
	e.results = &relay.Results{
		Store: db, Queues: db, Clock: clock.Now, Log: log, FromEmail: "hermes@localhost",
		Kick: func() { e.kicks.Add(1) }, Wait: time.Millisecond,
		Dropped: func(reason string) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.dropped = append(e.dropped, reason)
		},
	}
	return e
}

// route routes m and returns the job the router queued.
func (e *resultsEnv) route(m *hermes.Message) hermes.Job {
	e.t.Helper()
	out, err := e.router.Route(e.ctx, m)
	if err != nil || out.Status != router.Queued {
		e.t.Fatalf("route: %+v %v", out, err)
	}
	ds, err := e.db.Receive(e.ctx, "webordinary-input-"+out.ContainerID, 10, 0, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, d := range ds {
		var j hermes.Job
		if err := json.Unmarshal([]byte(d.Body), &j); err != nil {
			e.t.Fatal(err)
		}
		if j.ID == out.JobID {
			return j
		}
	}
	e.t.Fatalf("job %s not on the input queue", out.JobID)
	return hermes.Job{}
}

// resultFor is the result a worker would report for j.
func resultFor(j hermes.Job, typ string) hermes.ResultMessage {
	return hermes.ResultMessage{
		Version: 1, Type: typ, SessionID: j.SessionID, ThreadID: j.ThreadID, Reply: j.Reply,
		StartedAt: t0.Add(time.Second),
		Result: hermes.Result{
			JobID: j.ID, Success: typ != hermes.ResultError, Summary: "Made the header blue.",
			FilesChanged: []string{"src/components/Header.astro"}, Commit: "3f2a9c1d0e4b5a6978c0d1e2f3a4b5c6d7e8f901",
			Branch: j.Branch, PreviewURL: "http://hermes.test/preview/amelia/site/" + j.ThreadID + "/",
			FinishedAt: t0.Add(time.Minute),
		},
	}
}

func (e *resultsEnv) send(v any) {
	e.t.Helper()
	var body []byte
	switch v := v.(type) {
	case string:
		body = []byte(v)
	default:
		var err error
		if body, err = json.Marshal(v); err != nil {
			e.t.Fatal(err)
		}
	}
	if _, err := e.db.Send(e.ctx, scottOutput, string(body), nil); err != nil {
		e.t.Fatal(err)
	}
}

func (e *resultsEnv) poll() int {
	e.t.Helper()
	n, err := e.results.Poll(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// outbox returns the items of the kind.
func (e *resultsEnv) outbox(kinds ...string) []*hermes.OutboxItem {
	e.t.Helper()
	items, _, err := e.db.ListOutbox(e.ctx, "", 1000, "")
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*hermes.OutboxItem
	for _, it := range items {
		for _, k := range kinds {
			if it.Kind == k {
				out = append(out, it)
			}
		}
	}
	return out
}

func (e *resultsEnv) history(sessionID string) (in, acks, results []*hermes.HistoryEntry) {
	e.t.Helper()
	hs, err := e.db.ListHistory(e.ctx, sessionID)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, h := range hs {
		switch {
		case h.Direction == hermes.DirectionIn:
			in = append(in, h)
		case h.Kind == hermes.KindAck:
			acks = append(acks, h)
		default:
			results = append(results, h)
		}
	}
	return in, acks, results
}

func (e *resultsEnv) queueEmpty() {
	e.t.Helper()
	st, err := e.db.Stats(e.ctx, scottOutput)
	if err != nil {
		e.t.Fatal(err)
	}
	if st.Visible+st.InFlight != 0 {
		e.t.Errorf("output queue not empty: %+v", st)
	}
}

func emailIn(msgID, subject, text string, refs ...string) *hermes.Message {
	return &hermes.Message{
		Channel: hermes.ChannelEmail, ChannelID: "email:" + msgID + "/" + ameliaEmail,
		From: scottEmail, To: ameliaEmail, Subject: subject, Text: text,
		Thread: hermes.ThreadHints{MessageID: msgID, References: refs},
	}
}

func TestResultEmailReply(t *testing.T) {
	e := newResultsEnv(t)
	job := e.route(emailIn("msg2@mail.example.com", "Header colour", "Make the header blue", "root@mail.example.com"))
	thread, err := e.db.GetThread(e.ctx, job.ThreadID)
	if err != nil {
		t.Fatal(err)
	}
	e.send(resultFor(job, hermes.ResultDone))
	if n := e.poll(); n != 1 {
		t.Fatalf("received %d", n)
	}
	e.queueEmpty()

	items := e.outbox(hermes.KindResult)
	if len(items) != 1 {
		t.Fatalf("%d result items", len(items))
	}
	it := items[0]
	if it.Channel != hermes.ChannelEmail || it.To != scottEmail || it.From != ameliaEmail || it.ThreadID != job.ThreadID || it.SessionID != job.SessionID || it.ClientID != "amelia" {
		t.Errorf("item: %+v", it)
	}
	if it.Headers["In-Reply-To"] != "<msg2@mail.example.com>" || it.Headers["References"] != "<root@mail.example.com> <msg2@mail.example.com>" ||
		!strings.HasPrefix(it.Headers["Message-ID"], "<") {
		t.Errorf("headers: %v", it.Headers)
	}
	if want := "Re: Header colour [ref:" + thread.Token + "]"; it.Subject != want {
		t.Errorf("subject %q, want %q", it.Subject, want)
	}
	for _, w := range []string{"Done — your change is applied.", "Made the header blue.", "- src/components/Header.astro", "Commit: 3f2a9c1d0e4b", "Preview: http://hermes.test/preview/amelia/site/"} {
		if !strings.Contains(it.Text, w) {
			t.Errorf("text lacks %q:\n%s", w, it.Text)
		}
	}
	raw := string(it.Raw)
	if !strings.Contains(raw, "In-Reply-To: <msg2@mail.example.com>") || !strings.Contains(raw, "X-Hermes-Kind: result") {
		t.Errorf("raw:\n%s", raw)
	}

	sess, err := e.db.GetSession(e.ctx, job.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	if lr := sess.LastResult; lr == nil || lr.JobID != job.ID || !lr.Success || lr.Commit == "" || !lr.FinishedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("lastResult: %+v", sess.LastResult)
	}
	_, _, results := e.history(job.SessionID)
	if len(results) != 1 || results[0].Kind != hermes.KindResult || results[0].Text != "Made the header blue." || results[0].Meta["outboxId"] != it.ID {
		t.Errorf("history: %+v", results)
	}
	if e.kicks.Load() == 0 {
		t.Error("deliverer not kicked")
	}

	// Redelivery: same ids, nothing new.
	e.send(resultFor(job, hermes.ResultDone))
	e.poll()
	if err := e.results.HandleResult(e.ctx, mustJSON(t, resultFor(job, hermes.ResultDone))); err != nil {
		t.Fatal(err)
	}
	if items := e.outbox(hermes.KindResult); len(items) != 1 || items[0].Headers["Message-ID"] != it.Headers["Message-ID"] {
		t.Errorf("redelivery changed the outbox: %d items", len(items))
	}
	if _, _, results := e.history(job.SessionID); len(results) != 1 {
		t.Errorf("redelivery added history: %d", len(results))
	}
	e.queueEmpty()
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestResultKinds(t *testing.T) {
	e := newResultsEnv(t)
	job := e.route(emailIn("k1@mail.example.com", "Header", "Make the header blue"))
	fail := resultFor(job, hermes.ResultError)
	fail.Error = "npm run build exited 1"
	interrupted := resultFor(job, hermes.ResultInterrupted)
	interrupted.FinishedAt = t0.Add(30 * time.Second) // older than the error
	for _, m := range []hermes.ResultMessage{fail, interrupted} {
		e.send(m)
	}
	e.poll()
	if got := e.outbox(hermes.KindError); len(got) != 1 || !strings.Contains(got[0].Text, "Error: npm run build exited 1") {
		t.Errorf("error items: %+v", got)
	}
	if got := e.outbox(hermes.KindInterrupted); len(got) != 1 || !strings.Contains(got[0].Text, "interrupted") {
		t.Errorf("interrupted items: %+v", got)
	}
	sess, _ := e.db.GetSession(e.ctx, job.SessionID)
	if sess.LastResult == nil || sess.LastResult.Success || sess.LastResult.Error == "" {
		t.Errorf("the older interrupted result replaced the newer error: %+v", sess.LastResult)
	}
	if _, _, results := e.history(job.SessionID); len(results) != 2 {
		t.Errorf("history: %d results", len(results))
	}
}

func TestResultChannels(t *testing.T) {
	t.Run("sms", func(t *testing.T) {
		e := newResultsEnv(t)
		job := e.route(&hermes.Message{Channel: hermes.ChannelSMS, ChannelID: "SM1", From: "+15550100002", To: "+15550100001", Text: "Make the header blue"})
		e.send(resultFor(job, hermes.ResultDone))
		e.poll()
		items := e.outbox(hermes.KindResult)
		if len(items) != 1 {
			t.Fatalf("%d items", len(items))
		}
		it := items[0]
		if it.To != "+15550100002" || it.From != "+15550100001" || len(it.Text) > 160 ||
			!strings.HasPrefix(it.Text, "Amelia: Done: Made the header blue. http://hermes.test/preview/") {
			t.Errorf("%+v", it)
		}
	})
	t.Run("chat", func(t *testing.T) {
		e := newResultsEnv(t)
		job := e.route(&hermes.Message{Channel: hermes.ChannelChat, ChannelID: "Ev1", From: "U0456", To: "C0123", Text: "Make the header blue",
			Thread: hermes.ThreadHints{ChatThread: "1700000000.000100"}})
		e.send(resultFor(job, hermes.ResultDone))
		e.poll()
		items := e.outbox(hermes.KindResult)
		if len(items) != 1 {
			t.Fatalf("%d items", len(items))
		}
		if it := items[0]; it.To != "C0123" || it.Headers["thread_ts"] != "1700000000.000100" || !strings.HasPrefix(it.Text, "*Done") {
			t.Errorf("%+v", it)
		}
	})
	t.Run("api", func(t *testing.T) {
		e := newResultsEnv(t)
		job := e.route(&hermes.Message{Channel: hermes.ChannelAPI, ChannelID: "api1", ClientID: "amelia", ProjectID: "site", UserID: "scott", Text: "Make the header blue"})
		e.send(resultFor(job, hermes.ResultDone))
		e.poll()
		if items := e.outbox(hermes.KindResult, hermes.KindError); len(items) != 0 {
			t.Errorf("api result got an outbox item: %+v", items[0])
		}
		sess, _ := e.db.GetSession(e.ctx, job.SessionID)
		if sess.LastResult == nil || sess.LastResult.JobID != job.ID {
			t.Errorf("lastResult %+v", sess.LastResult)
		}
		if _, _, results := e.history(job.SessionID); len(results) != 1 || results[0].Meta["outboxId"] != "" {
			t.Errorf("history %+v", results)
		}
		e.queueEmpty()
	})
	t.Run("reply to an address that is not the user's", func(t *testing.T) {
		e := newResultsEnv(t)
		job := e.route(emailIn("x1@mail.example.com", "Header", "Make the header blue"))
		m := resultFor(job, hermes.ResultDone)
		m.Reply.To = "victim@elsewhere.example"
		e.send(m)
		e.poll()
		if items := e.outbox(hermes.KindResult); len(items) != 0 {
			t.Errorf("reply sent to %s", items[0].To)
		}
		if _, _, results := e.history(job.SessionID); len(results) != 1 {
			t.Errorf("result not recorded: %d", len(results))
		}
		e.queueEmpty()
	})
}

func TestResultMalformedDropped(t *testing.T) {
	e := newResultsEnv(t)
	job := e.route(emailIn("m1@mail.example.com", "Header", "Make the header blue"))
	before := len(e.outbox(hermes.KindAck, hermes.KindResult, hermes.KindError))
	unknown := resultFor(job, hermes.ResultDone)
	unknown.SessionID = hermes.NewToken()
	badVersion := resultFor(job, hermes.ResultDone)
	badVersion.Version = 2
	badType := resultFor(job, "done")
	otherThread := resultFor(job, hermes.ResultDone)
	otherThread.ThreadID = hermes.NewToken()
	for _, b := range []any{"not json", `{"version":1}`, badVersion, badType, unknown, otherThread} {
		e.send(b)
	}
	if n := e.poll(); n != 6 {
		t.Fatalf("received %d", n)
	}
	e.queueEmpty()
	// Received in any order: compared as a sorted list.
	want := []string{"malformed", "malformed", "malformed", "malformed", "mismatch", "unknown-session"}
	slices.Sort(e.dropped)
	if strings.Join(e.dropped, ",") != strings.Join(want, ",") {
		t.Errorf("dropped %v", e.dropped)
	}
	if after := len(e.outbox(hermes.KindAck, hermes.KindResult, hermes.KindError)); after != before {
		t.Errorf("outbox grew %d → %d", before, after)
	}
	sess, _ := e.db.GetSession(e.ctx, job.SessionID)
	if sess.LastResult != nil {
		t.Errorf("lastResult %+v", sess.LastResult)
	}
	if _, _, results := e.history(job.SessionID); len(results) != 0 {
		t.Errorf("history %+v", results)
	}
}

// failingStore fails one method once.
type failingStore struct {
	hermes.Store
	failAppend, failEnqueue atomic.Int32
}

var errDown = hermes.Errorf(hermes.Unavailable, "database is down")

func (s *failingStore) AppendHistory(ctx context.Context, es ...*hermes.HistoryEntry) error {
	if s.failAppend.Add(-1) >= 0 {
		return errDown
	}
	return s.Store.AppendHistory(ctx, es...)
}

func (s *failingStore) EnqueueOutbox(ctx context.Context, items ...*hermes.OutboxItem) error {
	if s.failEnqueue.Add(-1) >= 0 {
		return errDown
	}
	return s.Store.EnqueueOutbox(ctx, items...)
}

// batchQueues records how results are deleted, and runs afterReceive once
// a receive has returned results.
type batchQueues struct {
	hermes.Queues
	afterReceive func()

	mu      sync.Mutex
	batches [][]string // the receipts of each DeleteBatch
	deletes int        // Delete calls
	dead    int        // DeleteBatch calls with an ended context
}

func (q *batchQueues) Receive(ctx context.Context, queue string, max int, wait, vis time.Duration) ([]hermes.Delivery, error) {
	ds, err := q.Queues.Receive(ctx, queue, max, wait, vis)
	if len(ds) > 0 && q.afterReceive != nil {
		q.afterReceive()
	}
	return ds, err
}

func (q *batchQueues) Delete(ctx context.Context, queue, receipt string) error {
	q.mu.Lock()
	q.deletes++
	q.mu.Unlock()
	return q.Queues.Delete(ctx, queue, receipt)
}

func (q *batchQueues) DeleteBatch(ctx context.Context, queue string, receipts []string) error {
	q.mu.Lock()
	q.batches = append(q.batches, slices.Clone(receipts))
	if ctx.Err() != nil {
		q.dead++
	}
	q.mu.Unlock()
	return q.Queues.DeleteBatch(ctx, queue, receipts)
}

// sizes returns the number of receipts of each DeleteBatch, and the Delete
// calls.
func (q *batchQueues) sizes() ([]int, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var n []int
	for _, b := range q.batches {
		n = append(n, len(b))
	}
	return n, q.deletes
}

// The results of one receive are deleted with one DeleteBatch: those
// handled and those dropped, not one whose handling failed with receives
// left, which is received again and deleted then.
func TestResultsDeletedInBatches(t *testing.T) {
	e := newResultsEnv(t)
	job := e.route(emailIn("b1@mail.example.com", "Header", "Make the header blue"))
	fs := &failingStore{Store: e.db}
	fs.failAppend.Store(1) // the done result's history entry
	bq := &batchQueues{Queues: e.db}
	e.results.Store, e.results.Queues, e.results.Visibility = fs, bq, time.Millisecond
	e.send(resultFor(job, hermes.ResultDone))
	e.send("not json")
	e.send(resultFor(job, hermes.ResultStarted))
	if n := e.poll(); n != 3 {
		t.Fatalf("received %d results, want 3", n)
	}
	if sizes, deletes := bq.sizes(); !slices.Equal(sizes, []int{2}) || deletes != 0 {
		t.Fatalf("deletes of a batch of 3 results, one failed with receives left: DeleteBatch sizes %v and %d Delete calls, want [2] and 0", sizes, deletes)
	}
	if st, _ := e.db.Stats(e.ctx, scottOutput); st.InFlight+st.Visible != 1 {
		t.Fatalf("the failed result is not kept for redelivery: %+v", st)
	}
	time.Sleep(5 * time.Millisecond)
	if n := e.poll(); n != 1 {
		t.Fatalf("received %d results again, want the failed one", n)
	}
	if sizes, _ := bq.sizes(); !slices.Equal(sizes, []int{2, 1}) {
		t.Errorf("DeleteBatch sizes %v, want [2 1]", sizes)
	}
	e.queueEmpty()
	if items := e.outbox(hermes.KindResult); len(items) != 1 {
		t.Errorf("%d result items, want 1", len(items))
	}
}

// A batch received as the context ends is still handled and deleted.
func TestResultsBatchSettledAfterCancel(t *testing.T) {
	e := newResultsEnv(t)
	job := e.route(emailIn("b2@mail.example.com", "Header", "Make the header blue"))
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	bq := &batchQueues{Queues: e.db, afterReceive: cancel}
	e.results.Queues = bq
	e.send(resultFor(job, hermes.ResultDone))
	e.send(resultFor(job, hermes.ResultStarted))
	if n, err := e.results.Poll(ctx); n != 2 || err != nil {
		t.Fatalf("Poll = %d, %v; want the 2 results", n, err)
	}
	if sizes, _ := bq.sizes(); !slices.Equal(sizes, []int{2}) || bq.dead != 0 {
		t.Errorf("DeleteBatch sizes %v, %d with an ended context; want [2], none", sizes, bq.dead)
	}
	e.queueEmpty()
	if items := e.outbox(hermes.KindResult); len(items) != 1 {
		t.Errorf("%d result items, want 1", len(items))
	}
}

func TestResultExactlyOnceAcrossFailures(t *testing.T) {
	for _, step := range []string{"outbox", "history"} {
		t.Run(step, func(t *testing.T) {
			e := newResultsEnv(t)
			job := e.route(emailIn("f1@mail.example.com", "Header", "Make the header blue"))
			fs := &failingStore{Store: e.db}
			if step == "outbox" {
				fs.failEnqueue.Store(1)
			} else {
				fs.failAppend.Store(1)
			}
			e.results.Store = fs
			e.results.Visibility = time.Millisecond
			e.send(resultFor(job, hermes.ResultDone))
			e.poll()
			if step == "outbox" && len(e.outbox(hermes.KindResult)) != 0 {
				t.Fatal("reply queued although the step failed")
			}
			// The message stays on the queue (in flight) until its
			// visibility ends, then it is received and handled again.
			if st, _ := e.db.Stats(e.ctx, scottOutput); st.InFlight+st.Visible != 1 {
				t.Fatalf("result not kept for redelivery: %+v", st)
			}
			time.Sleep(5 * time.Millisecond)
			e.poll()
			e.queueEmpty()
			if items := e.outbox(hermes.KindResult); len(items) != 1 {
				t.Errorf("%d result items", len(items))
			}
			if _, _, results := e.history(job.SessionID); len(results) != 1 {
				t.Errorf("%d history results", len(results))
			}
		})
	}
	// HandleResult reports the failure for redelivery.
	e := newResultsEnv(t)
	job := e.route(emailIn("f2@mail.example.com", "Header", "Make the header blue"))
	fs := &failingStore{Store: e.db}
	fs.failAppend.Store(1)
	e.results.Store = fs
	if err := e.results.HandleResult(e.ctx, mustJSON(t, resultFor(job, hermes.ResultDone))); !errors.Is(err, errDown) {
		t.Errorf("err %v", err)
	}
}
