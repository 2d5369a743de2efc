package smtpd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	netsmtp "net/smtp"
	"net/textproto"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webordinary/hermes"
)

const (
	known   = "edit@amelia.example.com"
	known2  = "site@amelia.example.com"
	unknown = "nobody@amelia.example.com"
)

var testNow = time.Date(2026, 3, 1, 12, 30, 45, 0, time.UTC)

type delivery struct {
	env Envelope
	raw []byte
}

// fakeHandler accepts the known addresses and records every call.
type fakeHandler struct {
	rcptErr   error
	rcptPanic bool
	deliver   func(ctx context.Context, env Envelope, raw []byte) error // nil: accept

	mu    sync.Mutex
	rcpts []string
	got   chan delivery
}

func newHandler() *fakeHandler { return &fakeHandler{got: make(chan delivery, 16)} }

func (h *fakeHandler) AcceptRecipient(_ context.Context, addr string) (bool, error) {
	h.mu.Lock()
	h.rcpts = append(h.rcpts, addr)
	h.mu.Unlock()
	if h.rcptPanic {
		panic("recipient lookup exploded")
	}
	if h.rcptErr != nil {
		return false, h.rcptErr
	}
	return addr == known || addr == known2, nil
}

func (h *fakeHandler) Deliver(ctx context.Context, env Envelope, raw []byte) error {
	if h.deliver != nil {
		if err := h.deliver(ctx, env, raw); err != nil {
			return err
		}
	}
	h.got <- delivery{env, raw}
	return nil
}

func (h *fakeHandler) recipients() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.rcpts...)
}

// none fails if anything was delivered. Deliver runs before the reply to the
// final ".", so once the client has its reply the call has happened.
func (h *fakeHandler) none(t *testing.T) {
	t.Helper()
	select {
	case d := <-h.got:
		t.Fatalf("unexpected delivery: %+v %q", d.env, d.raw)
	default:
	}
}

func (h *fakeHandler) one(t *testing.T) delivery {
	t.Helper()
	select {
	case d := <-h.got:
		return d
	default:
		t.Fatal("nothing delivered")
		return delivery{}
	}
}

// start runs a server on 127.0.0.1:0 until the test ends.
func start(t *testing.T, h Handler, mod func(*Config)) (*Server, string) {
	t.Helper()
	cfg := Config{
		Addr:   "127.0.0.1:0",
		Domain: "mx.test",
		Log:    slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
		Clock:  func() time.Time { return testNow },
	}
	if mod != nil {
		mod(&cfg)
	}
	s := New(cfg, h)
	addr, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, addr.String()
}

