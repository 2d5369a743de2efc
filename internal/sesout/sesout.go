// Package sesout sends email replies through Amazon SES v2 (HERMES_MAILER=ses):
// SendEmail with Content.Raw, so the composed message — its Message-ID,
// In-Reply-To and the full References chain included — goes out byte for
// byte, the same on every retry, exactly as internal/smtpout sends it.
//
// Calls go through a circuit breaker (internal/awsx). Errors follow the
// hermes.Sender contract that the outbox deliverer (internal/relay) reads:
// a refusal that a retry cannot fix (MessageRejected, a malformed request,
// an unverified MAIL FROM domain) is Invalid, so the item fails at once;
// everything else — throttling, 5xx, network failures, an open breaker,
// credentials or a paused account that an operator may fix — is
// Unavailable, and the item is retried with backoff.
package sesout

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
)

// MaxRawSize is SES v2's limit on a raw message (40 MB, after base64).
const MaxRawSize = 40 << 20

// API is the part of the SES v2 client the sender uses (*sesv2.Client).
type API interface {
	SendEmail(ctx context.Context, in *sesv2.SendEmailInput, optFns ...func(*sesv2.Options)) (*sesv2.SendEmailOutput, error)
}

// Sender sends email outbox items through SES v2.
type Sender struct {
	API     API
	Breaker *awsx.Breaker // nil: no breaker
	// ConfigurationSet, when set, is the SES configuration set of every
	// message (event publishing, dedicated IPs).
	ConfigurationSet string
}

var _ hermes.Sender = (*Sender)(nil)

// New returns a sender using cfg, behind the breaker b (nil for none).
func New(cfg aws.Config, b *awsx.Breaker) *Sender {
	return &Sender{API: sesv2.NewFromConfig(cfg), Breaker: b}
}

// Send delivers the item's composed message (Raw) from its From to its To.
// The envelope (FromEmailAddress, Destination) is set from the item, as the
// SMTP sender's MAIL FROM and RCPT TO are, so that a Cc or Bcc header in
// the message never adds recipients.
func (s *Sender) Send(ctx context.Context, it *hermes.OutboxItem) error {
	if len(it.Raw) == 0 || it.To == "" || it.From == "" {
		return hermes.Errorf(hermes.Invalid, "outbox item %s has no composed email", it.ID)
	}
	if (len(it.Raw)+2)/3*4 > MaxRawSize {
		return hermes.Errorf(hermes.Invalid, "outbox item %s is over SES's 40 MB message limit", it.ID)
	}
	in := &sesv2.SendEmailInput{
		FromEmailAddress: aws.String(it.From),
		Destination:      &types.Destination{ToAddresses: []string{it.To}},
		Content:          &types.EmailContent{Raw: &types.RawMessage{Data: it.Raw}},
	}
	if s.ConfigurationSet != "" {
		in.ConfigurationSetName = aws.String(s.ConfigurationSet)
	}
	err := s.Breaker.Do(func() error {
		_, err := s.API.SendEmail(ctx, in)
		return err
	})
	return classify(err)
}

// permanent are the SES v2 error codes that a retry of the same message
// cannot fix.
var permanent = map[string]bool{
	"MessageRejected":                    true, // SES refused the content (a virus, a bad header)
	"BadRequestException":                true, // malformed request or address
	"MailFromDomainNotVerifiedException": true,
	"InvalidParameterValue":              true,
}

// classify maps SendEmail's errors to the Sender contract: Invalid for a
// permanent refusal, Unavailable for everything else.
func classify(err error) error {
	const op = "sesout.Send"
	if err == nil {
		return nil
	}
	if hermes.IsKind(err, hermes.Unavailable) { // the breaker is open
		return err
	}
	if permanent[awsx.Code(err)] {
		return hermes.E(op, hermes.Invalid, err)
	}
	return hermes.E(op, hermes.Unavailable, err)
}
