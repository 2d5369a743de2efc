package httpapi_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime/quotedprintable"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/httpapi"
)

// End-to-end tests of the inbound channels through the real HTTP server:
// email (raw MIME and SES/SNS notifications), Twilio SMS and Slack events,
// in the formats the platforms send, signed as they sign them.

// Secrets of the test channels.
const (
	twilioToken   = "twilio-test-auth-token-0123456789"
	twilioAccount = "AC0123456789abcdef0123456789abcdef"
	slackSecret   = "8f742231b10e8888abcd99yyyzzz85a5"
	publicURL     = "https://hermes.example.com" // as configured; Twilio signs this URL, not the test server's
	ameliaNumber  = "+15550100001"
	scottPhone    = "+15550100002"
)

// allChannels serves every inbound channel.
func allChannels(in *httpapi.Inbound) {
	in.TwilioAuthToken, in.TwilioAccountSID, in.SlackSecret, in.PublicURL = twilioToken, twilioAccount, slackSecret, publicURL
}

// enableChannels gives amelia's project its SMS number and Slack channel,
// and scott his Slack user id, through the admin API.
func (a *testAPI) enableChannels(t *testing.T) {
	t.Helper()
	var p map[string]any
	a.do(t, request{Method: "GET", Path: "/api/clients/amelia/projects/site", Key: adminKey}).want(t, http.StatusOK).JSON(t, &p)
	p["smsNumbers"], p["slackChannels"] = []string{ameliaNumber}, []string{"C0123"}
	a.do(t, request{Method: "PUT", Path: "/api/clients/amelia/projects/site", Key: adminKey, Body: p}).want(t, http.StatusOK)
	var u map[string]any
	a.do(t, request{Method: "GET", Path: "/api/clients/amelia/users/scott", Key: adminKey}).want(t, http.StatusOK).JSON(t, &u)
	u["chatIds"] = []string{"U0456"}
	a.do(t, request{Method: "PUT", Path: "/api/clients/amelia/users/scott", Key: adminKey, Body: u}).want(t, http.StatusOK)
}

// outcome is one element of the 202 body of POST /inbound/email.
type outcome struct {
	Status      string `json:"status"`
	Reason      string `json:"reason"`
	JobID       string `json:"jobId"`
	ThreadID    string `json:"threadId"`
	SessionID   string `json:"sessionId"`
	ContainerID string `json:"containerId"`
}

// ---- email

// email is an inbound email as a mail client writes it.
type email struct {
	From, To, Cc, Subject            string
	MessageID, InReplyTo, References string // References: ids separated by spaces
	Date                             time.Time
	Extra                            []string // more header lines
	Body                             string   // the text/plain part
	HTML                             string   // when set, the message is multipart/alternative
}

func qp(s string) string {
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.String()
}

