// Package smtpd is Hermes's embedded inbound mail server (SPEC §3, "SMTP
// server"): an MX-style receiver, without AUTH, that accepts mail only for
// the addresses its Handler accepts and hands each message, envelope and raw
// bytes, to the Handler once it has been read in full.
//
// The protocol is github.com/emersion/go-smtp; this package adds the policy:
// recipient checks at RCPT time (so unknown addresses are refused during the
// transaction and never bounced later), size and time limits on DATA, a
// Received trace header, error mapping to SMTP replies, recovery from handler
// panics, counters and logs of every rejection, and a graceful shutdown that
// lets messages being received finish while idle connections are closed at
// once.
package smtpd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/logctx"
)

// Handler receives each accepted message.
type Handler interface {
	// AcceptRecipient reports whether mail for addr (lowercased bare
	// address) is accepted; called at RCPT TO. Unknown recipients are
	// refused with 550 5.1.1 (no backscatter later); an error gives 451
	// 4.3.0.
	AcceptRecipient(ctx context.Context, addr string) (bool, error)
	// Deliver is called once per message after DATA with the envelope and
	// the raw bytes (a Received header, then the message exactly as sent,
	// dot-stuffing removed); an error with hermes.ErrorKind Unavailable (or
	// a context error) → 451 4.3.0 (temporary, the sender retries), other
	// errors → 554 5.6.0; nil → 250. Deliver must be durable before
	// returning nil (the sender then forgets the message). raw is not used
	// by the server after Deliver returns; Deliver may keep it.
	Deliver(ctx context.Context, env Envelope, raw []byte) error
}

// Envelope is the SMTP envelope of one message.
type Envelope struct {
	From       string    // MAIL FROM bare address as sent; "" for a bounce (MAIL FROM:<>)
	To         []string  // accepted recipients, lowercased, without duplicates, in RCPT order
	RemoteAddr string    // the client's ip:port
	ReceivedAt time.Time // when DATA started (UTC, milliseconds); also the Received header's date
	HELO       string    // the client's HELO/EHLO argument, as sent
}

// Config configures a Server. Zero values take the defaults shown.
type Config struct {
	Addr            string        // listen address, e.g. 127.0.0.1:2525 (":0" in tests); default 127.0.0.1:2525
	Domain          string        // the server's name in the greeting and Received header; default the host name
	MaxMessageBytes int64         // default 10 MiB; over → 552 5.3.4
	MaxRecipients   int           // default 50; over → 452 4.5.3
	ReadTimeout     time.Duration // default 60 s: waiting for a command, and idle time between reads during DATA
	WriteTimeout    time.Duration // default 60 s
	DataTimeout     time.Duration // default 10 min: the whole DATA phase of one message
	Log             *slog.Logger  // default slog.Default()
	Clock           hermes.Clock  // default time.Now
}

// Defaults.
const (
	DefaultAddr            = "127.0.0.1:2525"
	DefaultMaxMessageBytes = 10 << 20
	DefaultMaxRecipients   = 50
	DefaultTimeout         = 60 * time.Second
	DefaultDataTimeout     = 10 * time.Minute
)

// dataChunk caps each read of DATA so that ReadTimeout is an idle timeout
// (no progress for that long) rather than a deadline for a large read.
const dataChunk = 32 << 10

// Stats are the server's counters since New.
type Stats struct {
	Connections        uint64 // TCP connections accepted
	Delivered          uint64 // messages Deliver accepted (250)
	RejectedRecipients uint64 // RCPT refused with 550 (unknown address)
	RecipientErrors    uint64 // RCPT answered 451 (handler error or panic)
	TooLarge           uint64 // messages refused with 552 for their size (go-smtp itself refuses a MAIL SIZE= over MaxMessageBytes+1, uncounted)
	TempFailed         uint64 // messages answered 451 (Unavailable, context error or panic)
	PermFailed         uint64 // messages answered 554 (other Deliver errors, over-long lines)
	Aborted            uint64 // DATA cut short: timeout, disconnect or read error
	Panics             uint64 // handler panics recovered
}

type counters struct {
	connections, delivered, rejectedRcpt, rcptErrors, tooLarge,
	tempFailed, permFailed, aborted, panics atomic.Uint64
}

