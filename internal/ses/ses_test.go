package ses

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/webordinary/hermes"
)

const (
	fixtureMessageID = "o3vrnil0e2ic28trm7dfhrc2v0cnbeccl4nbp0g1"
	fixtureTopic     = "arn:aws:sns:us-east-1:123456789012:hermes-inbound-email"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mutate decodes the bare fixture, lets f change it and encodes it again.
func mutate(t *testing.T, f func(n map[string]any)) []byte {
	t.Helper()
	var n map[string]any
	if err := json.Unmarshal(fixture(t, "bare_utf8.json"), &n); err != nil {
		t.Fatal(err)
	}
	f(n)
	b, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func obj(n map[string]any, key string) map[string]any { return n[key].(map[string]any) }

// wrap puts an SES notification into an SNS envelope.
func wrap(t *testing.T, ses []byte) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]string{
		"Type": "Notification", "MessageId": "0b6d3a9e-7c1f-4e2b-9a8d-5f3c2e1b0a97",
		"TopicArn": fixtureTopic, "Message": string(ses), "Timestamp": "2025-03-04T15:20:11.912Z",
		"SignatureVersion": "1", "Signature": "c2ln", "SigningCertURL": "https://sns.us-east-1.amazonaws.com/x.pem",
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t *testing.T, body []byte) *Notification {
	t.Helper()
	n, err := Parse(body)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return n
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

func TestParseSNSUTF8(t *testing.T) {
	n := mustParse(t, fixture(t, "sns_utf8.json"))
	want := &Notification{
		MessageID:   fixtureMessageID,
		Source:      "scott@example.com",
		Destination: []string{"edit@amelia.example.com", "cc-someone@example.org"},
		Recipients:  []string{"edit@amelia.example.com"},
		Subject:     "Make the header blue",
		Timestamp:   time.Date(2025, 3, 4, 15, 20, 11, 482e6, time.UTC),
		Verdicts:    Verdicts{Spam: Pass, Virus: Pass, SPF: Pass, DKIM: Pass, DMARC: Pass},
		Raw:         fixture(t, "message.eml"),
		TopicArn:    fixtureTopic,
	}
	if !reflect.DeepEqual(n, want) {
		t.Fatalf("got  %+v\nwant %+v", n, want)
	}
	if !bytes.Contains(n.Raw, []byte("Café ☕\r\n")) || !bytes.HasPrefix(n.Raw, []byte("Return-Path: <scott@example.com>\r\n")) {
		t.Fatalf("raw message not preserved: %q", n.Raw)
	}
	if err := n.Verdicts.Check(DefaultPolicy()); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

func TestParseSNSBase64KeepsBytes(t *testing.T) {
	n := mustParse(t, fixture(t, "sns_base64.json"))
	want := fixture(t, "sns_base64.eml")
	if !bytes.Equal(n.Raw, want) {
		t.Fatalf("raw = %q, want %q", n.Raw, want)
	}
	if !bytes.Contains(n.Raw, []byte("Caf\xe9")) { // ISO-8859-1, not valid UTF-8: only base64 keeps it
		t.Fatalf("8-bit byte lost: %q", n.Raw)
	}
	if n.MessageID != fixtureMessageID || n.S3 != nil {
		t.Fatalf("got %+v", n)
	}
}

func TestParseBase64WithLineBreaks(t *testing.T) {
	raw := bytes.Repeat([]byte("0123456789abcdef"), 40)
	enc := base64.StdEncoding.EncodeToString(raw)
	var folded strings.Builder
	for i := 0; i < len(enc); i += 76 {
		folded.WriteString(enc[i:min(i+76, len(enc))])
		folded.WriteString("\r\n")
	}
	body := mutate(t, func(n map[string]any) {
		obj(obj(n, "receipt"), "action")["encoding"] = "BASE64"
		n["content"] = folded.String()
	})
	if n := mustParse(t, body); !bytes.Equal(n.Raw, raw) {
		t.Fatalf("raw = %q", n.Raw)
	}
}

func TestParseBareEqualsWrapped(t *testing.T) {
	bare := mustParse(t, fixture(t, "bare_utf8.json"))
	wrapped := mustParse(t, fixture(t, "sns_utf8.json"))
	if !reflect.DeepEqual(bare, wrapped) {
		t.Fatalf("bare %+v\nwrapped %+v", bare, wrapped)
	}
	// The bare form learns the topic from receipt.action.topicArn.
	if bare.TopicArn != fixtureTopic {
		t.Fatalf("TopicArn = %q", bare.TopicArn)
	}
}

func TestParseS3Action(t *testing.T) {
	n := mustParse(t, fixture(t, "sns_s3.json"))
	if n.Raw != nil {
		t.Fatalf("Raw = %q, want nil", n.Raw)
	}
	want := &S3Location{Bucket: "amelia-inbound-mail", Key: "inbound/" + fixtureMessageID}
	if !reflect.DeepEqual(n.S3, want) {
		t.Fatalf("S3 = %+v, want %+v", n.S3, want)
	}
	if n.MessageID != fixtureMessageID || n.Verdicts.DMARC != Pass {
		t.Fatalf("got %+v", n)
	}

	for _, field := range []string{"bucketName", "objectKey"} {
		body := mutate(t, func(n map[string]any) {
			obj(n, "receipt")["action"] = map[string]any{"type": "S3", "bucketName": "b", "objectKey": "k"}
			delete(obj(obj(n, "receipt"), "action"), field)
			delete(n, "content")
		})
		_, err := Parse(body)
		wantKind(t, err, hermes.Invalid, "bucketName or objectKey")
	}
}

func TestParseIgnored(t *testing.T) {
	for _, tc := range []struct {
		file, typ, subscribe string
	}{
		{"subscription_confirmation.json", "SubscriptionConfirmation", "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"},
		{"unsubscribe_confirmation.json", "UnsubscribeConfirmation", "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"},
		{"sns_setup_notification.json", "AmazonSnsSubscriptionSucceeded", ""},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			n, err := Parse(fixture(t, tc.file))
			if n != nil || !IsIgnored(err) || !errors.Is(err, ErrIgnored) {
				t.Fatalf("got %+v, %v; want an ignored error", n, err)
			}
			wantKind(t, err, hermes.Unprocessable, tc.typ)
			var ig *Ignored
			if !errors.As(err, &ig) {
				t.Fatal("no *Ignored in the chain")
			}
			if ig.Type != tc.typ || ig.TopicArn != fixtureTopic || !strings.HasPrefix(ig.SubscribeURL, tc.subscribe) {
				t.Fatalf("Ignored = %+v", ig)
			}
		})
	}

	// Other SES notification types, bare or wrapped.
	bounce := []byte(`{"notificationType":"Bounce","bounce":{"bounceType":"Permanent"},"mail":{"messageId":"x"}}`)
	for _, body := range [][]byte{bounce, wrap(t, bounce)} {
		_, err := Parse(body)
		if !IsIgnored(err) {
			t.Fatalf("Bounce: %v, want ignored", err)
		}
	}
	// A hostile type name is not echoed.
	_, err := Parse([]byte(`{"notificationType":"<script>alert(1)</script>"}`))
	if !IsIgnored(err) || strings.Contains(err.Error(), "script") {
		t.Fatalf("got %v", err)
	}
}

func TestParseInvalid(t *testing.T) {
	valid := string(fixture(t, "bare_utf8.json"))
	for _, tc := range []struct {
		name, body, contains string
	}{
		{"empty", ``, "not a JSON object"},
		{"malformed", `{"Type":"Notification",`, "not a JSON object"},
		{"array", `[1,2]`, "not a JSON object"},
		{"null", `null`, "not a JSON object"},
		{"string", `"hello"`, "not a JSON object"},
		{"trailing garbage", valid + `x`, "not a JSON object"},
		{"neither", `{"hello":"world"}`, "no Type or notificationType"},
		{"unknown SNS type", `{"Type":"Nonsense","Message":"{}"}`, "unknown SNS message type (Nonsense)"},
		{"SNS type not a string", `{"Type":7,"Message":"{}"}`, "Type is not a string"},
		{"no Message", `{"Type":"Notification"}`, "no Message"},
		{"Message object", `{"Type":"Notification","Message":{"notificationType":"Received"}}`, "Message is not a string"},
		{"Message number", `{"Type":"Notification","Message":42}`, "Message is not a string"},
		{"Message null", `{"Type":"Notification","Message":null}`, "Message is not a string"},
		{"Message not JSON", `{"Type":"Notification","Message":"Hello, world"}`, "notificationType"},
		{"Message JSON array", `{"Type":"Notification","Message":"[]"}`, "notificationType"},
		{"notificationType number", `{"notificationType":1}`, "notificationType"},
		{"no mail", `{"notificationType":"Received","receipt":{},"content":"x"}`, "no mail object"},
		{"no receipt", `{"notificationType":"Received","mail":{"messageId":"abc"},"content":"x"}`, "no receipt object"},
		{"no content, no S3", `{"notificationType":"Received","mail":{"messageId":"abc"},"receipt":{"action":{"type":"Lambda"}}}`, "no content and no S3 location (action type Lambda)"},
		{"empty content", `{"notificationType":"Received","mail":{"messageId":"abc"},"receipt":{"action":{"type":"SNS"}},"content":""}`, "no content"},
		{"mail wrong type", `{"notificationType":"Received","mail":"abc","receipt":{}}`, "wrong type"},
		{"destination wrong type", `{"notificationType":"Received","mail":{"messageId":"abc","destination":"a@b.c"},"receipt":{},"content":"x"}`, "wrong type"},
		{"verdict wrong type", `{"notificationType":"Received","mail":{"messageId":"abc"},"receipt":{"spfVerdict":"PASS"},"content":"x"}`, "wrong type"},
		{"content wrong type", `{"notificationType":"Received","mail":{"messageId":"abc"},"receipt":{},"content":12}`, "wrong type"},
		{"bad timestamp", `{"notificationType":"Received","mail":{"messageId":"abc","timestamp":"yesterday"},"receipt":{},"content":"x"}`, "mail.timestamp"},
		{"unknown encoding", `{"notificationType":"Received","mail":{"messageId":"abc"},"receipt":{"action":{"type":"SNS","encoding":"UTF16"}},"content":"x"}`, "unknown content encoding (UTF16)"},
		{"base64 garbage", `{"notificationType":"Received","mail":{"messageId":"abc"},"receipt":{"action":{"type":"SNS","encoding":"BASE64"}},"content":"not*base64!"}`, "not valid base64"},
		{"base64 bad padding", `{"notificationType":"Received","mail":{"messageId":"abc"},"receipt":{"action":{"type":"SNS","encoding":"BASE64"}},"content":"QUJD="}`, "not valid base64"},
		{"base64 only whitespace", `{"notificationType":"Received","mail":{"messageId":"abc"},"receipt":{"action":{"type":"SNS","encoding":"BASE64"}},"content":"\r\n"}`, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := Parse([]byte(tc.body))
			if n != nil {
				t.Fatalf("got %+v", n)
			}
			wantKind(t, err, hermes.Invalid, tc.contains)
		})
	}
}