// raw renders the message with CRLF line ends, quoted-printable bodies and
// a folded References header, as Gmail sends them.
func (e email) raw() []byte {
	var b strings.Builder
	h := func(k, v string) {
		if v != "" {
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	date := e.Date
	if date.IsZero() {
		date = testStart
	}
	h("MIME-Version", "1.0")
	h("References", strings.Join(strings.Fields(e.References), "\r\n "))
	h("In-Reply-To", e.InReplyTo)
	h("From", e.From)
	h("Date", date.Format("Mon, 2 Jan 2006 15:04:05 -0700"))
	h("Message-ID", e.MessageID)
	h("Subject", e.Subject)
	h("To", e.To)
	h("Cc", e.Cc)
	for _, x := range e.Extra {
		b.WriteString(x + "\r\n")
	}
	if e.HTML == "" {
		h("Content-Type", `text/plain; charset="UTF-8"`)
		h("Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n" + qp(e.Body))
		return []byte(b.String())
	}
	const boundary = "000000000000a1b2c3061b9f4e21"
	h("Content-Type", `multipart/alternative; boundary="`+boundary+`"`)
	b.WriteString("\r\n--" + boundary + "\r\nContent-Type: text/plain; charset=\"UTF-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	b.WriteString(qp(e.Body) + "\r\n")
	b.WriteString("--" + boundary + "\r\nContent-Type: text/html; charset=\"UTF-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	b.WriteString(qp(e.HTML) + "\r\n--" + boundary + "--\r\n")
	return []byte(b.String())
}

// postEmail sends a raw message to POST /inbound/email.
func (a *testAPI) postEmail(t *testing.T, key string, raw []byte) *response {
	t.Helper()
	return a.do(t, request{Method: "POST", Path: "/inbound/email", Key: key, Body: raw, Header: map[string]string{"Content-Type": "message/rfc822"}})
}

// emailOutcome posts a message and returns its single outcome.
func (a *testAPI) emailOutcome(t *testing.T, raw []byte) outcome {
	t.Helper()
	return a.outcomeOf(t, a.postEmail(t, adminKey, raw))
}

func (a *testAPI) outcomeOf(t *testing.T, r *response) outcome {
	t.Helper()
	var res struct{ Outcomes []outcome }
	r.want(t, http.StatusAccepted).JSON(t, &res)
	if len(res.Outcomes) != 1 {
		t.Fatalf("outcomes %+v, want one", res.Outcomes)
	}
	return res.Outcomes[0]
}

// quote quotes text as a reply quotes it.
func quote(text string) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	for i, l := range lines {
		if l == "" {
			lines[i] = ">"
		} else {
			lines[i] = "> " + l
		}
	}
	return strings.Join(lines, "\n")
}

// gmailBody is a reply's text: the new text, then Gmail's quote of the
// parent.
func gmailBody(newText string, parentDate time.Time, parentFrom, parentText string) string {
	return newText + "\n\nOn " + parentDate.Format("Mon, Jan 2, 2006 at 3:04 PM") + " " + parentFrom + " wrote:\n\n" + quote(parentText) + "\n"
}

// latestAck returns the newest outbox item (tests advance the clock between
// messages: items of one instant have no order).
func (a *testAPI) latestAck(t *testing.T) *hermes.OutboxItem {
	t.Helper()
	items := a.outbox(t)
	if len(items) == 0 {
		t.Fatal("the outbox is empty")
	}
	return items[0]
}

// ids splits a References or In-Reply-To value into bracketed ids.
func ids(v string) []string { return strings.Fields(v) }

func TestInboundEmailConversation(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, withInbound(func(*httpapi.Inbound) {}))

	// A new request, as Gmail sends it (multipart/alternative, quoted-printable).
	first := email{
		From: "Scott Example <Scott@Example.com>", To: "Amelia Stamps <edit@amelia.example.com>", Cc: "Amelia <amelia@example.com>",
		Subject: "Make the header blue", MessageID: "<CAJ8x9Yt2kQ7m+vW3nJdV0u5s1=Xq4rZ_pLh8Ty6Ns0Wq3Rv@mail.gmail.com>",
		Body: "Hi,\n\nPlease make the header blue and put the café photo on the home page.\n",
		HTML: `<div dir="ltr">Hi,<div><br></div><div>Please make the header blue and put the café photo on the home page.</div></div>`,
		Extra: []string{"X-Gm-Features: AbW1kva3nQx9rT2mY7pL0sK4dJ8fH1gC6vB5nM3zX0qW9eR2tY7uI4oP1aS",
			"Authentication-Results: mx.amelia.example.com; dkim=pass header.d=example.com; spf=pass smtp.mailfrom=scott@example.com"},
	}
	out := a.emailOutcome(t, first.raw())
	if out.Status != "queued" || !hermes.ValidTokenID(out.ThreadID) || !hermes.ValidTokenID(out.SessionID) ||
		!hermes.ValidTokenID(out.JobID) || out.ContainerID != "amelia_site_scott" {
		t.Fatalf("first email: %+v", out)
	}
	thread, session := out.ThreadID, out.SessionID
	j := a.oneJob(t, scottInput)
	wantJob(t, j, accepted{JobID: out.JobID, ThreadID: thread, SessionID: session}, "Hi,\n\nPlease make the header blue and put the café photo on the home page.")
	if j.Reply.Channel != "email" || j.Reply.To != "scott@example.com" || j.Reply.From != "edit@amelia.example.com" ||
		j.Reply.MessageID != strings.Trim(first.MessageID, "<>") || j.Reply.Subject != "Make the header blue" {
		t.Errorf("job reply context: %+v", j.Reply)
	}

	ack := a.latestAck(t)
	var tok string
	if _, after, ok := strings.Cut(ack.Subject, "[ref:"); ok {
		tok = strings.TrimSuffix(after, "]")
	}
	if len(tok) != 8 || ack.Subject != "Re: Make the header blue [ref:"+tok+"]" {
		t.Fatalf("ack subject %q", ack.Subject)
	}
	if ack.Kind != "ack" || ack.Channel != "email" || ack.To != "scott@example.com" || ack.From != "edit@amelia.example.com" ||
		ack.ThreadID != thread || ack.SessionID != session || ack.ClientID != "amelia" || ack.Status != hermes.OutboxPending {
		t.Errorf("ack: %+v", ack)
	}
	if mid := ack.Headers["Message-ID"]; !strings.HasPrefix(mid, "<hermes."+thread+".") || !strings.HasSuffix(mid, "@amelia.example.com>") {
		t.Errorf("ack Message-ID %q does not carry the thread", mid)
	}
	if ack.Headers["In-Reply-To"] != first.MessageID || ack.Headers["References"] != first.MessageID {
		t.Errorf("ack threading headers: %v", ack.Headers)
	}
	for _, want := range []string{"Message-ID: " + ack.Headers["Message-ID"], "In-Reply-To: " + first.MessageID,
		"X-Hermes-Thread: " + thread, "Auto-Submitted: auto-replied", "multipart/alternative"} {
		if !bytes.Contains(ack.Raw, []byte(want)) {
			t.Errorf("the composed ack lacks %q", want)
		}
	}
	if !strings.Contains(ack.Text, "[ref:"+tok+"]") {
		t.Errorf("ack text lacks the token: %q", ack.Text)
	}

	// Ten replies in a row, each quoting the previous message: odd ones answer
	// Hermes's latest acknowledgement, even ones follow up on Scott's own
	// previous message. All stay on the thread and its session.
	chain := ids(ack.Headers["References"]) // the References of the message replied to, plus its id below
	parent := struct {
		id, subject, from, text string
		date                    time.Time
		refs                    []string
	}{ack.Headers["Message-ID"], ack.Subject, "Amelia Stamps <edit@amelia.example.com>", ack.Text, a.Clock.Now(), chain}
	var lastMsg email
	for i := 1; i <= 10; i++ {
		a.Clock.Advance(2 * time.Minute)
		newText := fmt.Sprintf("Change number %d: make heading %d a little bigger.", i, i)
		msg := email{
			From: "Scott Example <scott@example.com>", To: "Amelia Stamps <edit@amelia.example.com>",
			Subject: "Re: " + strings.TrimPrefix(parent.subject, "Re: "), Date: a.Clock.Now(),
			MessageID: fmt.Sprintf("<CAJ8x9Yt%02dkQ7m+reply=%d@mail.gmail.com>", i, i),
			InReplyTo: parent.id, References: strings.Join(append(slices.Clone(parent.refs), parent.id), " "),
			Body: gmailBody(newText, parent.date, parent.from, parent.text),
		}
		out := a.emailOutcome(t, msg.raw())
		if out.Status != "queued" || out.ThreadID != thread || out.SessionID != session {
			t.Fatalf("reply %d: %+v; want thread %s session %s", i, out, thread, session)
		}
		j := a.oneJob(t, scottInput)
		if j.Instruction != newText || j.ThreadID != thread || j.SessionID != session || j.Branch != "thread-"+thread {
			t.Errorf("reply %d: job %+v, want instruction %q only", i, j, newText)
		}
		ack := a.latestAck(t)
		refs := ids(ack.Headers["References"])
		if ack.ThreadID != thread || ack.Headers["In-Reply-To"] != msg.MessageID || refs[0] != first.MessageID ||
			refs[len(refs)-1] != msg.MessageID || len(refs) != min(len(ids(msg.References))+1, 21) ||
			!strings.HasPrefix(ack.Headers["Message-ID"], "<hermes."+thread+".") || ack.Subject != "Re: Make the header blue [ref:"+tok+"]" {
			t.Errorf("reply %d: ack %+v %v", i, ack.Subject, ack.Headers)
		}
		if i%2 == 1 {
			parent.id, parent.subject, parent.from, parent.text, parent.refs = msg.MessageID, msg.Subject, msg.From, msg.Body, ids(msg.References)
		} else {
			parent.id, parent.subject, parent.from, parent.text, parent.refs = ack.Headers["Message-ID"], ack.Subject, "Amelia Stamps <edit@amelia.example.com>", ack.Text, ids(ack.Headers["References"])
		}
		parent.date = a.Clock.Now()
		lastMsg = msg
	}
	if n := len(a.outbox(t)); n != 11 {
		t.Errorf("%d acknowledgements, want 11", n)
	}
	if lastMsg.MessageID == "" {
		t.Fatal("no replies sent")
	}

	// A client that drops the threading headers: only the token in the
	// subject is left, and it is enough.
	a.Clock.Advance(time.Minute)
	out = a.emailOutcome(t, email{
		From: "scott@example.com", To: "edit@amelia.example.com", Subject: "RE: Make the header blue [ref:" + strings.ToUpper(tok) + "]",
		MessageID: "<DM6PR11MB4564.namprd11.prod.outlook.com>", Date: a.Clock.Now(),
		Body: "Also please update the opening hours to 10-6.\n\n________________________________\nFrom: Amelia Stamps <edit@amelia.example.com>\nSent: Sunday, November 1, 2026 12:30 PM\nTo: Scott\nSubject: Re: Make the header blue\n\nold text\n",
	}.raw())
	if out.Status != "queued" || out.ThreadID != thread || out.SessionID != session {
		t.Fatalf("token-only reply: %+v", out)
	}
	if j := a.oneJob(t, scottInput); j.Instruction != "Also please update the opening hours to 10-6." {
		t.Errorf("token-only reply instruction %q", j.Instruction)
	}

	// The session's history holds the 12 instructions and their 12 acks.
	var hist []struct{ Direction, Kind string }
	a.do(t, request{Method: "GET", Path: "/api/sessions/" + session + "/messages", Key: ameliaKey}).want(t, http.StatusOK).JSON(t, &hist)
	in, acks := 0, 0
	for _, h := range hist {
		switch {
		case h.Direction == "in":
			in++
		case h.Kind == "ack":
			acks++
		}
	}
	if in != 12 || acks != 12 {
		t.Errorf("history: %d instructions, %d acks; want 12 each", in, acks)
	}

	// A new message without any thread hint starts another thread.
	out = a.emailOutcome(t, email{From: "scott@example.com", To: "edit@amelia.example.com", Subject: "Events page",
		MessageID: "<new-topic@mail.example.com>", Body: "Please add an events page."}.raw())
	if out.Status != "queued" || out.ThreadID == thread || out.SessionID == session {
		t.Errorf("new topic: %+v", out)
	}
}

func TestInboundEmailRedelivery(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, withInbound(func(*httpapi.Inbound) {}))
	raw := email{From: "scott@example.com", To: "edit@amelia.example.com", Subject: "Header", MessageID: "<once@mail.example.com>",
		Body: "Make the header blue."}.raw()
	if out := a.emailOutcome(t, raw); out.Status != "queued" {
		t.Fatalf("first delivery: %+v", out)
	}
	before := a.counts(t)
	for range 2 {
		if out := a.emailOutcome(t, raw); out != (outcome{Status: "duplicate"}) {
			t.Errorf("redelivery: %+v, want duplicate", out)
		}
	}
	a.unchanged(t, "redeliveries", before)
	if n := len(a.receiveJobs(t, scottInput)); n != 1 {
		t.Errorf("%d jobs, want 1", n)
	}
}

// sesNotification is an SES receipt notification (action SNS) carrying raw.
func sesNotification(messageID string, raw []byte, encoding string, verdicts map[string]string) []byte {
	v := func(name string) map[string]string {
		s, ok := verdicts[name]
		if !ok {
			s = "PASS"
		}
		return map[string]string{"status": s}
	}
	content := string(raw)
	if encoding == "BASE64" {
		content = base64.StdEncoding.EncodeToString(raw)
	}
	n := map[string]any{
		"notificationType": "Received",
		"mail": map[string]any{
			"timestamp": "2026-11-01T12:00:00.482Z", "source": "scott@example.com", "messageId": messageID,
			"destination": []string{"edit@amelia.example.com"}, "headersTruncated": false,
			"commonHeaders": map[string]any{"returnPath": "scott@example.com", "from": []string{"Scott <scott@example.com>"},
				"to": []string{"edit@amelia.example.com"}, "subject": "Make the header blue"},
		},
		"receipt": map[string]any{
			"timestamp": "2026-11-01T12:00:00.482Z", "processingTimeMillis": 418, "recipients": []string{"edit@amelia.example.com"},
			"spamVerdict": v("spam"), "virusVerdict": v("virus"), "spfVerdict": v("spf"), "dkimVerdict": v("dkim"), "dmarcVerdict": v("dmarc"),
			"action": map[string]any{"type": "SNS", "topicArn": "arn:aws:sns:us-east-1:123456789012:hermes-inbound-email", "encoding": encoding},
		},
		"content": content,
	}
	b, _ := json.Marshal(n)
	return b
}

// snsWrap wraps an SES notification in an SNS Notification envelope.
func snsWrap(ses []byte) []byte {
	b, _ := json.Marshal(map[string]any{
		"Type": "Notification", "MessageId": "5f1c4a0e-3b57-5d6a-9b7e-2f8c0c8a41d2",
		"TopicArn": "arn:aws:sns:us-east-1:123456789012:hermes-inbound-email", "Subject": "Amazon SES Email Receipt Notification",
		"Message": string(ses), "Timestamp": "2026-11-01T12:00:00.912Z", "SignatureVersion": "1", "Signature": "Wb3Ro7mV2xq0sQ8eZl4uV1pA9kF3tN6yH5cJ2dG7bX0w==",
		"SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem",
		"UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-1:123456789012:hermes-inbound-email:0b6d",
	})
	return b
}

func (a *testAPI) postSES(t *testing.T, body []byte) *response {
	t.Helper()
	return a.do(t, request{Method: "POST", Path: "/inbound/email", Key: adminKey, Body: body})
}

func TestInboundEmailSES(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, withInbound(func(*httpapi.Inbound) {}))
	mime := func(id, text string) []byte {
		return email{From: "Scott <scott@example.com>", To: "edit@amelia.example.com", Subject: "Make the header blue",
			MessageID: "<" + id + "@mail.example.com>", Body: text,
			Extra: []string{"Return-Path: <scott@example.com>", "X-SES-Spam-Verdict: PASS", "X-SES-Virus-Verdict: PASS"}}.raw()
	}
	for _, c := range []struct {
		name, text string
		body       []byte
	}{
		{"bare, base64", "Please make the header blue. Café ☕", sesNotification("o3vrnil0e2ic28trm7dfhrc2v0cnbeccl4nbp0g1", mime("ses-1", "Please make the header blue. Café ☕"), "BASE64", nil)},
		{"SNS-wrapped, base64", "And the footer green.", snsWrap(sesNotification("o3vrnil0e2ic28trm7dfhrc2v0cnbeccl4nbp0g2", mime("ses-2", "And the footer green."), "BASE64", nil))},
		{"bare, UTF-8", "And a bigger logo.", sesNotification("o3vrnil0e2ic28trm7dfhrc2v0cnbeccl4nbp0g3", mime("ses-3", "And a bigger logo."), "UTF8", nil)},
	} {
		a.Clock.Advance(time.Second)
		out := a.outcomeOf(t, a.postSES(t, c.body))
		if out.Status != "queued" {
			t.Errorf("%s: %+v", c.name, out)
			continue
		}
		if j := a.oneJob(t, scottInput); j.Instruction != c.text || j.ID != out.JobID {
			t.Errorf("%s: job %+v", c.name, j)
		}
		if ack := a.latestAck(t); ack.To != "scott@example.com" || !strings.HasPrefix(ack.Subject, "Re: Make the header blue [ref:") {
			t.Errorf("%s: ack %+v", c.name, ack)
		}
	}
	// SQS redelivers the same notification: routed once.
	before := a.counts(t)
	redelivered := snsWrap(sesNotification("o3vrnil0e2ic28trm7dfhrc2v0cnbeccl4nbp0g2", mime("ses-2", "And the footer green."), "BASE64", nil))
	if out := a.outcomeOf(t, a.postSES(t, redelivered)); out.Status != "duplicate" {
		t.Errorf("redelivered notification: %+v", out)
	}
	a.unchanged(t, "a redelivered notification", before)

	// Mail that fails the verdicts is dropped without a word.
	for name, verdicts := range map[string]map[string]string{
		"SPF fail": {"spf": "FAIL"}, "DKIM gray": {"dkim": "GRAY"}, "DMARC missing": {"dmarc": ""}, "spam": {"spam": "FAIL"}, "virus": {"virus": "FAIL"},
	} {
		body := snsWrap(sesNotification("badverdict"+strings.ReplaceAll(strings.ToLower(name), " ", ""), mime("bad-"+name[:3], "Delete everything"), "BASE64", verdicts))
		if out := a.outcomeOf(t, a.postSES(t, body)); out != (outcome{Status: "dropped", Reason: "verdict"}) {
			t.Errorf("%s: %+v", name, out)
		}
	}
	a.unchanged(t, "mail failing the SES verdicts", before)

	// Notifications without mail are acknowledged and ignored.
	sub, _ := json.Marshal(map[string]any{"Type": "SubscriptionConfirmation", "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
		"Token": "2336412f37", "TopicArn": "arn:aws:sns:us-east-1:123456789012:hermes-inbound-email",
		"Message": "You have chosen to subscribe to the topic.", "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"})
	var res struct{ Outcomes []outcome }
	a.postSES(t, sub).want(t, http.StatusAccepted).JSON(t, &res)
	if res.Outcomes == nil || len(res.Outcomes) != 0 {
		t.Errorf("subscription confirmation: %+v, want an empty list", res.Outcomes)
	}
	// Mail stored in S3 cannot be read by this build.
	var s3 map[string]any
	_ = json.Unmarshal(sesNotification("s3stored0001", mime("s3", "x"), "UTF8", nil), &s3)
	delete(s3, "content")
	s3["receipt"].(map[string]any)["action"] = map[string]any{"type": "S3", "bucketName": "hermes-mail", "objectKey": "inbound/s3stored0001"}
	a.postSES(t, mustJSON(t, s3)).want(t, http.StatusUnprocessableEntity).Problem(t)
	// Malformed notifications.
	for _, body := range []string{`{"Type":"Notification"}`, `{"notificationType":"Received"}`, `[1,2]`, `{"Type":"Notification","Message":"{}"}`} {
		a.postSES(t, []byte(body)).want(t, http.StatusBadRequest).Problem(t)
	}
	a.unchanged(t, "ignored and refused notifications", before)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestInboundEmailDropped(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, withInbound(func(*httpapi.Inbound) {}))
	// A first message, so that Hermes has sent an acknowledgement to loop back.
	a.emailOutcome(t, email{From: "scott@example.com", To: "edit@amelia.example.com", Subject: "Header",
		MessageID: "<first@mail.example.com>", Body: "Make the header blue."}.raw())
	hermesAck := a.latestAck(t)
	a.receiveJobs(t, scottInput)
	before := a.counts(t)

	base := email{From: "Scott <scott@example.com>", To: "edit@amelia.example.com", Subject: "Re: Header", Body: "Delete the home page."}
	with := func(f func(*email)) []byte {
		e := base
		e.MessageID = "<" + hermes.NewToken() + "@mail.example.com>"
		f(&e)
		return e.raw()
	}
	cases := []struct {
		name, reason string
		raw          []byte
	}{
		{"unknown sender", "unknown-sender", with(func(e *email) { e.From = "Mallory <mallory@evil.example>" })},
		{"another client's user", "unknown-sender", with(func(e *email) { e.From = "ann@other.example.com" })},
		{"unknown recipient", "unknown-recipient", with(func(e *email) { e.To = "someone@elsewhere.example" })},
		{"vacation auto-reply", "auto-auto-submitted", with(func(e *email) {
			e.Subject, e.Extra = "Out of office: Re: Header", []string{"Auto-Submitted: auto-replied (vacation)"}
		})},
		{"Exchange auto-reply", "auto-auto-reply", with(func(e *email) {
			e.Extra = []string{"X-Auto-Response-Suppress: All", "X-MS-Exchange-Inbox-Rules-Loop: scott@example.com"}
		})},
		{"mailing list", "auto-list", with(func(e *email) { e.Extra = []string{"List-Id: <news.example.com>"} })},
		{"bounce", "auto-bounce", with(func(e *email) { e.From = "MAILER-DAEMON@mx.example.com" })},
		{"Hermes's own header", "auto-hermes", with(func(e *email) { e.Extra = []string{"X-Hermes-Thread: " + hermesAck.ThreadID} })},
		{"Hermes's own acknowledgement", "auto-hermes", hermesAck.Raw},
		{"from a project address", "own-address", with(func(e *email) { e.From = "edit@amelia.example.com" })},
	}
	for _, c := range cases {
		if out := a.emailOutcome(t, c.raw); out != (outcome{Status: "dropped", Reason: c.reason}) {
			t.Errorf("%s: %+v, want dropped (%s)", c.name, out, c.reason)
		}
		a.unchanged(t, c.name, before)
	}
}

