package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
	"github.com/webordinary/hermes/internal/bedrock"
	"github.com/webordinary/hermes/internal/mail"
	"github.com/webordinary/hermes/internal/notify"
)

// longSummary does not fit one SMS segment.
var longSummary = strings.TrimSpace(strings.Repeat("Changed the header colour to blue and moved the logo to the left on every page. ", 6))

// summarizeCall is one call of a fakeSummarizer.
type summarizeCall struct {
	text     string
	maxChars int
}

// fakeSummarizer records its calls and answers with answer (call numbers
// from 1).
type fakeSummarizer struct {
	mu     sync.Mutex
	calls  []summarizeCall
	answer func(ctx context.Context, call int, text string, maxChars int) (string, error)
}

func (f *fakeSummarizer) Summarize(ctx context.Context, text string, maxChars int) (string, error) {
	f.mu.Lock()
	f.calls = append(f.calls, summarizeCall{text, maxChars})
	n := len(f.calls)
	f.mu.Unlock()
	return f.answer(ctx, n, text, maxChars)
}

func (f *fakeSummarizer) called() []summarizeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]summarizeCall(nil), f.calls...)
}

func answer(s string) func(context.Context, int, string, int) (string, error) {
	return func(context.Context, int, string, int) (string, error) { return s, nil }
}

// warnings records the messages of warnings logged.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, r.Message)
	return nil
}
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }

func (w *warnings) has(sub string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range w.msgs {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

const noSummaryWarning = "no usable SMS summary"

func smsIn(id string) *hermes.Message {
	return &hermes.Message{Channel: hermes.ChannelSMS, ChannelID: id, From: "+15550100002", To: "+15550100001", Text: "Make the header blue"}
}

// smsResult is what the relay gives notify for m's SMS reply (the token
// as FormatToken writes it: "[ref:xxxxxxxx]"; the SMS has it bare).
func (e *resultsEnv) smsResult(m hermes.ResultMessage) notify.Result {
	e.t.Helper()
	th, err := e.db.GetThread(e.ctx, m.ThreadID)
	if err != nil {
		e.t.Fatal(err)
	}
	return notify.Result{
		ProjectName: "Amelia", Type: m.Type, Success: m.Success, Summary: m.Summary, FilesChanged: m.FilesChanged,
		Commit: m.Commit, PreviewURL: m.PreviewURL, Error: m.Error, Token: mail.FormatToken(th.Token),
	}
}

// resultItem returns the one outbox item answering m.
func (e *resultsEnv) resultItem(m hermes.ResultMessage) *hermes.OutboxItem {
	e.t.Helper()
	var got []*hermes.OutboxItem
	for _, it := range e.outbox(hermes.KindResult, hermes.KindError, hermes.KindInterrupted, hermes.KindPlan) {
		if it.ThreadID == m.ThreadID {
			got = append(got, it)
		}
	}
	if len(got) != 1 {
		e.t.Fatalf("%d reply items for the result", len(got))
	}
	return got[0]
}

func TestResultSMSSummaryUsed(t *testing.T) {
	e := newResultsEnv(t)
	short := "Header now blue; logo moved left on every page."
	f := &fakeSummarizer{answer: answer(short)}
	e.results.Summarizer = f
	job := e.route(smsIn("SM1"))
	m := resultFor(job, hermes.ResultDone)
	m.Summary = longSummary
	e.send(m)
	e.poll()

	n := e.smsResult(m)
	room, fits := notify.SMSSummaryRoom(n)
	if fits || room < 40 {
		t.Fatalf("the test's summary fits (room %d)", room)
	}
	calls := f.called()
	if len(calls) != 1 || calls[0].text != longSummary || calls[0].maxChars != room {
		t.Fatalf("calls %+v, want one for %d characters", calls, room)
	}
	// "Amelia: Done:" + preview + " ref:xxxxxxxx": the room the segment leaves.
	if want := notify.SMSMaxSeptets - len("Amelia: Done: ") - len(" "+m.PreviewURL+" "+strings.Trim(n.Token, "[]")); room != want {
		t.Errorf("room %d, want %d", room, want)
	}
	it := e.resultItem(m)
	want := "Amelia: Done: " + short + " " + m.PreviewURL + " " + strings.Trim(n.Token, "[]")
	if it.Text != want || len(it.Text) > notify.SMSMaxSeptets {
		t.Errorf("SMS %q\nwant %q", it.Text, want)
	}
	// The session and its history keep the agent's summary.
	sess, err := e.db.GetSession(e.ctx, job.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	if sess.LastResult == nil || sess.LastResult.Summary != longSummary {
		t.Errorf("lastResult %+v", sess.LastResult)
	}
	if _, _, results := e.history(job.SessionID); len(results) != 1 || results[0].Text != longSummary || results[0].Meta["outboxId"] != it.ID {
		t.Errorf("history %+v", results)
	}
}

// TestResultSMSSummaryNotAsked: results whose reply is not a too-long SMS
// summary never call the model.
func TestResultSMSSummaryNotAsked(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      *hermes.Message
		summary string
		edit    func(*hermes.ResultMessage)
		want    string // in the reply
	}{
		{"a short SMS", smsIn("SM1"), "Made the header blue.", nil, "Amelia: Done: Made the header blue. http://hermes.test/preview/"},
		{"email", emailIn("s1@mail.example.com", "Header", "Make the header blue"), longSummary, nil, longSummary},
		{"chat", &hermes.Message{Channel: hermes.ChannelChat, ChannelID: "Ev1", From: "U0456", To: "C0123", Text: "Make the header blue",
			Thread: hermes.ThreadHints{ChatThread: "1700000000.000100"}}, longSummary, nil, longSummary},
		{"api", &hermes.Message{Channel: hermes.ChannelAPI, ChannelID: "api1", ClientID: "amelia", ProjectID: "site", UserID: "scott", Text: "Make the header blue"},
			longSummary, nil, ""},
		{"an SMS error quotes the error", smsIn("SM2"), longSummary, func(m *hermes.ResultMessage) {
			m.Type, m.Success, m.Error = hermes.ResultError, false, "npm run build exited 1"
		}, "Sorry, that could not be applied: npm run build exited 1"},
		{"an SMS failure without an error", smsIn("SM3"), longSummary, func(m *hermes.ResultMessage) { m.Success = false },
			"Sorry, that could not be applied: Changed the header"},
		{"an SMS plan is quoted in the agent's words", smsIn("SM4"), longSummary, func(m *hermes.ResultMessage) {
			m.Type, m.FilesChanged, m.Commit, m.PreviewURL = hermes.ResultPlan, nil, "", ""
		}, "Plan ready, nothing changed yet: Changed the header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newResultsEnv(t)
			f := &fakeSummarizer{answer: answer("Header blue.")}
			e.results.Summarizer = f
			job := e.route(tc.in)
			m := resultFor(job, hermes.ResultDone)
			m.Summary = tc.summary
			if tc.edit != nil {
				tc.edit(&m)
			}
			e.send(m)
			e.poll()
			if calls := f.called(); len(calls) != 0 {
				t.Errorf("the model was asked: %+v", calls)
			}
			if tc.in.Channel == hermes.ChannelAPI {
				sess, err := e.db.GetSession(e.ctx, job.SessionID)
				if err != nil || sess.LastResult == nil || sess.LastResult.Summary != longSummary {
					t.Errorf("lastResult %+v, %v", sess.LastResult, err)
				}
				return
			}
			it := e.resultItem(m)
			if !strings.Contains(it.Text, tc.want) {
				t.Errorf("reply lacks %q:\n%s", tc.want, it.Text)
			}
			if tc.in.Channel == hermes.ChannelSMS && len(it.Text) > notify.SMSMaxSeptets {
				t.Errorf("SMS of %d characters", len(it.Text))
			}
		})
	}
}

// TestResultSMSSummaryFallback: without a usable summary the SMS quotes
// the agent's summary cut to the room, as without a summarizer, and a
// warning says why.
func TestResultSMSSummaryFallback(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(ctx context.Context, call int, text string, maxChars int) (string, error)
		warn   bool
	}{
		{"no summarizer", nil, false},
		{"unavailable", func(context.Context, int, string, int) (string, error) {
			return "", hermes.Errorf(hermes.Unavailable, "bedrock is down")
		}, true},
		{"too slow", func(ctx context.Context, _ int, _ string, _ int) (string, error) {
			<-ctx.Done() // the relay's timeout ends the call
			return "", hermes.E("fake", hermes.Unavailable, ctx.Err())
		}, true},
		{"too long", func(_ context.Context, _ int, _ string, maxChars int) (string, error) {
			return strings.Repeat("x", maxChars+1), nil
		}, true},
		{"too long once folded to GSM-7", func(_ context.Context, _ int, _ string, maxChars int) (string, error) {
			return strings.Repeat("x", maxChars-2) + "…", nil // "..." takes 3
		}, true},
		{"empty", answer("  "), true},
		{"no letters", answer("🎉"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newResultsEnv(t)
			w := &warnings{}
			e.results.Log = slog.New(w)
			e.results.SummaryTimeout = 50 * time.Millisecond
			var f *fakeSummarizer
			if tc.answer != nil {
				f = &fakeSummarizer{answer: tc.answer}
				e.results.Summarizer = f
			}
			job := e.route(smsIn("SM1"))
			m := resultFor(job, hermes.ResultDone)
			m.Summary = longSummary
			e.send(m)
			e.poll()
			if f != nil && len(f.called()) != 1 {
				t.Errorf("%d calls", len(f.called()))
			}
			it := e.resultItem(m)
			if want := notify.ResultSMS(e.smsResult(m)); it.Text != want {
				t.Errorf("SMS %q\nwant the cut summary %q", it.Text, want)
			}
			if !strings.Contains(it.Text, "Amelia: Done: Changed the header colour") || !strings.Contains(it.Text, "... "+m.PreviewURL) {
				t.Errorf("SMS %q", it.Text)
			}
			if got := w.has(noSummaryWarning); got != tc.warn {
				t.Errorf("warning logged: %v, want %v (%q)", got, tc.warn, w.msgs)
			}
			e.queueEmpty()
		})
	}
}