func TestParseMessageID(t *testing.T) {
	for _, tc := range []struct {
		name    string
		id      any
		message string
	}{
		{"missing", nil, "no mail.messageId"},
		{"empty", "", "no mail.messageId"},
		{"spaces", "abc def", "not a valid SES message id"},
		{"newline", "abc\ndef", "not a valid SES message id"},
		{"too long", strings.Repeat("a", 129), "not a valid SES message id"},
		{"path", "../../etc/passwd", "not a valid SES message id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := mutate(t, func(n map[string]any) {
				if tc.id == nil {
					delete(obj(n, "mail"), "messageId")
				} else {
					obj(n, "mail")["messageId"] = tc.id
				}
			})
			_, err := Parse(body)
			wantKind(t, err, hermes.Invalid, tc.message)
			// The SNS-wrapped form says the same.
			_, err = Parse(wrap(t, body))
			wantKind(t, err, hermes.Invalid, tc.message)
		})
	}
}

func TestParseToleratesUnknownAndMissingOptionalFields(t *testing.T) {
	body := mutate(t, func(n map[string]any) {
		n["somethingNew"] = map[string]any{"x": []any{1, 2}}
		delete(obj(n, "mail"), "timestamp")
		delete(obj(n, "mail"), "commonHeaders")
		delete(obj(n, "receipt"), "dkimVerdict")
		obj(obj(n, "receipt"), "action")["encoding"] = "utf8"
	})
	n := mustParse(t, body)
	if !n.Timestamp.IsZero() || n.Subject != "" || n.Verdicts.DKIM != "" || n.Raw == nil {
		t.Fatalf("got %+v", n)
	}
	// A missing verdict is not a pass.
	wantKind(t, n.Verdicts.Check(DefaultPolicy()), hermes.Unauthorized, "DKIM missing")
}

