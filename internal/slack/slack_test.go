package slack

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webordinary/hermes"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Slack's documented example (https://api.slack.com/authentication/verifying-requests-from-slack).
const (
	docSecret    = "8f742231b10e8888abcd99yyyzzz85a5"
	docTimestamp = "1531420618"
	docBody      = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	docSignature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
)

// sign computes a signature independently of the package.
func sign(secret, ts string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("v0:" + ts + ":"))
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

func headers(ts, sig string) http.Header {
	h := http.Header{}
	if ts != "" {
		h.Set(TimestampHeader, ts)
	}
	if sig != "" {
		h.Set(SignatureHeader, sig)
	}
	return h
}

func wantKind(t *testing.T, err error, kind hermes.Kind, contains string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", kind)
	}
	if k := hermes.ErrorKind(err); k != kind {
		t.Fatalf("kind = %v, want %v (%v)", k, kind, err)
	}
	if msg := hermes.ErrorMessage(err); !strings.Contains(msg, contains) {
		t.Fatalf("message %q does not contain %q", msg, contains)
	}
}

func TestVerifyDocumentedExample(t *testing.T) {
	if got := sign(docSecret, docTimestamp, []byte(docBody)); got != docSignature {
		t.Fatalf("independent computation = %s, want Slack's %s", got, docSignature)
	}
	now := time.Unix(1531420618, 0).Add(30 * time.Second)
	if err := Verify(docSecret, headers(docTimestamp, docSignature), []byte(docBody), now); err != nil {
		t.Fatalf("Slack's documented request rejected: %v", err)
	}
}

func TestVerify(t *testing.T) {
	const secret = "e3b0c44298fc1c149afbf4c8996fb924"
	now := time.Date(2025, 3, 4, 15, 20, 11, 0, time.UTC)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := fixture(t, "message_channels.json")
	good := sign(secret, ts, body)
	at := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }

	for _, tc := range []struct {
		name    string
		secret  string
		header  http.Header
		body    []byte
		message string // "" when valid
	}{
		{"valid", secret, headers(ts, good), body, ""},
		{"valid, upper-case hex", secret, headers(ts, "v0="+strings.ToUpper(good[3:])), body, ""},
		{"4m59s old", secret, headers(at(-299*time.Second), sign(secret, at(-299*time.Second), body)), body, ""},
		{"exactly 5m old", secret, headers(at(-5*time.Minute), sign(secret, at(-5*time.Minute), body)), body, ""},
		{"5m01s old", secret, headers(at(-301*time.Second), sign(secret, at(-301*time.Second), body)), body, "more than 5m0s"},
		{"a day old", secret, headers(at(-24*time.Hour), sign(secret, at(-24*time.Hour), body)), body, "more than 5m0s"},
		{"4m in the future", secret, headers(at(4*time.Minute), sign(secret, at(4*time.Minute), body)), body, ""},
		{"6m in the future", secret, headers(at(6*time.Minute), sign(secret, at(6*time.Minute), body)), body, "more than 5m0s"},
		{"tampered body", secret, headers(ts, good), append([]byte(" "), body...), "does not match"},
		{"empty body", secret, headers(ts, good), nil, "does not match"},
		{"wrong secret", "another-secret", headers(ts, good), body, "does not match"},
		{"no secret configured", "", headers(ts, sign("", ts, body)), body, "no signing secret"},
		{"timestamp swapped", secret, headers(at(time.Second), good), body, "does not match"},
		{"no timestamp", secret, headers("", good), body, "missing X-Slack-Request-Timestamp"},
		{"no signature", secret, headers(ts, ""), body, "missing X-Slack-Signature"},
		{"no headers", secret, http.Header{}, body, "missing"},
		{"non-numeric timestamp", secret, headers("yesterday", sign(secret, "yesterday", body)), body, "not a Unix time"},
		{"fractional timestamp", secret, headers(ts+".5", sign(secret, ts+".5", body)), body, "not a Unix time"},
		{"negative timestamp", secret, headers("-"+ts, sign(secret, "-"+ts, body)), body, "not a Unix time"},
		{"signed timestamp", secret, headers("+"+ts, sign(secret, "+"+ts, body)), body, "not a Unix time"},
		{"huge timestamp", secret, headers("99999999999999999999", good), body, "not a Unix time"},
		{"millisecond timestamp", secret, headers(ts+"000", sign(secret, ts+"000", body)), body, "not a Unix time"},
		{"leading zeros", secret, headers("0"+ts, sign(secret, "0"+ts, body)), body, ""},
		{"v1 scheme", secret, headers(ts, "v1="+good[3:]), body, "not a v0 signature"},
		{"no scheme", secret, headers(ts, good[3:]), body, "not a v0 signature"},
		{"not hex", secret, headers(ts, "v0="+strings.Repeat("z", 64)), body, "not a v0 signature"},
		{"short", secret, headers(ts, good[:40]), body, "not a v0 signature"},
		{"long", secret, headers(ts, good+"00"), body, "not a v0 signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.secret, tc.header, tc.body, now)
			if tc.message == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantKind(t, err, hermes.Unauthorized, tc.message)
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), good[3:]) {
				t.Fatalf("error echoes a secret or the signature: %v", err)
			}
		})
	}
}

