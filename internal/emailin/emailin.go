// Package emailin turns inbound email into router messages, whichever way
// it arrives: the embedded SMTP server (it implements smtpd.Handler), raw
// MIME posted to /inbound/email, or SES receipt notifications (posted, or
// read from the intake queue). It parses the MIME, applies the loop guards
// (automatic mail, bounces, lists, Hermes's own replies) and the SES
// verdict policy, and hands one message per project recipient to the
// router; the router verifies the sender and decides.
package emailin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/mail"
	"github.com/webordinary/hermes/internal/router"
	"github.com/webordinary/hermes/internal/ses"
	"github.com/webordinary/hermes/internal/smtpd"
)

// Intake handles inbound email.
type Intake struct {
	Router *router.Router
	Store  hermes.Directory
	Policy ses.Policy // SPF/DKIM/DMARC requirements for SES mail (strict by default)
	// S3 fetches mail an SES S3 action stored (internal/s3mail); nil
	// refuses such notifications.
	S3  MailFetcher
	Log *slog.Logger
	// Rejected counts mail refused before routing, by reason; nil skips.
	Rejected func(reason string)
	// Dropped counts mail not routed by a loop guard, by reason; nil skips.
	Dropped func(reason string)
}

var _ smtpd.Handler = (*Intake)(nil)

// MailFetcher reads the raw mail an SES receipt rule's S3 action stored.
type MailFetcher interface {
	// FetchRaw returns the object's bytes: NotFound when it does not
	// exist, TooLarge over the size limit, Unavailable when a retry may
	// work.
	FetchRaw(ctx context.Context, bucket, key string) ([]byte, error)
}

// AcceptRecipient accepts mail only for project addresses (SMTP RCPT TO).
func (in *Intake) AcceptRecipient(ctx context.Context, addr string) (bool, error) {
	_, err := in.Store.ProjectByAddress(ctx, hermes.AddressEmail, addr)
	if hermes.IsKind(err, hermes.NotFound) {
		return false, nil
	}
	return err == nil, err
}

// Deliver routes a message the SMTP server accepted for envelope recipients
// that are project addresses.
func (in *Intake) Deliver(ctx context.Context, env smtpd.Envelope, raw []byte) error {
	_, err := in.HandleRaw(ctx, env.To, "", raw)
	return err
}

// HandleSES routes an SES receipt notification (SNS-wrapped or bare) whose
// raw MIME is inline, or stored in S3 by an S3 action and fetched with S3
// (without one it is refused as Unprocessable). Notifications that carry no
// mail (SNS subscription messages, other notification types) are ignored.
func (in *Intake) HandleSES(ctx context.Context, body []byte) ([]*router.Outcome, error) {
	n, err := ses.Parse(body)
	if ses.IsIgnored(err) {
		in.log().InfoContext(ctx, "SES notification ignored", "err", err)
		return nil, nil
	}
	if err != nil {
		in.reject("malformed-ses")
		return nil, err
	}
	if err := n.Verdicts.Check(in.Policy); err != nil {
		// Spoofed, spam or virus mail: dropped without a word (no backscatter).
		in.drop(ctx, "verdict", "ses_message_id", n.MessageID, "err", err)
		return []*router.Outcome{{Status: router.Dropped, Reason: "verdict"}}, nil
	}
	if n.Raw == nil {
		if in.S3 == nil {
			in.reject("ses-s3")
			return nil, hermes.Errorf(hermes.Unprocessable, "SES message %s is stored in S3, and no S3 reader is configured", n.MessageID)
		}
		raw, err := in.S3.FetchRaw(ctx, n.S3.Bucket, n.S3.Key)
		if err != nil {
			if !hermes.IsKind(err, hermes.Unavailable) {
				in.reject("ses-s3")
			}
			return nil, fmt.Errorf("SES message %s: %w", n.MessageID, err)
		}
		n.Raw = raw
	}
	rcpts := n.Recipients
	if len(rcpts) == 0 {
		rcpts = n.Destination
	}
	return in.HandleRaw(ctx, rcpts, n.MessageID, n.Raw)
}

