package relay

import (
	"context"
	"strings"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/mail"
	"github.com/webordinary/hermes/internal/notify"
	"github.com/webordinary/hermes/internal/router"
)

// Acks composes acknowledgements for the outbox: a threaded email, a
// one-segment SMS, a chat reply in the thread. The API channel gets none:
// its HTTP answer is the acknowledgement.
type Acks struct {
	FromEmail string // sender of email replies when the message did not come to a project address
}

var _ router.Acknowledger = (*Acks)(nil)

// Ack returns the outbox items acknowledging a.
func (s *Acks) Ack(ctx context.Context, a router.Ack) ([]*hermes.OutboxItem, error) {
	kind := hermes.KindAck
	switch {
	case a.Busy:
		kind = "busy"
	case a.Approval == notify.AckRejected:
		kind = "rejected"
	}
	n := notify.Ack{
		ProjectName: a.Project.Name, Instruction: a.Text, Queued: a.Queued, Busy: a.Busy,
		WakeSeconds: int((a.WakeAfter + time.Second - 1) / time.Second), Token: mail.FormatToken(a.Thread.Token),
		PreviewURL: a.Session.PreviewURL, Approval: a.Approval,
	}
	if n.ProjectName == "" {
		n.ProjectName = a.Project.ID
	}
	it := &hermes.OutboxItem{
		ID: hermes.DeriveToken(kind, a.JobID), Channel: a.Reply.Channel, To: a.Reply.To, From: a.Reply.From,
		Kind: kind, ThreadID: a.Thread.ID, SessionID: a.Session.ID, ClientID: a.Project.ClientID,
		CreatedAt: a.Now, NextAttemptAt: a.Now,
	}
	switch a.Reply.Channel {
	case hermes.ChannelEmail:
		if err := s.email(it, a, n); err != nil {
			return nil, err
		}
	case hermes.ChannelSMS:
		it.Text = notify.AckSMS(n)
	case hermes.ChannelChat:
		it.Text = notify.AckChat(n)
		it.To = a.Reply.From // the chat channel; the reply goes into the thread
		it.Headers = map[string]string{"thread_ts": a.Reply.ChatThread}
	default:
		return nil, nil
	}
	return []*hermes.OutboxItem{it}, nil
}

// email composes a threaded multipart/alternative reply.
func (s *Acks) email(it *hermes.OutboxItem, a router.Ack, n notify.Ack) error {
	if it.From == "" {
		it.From = s.FromEmail
		if len(a.Project.EmailAddresses) > 0 {
			it.From = a.Project.EmailAddresses[0]
		}
	}
	text, html, err := notify.AckEmail(n)
	if err != nil {
		return err
	}
	orig := a.Reply.Subject
	if orig == "" {
		orig = a.Thread.Subject
	}
	_, domain, _ := strings.Cut(it.From, "@")
	r := mail.Reply{
		From: it.From, FromName: n.ProjectName, To: []string{it.To},
		Subject:   mail.ReplySubject(orig, a.Thread.Token),
		MessageID: mail.NewMessageID(a.Thread.ID, domain), InReplyTo: strings.Trim(a.Reply.MessageID, "<> "),
		ThreadID: a.Thread.ID, Text: text, HTML: html, Date: a.Now, Kind: it.Kind,
	}
	if r.InReplyTo != "" {
		r.References = mail.ReferencesFor(r.InReplyTo, a.Reply.References)
	}
	raw, err := mail.Compose(r)
	if err != nil {
		return err
	}
	it.Subject, it.Text, it.HTML, it.Raw = r.Subject, text, html, raw
	it.Headers = map[string]string{"Message-ID": "<" + r.MessageID + ">"}
	if r.InReplyTo != "" {
		it.Headers["In-Reply-To"] = "<" + r.InReplyTo + ">"
	}
	if len(r.References) > 0 {
		it.Headers["References"] = "<" + strings.Join(r.References, "> <") + ">"
	}
	return nil
}