func TestInboundEmailRejected(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, withInbound(func(*httpapi.Inbound) {}))
	good := email{From: "scott@example.com", To: "edit@amelia.example.com", Subject: "Header", MessageID: "<r@mail.example.com>", Body: "Make it blue."}.raw()
	before := a.counts(t)
	raw := func(body []byte, ctype, key string) request {
		return request{Method: "POST", Path: "/inbound/email", Key: key, Body: body, Header: map[string]string{"Content-Type": ctype}}
	}
	oversize := append([]byte("From: scott@example.com\r\nTo: edit@amelia.example.com\r\nSubject: big\r\n\r\n"), bytes.Repeat([]byte("0123456789abcdef\r\n"), (10<<20)/18+1)...)
	cases := []struct {
		name   string
		req    request
		status int
	}{
		{"not an email", raw([]byte("Hello, this is not an email at all.\r\n"), "message/rfc822", adminKey), http.StatusBadRequest},
		{"no blank line after the header", raw([]byte("From: scott@example.com\r\nTo: edit@amelia.example.com\r\nSubject: x"), "message/rfc822", adminKey), http.StatusBadRequest},
		{"binary header", raw([]byte("From: scott@example.com\r\nSubject: \x00\x01\r\n\r\nbody"), "message/rfc822", adminKey), http.StatusBadRequest},
		{"empty body", raw([]byte{}, "message/rfc822", adminKey), http.StatusBadRequest},
		{"oversize", raw(oversize, "message/rfc822", adminKey), http.StatusRequestEntityTooLarge},
		{"wrong content type", raw(good, "text/html", adminKey), http.StatusUnsupportedMediaType},
		{"client key", raw(good, "message/rfc822", ameliaKey), http.StatusForbidden},
		{"no key", raw(good, "message/rfc822", ""), http.StatusUnauthorized},
		{"wrong key", raw(good, "message/rfc822", "not-a-key"), http.StatusUnauthorized},
	}
	for _, c := range cases {
		a.do(t, c.req).want(t, c.status).Problem(t)
		a.unchanged(t, c.name, before)
	}
	if len(oversize) <= 10<<20 {
		t.Fatalf("the oversize message has %d bytes", len(oversize))
	}

	// text/plain and application/octet-stream bodies are read as raw MIME.
	for i, ct := range []string{"text/plain; charset=utf-8", "application/octet-stream"} {
		e := email{From: "scott@example.com", To: "edit@amelia.example.com", Subject: "Header", MessageID: fmt.Sprintf("<ct-%d@mail.example.com>", i), Body: "Make it blue."}
		if out := a.outcomeOf(t, a.do(t, raw(e.raw(), ct, adminKey))); out.Status != "queued" {
			t.Errorf("%s: %+v", ct, out)
		}
	}

	// Without an email intake the route answers 404.
	b := newTestAPI(t, withInbound(func(in *httpapi.Inbound) { in.Email = nil }))
	b.do(t, raw(good, "message/rfc822", adminKey)).want(t, http.StatusNotFound).Problem(t)
	c := newTestAPI(t)
	c.do(t, raw(good, "message/rfc822", adminKey)).want(t, http.StatusNotFound).Problem(t)
	if n := c.allQueued(t) + b.allQueued(t); n != 0 {
		t.Errorf("%d messages queued without an intake", n)
	}
}

