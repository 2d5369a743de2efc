package sesout_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
	"github.com/webordinary/hermes/internal/hermestest"
	"github.com/webordinary/hermes/internal/mail"
	"github.com/webordinary/hermes/internal/sesout"
)

// sesEndpoint returns the aws-ses-v2-local that CI starts
// (HERMES_TEST_SES_ENDPOINT), skipping loudly when there is none unless
// HERMES_TEST_REQUIRE_EMULATORS=1 makes that a failure.
func sesEndpoint(t *testing.T) string {
	t.Helper()
	return strings.TrimRight(hermestest.Emulator(t, "HERMES_TEST_SES_ENDPOINT", "SES emulator (aws-ses-v2-local)"), "/")
}

func compose(t *testing.T, thread, subject string) *hermes.OutboxItem {
	t.Helper()
	id := mail.NewMessageID(thread, "amelia.example.com")
	raw, err := mail.Compose(mail.Reply{
		From: "edit@amelia.example.com", FromName: "Amelia Stamps", To: []string{"scott@example.com"},
		Subject: subject, MessageID: id, InReplyTo: "original@mail.example.com",
		References: []string{"root@mail.example.com", "original@mail.example.com"}, ThreadID: thread,
		Text: "Done: the header is blue now.", HTML: "<p>Done: the header is blue now.</p>",
		Date: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC), Kind: "result",
	})
	if err != nil {
		t.Fatal(err)
	}
	return &hermes.OutboxItem{ID: hermes.NewToken(), Channel: hermes.ChannelEmail, From: "edit@amelia.example.com",
		To: "scott@example.com", Subject: subject, Raw: raw, Headers: map[string]string{"Message-ID": "<" + id + ">"}}
}

// recorder is a reverse proxy in front of the emulator that keeps the
// request bodies: aws-ses-v2-local parses a raw message and stores only
// its subject, addresses and bodies, so the bytes SES was given are read
// here.
type recorder struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (rec *recorder) server(t *testing.T, target string) *httptest.Server {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.bodies = append(rec.bodies, b)
		rec.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(b))
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestSendToEmulator sends a composed reply through aws-ses-v2-local: SES
// gets the raw message byte for byte (threading headers intact) with the
// item's envelope, and the emulator stores it as sent.
func TestSendToEmulator(t *testing.T) {
	endpoint := sesEndpoint(t)
	ctx := context.Background()
	rec := &recorder{}
	proxy := rec.server(t, endpoint)
	s := sesout.New(awsx.Emulator(proxy.URL), awsx.NewBreaker("ses", awsx.BreakerOptions{}))
	thread := hermes.NewToken()
	subject := "Re: Make the header blue [ref:" + thread[:8] + "] " + thread
	it := compose(t, thread, subject)
	if err := s.Send(ctx, it); err != nil {
		t.Fatal(err)
	}

	// What SES was asked to send.
	rec.mu.Lock()
	if len(rec.bodies) != 1 {
		t.Fatalf("%d requests, want 1", len(rec.bodies))
	}
	var req struct {
		FromEmailAddress string
		Destination      struct{ ToAddresses []string }
		Content          struct{ Raw struct{ Data string } }
	}
	if err := json.Unmarshal(rec.bodies[0], &req); err != nil {
		t.Fatal(err)
	}
	rec.mu.Unlock()
	raw, err := base64.StdEncoding.DecodeString(req.Content.Raw.Data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, it.Raw) {
		t.Fatalf("the raw message changed on the way:\n%s\nwant\n%s", raw, it.Raw)
	}
	if req.FromEmailAddress != it.From || len(req.Destination.ToAddresses) != 1 || req.Destination.ToAddresses[0] != it.To {
		t.Errorf("envelope %q → %v", req.FromEmailAddress, req.Destination.ToAddresses)
	}
	p, err := mail.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if "<"+p.MessageID+">" != it.Headers["Message-ID"] || strings.Join(p.InReplyTo, " ") != "original@mail.example.com" ||
		strings.Join(p.References, " ") != "root@mail.example.com original@mail.example.com" {
		t.Errorf("threading headers: Message-ID %q, In-Reply-To %q, References %q", p.MessageID, p.InReplyTo, p.References)
	}
	for _, h := range []string{"\r\nIn-Reply-To: <original@mail.example.com>\r\n", "\r\nReferences: <root@mail.example.com> <original@mail.example.com>\r\n"} {
		if !bytes.Contains(raw, []byte(h)) {
			t.Errorf("raw message lacks %q", h)
		}
	}

	// What the emulator stored as sent.
	var store struct {
		Emails []struct {
			From        string
			Subject     string
			Destination struct{ To []string }
			Body        struct{ Text string }
		}
	}
	resp, err := http.Get(endpoint + "/store")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&store); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range store.Emails {
		if e.Subject == subject {
			found = true
			if !strings.Contains(e.From, "edit@amelia.example.com") || !strings.Contains(strings.Join(e.Destination.To, ","), "scott@example.com") ||
				!strings.Contains(e.Body.Text, "the header is blue") {
				t.Errorf("stored mail: %+v", e)
			}
		}
	}
	if !found {
		t.Fatalf("the emulator has no mail with subject %q", subject)
	}
}