// TestResultSMSSummaryExactlyOnce: a result delivered again after a crash
// before its reply was queued may get a new summary, and the reply is
// still queued once; once it is queued, a redelivery asks nothing.
func TestResultSMSSummaryExactlyOnce(t *testing.T) {
	e := newResultsEnv(t)
	f := &fakeSummarizer{answer: func(_ context.Context, call int, _ string, _ int) (string, error) {
		return fmt.Sprintf("Header blue, logo left (summary %d).", call), nil
	}}
	e.results.Summarizer = f
	fs := &failingStore{Store: e.db}
	fs.failEnqueue.Store(1) // the crash: the summary is written, the reply is not
	e.results.Store = fs
	job := e.route(smsIn("SM1"))
	m := resultFor(job, hermes.ResultDone)
	m.Summary = longSummary
	body := mustJSON(t, m)
	if err := e.results.HandleResult(e.ctx, body); err == nil {
		t.Fatal("the failed enqueue was not reported")
	}
	if items := e.outbox(hermes.KindResult); len(items) != 0 {
		t.Fatalf("%d items after the crash", len(items))
	}
	for range 3 { // redeliveries
		if err := e.results.HandleResult(e.ctx, body); err != nil {
			t.Fatal(err)
		}
	}
	e.send(m) // and one through the queue
	e.poll()
	if calls := f.called(); len(calls) != 2 {
		t.Errorf("%d calls, want 2 (the crashed delivery, the one that queued the reply)", len(calls))
	}
	it := e.resultItem(m)
	if !strings.Contains(it.Text, "(summary 2).") {
		t.Errorf("SMS %q, want the second summary", it.Text)
	}
	if _, _, results := e.history(job.SessionID); len(results) != 1 || results[0].Meta["outboxId"] != it.ID {
		t.Errorf("history %+v", results)
	}
	e.queueEmpty()
}