// Server is the inbound SMTP server. Call Listen, then Serve (usually in a
// goroutine), and Shutdown to stop.
type Server struct {
	cfg   Config
	h     Handler
	log   *slog.Logger
	clock hermes.Clock
	srv   *smtp.Server
	stats counters

	// ctx is the parent of every handler call; cancelled when a Shutdown's
	// context ends before the sessions do.
	ctx    context.Context
	cancel context.CancelFunc

	quit chan struct{} // closed when Shutdown starts

	mu       sync.Mutex
	draining bool
	ln       net.Listener
	conns    map[*trackedConn]struct{}
	active   int           // open connections plus running handler calls
	idle     chan struct{} // closed when draining and active reaches 0
	idleDone bool
}

// New returns a server that passes messages to h. It does not listen yet.
func New(cfg Config, h Handler) *Server {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Domain == "" {
		cfg.Domain, _ = os.Hostname()
	}
	cfg.Domain = sanitizeDomain(cfg.Domain, "localhost")
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.MaxRecipients <= 0 {
		cfg.MaxRecipients = DefaultMaxRecipients
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultTimeout
	}
	if cfg.DataTimeout <= 0 {
		cfg.DataTimeout = DefaultDataTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Server{
		cfg:   cfg,
		h:     h,
		log:   cfg.Log,
		clock: cfg.Clock,
		quit:  make(chan struct{}),
		conns: make(map[*trackedConn]struct{}),
		idle:  make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	srv := smtp.NewServer(backend{s})
	srv.Domain = cfg.Domain
	// One more than the limit: go-smtp refuses a message of exactly its
	// limit (it runs out of budget before reading the final "."), so it
	// gets one spare byte and Data enforces the exact limit itself.
	srv.MaxMessageBytes = cfg.MaxMessageBytes + 1
	srv.MaxRecipients = cfg.MaxRecipients
	srv.ReadTimeout = cfg.ReadTimeout
	srv.WriteTimeout = cfg.WriteTimeout
	srv.AllowInsecureAuth = false // no AUTH: the session offers no mechanisms
	srv.ErrorLog = errorLog{cfg.Log}
	s.srv = srv
	return s
}

// Listen binds the configured address and returns the bound address.
func (s *Server) Listen() (net.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil, errors.New("smtpd: already listening")
	}
	if s.draining {
		return nil, errors.New("smtpd: server shut down")
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("smtpd: listen %s: %w", s.cfg.Addr, err)
	}
	s.ln = &trackedListener{Listener: ln, s: s}
	return ln.Addr(), nil
}

// Serve accepts connections until Shutdown; it returns nil after Shutdown
// and the accept error otherwise.
func (s *Server) Serve() error {
	s.mu.Lock()
	ln, draining := s.ln, s.draining
	s.mu.Unlock()
	if ln == nil {
		return errors.New("smtpd: Serve called before Listen")
	}
	if draining {
		return nil
	}
	s.log.Info("smtp server listening", "addr", ln.Addr().String(), "domain", s.cfg.Domain)
	err := s.srv.Serve(ln)
	if s.isDraining() {
		return nil
	}
	return err
}

// Shutdown stops accepting connections, closes idle connections (with 421),
// refuses new transactions, and waits for messages being received or
// delivered to finish. If ctx ends first it closes every connection, cancels
// the handlers' context and returns ctx.Err(); handler calls may then still
// be returning. Shutdown may be called more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.draining {
		s.draining = true
		close(s.quit)
		if s.ln != nil {
			_ = s.ln.Close()
		}
		for c := range s.conns {
			c.kickIfIdle()
		}
		s.checkIdleLocked()
	}
	idle := s.idle
	s.mu.Unlock()

	select {
	case <-idle:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		_ = s.srv.Close()
		s.mu.Lock()
		for c := range s.conns {
			_ = c.Conn.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		Connections:        c.connections.Load(),
		Delivered:          c.delivered.Load(),
		RejectedRecipients: c.rejectedRcpt.Load(),
		RecipientErrors:    c.rcptErrors.Load(),
		TooLarge:           c.tooLarge.Load(),
		TempFailed:         c.tempFailed.Load(),
		PermFailed:         c.permFailed.Load(),
		Aborted:            c.aborted.Load(),
		Panics:             c.panics.Load(),
	}
}