// fake answers SendEmail as SES does: an x-amzn-ErrorType header and a
// JSON body for errors.
func fake(t *testing.T, status int, code string, calls *int) *httptest.Server {
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		*calls++
		mu.Unlock()
		if r.Method != http.MethodPost || r.URL.Path != "/v2/email/outbound-emails" {
			t.Errorf("%s %s", r.Method, r.URL.Path)
		}
		w.Header().Set("Content-Type", "application/json")
		if status == http.StatusOK {
			_, _ = io.WriteString(w, `{"MessageId":"0100018f-test"}`)
			return
		}
		w.Header().Set("X-Amzn-ErrorType", code)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"message":"refused by the fake"}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		code   string
		want   hermes.Kind
	}{
		{"message rejected is permanent", 400, "MessageRejected", hermes.Invalid},
		{"bad request is permanent", 400, "BadRequestException", hermes.Invalid},
		{"unverified MAIL FROM domain is permanent", 400, "MailFromDomainNotVerifiedException", hermes.Invalid},
		{"throttling is retried", 429, "TooManyRequestsException", hermes.Unavailable},
		{"a server error is retried", 500, "InternalFailure", hermes.Unavailable},
		{"a paused account is retried", 400, "SendingPausedException", hermes.Unavailable},
		{"bad credentials are retried", 403, "UnrecognizedClientException", hermes.Unavailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			calls := 0
			srv := fake(t, c.status, c.code, &calls)
			s := sesout.New(awsx.Emulator(srv.URL), nil)
			err := s.Send(context.Background(), compose(t, hermes.NewToken(), "Re: x"))
			if err == nil || hermes.ErrorKind(err) != c.want {
				t.Fatalf("%v (kind %v), want kind %v", err, hermes.ErrorKind(err), c.want)
			}
			if awsx.Code(err) != c.code {
				t.Errorf("code %q", awsx.Code(err))
			}
		})
	}
	t.Run("an item without a composed message is invalid", func(t *testing.T) {
		s := sesout.New(awsx.Emulator("http://127.0.0.1:1"), nil)
		err := s.Send(context.Background(), &hermes.OutboxItem{ID: "x", To: "a@example.com", From: "b@example.com"})
		if !hermes.IsKind(err, hermes.Invalid) {
			t.Fatal(err)
		}
	})
}

// TestBreakerOpens: after repeated server errors the breaker answers
// Unavailable without calling SES; refusals do not open it.
func TestBreakerOpens(t *testing.T) {
	calls := 0
	srv := fake(t, 400, "MessageRejected", &calls)
	var states []string
	b := awsx.NewBreaker("ses", awsx.BreakerOptions{Failures: 2, Cooldown: time.Hour, OnState: func(_, s string) { states = append(states, s) }})
	s := sesout.New(awsx.Emulator(srv.URL), b)
	for range 4 {
		if err := s.Send(context.Background(), compose(t, hermes.NewToken(), "Re: x")); !hermes.IsKind(err, hermes.Invalid) {
			t.Fatal(err)
		}
	}
	if b.State() != "closed" || calls != 4 {
		t.Fatalf("refusals: breaker %s after %d calls", b.State(), calls)
	}
	calls = 0
	down := fake(t, 503, "ServiceUnavailable", &calls)
	s = sesout.New(awsx.Emulator(down.URL), b)
	for range 3 {
		if err := s.Send(context.Background(), compose(t, hermes.NewToken(), "Re: x")); !hermes.IsKind(err, hermes.Unavailable) {
			t.Fatal(err)
		}
	}
	if b.State() != "open" || calls != 2*3 { // two failed sends of three tries each; the third send never reached SES
		t.Fatalf("breaker %s after %d calls, states %v", b.State(), calls, states)
	}
}