func TestParseURLVerification(t *testing.T) {
	env, err := ParseEnvelope(fixture(t, "url_verification.json"))
	if err != nil {
		t.Fatal(err)
	}
	if env.Type != URLVerification || env.Challenge != "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" || env.Event != nil {
		t.Fatalf("got %+v", env)
	}
}

func parseEvent(t *testing.T, name string) (*Envelope, *Event) {
	t.Helper()
	env, err := ParseEnvelope(fixture(t, name))
	if err != nil {
		t.Fatal(err)
	}
	if env.Type != EventCallback || env.Event == nil || env.TeamID != "T0123ABCD" || env.APIAppID != "A0HERMES01" {
		t.Fatalf("got %+v", env)
	}
	return env, env.Event
}

func TestParseChannelMessage(t *testing.T) {
	env, e := parseEvent(t, "message_channels.json")
	if env.EventID != "Ev08F3K2L1M0" || env.EventTime != 1741101611 || env.Challenge != "" {
		t.Fatalf("envelope %+v", env)
	}
	want := Event{
		Type: "message", Channel: "C0123", User: "U0456", TS: "1741101611.482919", ChannelType: "channel",
		Text: "Make the header blue &amp; add <https://example.com/march|the March show> to the calendar",
	}
	if *e != want {
		t.Fatalf("event %+v", *e)
	}
	if !e.IsUserMessage() {
		t.Fatal("a person's channel message is an instruction")
	}
	if e.ThreadKey() != "1741101611.482919" {
		t.Fatalf("a new message starts its own thread, got %q", e.ThreadKey())
	}
	if got := PlainText(e.Text, false); got != "Make the header blue & add https://example.com/march to the calendar" {
		t.Fatalf("PlainText = %q", got)
	}
}

func TestParseThreadReply(t *testing.T) {
	_, e := parseEvent(t, "thread_reply.json")
	if !e.IsUserMessage() || e.TS != "1741101702.001300" || e.ThreadTS != "1741101611.482919" {
		t.Fatalf("event %+v", *e)
	}
	if e.ThreadKey() != "1741101611.482919" {
		t.Fatalf("a reply belongs to its root's thread, got %q", e.ThreadKey())
	}
}

func TestParseAppMention(t *testing.T) {
	_, e := parseEvent(t, "app_mention.json")
	if e.Type != "app_mention" || e.ChannelType != "" || !e.IsUserMessage() || e.ThreadKey() != "1741102000.000100" {
		t.Fatalf("event %+v", *e)
	}
	if got := PlainText(e.Text, true); got != "add a link to #events and tell @here <soon>" {
		t.Fatalf("PlainText = %q", got)
	}
	if got := PlainText(e.Text, false); got != "@U0HERMESBOT add a link to #events and tell @here <soon>" {
		t.Fatalf("PlainText = %q", got)
	}
}