func (s *Server) isDraining() bool {
	select {
	case <-s.quit:
		return true
	default:
		return false
	}
}

// acquire and release count open connections and running handler calls, so
// that Shutdown knows when nothing is left.
func (s *Server) acquire() {
	s.mu.Lock()
	s.active++
	s.mu.Unlock()
}

func (s *Server) release() {
	s.mu.Lock()
	s.active--
	s.checkIdleLocked()
	s.mu.Unlock()
}

func (s *Server) checkIdleLocked() {
	if s.draining && s.active == 0 && !s.idleDone {
		s.idleDone = true
		close(s.idle)
	}
}

func (s *Server) track(c net.Conn) *trackedConn {
	tc := &trackedConn{Conn: c, s: s}
	s.stats.connections.Add(1)
	s.mu.Lock()
	s.conns[tc] = struct{}{}
	s.active++
	if s.draining {
		tc.kickIfIdle()
	}
	s.mu.Unlock()
	return tc
}

func (s *Server) untrack(c *trackedConn) {
	s.mu.Lock()
	if _, ok := s.conns[c]; ok {
		delete(s.conns, c)
		s.active--
		s.checkIdleLocked()
	}
	s.mu.Unlock()
}

// SMTP replies.
var (
	errUnknownRecipient = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such recipient here"}
	errTempFailure      = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure, please try again later"}
	errTooLarge         = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message size exceeds the limit"}
	errShuttingDown     = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Service shutting down, please try again later"}
	errLineTooLong      = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Line too long"}
	errAborted          = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Data transfer failed"}
)

// errPanic stands for a recovered handler panic.
var errPanic = errors.New("handler panicked")

// backend adapts Server to go-smtp.
type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s := b.s
	if s.isDraining() {
		return nil, errShuttingDown
	}
	tc, _ := c.Conn().(*trackedConn)
	remote := c.Conn().RemoteAddr().String()
	return &session{
		s:      s,
		c:      c,
		tc:     tc,
		remote: remote,
		log:    s.log.With("remote", remote),
	}, nil
}

// session is one SMTP connection's state. go-smtp calls its methods from
// the connection's goroutine, except Data for BDAT, which it calls from
// another goroutine while the connection's goroutine waits.
type session struct {
	s      *Server
	c      *smtp.Conn
	tc     *trackedConn // nil only if the conn did not come from our listener
	remote string
	log    *slog.Logger

	helo    string
	from    string
	to      []string
	hasFrom bool
}

func (ss *session) Reset() {
	ss.from, ss.to, ss.hasFrom = "", nil, false
}