// ---- Twilio

// twilioSignature signs a webhook as Twilio does: base64(HMAC-SHA1(token,
// URL + each parameter name and value, names sorted)).
func twilioSignature(token, fullURL string, form url.Values) string {
	names := make([]string, 0, len(form))
	for k := range form {
		names = append(names, k)
	}
	slices.Sort(names)
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(fullURL))
	for _, k := range names {
		vs := slices.Clone(form[k])
		slices.Sort(vs)
		for _, v := range vs {
			mac.Write([]byte(k + v))
		}
	}
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// smsForm is the form Twilio posts for an inbound SMS.
func smsForm(n int, from, to, body string) url.Values {
	sid := fmt.Sprintf("SM%032x", n)
	return url.Values{
		"ToCountry": {"US"}, "ToState": {"NY"}, "SmsMessageSid": {sid}, "NumMedia": {"0"}, "ToCity": {""},
		"FromZip": {"10001"}, "SmsSid": {sid}, "FromState": {"NY"}, "SmsStatus": {"received"}, "FromCity": {"NEW YORK"},
		"Body": {body}, "FromCountry": {"US"}, "To": {to}, "ToZip": {""}, "NumSegments": {"1"}, "MessageSid": {sid},
		"AccountSid": {twilioAccount}, "From": {from}, "ApiVersion": {"2010-04-01"},
	}
}

