// Package slack speaks the wire format of the Slack Events API: request
// signature verification (Verify), the event envelope (ParseEnvelope), which
// events are instructions from a person (Event.IsUserMessage), the thread a
// message belongs to (Event.ThreadKey), Slack's text markup (PlainText) and
// its retry headers (RetryInfo).
package slack

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/webordinary/hermes"
)

// Request headers of the Events API.
const (
	SignatureHeader   = "X-Slack-Signature"
	TimestampHeader   = "X-Slack-Request-Timestamp"
	RetryNumHeader    = "X-Slack-Retry-Num"
	RetryReasonHeader = "X-Slack-Retry-Reason"
)

// MaxClockSkew is how far a request's timestamp may be from now, either
// way; older requests are treated as replays.
const MaxClockSkew = 5 * time.Minute

var timestampPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9]{1,12}$`) })

// Verify checks that body, the raw request body exactly as received, was
// signed by Slack with signingSecret: X-Slack-Signature must be "v0=" and
// the hex HMAC-SHA256 of "v0:" + X-Slack-Request-Timestamp + ":" + body,
// and the timestamp (Unix seconds) must be within MaxClockSkew of now. The
// comparison takes constant time. Every failure is Unauthorized; an empty
// signingSecret verifies nothing.
func Verify(signingSecret string, header http.Header, body []byte, now time.Time) error {
	if signingSecret == "" {
		return hermes.Errorf(hermes.Unauthorized, "Slack requests cannot be verified: no signing secret is configured")
	}
	ts := header.Get(TimestampHeader)
	if ts == "" {
		return hermes.Errorf(hermes.Unauthorized, "missing %s header", TimestampHeader)
	}
	if !timestampPattern().MatchString(ts) {
		return hermes.Errorf(hermes.Unauthorized, "%s is not a Unix time in seconds", TimestampHeader)
	}
	sec, _ := strconv.ParseInt(ts, 10, 64) // 12 digits always fit
	if d := now.Sub(time.Unix(sec, 0)); d > MaxClockSkew || d < -MaxClockSkew {
		return hermes.Errorf(hermes.Unauthorized, "request timestamp is more than %v from the current time", MaxClockSkew)
	}
	sig := header.Get(SignatureHeader)
	if sig == "" {
		return hermes.Errorf(hermes.Unauthorized, "missing %s header", SignatureHeader)
	}
	hexMAC, ok := strings.CutPrefix(sig, "v0=")
	got, err := hex.DecodeString(hexMAC)
	if !ok || err != nil || len(got) != sha256.Size {
		return hermes.Errorf(hermes.Unauthorized, "%s is not a v0 signature", SignatureHeader)
	}
	mac := hmac.New(sha256.New, []byte(signingSecret))
	mac.Write([]byte("v0:" + ts + ":"))
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), got) {
		return hermes.Errorf(hermes.Unauthorized, "the Slack request signature does not match")
	}
	return nil
}

// Envelope types.
const (
	URLVerification = "url_verification" // the handshake: answer with Challenge
	EventCallback   = "event_callback"   // an event: Event is set
	AppRateLimited  = "app_rate_limited" // Slack is dropping events for the app; acknowledge it
)

// Envelope is one Events API request. Other envelope types than the ones
// above are returned with only Type (and TeamID) set; acknowledge them.
type Envelope struct {
	Type      string
	Challenge string // url_verification: echo it back (200, text/plain or {"challenge": …})
	EventID   string // event_callback: Ev…, the dedup key (Slack retries with the same id)
	TeamID    string
	APIAppID  string
	EventTime int64 // Unix seconds
	Event     *Event
}

// Event is the inner event of an event_callback, reduced to the string
// fields of message-like events (message, app_mention). For other event
// types the fields that are not strings there (the user object of
// user_change, the channel object of channel_created) are left empty.
type Event struct {
	Type        string
	Subtype     string
	Channel     string
	User        string
	Text        string
	TS          string
	ThreadTS    string
	BotID       string
	ChannelType string // "channel", "group", "im", "mpim"; absent for app_mention
}

// decodeEvent reads the string fields of an event object, ignoring fields
// of other types, so that no event type Slack sends is rejected.
func decodeEvent(raw json.RawMessage) (*Event, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return nil, hermes.Errorf(hermes.Invalid, "the event_callback has no event object")
	}
	var e Event
	for name, dst := range map[string]*string{
		"type": &e.Type, "subtype": &e.Subtype, "channel": &e.Channel, "user": &e.User,
		"text": &e.Text, "ts": &e.TS, "thread_ts": &e.ThreadTS, "bot_id": &e.BotID,
		"channel_type": &e.ChannelType,
	} {
		if v, ok := fields[name]; ok && len(v) > 0 && v[0] == '"' {
			if err := json.Unmarshal(v, dst); err != nil {
				return nil, hermes.Errorf(hermes.Invalid, "the event field %s is not a valid string", name)
			}
		}
	}
	if e.Type == "" {
		return nil, hermes.Errorf(hermes.Invalid, "the event_callback has no event type")
	}
	return &e, nil
}

// ParseEnvelope reads an Events API body. It does not check the signature:
// call Verify first. Errors are Invalid.
func ParseEnvelope(body []byte) (*Envelope, error) {
	var raw struct {
		Type      *string         `json:"type"`
		Challenge string          `json:"challenge"`
		EventID   string          `json:"event_id"`
		TeamID    string          `json:"team_id"`
		APIAppID  string          `json:"api_app_id"`
		EventTime int64           `json:"event_time"`
		Event     json.RawMessage `json:"event"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, &hermes.Error{Kind: hermes.Invalid, Message: "the Slack request is not a JSON object of the Events API", Err: err}
	}
	if raw.Type == nil || *raw.Type == "" {
		return nil, hermes.Errorf(hermes.Invalid, "the Slack request has no type")
	}
	env := &Envelope{Type: *raw.Type, TeamID: raw.TeamID, APIAppID: raw.APIAppID}
	switch env.Type {
	case URLVerification:
		if raw.Challenge == "" {
			return nil, hermes.Errorf(hermes.Invalid, "the url_verification request has no challenge")
		}
		env.Challenge = raw.Challenge
	case EventCallback:
		if raw.EventID == "" {
			return nil, hermes.Errorf(hermes.Invalid, "the event_callback has no event_id")
		}
		ev, err := decodeEvent(raw.Event)
		if err != nil {
			return nil, err
		}
		env.EventID, env.EventTime, env.Event = raw.EventID, raw.EventTime, ev
	}
	return env, nil
}