func (ss *session) Logout() error { return nil }

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	ss.Reset()
	ss.helo = ss.c.Hostname()
	if ss.s.isDraining() {
		return errShuttingDown
	}
	if opts != nil && opts.Size > ss.s.cfg.MaxMessageBytes {
		ss.s.stats.tooLarge.Add(1)
		ss.log.Info("smtp message refused: announced size over the limit",
			"helo", ss.helo, "from", from, "size", opts.Size, "limit", ss.s.cfg.MaxMessageBytes)
		return errTooLarge
	}
	ss.from, ss.hasFrom = from, true
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	addr := strings.ToLower(to)
	for _, a := range ss.to {
		if a == addr {
			return nil // a duplicate RCPT: already accepted
		}
	}
	ctx := logctx.With(ss.s.ctx, slog.String("smtp_remote", ss.remote))
	ok, err := ss.s.acceptRecipient(ctx, addr)
	switch {
	case err != nil:
		ss.s.stats.rcptErrors.Add(1)
		level := slog.LevelWarn
		if errors.Is(err, errPanic) || hermes.ErrorKind(err) == hermes.Internal {
			level = slog.LevelError
		}
		ss.log.Log(context.Background(), level, "smtp recipient deferred: handler failed",
			"helo", ss.helo, "from", ss.from, "rcpt", addr, "err", err)
		return errTempFailure
	case !ok:
		ss.s.stats.rejectedRcpt.Add(1)
		ss.log.Info("smtp recipient rejected: unknown address",
			"helo", ss.helo, "from", ss.from, "rcpt", addr)
		return errUnknownRecipient
	}
	ss.to = append(ss.to, addr)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	s := ss.s
	if ss.tc != nil {
		ss.tc.setBusy(true)
		defer ss.tc.setBusy(false)
	}
	receivedAt := s.clock.Now()
	id := hermes.NewSortableID(receivedAt)
	log := ss.log.With("smtp_id", id, "helo", ss.helo, "from", ss.from, "to", ss.to)

	var buf bytes.Buffer
	buf.WriteString(receivedHeader(ss.helo, ss.remote, s.cfg.Domain, id, receivedAt))
	head := buf.Len()

	var src io.Reader = r
	if ss.tc != nil {
		src = &deadlineReader{r: r, c: ss.tc, idle: s.cfg.ReadTimeout, end: time.Now().Add(s.cfg.DataTimeout)}
	}
	_, err := io.Copy(&buf, io.LimitReader(src, s.cfg.MaxMessageBytes+1))
	size := int64(buf.Len() - head)
	switch {
	case errors.Is(err, smtp.ErrDataTooLarge) || (err == nil && size > s.cfg.MaxMessageBytes):
		s.stats.tooLarge.Add(1)
		log.Info("smtp message refused: over the size limit", "limit", s.cfg.MaxMessageBytes)
		return errTooLarge // go-smtp reads and discards the rest
	case errors.Is(err, smtp.ErrTooLongLine):
		s.stats.permFailed.Add(1)
		log.Info("smtp message refused: line too long", "size_read", size)
		return errLineTooLong // go-smtp then closes the connection
	case errors.Is(err, smtp.ErrDataReset):
		log.Debug("smtp message abandoned by the client (BDAT)", "size_read", size)
		return err
	case err != nil:
		// A timeout, a disconnect or a broken stream: what follows on the
		// connection is not commands, so close it without a reply.
		s.stats.aborted.Add(1)
		log.Info("smtp message aborted: data transfer failed", "size_read", size, "err", err)
		if ss.tc != nil {
			_ = ss.tc.Conn.Close()
		}
		return errAborted
	}

	env := Envelope{
		From:       ss.from,
		To:         append([]string(nil), ss.to...),
		RemoteAddr: ss.remote,
		ReceivedAt: receivedAt,
		HELO:       ss.helo,
	}
	ctx := logctx.With(s.ctx, slog.String("smtp_id", id), slog.String("smtp_remote", ss.remote))
	err = s.deliver(ctx, env, buf.Bytes())
	switch {
	case err == nil:
		s.stats.delivered.Add(1)
		log.Info("smtp message accepted", "size", size)
		return nil
	case errors.Is(err, errPanic) || hermes.IsKind(err, hermes.Unavailable) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		s.stats.tempFailed.Add(1)
		level := slog.LevelWarn
		if errors.Is(err, errPanic) {
			level = slog.LevelError
		}
		log.Log(context.Background(), level, "smtp message deferred: delivery failed", "size", size, "err", err)
		return errTempFailure
	default:
		s.stats.permFailed.Add(1)
		level := slog.LevelInfo
		if hermes.ErrorKind(err) == hermes.Internal {
			level = slog.LevelError
		}
		log.Log(context.Background(), level, "smtp message rejected: delivery failed", "size", size, "err", err)
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
			Message: "Message rejected: " + replyText(hermes.ErrorMessage(err))}
	}
}

// acceptRecipient and deliver call the handler, counting the call as
// activity for Shutdown and turning a panic into errPanic.
func (s *Server) acceptRecipient(ctx context.Context, addr string) (ok bool, err error) {
	s.acquire()
	defer s.release()
	defer s.recoverHandler("AcceptRecipient", &err)
	return s.h.AcceptRecipient(ctx, addr)
}

func (s *Server) deliver(ctx context.Context, env Envelope, raw []byte) (err error) {
	s.acquire()
	defer s.release()
	defer s.recoverHandler("Deliver", &err)
	return s.h.Deliver(ctx, env, raw)
}