// TestResultSMSSummaryBedrock: bedrock.Model as the relay's Summarizer,
// against a fake of Bedrock Runtime's Converse (REST-JSON, POST
// /model/{modelId}/converse), as in internal/bedrock's tests.
func TestResultSMSSummaryBedrock(t *testing.T) {
	var (
		mu   sync.Mutex
		reqs []string // system prompt + user text
	)
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/model/"+bedrock.DefaultModelID+"/converse" {
			t.Errorf("%s %s", r.Method, r.URL.Path)
		}
		var req struct {
			Messages []struct {
				Content []struct {
					Text string `json:"text"`
				} `json:"content"`
			} `json:"messages"`
			System []struct {
				Text string `json:"text"`
			} `json:"system"`
		}
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &req); err != nil || len(req.System) != 1 || len(req.Messages) != 1 || len(req.Messages[0].Content) != 1 {
			t.Errorf("request %s: %v", b, err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		reqs = append(reqs, req.System[0].Text+"\n"+req.Messages[0].Content[0].Text)
		st := status
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if st != http.StatusOK {
			w.Header().Set("X-Amzn-ErrorType", "ServiceUnavailableException:http://internal.amazon.com/coral/com.amazon.bedrock/")
			w.WriteHeader(st)
			_ = json.NewEncoder(w).Encode(map[string]string{"message": "the fake says no"})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"output": map[string]any{"message": map[string]any{
				"role": "assistant", "content": []map[string]string{{"text": " Header now blue;\n logo moved left. "}},
			}},
			"stopReason": "end_turn",
			"usage":      map[string]int{"inputTokens": 120, "outputTokens": 12, "totalTokens": 132},
			"metrics":    map[string]int{"latencyMs": 210},
		})
	}))
	t.Cleanup(srv.Close)

	e := newResultsEnv(t)
	e.results.Summarizer = bedrock.NewFromConfig(awsx.Emulator(srv.URL), nil, bedrock.Options{})
	job := e.route(smsIn("SM1"))
	m := resultFor(job, hermes.ResultDone)
	m.Summary = longSummary
	e.send(m)
	e.poll()
	n := e.smsResult(m)
	room, _ := notify.SMSSummaryRoom(n)
	mu.Lock()
	defer mu.Unlock()
	if len(reqs) != 1 || !strings.Contains(reqs[0], fmt.Sprintf("at most %d characters", room)) || !strings.Contains(reqs[0], "<report>\n"+longSummary+"\n</report>") {
		t.Fatalf("requests %q", reqs)
	}
	if it, want := e.resultItem(m), "Amelia: Done: Header now blue; logo moved left. "+m.PreviewURL+" "+strings.Trim(n.Token, "[]"); it.Text != want {
		t.Errorf("SMS %q\nwant %q", it.Text, want)
	}

	// Bedrock failing: the cut summary.
	status = http.StatusServiceUnavailable
	mu.Unlock()
	e = newResultsEnv(t)
	e.results.Summarizer = bedrock.NewFromConfig(awsx.Emulator(srv.URL), nil, bedrock.Options{})
	job = e.route(smsIn("SM1"))
	m = resultFor(job, hermes.ResultDone)
	m.Summary = longSummary
	e.send(m)
	e.poll()
	if it, want := e.resultItem(m), notify.ResultSMS(e.smsResult(m)); it.Text != want {
		t.Errorf("SMS %q\nwant the cut summary %q", it.Text, want)
	}
	mu.Lock()
	if len(reqs) < 2 {
		t.Errorf("bedrock was not asked: %d requests", len(reqs))
	}
}
