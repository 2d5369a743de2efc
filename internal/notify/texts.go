// Package notify words the messages Hermes sends to site owners, in the
// form each channel needs: email (plain text and HTML), SMS (GSM-7, one
// segment) and chat (Slack mrkdwn).
package notify

import (
	"bytes"
	htmltemplate "html/template"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	texttemplate "text/template"
	"unicode"
	"unicode/utf8"

	"github.com/webordinary/hermes"
)

// Ack describes an acknowledgement: the immediate answer to an instruction.
type Ack struct {
	ProjectName string
	Instruction string // the user's instruction (may be long; a short excerpt is quoted)
	WakeSeconds int    // expected wake time; 0 = container already running
	Queued      bool   // queued behind the current request (container busy)
	Busy        bool   // over the tenant's pending-job cap: not queued, try again later
	Token       string // conversation token, "[ref:xxxxxxxx]" (mail.FormatToken) or bare
	PreviewURL  string // http(s) only; anything else is left out
	// Approval words the acknowledgement of a plan-approval step (SPEC
	// §7): AckPlan, AckApproved, AckRejected, AckAlreadyApproved,
	// AckAlreadyRejected or AckExpired; "" for an ordinary instruction.
	Approval string
}

// Plan-approval steps an acknowledgement can word (Ack.Approval).
const (
	AckPlan            = "plan"             // the instruction runs as a plan first
	AckApproved        = "approved"         // the plan was approved: it runs now
	AckRejected        = "rejected"         // the plan was rejected: nothing changes
	AckAlreadyApproved = "already-approved" // an answer to a plan decided before
	AckAlreadyRejected = "already-rejected"
	AckExpired         = "expired" // an answer to a plan whose approval expired
)

// final reports whether nothing more follows the acknowledgement (no job
// was queued).
func (a Ack) final() bool {
	switch a.Approval {
	case AckRejected, AckAlreadyApproved, AckAlreadyRejected, AckExpired:
		return true
	}
	return a.Busy
}

// Status sentences. The order of precedence is Busy, Queued, waking
// (WakeSeconds > 0), working.
const (
	busyText    = "You have too many requests waiting; please try again in a few minutes."
	queuedText  = "Got it — queued behind your current request."
	workingText = "Got it — working on it now."
)

// status returns the first sentence of every acknowledgement.
func (a Ack) status() string {
	switch a.Approval {
	case AckPlan:
		return "Got it — this is a large or destructive change, so your editor will first propose a plan. Nothing changes until you approve it."
	case AckRejected:
		return "OK — the plan is rejected and nothing was changed."
	case AckAlreadyApproved:
		return "That plan was approved already; the change is on its way or done."
	case AckAlreadyRejected:
		return "That plan was rejected already, so nothing was changed. Send your request again for a new plan."
	case AckExpired:
		return "That plan has expired and nothing was changed. Send your request again for a new plan."
	case AckApproved:
		switch {
		case a.Queued:
			return "Approved — queued behind your current request."
		case a.WakeSeconds > 0:
			return "Approved — your editor is waking up, usually about " + wakeTime(a.WakeSeconds) + "."
		}
		return "Approved — working on it now."
	}
	switch {
	case a.Busy:
		return busyText
	case a.Queued:
		return queuedText
	case a.WakeSeconds > 0:
		return "Got it — your editor is waking up, usually about " + wakeTime(a.WakeSeconds) + "."
	}
	return workingText
}

// wakeTime words an expected wake time: "1 second", "45 seconds",
// "2 minutes" (whole minutes from 120 seconds on).
func wakeTime(s int) string {
	switch {
	case s == 1:
		return "1 second"
	case s < 120:
		return strconv.Itoa(s) + " seconds"
	}
	return strconv.Itoa((s+30)/60) + " minutes"
}