func (s *Server) recoverHandler(method string, err *error) {
	if p := recover(); p != nil {
		s.stats.panics.Add(1)
		s.log.Error("smtp handler panicked", "method", method, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		*err = fmt.Errorf("%w: %v", errPanic, p)
	}
}

// receivedHeader returns the RFC 5321 §4.4 trace header, folded:
//
//	Received: from HELO ([IP])
//		by DOMAIN id ID;
//		DATE
func receivedHeader(helo, remote, domain, id string, at time.Time) string {
	return "Received: from " + sanitizeDomain(helo, "unknown") + " (" + addressLiteral(remote) + ")\r\n" +
		"\tby " + domain + " id " + id + ";\r\n" +
		"\t" + at.Format(time.RFC1123Z) + "\r\n"
}

// addressLiteral formats the client's address as an RFC 5321 address
// literal: [192.0.2.1] or [IPv6:2001:db8::1].
func addressLiteral(remote string) string {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return "[" + sanitizeDomain(remote, "unknown") + "]"
	}
	a := ap.Addr().Unmap().WithZone("")
	if a.Is4() {
		return "[" + a.String() + "]"
	}
	return "[IPv6:" + a.String() + "]"
}

// sanitizeDomain keeps s fit for a header and a reply line: at most 255
// bytes of letters, digits and . - _ : [ ], others replaced by '_'; empty
// gives def.
func sanitizeDomain(s, def string) string {
	if s == "" {
		return def
	}
	if len(s) > 255 {
		s = s[:255]
	}
	b := []byte(s)
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '.', c == '-', c == '_', c == ':', c == '[', c == ']':
		default:
			b[i] = '_'
		}
	}
	return string(b)
}

// replyText makes a message safe for one SMTP reply line.
func replyText(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < ' ' || c > '~' {
			b[i] = ' '
		}
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

// trackedListener registers every accepted connection with the server.
type trackedListener struct {
	net.Listener
	s *Server
}

func (l *trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.s.track(c), nil
}

// aLongTimeAgo is a read deadline that has passed: it wakes a blocked Read.
var aLongTimeAgo = time.Unix(1, 0)

// trackedConn lets Shutdown close idle connections at once: once the server
// drains, any read deadline go-smtp sets (it sets one before each command)
// becomes a past one, so a connection waiting for a command times out and
// go-smtp answers 421 and closes it. While a message is being read or
// delivered (busy) the connection is left alone. A read error is sticky, so
// that a stream broken in the middle of DATA is never read as commands.
type trackedConn struct {
	net.Conn
	s *Server

	mu      sync.Mutex
	busy    bool
	readErr error

	closeOnce sync.Once
}

func (c *trackedConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	err := c.readErr
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	if err != nil {
		c.mu.Lock()
		if c.readErr == nil {
			c.readErr = err
		}
		c.mu.Unlock()
	}
	return n, err
}

func (c *trackedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.busy && c.s.isDraining() {
		t = aLongTimeAgo
	}
	return c.Conn.SetReadDeadline(t)
}

// extendRead sets the read deadline during DATA.
func (c *trackedConn) extendRead(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.Conn.SetReadDeadline(t)
}

func (c *trackedConn) kickIfIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.busy {
		_ = c.Conn.SetReadDeadline(aLongTimeAgo)
	}
}

func (c *trackedConn) setBusy(b bool) {
	c.mu.Lock()
	c.busy = b
	c.mu.Unlock()
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() { c.s.untrack(c) })
	return err
}

// deadlineReader reads DATA in chunks, moving the read deadline before each
// chunk: ReadTimeout without progress, or the end of DataTimeout, whichever
// is sooner.
type deadlineReader struct {
	r    io.Reader
	c    *trackedConn
	idle time.Duration
	end  time.Time
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	if len(p) > dataChunk {
		p = p[:dataChunk]
	}
	dl := time.Now().Add(d.idle)
	if dl.After(d.end) {
		dl = d.end
	}
	d.c.extendRead(dl)
	return d.r.Read(p)
}

// errorLog sends go-smtp's own error reports (failed connections, its
// recovered panics) to slog.
type errorLog struct{ l *slog.Logger }

func (e errorLog) Printf(format string, v ...any) {
	e.l.Warn("smtp server: " + fmt.Sprintf(format, v...))
}

func (e errorLog) Println(v ...any) {
	e.l.Warn("smtp server: " + strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}