func TestNotInstructions(t *testing.T) {
	for _, tc := range []struct{ file, subtype string }{
		{"message_changed.json", "message_changed"},
		{"message_deleted.json", "message_deleted"},
		{"bot_message.json", "bot_message"},
		{"app_reply.json", ""}, // our own reply: no subtype, but a bot_id
		{"channel_join.json", "channel_join"},
		{"user_change.json", ""},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, e := parseEvent(t, tc.file)
			if e.Subtype != tc.subtype {
				t.Fatalf("subtype = %q", e.Subtype)
			}
			if e.IsUserMessage() {
				t.Fatalf("%+v taken for an instruction", *e)
			}
		})
	}
	// The edit's top level has no user or text; the new text is nested.
	_, e := parseEvent(t, "message_changed.json")
	if e.User != "" || e.Text != "" || e.TS != "1741101650.000400" {
		t.Fatalf("message_changed %+v", *e)
	}
	// A user object (user_change) does not break parsing.
	_, e = parseEvent(t, "user_change.json")
	if e.Type != "user_change" || e.User != "" {
		t.Fatalf("user_change %+v", *e)
	}
}

func TestIsUserMessage(t *testing.T) {
	base := Event{Type: "message", Channel: "D0DM1", User: "U0456", Text: "hi", TS: "1.2", ChannelType: "im"}
	for _, tc := range []struct {
		name   string
		change func(e *Event)
		want   bool
	}{
		{"direct message", func(e *Event) {}, true},
		{"thread_broadcast", func(e *Event) { e.Subtype = "thread_broadcast"; e.ThreadTS = "1.1" }, true},
		{"file_share with text", func(e *Event) { e.Subtype = "file_share" }, true},
		{"me_message", func(e *Event) { e.Subtype = "me_message" }, false},
		{"channel_topic", func(e *Event) { e.Subtype = "channel_topic" }, false},
		{"bot_id", func(e *Event) { e.BotID = "B1" }, false},
		{"no user", func(e *Event) { e.User = "" }, false},
		{"no text", func(e *Event) { e.Text = "" }, false},
		{"blank text", func(e *Event) { e.Text = " \n" }, false},
		{"reaction_added", func(e *Event) { e.Type = "reaction_added" }, false},
		{"app_mention", func(e *Event) { e.Type = "app_mention" }, true},
	} {
		e := base
		tc.change(&e)
		if got := e.IsUserMessage(); got != tc.want {
			t.Errorf("%s: IsUserMessage = %v, want %v", tc.name, got, tc.want)
		}
	}
	var nilEvent *Event
	if nilEvent.IsUserMessage() {
		t.Error("nil event is a user message")
	}
}

func TestParseOtherEnvelopes(t *testing.T) {
	env, err := ParseEnvelope(fixture(t, "app_rate_limited.json"))
	if err != nil {
		t.Fatal(err)
	}
	if env.Type != AppRateLimited || env.TeamID != "T0123ABCD" || env.Event != nil || env.EventID != "" {
		t.Fatalf("got %+v", env)
	}
	env, err = ParseEnvelope([]byte(`{"type":"something_new","event":{"type":"x"}}`))
	if err != nil || env.Type != "something_new" || env.Event != nil {
		t.Fatalf("got %+v, %v", env, err)
	}
}

func TestParseEnvelopeInvalid(t *testing.T) {
	for _, tc := range []struct{ name, body, message string }{
		{"empty", ``, "not a JSON object"},
		{"malformed", `{"type":`, "not a JSON object"},
		{"array", `[]`, "not a JSON object"},
		{"form body", docBody, "not a JSON object"},
		{"no type", `{"challenge":"abc"}`, "no type"},
		{"empty type", `{"type":""}`, "no type"},
		{"type number", `{"type":1}`, "not a JSON object"},
		{"no challenge", `{"type":"url_verification"}`, "no challenge"},
		{"challenge number", `{"type":"url_verification","challenge":5}`, "not a JSON object"},
		{"no event_id", `{"type":"event_callback","event":{"type":"message"}}`, "no event_id"},
		{"no event", `{"type":"event_callback","event_id":"Ev1"}`, "no event object"},
		{"null event", `{"type":"event_callback","event_id":"Ev1","event":null}`, "no event object"},
		{"event string", `{"type":"event_callback","event_id":"Ev1","event":"message"}`, "no event object"},
		{"event without type", `{"type":"event_callback","event_id":"Ev1","event":{"text":"hi"}}`, "no event type"},
		{"event_time string", `{"type":"event_callback","event_id":"Ev1","event_time":"now","event":{"type":"message"}}`, "not a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, err := ParseEnvelope([]byte(tc.body))
			if env != nil {
				t.Fatalf("got %+v", env)
			}
			wantKind(t, err, hermes.Invalid, tc.message)
		})
	}
}