// dial opens a net/smtp client that has said EHLO; it also returns the
// client's own address.
func dial(t *testing.T, addr string) (*netsmtp.Client, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	c, err := netsmtp.NewClient(conn, "mx.test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	return c, conn.LocalAddr().String()
}

// send runs one transaction; the error is that of the first failing step.
func send(c *netsmtp.Client, from string, to []string, body string) error {
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("MAIL: %w", err)
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return fmt.Errorf("RCPT: %w", err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write([]byte(body)); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return w.Close()
}

func wantCode(t *testing.T, err error, code int, enhanced string) {
	t.Helper()
	var te *textproto.Error
	if !errors.As(err, &te) {
		t.Fatalf("got %v, want SMTP reply %d", err, code)
	}
	if te.Code != code || !strings.HasPrefix(te.Msg, enhanced) {
		t.Fatalf("got reply %d %q, want %d %s", te.Code, te.Msg, code, enhanced)
	}
}

// splitReceived splits raw after the first (folded) header field.
func splitReceived(t *testing.T, raw []byte) (string, []byte) {
	t.Helper()
	for i := 0; i+2 < len(raw); i++ {
		if raw[i] == '\r' && raw[i+1] == '\n' && raw[i+2] != ' ' && raw[i+2] != '\t' {
			return string(raw[:i+2]), raw[i+2:]
		}
	}
	t.Fatalf("no header end in %q", raw)
	return "", nil
}

var receivedRE = regexp.MustCompile(`^Received: from client\.example \(\[127\.0\.0\.1\]\)\r\n` +
	`\tby mx\.test id [a-z2-7]{26};\r\n` +
	`\t` + regexp.QuoteMeta(testNow.Format(time.RFC1123Z)) + `\r\n$`)

const body = "From: Scott <scott@example.com>\r\n" +
	"To: edit@amelia.example.com\r\n" +
	"Subject: Change the banner\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"Please make the banner blue — thanks.\r\n" +
	"  indented line\t with tab \r\n" +
	"\r\n" +
	"Scott\r\n"

func TestDeliverExactBytesAndEnvelope(t *testing.T) {
	h := newHandler()
	s, addr := start(t, h, nil)
	c, local := dial(t, addr)

	if err := send(c, "Scott@Example.com", []string{"Edit@Amelia.Example.COM"}, body); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}

	d := h.one(t)
	hdr, rest := splitReceived(t, d.raw)
	if !receivedRE.MatchString(hdr) {
		t.Errorf("Received header = %q", hdr)
	}
	if string(rest) != body {
		t.Errorf("message = %q, want %q", rest, body)
	}
	want := Envelope{From: "Scott@Example.com", To: []string{known}, RemoteAddr: local,
		ReceivedAt: testNow, HELO: "client.example"}
	if fmt.Sprint(d.env) != fmt.Sprint(want) {
		t.Errorf("envelope = %+v, want %+v", d.env, want)
	}
	if got := h.recipients(); len(got) != 1 || got[0] != known {
		t.Errorf("AcceptRecipient got %q, want [%s]", got, known)
	}
	if st := s.Stats(); st.Delivered != 1 || st.Connections != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestUnknownRecipientRefused(t *testing.T) {
	h := newHandler()
	s, addr := start(t, h, nil)
	c, _ := dial(t, addr)

	if err := c.Mail("scott@example.com"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.Rcpt(unknown), 550, "5.1.1")
	if _, err := c.Data(); err == nil {
		t.Fatal("DATA without an accepted recipient succeeded")
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	h.none(t)
	if st := s.Stats(); st.RejectedRecipients != 1 || st.Delivered != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestKnownAndUnknownRecipients(t *testing.T) {
	h := newHandler()
	_, addr := start(t, h, nil)
	c, _ := dial(t, addr)

	if err := c.Mail("scott@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(known); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.Rcpt(unknown), 550, "5.1.1")
	if err := c.Rcpt(strings.ToUpper(known)); err != nil { // a duplicate
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	d := h.one(t)
	if len(d.env.To) != 1 || d.env.To[0] != known {
		t.Errorf("To = %q, want [%s]", d.env.To, known)
	}
	h.none(t)
}

func TestMaxRecipients(t *testing.T) {
	h := newHandler()
	_, addr := start(t, h, func(c *Config) { c.MaxRecipients = 1 })
	c, _ := dial(t, addr)
	if err := c.Mail("scott@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(known); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.Rcpt(known2), 452, "4.5.3")
}

func TestSizeLimit(t *testing.T) {
	const limit = 1024
	h := newHandler()
	s, addr := start(t, h, func(c *Config) { c.MaxMessageBytes = limit })
	c, _ := dial(t, addr)

	line := strings.Repeat("x", 98) + "\r\n" // 100 bytes
	over := strings.Repeat(line, 30)         // 3000 bytes
	wantCode(t, send(c, "scott@example.com", []string{known}, over), 552, "5.3.4")
	h.none(t)

	exact := strings.Repeat(line, 10) + strings.Repeat("y", limit-1000-2) + "\r\n"
	wantCode(t, send(c, "scott@example.com", []string{known}, exact+"z"), 552, "5.3.4")
	h.none(t)

	// The session is still usable, and a message of exactly the limit passes.
	if err := send(c, "scott@example.com", []string{known}, exact); err != nil {
		t.Fatal(err)
	}
	_, rest := splitReceived(t, h.one(t).raw)
	if string(rest) != exact {
		t.Errorf("message of %d bytes delivered as %d", len(exact), len(rest))
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}

	// An announced SIZE over the limit is refused at MAIL.
	r := rawDial(t, addr)
	r.cmd("EHLO client.example")
	r.expect(250)
	r.cmd(fmt.Sprintf("MAIL FROM:<scott@example.com> SIZE=%d", limit+1))
	r.expect(552)
	r.cmd(fmt.Sprintf("MAIL FROM:<scott@example.com> SIZE=%d", limit))
	r.expect(250)

	if st := s.Stats(); st.TooLarge != 3 || st.Delivered != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestDeliverErrors(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		code     int
		enhanced string
		text     string
	}{
		{"unavailable", hermes.E("store.Put", hermes.Unavailable, errors.New("database is locked")), 451, "4.3.0", ""},
		{"context", fmt.Errorf("put: %w", context.DeadlineExceeded), 451, "4.3.0", ""},
		{"internal", errors.New("secret internal detail"), 554, "5.6.0", "an internal error occurred"},
		{"invalid", hermes.Errorf(hermes.Invalid, "malformed MIME"), 554, "5.6.0", "malformed MIME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHandler()
			h.deliver = func(context.Context, Envelope, []byte) error { return tt.err }
			s, addr := start(t, h, nil)
			c, _ := dial(t, addr)
			err := send(c, "scott@example.com", []string{known}, body)
			wantCode(t, err, tt.code, tt.enhanced)
			if msg := err.Error(); !strings.Contains(msg, tt.text) || strings.Contains(msg, "secret") {
				t.Errorf("reply %q", msg)
			}
			h.none(t)
			st := s.Stats()
			if tt.code == 451 && st.TempFailed != 1 || tt.code == 554 && st.PermFailed != 1 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestRecipientHandlerFailure(t *testing.T) {
	for _, panics := range []bool{false, true} {
		t.Run(fmt.Sprint("panic=", panics), func(t *testing.T) {
			h := newHandler()
			h.rcptErr = hermes.E("directory.Lookup", hermes.Unavailable, errors.New("down"))
			h.rcptPanic = panics
			s, addr := start(t, h, nil)
			c, _ := dial(t, addr)
			if err := c.Mail("scott@example.com"); err != nil {
				t.Fatal(err)
			}
			wantCode(t, c.Rcpt(known), 451, "4.3.0")
			if err := c.Quit(); err != nil {
				t.Fatal(err)
			}
			h.none(t)
			if st := s.Stats(); st.RecipientErrors != 1 || panics && st.Panics != 1 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestDeliverPanicKeepsServing(t *testing.T) {
	h := newHandler()
	var once sync.Once
	h.deliver = func(context.Context, Envelope, []byte) error {
		once.Do(func() { panic("deliver exploded") })
		return nil
	}
	s, addr := start(t, h, nil)

	c, _ := dial(t, addr)
	wantCode(t, send(c, "scott@example.com", []string{known}, body), 451, "4.3.0")
	h.none(t)

	c2, _ := dial(t, addr)
	if err := send(c2, "scott@example.com", []string{known}, body); err != nil {
		t.Fatal(err)
	}
	h.one(t)
	if st := s.Stats(); st.Panics != 1 || st.TempFailed != 1 || st.Delivered != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestNullSender(t *testing.T) {
	h := newHandler()
	_, addr := start(t, h, nil)
	c, _ := dial(t, addr)
	if err := send(c, "", []string{known}, body); err != nil {
		t.Fatal(err)
	}
	if d := h.one(t); d.env.From != "" || len(d.env.To) != 1 {
		t.Errorf("envelope = %+v", d.env)
	}
}

func TestDotStuffingRoundTrips(t *testing.T) {
	h := newHandler()
	_, addr := start(t, h, nil)
	c, _ := dial(t, addr)
	msg := "Subject: dots\r\n\r\n.\r\n..\r\n.hidden\r\n...three\r\nend.\r\n. \r\n.\r\n"
	if err := send(c, "scott@example.com", []string{known}, msg); err != nil {
		t.Fatal(err)
	}
	if _, rest := splitReceived(t, h.one(t).raw); string(rest) != msg {
		t.Errorf("message = %q, want %q", rest, msg)
	}
}

func TestSeveralMessagesOneSession(t *testing.T) {
	h := newHandler()
	_, addr := start(t, h, nil)
	c, _ := dial(t, addr)
	for i := range 3 {
		msg := fmt.Sprintf("Subject: %d\r\n\r\nmessage %d\r\n", i, i)
		if err := send(c, fmt.Sprintf("s%d@example.com", i), []string{known}, msg); err != nil {
			t.Fatal(err)
		}
		d := h.one(t)
		if _, rest := splitReceived(t, d.raw); string(rest) != msg || d.env.From != fmt.Sprintf("s%d@example.com", i) {
			t.Errorf("message %d: %+v %q", i, d.env, rest)
		}
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
}

func TestPipelining(t *testing.T) {
	h := newHandler()
	_, addr := start(t, h, nil)
	r := rawDial(t, addr)
	r.cmd("EHLO client.example")
	if msg := r.expect(250); !strings.Contains(msg, "PIPELINING") {
		t.Fatalf("EHLO reply lacks PIPELINING: %q", msg)
	}
	if strings.Contains(r.lastMsg, "AUTH") {
		t.Errorf("EHLO offers AUTH: %q", r.lastMsg)
	}

	r.write("MAIL FROM:<a@example.com>\r\nRCPT TO:<" + known + ">\r\nRCPT TO:<" + unknown + ">\r\nDATA\r\n")
	r.expect(250)
	r.expect(250)
	r.expect(550)
	r.expect(354)
	msg1 := "Subject: one\r\n\r\n..first\r\n"
	msg2 := "Subject: two\r\n\r\nsecond\r\n"
	r.write(stuff(msg1) + ".\r\nMAIL FROM:<>\r\nRCPT TO:<" + known2 + ">\r\nDATA\r\n")
	r.expect(250)
	r.expect(250)
	r.expect(250)
	r.expect(354)
	r.write(stuff(msg2) + ".\r\nQUIT\r\n")
	r.expect(250)
	r.expect(221)

	d1, d2 := h.one(t), h.one(t)
	if _, rest := splitReceived(t, d1.raw); string(rest) != msg1 || d1.env.From != "a@example.com" || fmt.Sprint(d1.env.To) != "["+known+"]" {
		t.Errorf("first: %+v %q", d1.env, rest)
	}
	if _, rest := splitReceived(t, d2.raw); string(rest) != msg2 || d2.env.From != "" || fmt.Sprint(d2.env.To) != "["+known2+"]" {
		t.Errorf("second: %+v %q", d2.env, rest)
	}
}

func TestChunking(t *testing.T) {
	h := newHandler()
	_, addr := start(t, h, nil)
	r := rawDial(t, addr)
	r.cmd("EHLO client.example")
	r.expect(250)
	p1, p2 := "Subject: bdat\r\n\r\n.not stuffed\r\n", "second chunk\r\n"
	r.write("MAIL FROM:<a@example.com>\r\nRCPT TO:<" + known + ">\r\n")
	r.expect(250)
	r.expect(250)
	r.write(fmt.Sprintf("BDAT %d\r\n%s", len(p1), p1))
	r.expect(250)
	r.write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(p2), p2))
	r.expect(250)
	if _, rest := splitReceived(t, h.one(t).raw); string(rest) != p1+p2 {
		t.Errorf("message = %q", rest)
	}
}

func TestOverlongLineRefused(t *testing.T) {
	h := newHandler()
	s, addr := start(t, h, nil)
	c, _ := dial(t, addr)
	msg := "Subject: long\r\n\r\n" + strings.Repeat("x", 3000) + "\r\n"
	wantCode(t, send(c, "scott@example.com", []string{known}, msg), 554, "5.6.0")
	h.none(t)
	if st := s.Stats(); st.PermFailed != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestDataTimeoutClosesConnection(t *testing.T) {
	h := newHandler()
	s, addr := start(t, h, func(c *Config) { c.DataTimeout = 200 * time.Millisecond })
	r := rawDial(t, addr)
	r.cmd("EHLO client.example")
	r.expect(250)
	r.write("MAIL FROM:<a@example.com>\r\nRCPT TO:<" + known + ">\r\nDATA\r\n")
	r.expect(250)
	r.expect(250)
	r.expect(354)
	r.write("Subject: never finished\r\n\r\nMAIL FROM:<x@example.com>\r\n")
	// The server gives up and closes without reading the rest as commands.
	if code, msg, err := r.tp.ReadResponse(0); err == nil {
		t.Fatalf("got reply %d %q, want the connection closed", code, msg)
	}
	h.none(t)
	if st := s.Stats(); st.Aborted != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestShutdownIdle(t *testing.T) {
	h := newHandler()
	// A long ReadTimeout: Shutdown must not wait for idle connections to
	// time out.
	s, addr := start(t, h, func(c *Config) { c.ReadTimeout = time.Hour })
	r := rawDial(t, addr)
	r.cmd("EHLO client.example")
	r.expect(250)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	r.expect(421) // the idle client is told, then disconnected
	if c, err := net.Dial("tcp", addr); err == nil {
		_ = c.Close()
		t.Error("dial after Shutdown succeeded")
	}
}

func TestShutdownNoConnections(t *testing.T) {
	s := New(Config{Addr: "127.0.0.1:0"}, newHandler())
	if err := s.Serve(); err == nil {
		t.Error("Serve before Listen succeeded")
	}
	if _, err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Listen(); err == nil {
		t.Error("second Listen succeeded")
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

func TestShutdownWaitsForDelivery(t *testing.T) {
	h := newHandler()
	started, release := make(chan struct{}), make(chan struct{})
	h.deliver = func(context.Context, Envelope, []byte) error {
		close(started)
		<-release
		return nil
	}
	s, addr := start(t, h, nil)
	c, _ := dial(t, addr)
	sent := make(chan error, 1)
	go func() { sent <- send(c, "scott@example.com", []string{known}, body) }()
	<-started

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	<-s.quit // draining has begun
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a delivery in flight", err)
	default:
	}
	close(release)
	if err := <-sent; err != nil {
		t.Fatalf("in-flight message: %v", err)
	}
	h.one(t)
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestShutdownBoundedByContext(t *testing.T) {
	h := newHandler()
	started, cancelled := make(chan struct{}), make(chan struct{})
	h.deliver = func(ctx context.Context, _ Envelope, _ []byte) error {
		close(started)
		<-ctx.Done()
		close(cancelled)
		return ctx.Err()
	}
	s, addr := start(t, h, nil)
	c, _ := dial(t, addr)
	sent := make(chan error, 1)
	go func() { sent <- send(c, "scott@example.com", []string{known}, body) }()
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
	}
	<-cancelled // the handler's context was cancelled
	if err := <-sent; err == nil {
		t.Fatal("message accepted after a forced shutdown")
	}
	h.none(t)
}

func TestReceivedHeaderFormatting(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	got := receivedHeader("bad (helo)\x7f", "[2001:db8::1%eth0]:4567", "mx.test", "abc", at)
	want := "Received: from bad__helo__ ([IPv6:2001:db8::1])\r\n\tby mx.test id abc;\r\n\tFri, 02 Jan 2026 03:04:05 +0000\r\n"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if got := addressLiteral("[::ffff:192.0.2.1]:25"); got != "[192.0.2.1]" {
		t.Errorf("mapped IPv4: %q", got)
	}
	if got := receivedHeader("", "x", "mx.test", "abc", at); !strings.HasPrefix(got, "Received: from unknown ([x])") {
		t.Errorf("empty HELO: %q", got)
	}
}

// rawClient speaks SMTP by hand, for pipelining and SIZE.
type rawClient struct {
	t       *testing.T
	conn    net.Conn
	tp      *textproto.Conn
	lastMsg string
}

func rawDial(t *testing.T, addr string) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { _ = conn.Close() })
	r := &rawClient{t: t, conn: conn, tp: textproto.NewConn(conn)}
	r.expect(220)
	return r
}

func (r *rawClient) cmd(line string) { r.write(line + "\r\n") }

func (r *rawClient) write(s string) {
	r.t.Helper()
	if _, err := r.conn.Write([]byte(s)); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawClient) expect(code int) string {
	r.t.Helper()
	got, msg, err := r.tp.ReadResponse(0)
	if err != nil {
		r.t.Fatalf("want %d: %v", code, err)
	}
	if got != code {
		r.t.Fatalf("got %d %q, want %d", got, msg, code)
	}
	r.lastMsg = msg
	return msg
}

// stuff dot-stuffs a CRLF message for sending.
func stuff(msg string) string {
	var b bytes.Buffer
	for line := range strings.SplitAfterSeq(msg, "\r\n") {
		if strings.HasPrefix(line, ".") {
			b.WriteByte('.')
		}
		b.WriteString(line)
	}
	return b.String()
}