// smsRequest is Twilio's POST of form, signed for the public URL base
// (the configured public URL with the base path); sig overrides the
// signature when not nil ("" sends none).
func smsRequest(base string, form url.Values, sig *string) request {
	h := map[string]string{"Content-Type": "application/x-www-form-urlencoded",
		"X-Twilio-Signature": twilioSignature(twilioToken, base+"/inbound/sms/twilio", form),
		"User-Agent":         "TwilioProxy/1.1", "I-Twilio-Idempotency-Token": "0b2b1a7c-3f6d-4c1e-9a57-5d1f3e2c4b6a"}
	if sig != nil {
		h["X-Twilio-Signature"] = *sig
		if *sig == "" {
			delete(h, "X-Twilio-Signature")
		}
	}
	return request{Method: "POST", Path: "/inbound/sms/twilio", Body: form.Encode(), Header: h}
}

// sms posts a form signed for the public URL base.
func (a *testAPI) sms(t *testing.T, base string, form url.Values) *response {
	t.Helper()
	return a.do(t, smsRequest(base, form, nil))
}

func (a *testAPI) smsSigned(t *testing.T, form url.Values, sig string) *response {
	t.Helper()
	return a.do(t, smsRequest(publicURL, form, &sig))
}

// wantTwiML checks the empty TwiML answer.
func wantTwiML(t *testing.T, r *response) {
	t.Helper()
	r.want(t, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/xml") || !strings.Contains(string(r.Body), "<Response/>") {
		t.Errorf("TwiML answer: %q %s", ct, r.Body)
	}
}