// HandleRaw routes raw MIME sent to recipients (the envelope; when empty,
// the To and Cc headers are used). fallbackID identifies a message without
// a Message-ID (the SES id); with neither, a hash of the bytes does.
func (in *Intake) HandleRaw(ctx context.Context, recipients []string, fallbackID string, raw []byte) ([]*router.Outcome, error) {
	p, err := mail.Parse(raw)
	if err != nil {
		in.reject("malformed-mime")
		return nil, err
	}
	if p.Auto != "" {
		in.drop(ctx, "auto-"+string(p.Auto), "from", p.From, "subject", p.Subject)
		return []*router.Outcome{{Status: router.Dropped, Reason: "auto-" + string(p.Auto)}}, nil
	}
	if p.From == "" {
		in.drop(ctx, "no-sender")
		return []*router.Outcome{{Status: router.Dropped, Reason: "no-sender"}}, nil
	}
	if _, err := in.Store.ProjectByAddress(ctx, hermes.AddressEmail, p.From); err == nil {
		// Mail from one of our own addresses: never answer ourselves.
		in.drop(ctx, "own-address", "from", p.From)
		return []*router.Outcome{{Status: router.Dropped, Reason: "own-address"}}, nil
	}
	if len(recipients) == 0 {
		recipients = append(append([]string(nil), p.To...), p.Cc...)
	}
	id := p.MessageID
	if id == "" {
		id = fallbackID
	}
	if id == "" {
		sum := sha256.Sum256(raw)
		id = "sha256:" + hex.EncodeToString(sum[:16])
	}
	hints := hermes.ThreadHints{MessageID: p.MessageID, InReplyTo: p.InReplyTo, References: p.References}
	if t, ok := mail.ThreadFromHeaders(p.InReplyTo, p.References); ok {
		hints.ThreadID = t
	}
	if tok, ok := mail.FindToken(p.Subject); ok {
		hints.Token = tok
	} else if tok, ok := mail.FindToken(p.Text); ok {
		hints.Token = tok
	}
	now := time.Now()
	if !p.Date.IsZero() && p.Date.Before(now) {
		now = p.Date
	}
	var outs []*router.Outcome
	seen := map[string]bool{}
	var errs []error
	for _, rcpt := range recipients {
		rcpt = strings.ToLower(strings.TrimSpace(rcpt))
		if seen[rcpt] {
			continue
		}
		seen[rcpt] = true
		if _, err := in.Store.ProjectByAddress(ctx, hermes.AddressEmail, rcpt); err != nil {
			continue // a Cc to someone else, not one of ours
		}
		out, err := in.Router.Route(ctx, &hermes.Message{
			Channel: hermes.ChannelEmail, ChannelID: "email:" + strings.ToLower(id) + "/" + rcpt,
			From: p.From, To: rcpt, Subject: p.Subject, Text: p.Instruction, Thread: hints, ReceivedAt: now,
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("recipient %s: %w", rcpt, err))
			continue
		}
		outs = append(outs, out)
	}
	if len(outs) == 0 && len(errs) == 0 {
		in.drop(ctx, "unknown-recipient", "recipients", strings.Join(recipients, ","))
		return []*router.Outcome{{Status: router.Dropped, Reason: router.ReasonUnknownRecipient}}, nil
	}
	if len(errs) > 0 {
		// Retry the whole message: recipients already routed are deduplicated.
		err := errors.Join(errs...)
		if !hermes.IsKind(errs[0], hermes.Unavailable) {
			return outs, err
		}
		return outs, &hermes.Error{Kind: hermes.Unavailable, Message: "routing failed; retry", Err: err}
	}
	return outs, nil
}

func (in *Intake) reject(reason string) {
	if in.Rejected != nil {
		in.Rejected(reason)
	}
}

func (in *Intake) drop(ctx context.Context, reason string, attrs ...any) {
	if in.Dropped != nil {
		in.Dropped(reason)
	}
	in.log().InfoContext(ctx, "email not routed", append([]any{"reason", reason}, attrs...)...)
}

func (in *Intake) log() *slog.Logger {
	if in.Log == nil {
		return slog.Default()
	}
	return in.Log
}

// ConsumeQueue reads SES receipt notifications from the intake queue (the
// production SES → SNS → SQS path) until ctx ends. A notification is
// deleted once handled, or when it can never be handled (malformed); on a
// temporary failure it is left to reappear after its visibility timeout,
// and after the queue's maximum receives it moves to the queue's DLQ. The
// notifications of one receive (mail comes in bursts) are deleted together,
// with one DeleteBatch once each was handled; should that fail they
// reappear, and their mail is deduplicated by its message id.
func (in *Intake) ConsumeQueue(ctx context.Context, q hermes.Queues, queue string) {
	for ctx.Err() == nil {
		ds, err := q.Receive(ctx, queue, hermes.MaxReceiveBatch, hermes.MaxReceiveWait, 2*time.Minute)
		if err != nil {
			if ctx.Err() == nil {
				in.log().WarnContext(ctx, "intake queue: receive failed", "queue", queue, "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(5 * time.Second):
				}
			}
			continue
		}
		var done, ids []string // receipts and ids of the notifications to delete
		for _, d := range ds {
			_, err := in.HandleSES(ctx, []byte(d.Body))
			if hermes.IsKind(err, hermes.Unavailable) {
				in.log().WarnContext(ctx, "intake queue: routing failed; the notification will be retried", "queue_message_id", d.ID, "err", err)
				continue
			}
			if err != nil {
				in.log().WarnContext(ctx, "intake queue: notification refused", "queue_message_id", d.ID, "err", err)
			}
			done, ids = append(done, d.Receipt), append(ids, d.ID)
		}
		if err := q.DeleteBatch(context.WithoutCancel(ctx), queue, done); err != nil {
			in.log().ErrorContext(ctx, "intake queue: delete failed", "queue_message_ids", ids, "err", err)
		}
	}
}