// tokenRE is a conversation token as shown to users, without brackets.
var tokenRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^ref:[a-z2-7]{8}$`) })

// refToken returns the token in its bare form "ref:xxxxxxxx" from
// "[ref:xxxxxxxx]", "ref:xxxxxxxx" or "xxxxxxxx" (any case), and whether
// it is valid. An empty token gives "", true.
func refToken(tok string) (string, bool) {
	tok = strings.ToLower(strings.TrimSpace(tok))
	if tok == "" {
		return "", true
	}
	tok = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(tok, "["), "]"))
	if !strings.HasPrefix(tok, "ref:") {
		tok = "ref:" + tok
	}
	return tok, tokenRE().MatchString(tok)
}

// previewURL returns u if it is an absolute http or https URL without
// white space or control characters, else "".
func previewURL(u string) string {
	u = strings.TrimSpace(u)
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return ""
	}
	for _, r := range u {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return ""
		}
	}
	return u
}

// oneLine collapses white space (line breaks included) to single spaces,
// drops control characters and invalid UTF-8, and trims the ends.
func oneLine(s string) string {
	var b strings.Builder
	space := false
	for _, r := range strings.ToValidUTF8(s, "") {
		switch {
		case unicode.IsSpace(r):
			space = true
			continue
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r) && r != '\u200d':
			continue // controls, and format characters other than the emoji joiner
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// excerpt returns s on one line, shortened to at most max runes with
// ellipsis at the end when it is longer: at a word boundary when one is
// near, else in the middle of a word.
func excerpt(s string, max int, ellipsis string) string {
	s = oneLine(s)
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	keep := max - utf8.RuneCountInString(ellipsis)
	if keep <= 0 {
		return ""
	}
	r := []rune(s)[:keep]
	// Cut at the last space if it is within the last quarter.
	for i := len(r) - 1; i >= keep*3/4 && i > 0; i-- {
		if r[i] == ' ' {
			r = r[:i]
			break
		}
	}
	return strings.TrimRightFunc(string(r), func(c rune) bool {
		return unicode.IsSpace(c) || unicode.IsPunct(c) && c != ')' && c != '"'
	}) + ellipsis
}

// emailExcerptLen bounds the instruction quoted in an email.
const emailExcerptLen = 200

// emailData is what the email templates see.
type emailData struct {
	Status     string
	Project    string
	Excerpt    string
	Busy       bool
	Final      bool // nothing follows: no "you'll get a reply" line
	Plan       bool // a plan follows, not a result
	PreviewURL string
	Token      string // "[ref:xxxxxxxx]"
}

// The parts every email shares: the HTML document around the body, and
// the closing lines (preview link, conversation token) of both bodies.
var (
	emailTextFrame = texttemplate.Must(texttemplate.New("email.txt").Parse(`{{define "tail"}}
{{- with .PreviewURL}}

Preview: {{.}}
{{- end}}
{{- with .Token}}

Reply to this email to continue the conversation. Reference: {{.}}
{{- end}}
{{- end}}`))

	emailHTMLFrame = htmltemplate.Must(htmltemplate.New("email.html").Parse(`{{define "head"}}<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width"></head>
<body style="margin: 0; padding: 16px; font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; font-size: 15px; line-height: 1.5; color: #222222;">
{{- end}}{{define "tail"}}
{{- with .PreviewURL}}
<p style="margin: 0 0 12px;"><a href="{{.}}">Open the preview</a></p>
{{- end}}
{{- with .Token}}
<p style="margin: 24px 0 0; font-size: 13px; color: #777777;">Reply to this email to continue the conversation. Reference: {{.}}</p>
{{- end}}
</body>
</html>
{{end}}`))
)

var ackTextTemplate = texttemplate.Must(texttemplate.Must(emailTextFrame.Clone()).Parse(
	`{{.Status}}
{{- if .Excerpt}}

{{if .Busy}}This request was not queued{{else}}Your request{{end}}{{with .Project}} for {{.}}{{end}}:
"{{.Excerpt}}"
{{- end}}
{{- if .Plan}}

You'll get the plan in this thread, with a link to approve or reject it.
{{- else if not .Final}}