func TestInboundTwilio(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, withInbound(allChannels))
	a.enableChannels(t)

	wantTwiML(t, a.sms(t, publicURL, smsForm(1, scottPhone, ameliaNumber, "Make the header blue")))
	j := a.oneJob(t, scottInput)
	if j.Instruction != "Make the header blue" || j.Reply.Channel != "sms" || j.Reply.To != scottPhone || j.Reply.From != ameliaNumber || j.Branch != "thread-"+j.ThreadID {
		t.Fatalf("SMS job: %+v", j)
	}
	ack := a.latestAck(t)
	if ack.Channel != "sms" || ack.To != scottPhone || ack.From != ameliaNumber || ack.Kind != "ack" || ack.ThreadID != j.ThreadID || !strings.Contains(ack.Text, "ref:") {
		t.Errorf("SMS ack: %+v", ack)
	}

	// SMS has no threads: a follow-up continues the latest one.
	a.Clock.Advance(time.Minute)
	wantTwiML(t, a.sms(t, publicURL, smsForm(2, scottPhone, ameliaNumber, "and the footer green")))
	if k := a.oneJob(t, scottInput); k.ThreadID != j.ThreadID || k.SessionID != j.SessionID || k.Instruction != "and the footer green" {
		t.Errorf("follow-up: %+v, want thread %s", k, j.ThreadID)
	}

	// "new" starts a new thread.
	a.Clock.Advance(time.Minute)
	wantTwiML(t, a.sms(t, publicURL, smsForm(3, scottPhone, ameliaNumber, "New: add an events page")))
	fresh := a.oneJob(t, scottInput)
	if fresh.ThreadID == j.ThreadID || fresh.Instruction != "add an events page" {
		t.Errorf("new thread: %+v", fresh)
	}

	// A token from an email acknowledgement continues that email's thread.
	a.Clock.Advance(time.Minute)
	emailOut := a.emailOutcome(t, email{From: "scott@example.com", To: "edit@amelia.example.com", Subject: "Logo",
		MessageID: "<logo@mail.example.com>", Body: "Please use the new logo."}.raw())
	a.receiveJobs(t, scottInput)
	tok := a.latestAck(t).Subject
	tok = tok[strings.Index(tok, "[ref:"):]
	a.Clock.Advance(time.Minute)
	wantTwiML(t, a.sms(t, publicURL, smsForm(4, scottPhone, ameliaNumber, "make it bigger too "+tok)))
	if k := a.oneJob(t, scottInput); k.ThreadID != emailOut.ThreadID || k.SessionID != emailOut.SessionID {
		t.Errorf("SMS with the email's token %s: thread %s, want %s", tok, k.ThreadID, emailOut.ThreadID)
	}
	// …and that thread is now the latest one.
	a.Clock.Advance(time.Minute)
	wantTwiML(t, a.sms(t, publicURL, smsForm(5, scottPhone, ameliaNumber, "thanks, and the favicon")))
	if k := a.oneJob(t, scottInput); k.ThreadID != emailOut.ThreadID {
		t.Errorf("after the token: thread %s, want %s", k.ThreadID, emailOut.ThreadID)
	}

	// Twilio retries a message: routed once.
	before := a.counts(t)
	wantTwiML(t, a.sms(t, publicURL, smsForm(5, scottPhone, ameliaNumber, "thanks, and the favicon")))
	a.unchanged(t, "a retried MessageSid", before)

	// Unknown numbers are dropped, without a reply.
	wantTwiML(t, a.sms(t, publicURL, smsForm(6, "+15550109999", ameliaNumber, "delete everything")))
	wantTwiML(t, a.sms(t, publicURL, smsForm(7, scottPhone, "+15550108888", "delete everything")))
	a.unchanged(t, "unknown numbers", before)

	// Rejections.
	form := smsForm(8, scottPhone, ameliaNumber, "delete everything")
	for name, sig := range map[string]string{
		"no signature":           "",
		"wrong token":            twilioSignature("another-token", publicURL+"/inbound/sms/twilio", form),
		"another URL":            twilioSignature(twilioToken, "https://evil.example/inbound/sms/twilio", form),
		"signature of the query": twilioSignature(twilioToken, publicURL+"/inbound/sms/twilio", url.Values{"Body": {"hi"}}),
	} {
		if p := a.smsSigned(t, form, sig).want(t, http.StatusUnauthorized).Problem(t); p.Status != 401 {
			t.Errorf("%s: %+v", name, p)
		}
	}
	tampered := smsForm(8, scottPhone, ameliaNumber, "delete everything")
	sig := twilioSignature(twilioToken, publicURL+"/inbound/sms/twilio", tampered)
	tampered.Set("Body", "delete everything now")
	a.smsSigned(t, tampered, sig).want(t, http.StatusUnauthorized).Problem(t)
	wrongAccount := smsForm(9, scottPhone, ameliaNumber, "hello")
	wrongAccount.Set("AccountSid", "ACffffffffffffffffffffffffffffffff")
	a.sms(t, publicURL, wrongAccount).want(t, http.StatusForbidden).Problem(t)
	malformed := smsForm(10, scottPhone, ameliaNumber, "hello")
	malformed.Set("MessageSid", "not-a-sid")
	a.sms(t, publicURL, malformed).want(t, http.StatusBadRequest).Problem(t)
	empty := smsForm(11, scottPhone, ameliaNumber, "  ")
	a.sms(t, publicURL, empty).want(t, http.StatusBadRequest).Problem(t)
	a.unchanged(t, "rejected webhooks", before)
}

func TestInboundTwilioBasePathAndConfig(t *testing.T) {
	t.Parallel()
	// Behind a proxy under /hermes, Twilio signs the public URL with the base path.
	a := newTestAPI(t, withBasePath("/hermes"), withInbound(func(in *httpapi.Inbound) {
		allChannels(in)
		in.PublicURL = "https://edit.example.com/hermes"
	}))
	a.enableChannels(t)
	wantTwiML(t, a.sms(t, "https://edit.example.com/hermes", smsForm(1, scottPhone, ameliaNumber, "Make the header blue")))
	a.oneJob(t, scottInput)
	before := a.counts(t)
	a.sms(t, "https://edit.example.com", smsForm(2, scottPhone, ameliaNumber, "x")).want(t, http.StatusUnauthorized).Problem(t)
	a.unchanged(t, "a signature without the base path", before)

	// Without a token the channel is not served.
	b := newTestAPI(t, withInbound(func(in *httpapi.Inbound) { in.PublicURL = publicURL }))
	b.sms(t, publicURL, smsForm(1, scottPhone, ameliaNumber, "x")).want(t, http.StatusNotFound).Problem(t)
	c := newTestAPI(t)
	c.sms(t, publicURL, smsForm(1, scottPhone, ameliaNumber, "x")).want(t, http.StatusNotFound).Problem(t)
	if n := b.allQueued(t) + c.allQueued(t); n != 0 {
		t.Errorf("%d messages queued by an unserved channel", n)
	}
}

// ---- Slack