// IsUserMessage reports whether e is a message a person wrote, and so a
// possible instruction: a "message" or "app_mention" event with no subtype
// (or "thread_broadcast", a reply also sent to the channel, or
// "file_share", a message with files), no bot_id, and a user and text.
// Edits (message_changed), deletions, joins, topic changes and anything
// posted by a bot or app, Hermes's own replies included, are not.
func (e *Event) IsUserMessage() bool {
	if e == nil || e.Type != "message" && e.Type != "app_mention" {
		return false
	}
	switch e.Subtype {
	case "", "thread_broadcast", "file_share":
	default:
		return false
	}
	return e.BotID == "" && e.User != "" && strings.TrimSpace(e.Text) != ""
}

// ThreadKey returns the ts of the thread's root: ThreadTS for a reply,
// else the message's own TS (a new thread). Replies go to this ts.
func (e *Event) ThreadKey() string {
	if e.ThreadTS != "" {
		return e.ThreadTS
	}
	return e.TS
}

// RetryInfo returns X-Slack-Retry-Num and X-Slack-Retry-Reason (such as
// "http_timeout"); 0 and "" on a first delivery or a malformed number.
// Retries carry the same event_id: deduplicate by it, and answer within
// three seconds to avoid them.
func RetryInfo(h http.Header) (num int, reason string) {
	n, err := strconv.Atoi(h.Get(RetryNumHeader))
	if err != nil || n < 0 {
		n = 0
	}
	return n, h.Get(RetryReasonHeader)
}

var (
	markupPattern  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`<([^<>]*)>`) })
	leadingMention = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\s*<@[A-Z0-9]+(?:\|[^<>]*)?>[\s,:]*`) })
)

// PlainText turns Slack's message markup into plain text: a link
// <https://x|label> or <https://x> becomes the URL, <mailto:a@b|a@b> the
// address, a user mention <@U123> stays "@U123", a channel <#C123|general>
// becomes "#general", <!here> "@here", and &lt; &gt; &amp; are unescaped.
// With stripMention, a leading mention (the "@Hermes" of an app_mention) is
// removed.
func PlainText(text string, stripMention bool) string {
	if stripMention {
		text = leadingMention().ReplaceAllString(text, "")
	}
	text = markupPattern().ReplaceAllStringFunc(text, func(m string) string {
		inner := m[1 : len(m)-1]
		target, label, hasLabel := strings.Cut(inner, "|")
		switch {
		case strings.HasPrefix(target, "@"):
			return target
		case strings.HasPrefix(target, "#"):
			if hasLabel && label != "" {
				return "#" + label
			}
			return target
		case strings.HasPrefix(target, "!"):
			if hasLabel && label != "" {
				return label
			}
			name, _, _ := strings.Cut(target[1:], "^")
			return "@" + name
		case strings.HasPrefix(target, "mailto:"):
			return strings.TrimPrefix(target, "mailto:")
		}
		return target
	})
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(text)
}
