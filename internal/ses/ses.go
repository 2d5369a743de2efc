// Package ses reads the notifications that Amazon SES email receiving sends
// for each received message, as they arrive on the intake queue: wrapped in
// an SNS envelope ({"Type":"Notification","Message":"<SES JSON>",…}) or
// bare (SNS raw message delivery, or a body posted to /inbound/email).
//
// Parse turns one notification into a Notification: the ids, the envelope
// addresses, the SES verdicts, and the raw MIME message, either carried in
// the notification itself (SNS action, "content", UTF-8 or base64) or stored
// in S3 (S3 action; the caller fetches bucket/key). Messages that carry no
// received mail (SNS subscription handshakes, SES notifications other than
// "Received") give an error for which IsIgnored is true, so that a consumer
// can drop them quietly. Verdicts.Check applies the acceptance policy.
//
// The package does not verify SNS message signatures: the trust boundary is
// the intake queue's access policy (SQS) or the API key of /inbound/email.
package ses

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/webordinary/hermes"
)

// Notification is one received message as SES reports it.
type Notification struct {
	MessageID   string    // mail.messageId: SES's id of the message, the dedup key (and the S3 object name)
	Source      string    // mail.source: the envelope sender (MAIL FROM)
	Destination []string  // mail.destination: every recipient address SES saw for the message
	Recipients  []string  // receipt.recipients: the envelope recipients (RCPT TO) that matched the receipt rule; route on these
	Subject     string    // mail.commonHeaders.subject, for logs; the raw message is authoritative
	Timestamp   time.Time // mail.timestamp: when SES received the message (UTC); zero when absent
	Verdicts    Verdicts
	Raw         []byte      // the raw MIME message, when the notification carried it
	S3          *S3Location // set for the S3 action: the raw message must be fetched from there
	TopicArn    string      // the SNS topic the notification came through, when known
}

// S3Location is where an S3 receipt action stored the raw message.
type S3Location struct {
	Bucket string // receipt.action.bucketName
	Key    string // receipt.action.objectKey
}

// Verdicts are the statuses of SES's checks on a message: "PASS", "FAIL",
// "GRAY", "PROCESSING_FAILED" or "DISABLED" ("" when SES reported none).
type Verdicts struct {
	Spam, Virus, SPF, DKIM, DMARC string
	// DMARCPolicy is the sending domain's DMARC policy ("none",
	// "quarantine", "reject"); SES reports it only when DMARC failed.
	DMARCPolicy string
}

// Policy says which sender-authentication checks must pass. Spam and virus
// failures are always rejected. The zero Policy requires nothing; use
// DefaultPolicy for the strict default.
type Policy struct{ RequireSPF, RequireDKIM, RequireDMARC bool }

// DefaultPolicy is the strict policy: SPF, DKIM and DMARC must all pass.
func DefaultPolicy() Policy { return Policy{RequireSPF: true, RequireDKIM: true, RequireDMARC: true} }

// Verdict statuses.
const (
	Pass             = "PASS"
	Fail             = "FAIL"
	Gray             = "GRAY"
	ProcessingFailed = "PROCESSING_FAILED"
	Disabled         = "DISABLED"
)

// Check accepts or rejects a message by its verdicts. A spam or virus FAIL
// is always rejected (Forbidden). Each authentication check the policy
// requires must be PASS; GRAY, PROCESSING_FAILED, DISABLED, a missing
// verdict or any other value is a failure (Unauthorized). Checks that are
// not required are not looked at.
func (v Verdicts) Check(p Policy) error {
	if v.Spam == Fail {
		return hermes.Errorf(hermes.Forbidden, "message rejected: SES classified it as spam")
	}
	if v.Virus == Fail {
		return hermes.Errorf(hermes.Forbidden, "message rejected: SES found a virus in it")
	}
	var failed []string
	for _, c := range []struct {
		name, status string
		required     bool
	}{
		{"SPF", v.SPF, p.RequireSPF},
		{"DKIM", v.DKIM, p.RequireDKIM},
		{"DMARC", v.DMARC, p.RequireDMARC},
	} {
		if c.required && c.status != Pass {
			failed = append(failed, c.name+" "+describeStatus(c.status))
		}
	}
	if len(failed) > 0 {
		return hermes.Errorf(hermes.Unauthorized, "message rejected: sender authentication did not pass (%s)", strings.Join(failed, ", "))
	}
	return nil
}