// slackSign returns the v0 signature of body at ts.
func slackSign(secret string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%d:", ts)
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// slackRequest is Slack's POST of body, signed with secret at the time at.
func slackRequest(body string, at time.Time, secret string, extra map[string]string) request {
	ts := at.Unix()
	h := map[string]string{"Content-Type": "application/json", "X-Slack-Request-Timestamp": strconv.FormatInt(ts, 10),
		"X-Slack-Signature": slackSign(secret, ts, []byte(body)), "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)"}
	for k, v := range extra {
		h[k] = v
	}
	return request{Method: "POST", Path: "/inbound/chat/slack", Body: body, Header: h}
}

// slack posts a signed event at the server's current time.
func (a *testAPI) slack(t *testing.T, body string, extra map[string]string) *response {
	t.Helper()
	return a.do(t, slackRequest(body, a.Clock.Now(), slackSecret, extra))
}

func (a *testAPI) slackAt(t *testing.T, body string, at time.Time, secret string, extra map[string]string) *response {
	t.Helper()
	return a.do(t, slackRequest(body, at, secret, extra))
}

// slackEvent is an event_callback envelope.
func slackEvent(eventID string, event map[string]any) string {
	b, _ := json.Marshal(map[string]any{
		"token": "XXYYZZ", "team_id": "T0123ABCD", "context_team_id": "T0123ABCD", "api_app_id": "A0HERMES01",
		"event": event, "type": "event_callback", "event_id": eventID, "event_time": 1793534400,
		"authorizations":        []any{map[string]any{"team_id": "T0123ABCD", "user_id": "U0HERMESBOT", "is_bot": true}},
		"is_ext_shared_channel": false,
	})
	return string(b)
}

func slackMessage(ts, threadTS, text string) map[string]any {
	m := map[string]any{"user": "U0456", "type": "message", "ts": ts, "client_msg_id": "6d2f4d8e-1a3b-4c5d-9e7f-" + strings.ReplaceAll(ts, ".", "")[:12],
		"text": text, "team": "T0123ABCD", "channel": "C0123", "event_ts": ts, "channel_type": "channel"}
	if threadTS != "" {
		m["thread_ts"], m["parent_user_id"] = threadTS, "U0456"
	}
	return m
}

func TestInboundSlack(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, withInbound(allChannels))
	a.enableChannels(t)

	// The URL verification handshake.
	var ch struct{ Challenge string }
	r := a.slack(t, `{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`, nil).want(t, http.StatusOK)
	r.JSON(t, &ch)
	if ch.Challenge != "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" || r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("challenge answer %s (%s)", r.Body, r.Header.Get("Content-Type"))
	}
	if a.allQueued(t) != 0 {
		t.Error("the handshake queued something")
	}

	// A message in the project's channel from a member.
	root := "1793534400.482919"
	r = a.slack(t, slackEvent("Ev08F3K2L1M0", slackMessage(root, "", "Make the header blue &amp; add <https://example.com/march|the March show> to the calendar")), nil).want(t, http.StatusOK)
	if len(r.Body) != 0 {
		t.Errorf("event answer body %q, want empty", r.Body)
	}
	j := a.oneJob(t, scottInput)
	if j.Instruction != "Make the header blue & add https://example.com/march to the calendar" {
		t.Errorf("Slack instruction %q", j.Instruction)
	}
	if j.Reply.Channel != "chat" || j.Reply.ChatThread != root || j.Reply.From != "C0123" || j.Reply.To != "U0456" {
		t.Errorf("Slack reply context: %+v", j.Reply)
	}
	ack := a.latestAck(t)
	if ack.Channel != "chat" || ack.To != "C0123" || ack.Headers["thread_ts"] != root || ack.ThreadID != j.ThreadID || ack.Kind != "ack" {
		t.Errorf("Slack ack: %+v", ack)
	}

	// A reply in the Slack thread continues the thread.
	a.Clock.Advance(time.Minute)
	a.slack(t, slackEvent("Ev08F3K9Q7R2", slackMessage("1793534462.001300", root, "actually make it navy")), nil).want(t, http.StatusOK)
	k := a.oneJob(t, scottInput)
	if k.ThreadID != j.ThreadID || k.SessionID != j.SessionID || k.Instruction != "actually make it navy" || k.Reply.ChatThread != root {
		t.Errorf("thread reply: %+v, want thread %s", k, j.ThreadID)
	}
	if ack := a.latestAck(t); ack.Headers["thread_ts"] != root {
		t.Errorf("the ack of a thread reply goes to thread %q, want %s", ack.Headers["thread_ts"], root)
	}
	// The mention of the same message arrives as a second event: routed once.
	before := a.counts(t)
	mention := slackMessage("1793534462.001300", root, "<@U0HERMESBOT> actually make it navy")
	mention["type"] = "app_mention"
	delete(mention, "channel_type")
	a.slack(t, slackEvent("Ev08F3K9Q7R3", mention), nil).want(t, http.StatusOK)
	a.unchanged(t, "the app_mention twin of a message", before)

	// A top-level message starts another thread.
	a.Clock.Advance(time.Minute)
	a.slack(t, slackEvent("Ev08F3KA0000", slackMessage("1793534600.000100", "", "new events page please")), nil).want(t, http.StatusOK)
	if other := a.oneJob(t, scottInput); other.ThreadID == j.ThreadID {
		t.Errorf("a top-level message joined thread %s", j.ThreadID)
	}

	// Slack retries an event it thinks failed: routed once.
	before = a.counts(t)
	a.slack(t, slackEvent("Ev08F3KA0000", slackMessage("1793534600.000100", "", "new events page please")),
		map[string]string{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}).want(t, http.StatusOK)
	a.unchanged(t, "a retried event", before)

	// Not instructions: acknowledged, ignored.
	bot := slackEvent("Ev08F3KB2D3E", map[string]any{"type": "message", "subtype": "bot_message", "text": "Deploy finished",
		"ts": "1793534700.000200", "username": "CI", "bot_id": "B0CI00001", "channel": "C0123", "channel_type": "channel"})
	own := slackMessage("1793534701.000300", root, "Working on it")
	own["bot_id"] = "B0HERMES01"
	edited := slackEvent("Ev08F3KC0000", map[string]any{"type": "message", "subtype": "message_changed", "channel": "C0123",
		"ts": "1793534702.000400", "message": map[string]any{"type": "message", "user": "U0456", "text": "edited"}})
	stranger := slackMessage("1793534703.000500", "", "delete everything")
	stranger["user"] = "U0999"
	elsewhere := slackMessage("1793534704.000600", "", "delete everything")
	elsewhere["channel"] = "C0999"
	for name, body := range map[string]string{
		"bot message": bot, "Hermes's own message": slackEvent("Ev08F3KB2D3F", own), "an edit": edited,
		"a stranger": slackEvent("Ev08F3KD0000", stranger), "another channel": slackEvent("Ev08F3KE0000", elsewhere),
		"rate limited": `{"token":"XXYYZZ","type":"app_rate_limited","team_id":"T0123ABCD","minute_rate_limited":1518467820,"api_app_id":"A0HERMES01"}`,
	} {
		if r := a.slack(t, body, nil).want(t, http.StatusOK); len(r.Body) != 0 {
			t.Errorf("%s: body %q", name, r.Body)
		}
		a.unchanged(t, name, before)
	}

	// Rejections.
	msg := slackEvent("Ev08F3KF0000", slackMessage("1793534800.000700", "", "delete everything"))
	a.slackAt(t, msg, a.Clock.Now().Add(-6*time.Minute), slackSecret, nil).want(t, http.StatusUnauthorized).Problem(t)
	a.slackAt(t, msg, a.Clock.Now().Add(6*time.Minute), slackSecret, nil).want(t, http.StatusUnauthorized).Problem(t)
	a.slackAt(t, msg, a.Clock.Now(), "another-secret", nil).want(t, http.StatusUnauthorized).Problem(t)
	a.slack(t, msg, map[string]string{"X-Slack-Signature": "v0=" + strings.Repeat("0", 64)}).want(t, http.StatusUnauthorized).Problem(t)
	a.do(t, request{Method: "POST", Path: "/inbound/chat/slack", Body: msg}).want(t, http.StatusUnauthorized).Problem(t)
	a.slack(t, `{"type":"event_callback","event":{"type":"message"}}`, nil).want(t, http.StatusBadRequest).Problem(t)
	a.slack(t, `not json`, nil).want(t, http.StatusBadRequest).Problem(t)
	a.slack(t, `{"type":"url_verification"}`, nil).want(t, http.StatusBadRequest).Problem(t)
	a.slack(t, `{"type":"x","pad":"`+strings.Repeat("x", 256<<10)+`"}`, nil).want(t, http.StatusRequestEntityTooLarge).Problem(t)
	a.unchanged(t, "rejected events", before)
	// An old request stays refused even when the signature is right.
	a.Clock.Advance(10 * time.Minute)
	r = a.do(t, request{Method: "POST", Path: "/inbound/chat/slack", Body: msg, Header: map[string]string{
		"X-Slack-Request-Timestamp": strconv.FormatInt(a.Clock.Now().Add(-10*time.Minute).Unix(), 10),
		"X-Slack-Signature":         slackSign(slackSecret, a.Clock.Now().Add(-10*time.Minute).Unix(), []byte(msg))}})
	r.want(t, http.StatusUnauthorized).Problem(t)
	a.unchanged(t, "a replayed event", before)

	// Without a signing secret the channel is not served.
	b := newTestAPI(t, withInbound(func(in *httpapi.Inbound) {}))
	b.slack(t, msg, nil).want(t, http.StatusNotFound).Problem(t)
	if b.allQueued(t) != 0 {
		t.Error("an unserved channel queued something")
	}
}