func TestFailingVerdictsFixture(t *testing.T) {
	n := mustParse(t, fixture(t, "sns_failing_verdicts.json"))
	want := Verdicts{Spam: Fail, Virus: Pass, SPF: Fail, DKIM: Gray, DMARC: Fail, DMARCPolicy: "reject"}
	if n.Verdicts != want {
		t.Fatalf("verdicts = %+v", n.Verdicts)
	}
	// Spam is rejected whatever the policy.
	wantKind(t, n.Verdicts.Check(DefaultPolicy()), hermes.Forbidden, "spam")
	wantKind(t, n.Verdicts.Check(Policy{}), hermes.Forbidden, "spam")
}

func TestParseEachFailingVerdict(t *testing.T) {
	for _, tc := range []struct {
		field  string
		status string
		kind   hermes.Kind
		msg    string
	}{
		{"spamVerdict", Fail, hermes.Forbidden, "spam"},
		{"virusVerdict", Fail, hermes.Forbidden, "virus"},
		{"spfVerdict", Fail, hermes.Unauthorized, "SPF FAIL"},
		{"dkimVerdict", Fail, hermes.Unauthorized, "DKIM FAIL"},
		{"dmarcVerdict", Fail, hermes.Unauthorized, "DMARC FAIL"},
		{"spfVerdict", Gray, hermes.Unauthorized, "SPF GRAY"},
		{"dkimVerdict", ProcessingFailed, hermes.Unauthorized, "DKIM PROCESSING_FAILED"},
		{"dmarcVerdict", Disabled, hermes.Unauthorized, "DMARC DISABLED"},
	} {
		t.Run(tc.field+"="+tc.status, func(t *testing.T) {
			n := mustParse(t, mutate(t, func(n map[string]any) {
				obj(n, "receipt")[tc.field] = map[string]any{"status": tc.status}
			}))
			wantKind(t, n.Verdicts.Check(DefaultPolicy()), tc.kind, tc.msg)
		})
	}
}