func TestPlainText(t *testing.T) {
	for _, tc := range []struct {
		in    string
		strip bool
		want  string
	}{
		{"plain", false, "plain"},
		{"a &lt;b&gt; &amp;amp; c", false, "a <b> &amp; c"},
		{"see <https://x.example/a?b=1&amp;c=2>", false, "see https://x.example/a?b=1&c=2"},
		{"see <https://x.example|x.example>", false, "see https://x.example"},
		{"mail <mailto:scott@example.com|scott@example.com>", false, "mail scott@example.com"},
		{"hi <@U0456>", false, "hi @U0456"},
		{"hi <@U0456|scott>", false, "hi @U0456"},
		{"in <#C0123|general> and <#C0124>", false, "in #general and #C0124"},
		{"<!channel> <!everyone> <!subteam^S012|@designers> <!date^1392734382^{date}|Feb 18, 2014>", false, "@channel @everyone @designers Feb 18, 2014"},
		{"<@U0HERMESBOT> do it", true, "do it"},
		{"  <@U0HERMESBOT>: do it", true, "do it"},
		{"<@U0HERMESBOT|hermes>, do it", true, "do it"},
		{"please <@U0HERMESBOT> do it", true, "please @U0HERMESBOT do it"},
		{"unclosed <https://x", false, "unclosed <https://x"},
		{"<>", false, ""},
	} {
		if got := PlainText(tc.in, tc.strip); got != tc.want {
			t.Errorf("PlainText(%q, %v) = %q, want %q", tc.in, tc.strip, got, tc.want)
		}
	}
}

func TestRetryInfo(t *testing.T) {
	for _, tc := range []struct {
		num, reason string
		wantNum     int
	}{
		{"", "", 0},
		{"1", "http_timeout", 1},
		{"3", "http_error", 3},
		{"x", "http_timeout", 0},
		{"-2", "", 0},
	} {
		h := http.Header{}
		if tc.num != "" {
			h.Set(RetryNumHeader, tc.num)
		}
		if tc.reason != "" {
			h.Set(RetryReasonHeader, tc.reason)
		}
		n, reason := RetryInfo(h)
		if n != tc.wantNum || reason != tc.reason {
			t.Errorf("RetryInfo(%q, %q) = %d, %q", tc.num, tc.reason, n, reason)
		}
	}
	// Canonical header handling: lower-case names set by a proxy still count.
	h := http.Header{}
	h.Set("x-slack-retry-num", "2")
	if n, _ := RetryInfo(h); n != 2 {
		t.Errorf("RetryInfo = %d", n)
	}
}

func FuzzParseEnvelope(f *testing.F) {
	entries, err := os.ReadDir("testdata")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		f.Add(fixture(f, e.Name()))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		env, err := ParseEnvelope(body)
		if (env == nil) == (err == nil) {
			t.Fatalf("ParseEnvelope returned %v and %v", env, err)
		}
		if err != nil {
			if hermes.ErrorKind(err) != hermes.Invalid {
				t.Fatalf("kind %v: %v", hermes.ErrorKind(err), err)
			}
			return
		}
		if env.Type == EventCallback && (env.Event == nil || env.EventID == "") {
			t.Fatalf("incomplete event_callback %+v", env)
		}
		if env.Event != nil {
			_ = env.Event.IsUserMessage()
			_ = env.Event.ThreadKey()
			_ = PlainText(env.Event.Text, true)
		}
		_ = Verify("secret", http.Header{TimestampHeader: {"1"}, SignatureHeader: {string(body)}}, body, time.Unix(1, 0))
	})
}