// describeStatus names a verdict status for an error message without
// echoing arbitrary input.
func describeStatus(s string) string {
	switch s {
	case Pass, Fail, Gray, ProcessingFailed, Disabled:
		return s
	case "":
		return "missing"
	}
	return "unrecognised"
}

// ErrIgnored matches (with errors.Is) the error Parse returns for a
// well-formed message that carries no received mail.
var ErrIgnored = errors.New("not a received-mail notification")

// Ignored is the cause of such an error; get it with errors.As to see what
// was ignored.
type Ignored struct {
	// Type is the SNS message type ("SubscriptionConfirmation",
	// "UnsubscribeConfirmation") or the SES notificationType ("Bounce",
	// "AmazonSnsSubscriptionSucceeded", …).
	Type     string
	TopicArn string
	// SubscribeURL is the confirmation link of a SubscriptionConfirmation.
	// It is unauthenticated input: visit it only after verifying the SNS
	// signature, and only if it is an https URL on an amazonaws.com host.
	SubscribeURL string
}

func (i *Ignored) Error() string        { return "ignored " + safeName(i.Type) + " message" }
func (i *Ignored) Is(target error) bool { return target == ErrIgnored }

// IsIgnored reports whether err says the message carries no received mail
// and should be dropped without complaint.
func IsIgnored(err error) bool { return errors.Is(err, ErrIgnored) }

func ignored(ig *Ignored) error {
	return &hermes.Error{Kind: hermes.Unprocessable, Message: "not a received-mail notification (" + safeName(ig.Type) + ")", Err: ig}
}

var namePattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,63}$`) })

// safeName returns s when it looks like a type name, so that error messages
// never carry arbitrary input.
func safeName(s string) string {
	if namePattern().MatchString(s) {
		return s
	}
	if s == "" {
		return "no type"
	}
	return "unrecognised type"
}

// messageIDPattern: SES ids are lowercase alphanumerics (about 40); the
// pattern is looser but keeps dedup keys printable and bounded.
var messageIDPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,127}$`) })

func invalid(format string, args ...any) error { return hermes.Errorf(hermes.Invalid, format, args...) }

// Parse reads one SES receipt notification, SNS-wrapped or bare. Errors are
// Invalid for malformed input, or match IsIgnored (kind Unprocessable) for
// messages that carry no received mail. Parse runs in time linear in the
// size of body; callers bound that size.
func Parse(body []byte) (*Notification, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return nil, &hermes.Error{Kind: hermes.Invalid, Message: "the notification is not a JSON object", Err: err}
	}
	if _, ok := top["Type"]; !ok {
		return parseSES(body, "")
	}
	var env struct {
		Type, TopicArn, SubscribeURL string
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"Type", &env.Type}, {"TopicArn", &env.TopicArn}, {"SubscribeURL", &env.SubscribeURL}} {
		if err := stringField(top, f.name, f.dst); err != nil {
			return nil, err
		}
	}
	switch env.Type {
	case "Notification":
	case "SubscriptionConfirmation", "UnsubscribeConfirmation":
		return nil, ignored(&Ignored{Type: env.Type, TopicArn: env.TopicArn, SubscribeURL: env.SubscribeURL})
	default:
		return nil, invalid("unknown SNS message type (%s)", safeName(env.Type))
	}
	raw, ok := top["Message"]
	if !ok {
		return nil, invalid("the SNS notification has no Message")
	}
	var msg string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &msg) != nil {
		return nil, invalid("the SNS Message is not a string")
	}
	return parseSES([]byte(msg), env.TopicArn)
}

// stringField decodes top[name] into dst when present; null counts as absent.
func stringField(top map[string]json.RawMessage, name string, dst *string) error {
	raw, ok := top[name]
	if !ok || string(raw) == "null" {
		return nil
	}
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, dst) != nil {
		return invalid("the SNS field %s is not a string", name)
	}
	return nil
}

type verdict struct {
	Status string `json:"status"`
}

// sesNotification is the SES "Received" notification, as documented in
// "Contents of notifications for Amazon SES email receiving".
type sesNotification struct {
	NotificationType string `json:"notificationType"`
	Mail             *struct {
		Timestamp     string   `json:"timestamp"`
		Source        string   `json:"source"`
		MessageID     string   `json:"messageId"`
		Destination   []string `json:"destination"`
		CommonHeaders struct {
			Subject string `json:"subject"`
		} `json:"commonHeaders"`
	} `json:"mail"`
	Receipt *struct {
		Recipients   []string `json:"recipients"`
		SpamVerdict  verdict  `json:"spamVerdict"`
		VirusVerdict verdict  `json:"virusVerdict"`
		SPFVerdict   verdict  `json:"spfVerdict"`
		DKIMVerdict  verdict  `json:"dkimVerdict"`
		DMARCVerdict verdict  `json:"dmarcVerdict"`
		DMARCPolicy  string   `json:"dmarcPolicy"`
		Action       struct {
			Type       string `json:"type"`
			TopicArn   string `json:"topicArn"`
			Encoding   string `json:"encoding"`
			BucketName string `json:"bucketName"`
			ObjectKey  string `json:"objectKey"`
		} `json:"action"`
	} `json:"receipt"`
	Content *string `json:"content"`
}