func TestCheckPolicy(t *testing.T) {
	allPass := Verdicts{Spam: Pass, Virus: Pass, SPF: Pass, DKIM: Pass, DMARC: Pass}
	with := func(f func(v *Verdicts)) Verdicts { v := allPass; f(&v); return v }
	strict := DefaultPolicy()
	if strict != (Policy{true, true, true}) {
		t.Fatalf("DefaultPolicy = %+v", strict)
	}
	for _, tc := range []struct {
		name string
		v    Verdicts
		p    Policy
		kind hermes.Kind // Internal: no error
		msg  string
	}{
		{"all pass strict", allPass, strict, hermes.Internal, ""},
		{"all pass lenient", allPass, Policy{}, hermes.Internal, ""},
		{"spam gray passes", with(func(v *Verdicts) { v.Spam = Gray }), strict, hermes.Internal, ""},
		{"virus processing failed passes", with(func(v *Verdicts) { v.Virus = ProcessingFailed }), strict, hermes.Internal, ""},
		{"spam and virus disabled pass", with(func(v *Verdicts) { v.Spam, v.Virus = Disabled, Disabled }), strict, hermes.Internal, ""},
		{"virus fail lenient", with(func(v *Verdicts) { v.Virus = Fail }), Policy{}, hermes.Forbidden, "virus"},
		{"spf fail not required", with(func(v *Verdicts) { v.SPF = Fail }), Policy{RequireDKIM: true, RequireDMARC: true}, hermes.Internal, ""},
		{"spf fail required", with(func(v *Verdicts) { v.SPF = Fail }), Policy{RequireSPF: true}, hermes.Unauthorized, "SPF FAIL"},
		{"dkim disabled not required", with(func(v *Verdicts) { v.DKIM = Disabled }), Policy{RequireSPF: true, RequireDMARC: true}, hermes.Internal, ""},
		{"dkim disabled required", with(func(v *Verdicts) { v.DKIM = Disabled }), Policy{RequireDKIM: true}, hermes.Unauthorized, "DKIM DISABLED"},
		{"dmarc gray required", with(func(v *Verdicts) { v.DMARC = Gray }), Policy{RequireDMARC: true}, hermes.Unauthorized, "DMARC GRAY"},
		{"dmarc gray not required", with(func(v *Verdicts) { v.DMARC = Gray }), Policy{RequireSPF: true, RequireDKIM: true}, hermes.Internal, ""},
		{"lowercase pass is not PASS", with(func(v *Verdicts) { v.SPF = "pass" }), strict, hermes.Unauthorized, "SPF unrecognised"},
		{"several failures listed", with(func(v *Verdicts) { v.SPF, v.DMARC = Gray, Fail }), strict, hermes.Unauthorized, "(SPF GRAY, DMARC FAIL)"},
		{"only required failures listed", with(func(v *Verdicts) { v.SPF, v.DMARC = Gray, Fail }), Policy{RequireDMARC: true}, hermes.Unauthorized, "(DMARC FAIL)"},
		{"empty verdicts strict", Verdicts{}, strict, hermes.Unauthorized, "SPF missing, DKIM missing, DMARC missing"},
		{"empty verdicts lenient", Verdicts{}, Policy{}, hermes.Internal, ""},
		{"spam wins over auth", Verdicts{Spam: Fail}, strict, hermes.Forbidden, "spam"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.v.Check(tc.p)
			if tc.kind == hermes.Internal {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			wantKind(t, err, tc.kind, tc.msg)
		})
	}
}