You'll get a reply in this thread when it's done.
{{- end}}
{{- template "tail" .}}
`))

var ackHTMLTemplate = htmltemplate.Must(htmltemplate.Must(emailHTMLFrame.Clone()).Parse(`{{template "head"}}
<p style="margin: 0 0 12px;">{{.Status}}</p>
{{- if .Excerpt}}
<p style="margin: 0 0 4px;">{{if .Busy}}This request was not queued{{else}}Your request{{end}}{{with .Project}} for <strong>{{.}}</strong>{{end}}:</p>
<blockquote style="margin: 0 0 12px; padding: 0 0 0 12px; border-left: 3px solid #cccccc; color: #555555;">{{.Excerpt}}</blockquote>
{{- end}}
{{- if .Plan}}
<p style="margin: 0 0 12px;">You'll get the plan in this thread, with a link to approve or reject it.</p>
{{- else if not .Final}}
<p style="margin: 0 0 12px;">You'll get a reply in this thread when it's done.</p>
{{- end}}
{{- template "tail" .}}`))

// AckEmail returns the plain-text and HTML bodies of an email
// acknowledgement: the status sentence, a quoted excerpt of the instruction
// (at most 200 characters, on one line), what happens next, the preview
// link, and a footer with the conversation token ("Reply to this email to
// continue the conversation. Reference: [ref:xxxxxxxx]") that keeps the
// thread when a client drops headers. Every value is escaped in the HTML
// body. A token that is not a conversation token gives an hermes.Invalid
// error (it would break threading silently).
func AckEmail(a Ack) (text, html string, err error) {
	tok, ok := refToken(a.Token)
	if !ok {
		return "", "", hermes.Errorf(hermes.Invalid, "notify: invalid conversation token %q", a.Token)
	}
	d := emailData{
		Status:     a.status(),
		Project:    oneLine(a.ProjectName),
		Excerpt:    excerpt(a.Instruction, emailExcerptLen, "…"),
		Busy:       a.Busy,
		Final:      a.final(),
		Plan:       a.Approval == AckPlan,
		PreviewURL: previewURL(a.PreviewURL),
	}
	if tok != "" {
		d.Token = "[" + tok + "]"
	}
	var tb, hb bytes.Buffer
	if err := ackTextTemplate.Execute(&tb, d); err != nil {
		return "", "", hermes.E("notify.AckEmail", hermes.Internal, err)
	}
	if err := ackHTMLTemplate.Execute(&hb, d); err != nil {
		return "", "", hermes.E("notify.AckEmail", hermes.Internal, err)
	}
	return tb.String(), hb.String(), nil
}

// SMSMaxSeptets is the size of one GSM-7 SMS segment.
const SMSMaxSeptets = 160

// smsProjectLen bounds the project name that prefixes an SMS.
const smsProjectLen = 30

// smsMinExcerpt: an excerpt with less room than this is left out.
const smsMinExcerpt = 12

// AckSMS returns an SMS acknowledgement that fits one GSM-7 segment (at
// most 160 septets, so at most 160 characters) and uses only the GSM-7
// alphabet: "{Project}: {status} "{excerpt}" ref:xxxxxxxx" (busy: "…
// minutes. Not queued: "{excerpt}" ref:…"); em dashes become "-". Curly quotes,
// dashes, ellipses and accented letters outside GSM-7 are replaced by
// their nearest GSM-7 form; other characters (emoji, scripts GSM-7 lacks)
// are dropped. The project name is left out when it cannot be written in
// GSM-7 or there is no room; the instruction excerpt takes the room left
// and is cut with "..."; the preview link is not included (the result
// brings it). An invalid token is left out.
func AckSMS(a Ack) string {
	status := toGSM7(a.status())
	label := "" // before the excerpt
	if a.Busy {
		label = " Not queued:"
	}
	tokPart := ""
	if tok, ok := refToken(a.Token); ok && tok != "" {
		tokPart = " " + tok
	}
	project, clean := toGSM7Clean(oneLine(a.ProjectName))
	prefix := ""
	if clean && project != "" {
		if septets(project) > smsProjectLen {
			project = cutSeptets(project, smsProjectLen-3) + "..."
		}
		prefix = project + ": "
	}
	if septets(prefix+status+tokPart) > SMSMaxSeptets {
		prefix = ""
	}
	msg := prefix + status
	room := SMSMaxSeptets - septets(msg+label+tokPart) - len(` ""`)
	if ex := toGSM7(oneLine(a.Instruction)); room >= smsMinExcerpt && hasAlnum(ex) {
		if septets(ex) > room {
			ex = strings.TrimRightFunc(cutSeptets(ex, room-3), unicode.IsSpace) + "..."
		}
		msg += label + ` "` + ex + `"`
	}
	msg += tokPart
	if septets(msg) > SMSMaxSeptets { // cannot happen with the fixed texts; a guard
		msg = cutSeptets(msg, SMSMaxSeptets)
	}
	return msg
}

func hasAlnum(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) >= 0
}

// AckChat returns a chat acknowledgement in Slack mrkdwn: the status
// sentence, and on a second line the preview link and the conversation
// token when there are any. Text is escaped (&, <, >) so that nothing in it
// becomes a mention or a link. The instruction is not repeated: the chat
// thread shows it just above. An invalid token is left out.
func AckChat(a Ack) string {
	line := slackEscape(a.status())
	var extra []string
	if u := previewURL(a.PreviewURL); u != "" && !strings.ContainsAny(u, "|<>") {
		extra = append(extra, "<"+slackEscape(u)+"|Preview>")
	}
	if tok, ok := refToken(a.Token); ok && tok != "" {
		extra = append(extra, "Reference: `"+tok+"`")
	}
	if len(extra) > 0 {
		line += "\n" + strings.Join(extra, " · ")
	}
	return line
}

// slackEscape escapes the three characters Slack's mrkdwn gives a meaning
// as markup.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