func parseSES(data []byte, topicArn string) (*Notification, error) {
	var head struct {
		NotificationType *string `json:"notificationType"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, &hermes.Error{Kind: hermes.Invalid, Message: "the SES notification is not a JSON object with a string notificationType", Err: err}
	}
	if head.NotificationType == nil {
		return nil, invalid("the message is neither an SNS message nor an SES notification (no Type or notificationType)")
	}
	if *head.NotificationType != "Received" {
		return nil, ignored(&Ignored{Type: *head.NotificationType, TopicArn: topicArn})
	}
	var n sesNotification
	if err := json.Unmarshal(data, &n); err != nil {
		return nil, &hermes.Error{Kind: hermes.Invalid, Message: "the SES notification has fields of the wrong type", Err: err}
	}
	if n.Mail == nil {
		return nil, invalid("the SES notification has no mail object")
	}
	if n.Receipt == nil {
		return nil, invalid("the SES notification has no receipt object")
	}
	m, r := n.Mail, n.Receipt
	if m.MessageID == "" {
		return nil, invalid("the SES notification has no mail.messageId")
	}
	if !messageIDPattern().MatchString(m.MessageID) {
		return nil, invalid("mail.messageId is not a valid SES message id")
	}
	out := &Notification{
		MessageID:   m.MessageID,
		Source:      m.Source,
		Destination: m.Destination,
		Recipients:  r.Recipients,
		Subject:     m.CommonHeaders.Subject,
		Verdicts: Verdicts{
			Spam:        r.SpamVerdict.Status,
			Virus:       r.VirusVerdict.Status,
			SPF:         r.SPFVerdict.Status,
			DKIM:        r.DKIMVerdict.Status,
			DMARC:       r.DMARCVerdict.Status,
			DMARCPolicy: r.DMARCPolicy,
		},
		TopicArn: topicArn,
	}
	if out.TopicArn == "" {
		out.TopicArn = r.Action.TopicArn
	}
	if m.Timestamp != "" {
		t, err := time.Parse(time.RFC3339Nano, m.Timestamp)
		if err != nil {
			return nil, invalid("mail.timestamp is not an ISO 8601 time")
		}
		out.Timestamp = t.UTC()
	}
	if r.Action.Type == "S3" {
		if r.Action.BucketName == "" || r.Action.ObjectKey == "" {
			return nil, invalid("the S3 action has no bucketName or objectKey")
		}
		out.S3 = &S3Location{Bucket: r.Action.BucketName, Key: r.Action.ObjectKey}
	}
	if n.Content != nil && *n.Content != "" {
		raw, err := decodeContent(*n.Content, r.Action.Encoding)
		if err != nil {
			return nil, err
		}
		out.Raw = raw
	}
	if out.Raw == nil && out.S3 == nil {
		return nil, invalid("the SES notification carries no content and no S3 location (action type %s)", safeName(r.Action.Type))
	}
	return out, nil
}

func decodeContent(content, encoding string) ([]byte, error) {
	switch {
	case encoding == "", strings.EqualFold(encoding, "UTF8"), strings.EqualFold(encoding, "UTF-8"):
		return []byte(content), nil
	case strings.EqualFold(encoding, "BASE64"):
		// SES sends one unbroken line; tolerate line breaks anyway.
		b := []byte(content)
		if bytes.ContainsAny(b, " \t\r\n") {
			b = bytes.Map(func(r rune) rune {
				if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
					return -1
				}
				return r
			}, b)
		}
		raw := make([]byte, base64.StdEncoding.DecodedLen(len(b)))
		n, err := base64.StdEncoding.Decode(raw, b)
		if err != nil {
			return nil, invalid("the content is not valid base64")
		}
		if n == 0 {
			return nil, invalid("the content is empty")
		}
		return raw[:n], nil
	}
	return nil, invalid("unknown content encoding (%s)", safeName(encoding))
}