func TestCheckDoesNotEchoArbitraryStatus(t *testing.T) {
	err := Verdicts{SPF: "<img src=x>"}.Check(DefaultPolicy())
	if err == nil || strings.Contains(err.Error(), "img") {
		t.Fatalf("got %v", err)
	}
}

func TestParseHugeInputIsLinear(t *testing.T) {
	if testing.Short() {
		t.Skip("large input")
	}
	parse := func(size int) time.Duration {
		raw := bytes.Repeat([]byte("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n"), size/58+1)[:size]
		body := wrap(t, mutate(t, func(n map[string]any) {
			obj(obj(n, "receipt"), "action")["encoding"] = "BASE64"
			n["content"] = base64.StdEncoding.EncodeToString(raw)
		}))
		start := time.Now()
		n := mustParse(t, body)
		d := time.Since(start)
		if !bytes.Equal(n.Raw, raw) {
			t.Fatalf("raw of %d bytes not preserved", size)
		}
		return d
	}
	parse(256 << 10) // warm up
	small, big := parse(256<<10), parse(4<<20)
	// 16× the input must not take vastly more than 16× the time; the bound
	// is loose for noisy machines (a quadratic parse would be ~256×).
	if big > 80*small+500*time.Millisecond {
		t.Fatalf("256 KiB took %v, 4 MiB took %v", small, big)
	}
}

func TestParseDeepNesting(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 100000) + `1` + strings.Repeat(`}`, 100000)
	for _, body := range []string{deep, `{"notificationType":"Received","mail":` + deep + `}`, strings.Repeat("[", 1<<20)} {
		if _, err := Parse([]byte(body)); hermes.ErrorKind(err) != hermes.Invalid {
			t.Fatalf("got %v, want Invalid", err)
		}
	}
}

func FuzzParse(f *testing.F) {
	entries, err := os.ReadDir("testdata")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") {
			f.Add(fixture(f, e.Name()))
		}
	}
	f.Add([]byte(`{"Type":"Notification","Message":"{\"notificationType\":\"Received\"}"}`))
	f.Add([]byte(`{"notificationType":"Received","mail":{"messageId":"a"},"receipt":{"action":{"type":"SNS","encoding":"BASE64"}},"content":"QUJD"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := Parse(body)
		if (n == nil) == (err == nil) {
			t.Fatalf("Parse returned %v and %v", n, err)
		}
		if err != nil {
			if k := hermes.ErrorKind(err); k != hermes.Invalid && !(k == hermes.Unprocessable && IsIgnored(err)) {
				t.Fatalf("unexpected error kind %v: %v", k, err)
			}
			return
		}
		if n.MessageID == "" || (n.Raw == nil && n.S3 == nil) {
			t.Fatalf("incomplete notification %+v", n)
		}
		_ = n.Verdicts.Check(DefaultPolicy())
		_ = n.Verdicts.Check(Policy{})
	})
}
