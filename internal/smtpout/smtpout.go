// Package smtpout sends email replies through an SMTP server (SMTP_URL),
// with github.com/wneessen/go-mail for the connection, TLS and
// authentication. The composed message is sent byte for byte, so retries
// send exactly the same reply.
package smtpout

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"net/url"
	"strconv"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/webordinary/hermes"
)

// Sender sends email outbox items over SMTP.
type Sender struct {
	host    string
	opts    []gomail.Option
	timeout time.Duration
}

var _ hermes.Sender = (*Sender)(nil)

// New returns a sender for smtp://user:pass@host:port (STARTTLS when the
// server offers it) or smtps://… (TLS from the start).
func New(u *url.URL) (*Sender, error) {
	host := u.Hostname()
	if host == "" {
		return nil, errors.New("SMTP_URL has no host")
	}
	opts := []gomail.Option{gomail.WithTimeout(20 * time.Second), gomail.WithTLSPolicy(gomail.TLSOpportunistic)}
	port := 25
	if u.Scheme == "smtps" {
		port = 465
		opts = append(opts, gomail.WithSSL())
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("SMTP_URL port %q", p)
		}
		port = n
	}
	opts = append(opts, gomail.WithPort(port))
	if user := u.User.Username(); user != "" {
		pass, _ := u.User.Password()
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover), gomail.WithUsername(user), gomail.WithPassword(pass))
	}
	return &Sender{host: host, opts: opts, timeout: 30 * time.Second}, nil
}

// Send delivers the item's composed message (Raw) from its From to its To.
// A permanent SMTP refusal (5xx) is Invalid; anything else may be retried.
func (s *Sender) Send(ctx context.Context, it *hermes.OutboxItem) error {
	if len(it.Raw) == 0 || it.To == "" || it.From == "" {
		return hermes.Errorf(hermes.Invalid, "outbox item %s has no composed email", it.ID)
	}
	c, err := gomail.NewClient(s.host, s.opts...)
	if err != nil {
		return hermes.E("smtpout.Send", hermes.Invalid, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	sc, err := c.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return classify(err)
	}
	defer c.CloseWithSMTPClient(sc)
	if err := sc.Mail("<" + it.From + ">"); err != nil { // go-mail leaves the brackets to the caller
		return classify(err)
	}
	if err := sc.Rcpt("<" + it.To + ">"); err != nil {
		return classify(err)
	}
	w, err := sc.Data()
	if err != nil {
		return classify(err)
	}
	if _, err := w.Write(it.Raw); err != nil {
		return classify(err)
	}
	return classify(w.Close())
}

// classify makes 5xx refusals permanent (Invalid) and everything else
// (network, 4xx) retryable (Unavailable).
func classify(err error) error {
	if err == nil {
		return nil
	}
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 {
		return hermes.E("smtpout.Send", hermes.Invalid, err)
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return hermes.E("smtpout.Send", hermes.Unavailable, err)
	}
	return hermes.E("smtpout.Send", hermes.Unavailable, err)
}