// TestInboundEmailLongChainCap: the References of an acknowledgement keep
// the root and the newest ids (21 at most), and a reply to it stays on the
// thread.
func TestInboundEmailLongChainCap(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, withInbound(func(*httpapi.Inbound) {}))
	var refs []string
	for i := range 30 {
		refs = append(refs, fmt.Sprintf("<chain-%02d@mail.example.com>", i))
	}
	out := a.emailOutcome(t, email{From: "scott@example.com", To: "edit@amelia.example.com", Subject: "Re: a long story",
		MessageID: "<chain-30@mail.example.com>", InReplyTo: refs[29], References: strings.Join(refs, " "), Body: "Make the header blue."}.raw())
	if out.Status != "queued" {
		t.Fatalf("%+v", out)
	}
	ack := a.latestAck(t)
	got := ids(ack.Headers["References"])
	if len(got) != 21 || got[0] != refs[0] || got[20] != "<chain-30@mail.example.com>" || got[19] != refs[29] {
		t.Errorf("capped References: %v", got)
	}
	// A reply to that ack keeps the thread (by the Hermes Message-ID).
	a.receiveJobs(t, scottInput)
	again := a.emailOutcome(t, email{From: "scott@example.com", To: "edit@amelia.example.com", Subject: ack.Subject,
		MessageID: "<chain-31@mail.example.com>", InReplyTo: ack.Headers["Message-ID"],
		References: ack.Headers["References"] + " " + ack.Headers["Message-ID"], Body: "And the footer."}.raw())
	if again.ThreadID != out.ThreadID || again.SessionID != out.SessionID {
		t.Errorf("reply to a capped chain: %+v, want thread %s", again, out.ThreadID)
	}
}

func TestInboundEmailBusy(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, withInbound(func(*httpapi.Inbound) {}))
	send := func(i int) outcome {
		return a.emailOutcome(t, email{From: "scott@example.com", To: "edit@amelia.example.com", Subject: fmt.Sprint("Change ", i),
			MessageID: fmt.Sprintf("<busy-%d@mail.example.com>", i), Body: fmt.Sprint("Change number ", i, ".")}.raw())
	}
	for i := range 10 {
		if out := send(i); out.Status != "queued" {
			t.Fatalf("message %d: %+v", i, out)
		}
	}
	queued := a.allQueued(t)
	a.Clock.Advance(time.Second)
	out := send(10)
	if out.Status != "busy" || out.JobID != "" || !hermes.ValidTokenID(out.ThreadID) || out.ContainerID != "amelia_site_scott" {
		t.Errorf("over the cap: %+v", out)
	}
	if n := a.allQueued(t); n != queued {
		t.Errorf("over the cap: %d queued, want %d", n, queued)
	}
	// The sender is told (busy replies are sent even when acks are off).
	if ack := a.latestAck(t); ack.Kind != "busy" || ack.To != "scott@example.com" || ack.ThreadID != out.ThreadID ||
		ack.Headers["In-Reply-To"] != "<busy-10@mail.example.com>" {
		t.Errorf("busy reply: %+v", ack)
	}
}

// SNS HTTP(S) subscriptions post their notifications as text/plain; the
// handler's comment says JSON is then recognised by its first byte.
func TestInboundEmailSNSAsTextPlain(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, withInbound(func(*httpapi.Inbound) {}))
	raw := email{From: "scott@example.com", To: "edit@amelia.example.com", Subject: "Header", MessageID: "<sns-text@mail.example.com>", Body: "Make it blue."}.raw()
	r := a.do(t, request{Method: "POST", Path: "/inbound/email", Key: adminKey, Body: snsWrap(sesNotification("snstextplain01", raw, "BASE64", nil)),
		Header: map[string]string{"Content-Type": "text/plain; charset=UTF-8"}})
	if out := a.outcomeOf(t, r); out.Status != "queued" {
		t.Errorf("%+v", out)
	}
}
