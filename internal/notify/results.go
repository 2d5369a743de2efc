package notify

import (
	"bytes"
	htmltemplate "html/template"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"

	"github.com/webordinary/hermes"
)

// Result describes the reply to a job's result (SPEC §6).
type Result struct {
	ProjectName  string
	Type         string // hermes.ResultDone, ResultInterrupted, ResultPlan or ResultError
	Success      bool   // ResultDone only: false words it as an error
	Summary      string // what the agent did; for a plan, the plan
	FilesChanged []string
	Commit       string
	PreviewURL   string // http(s) only; anything else is left out
	Error        string // why it failed
	Token        string // conversation token, "[ref:xxxxxxxx]" or bare
	// ApprovalURL is a plan's approval page (http(s) only; a plan without
	// one can still be approved by a reply), and ApprovalValidFor how long
	// the link works.
	ApprovalURL      string
	ApprovalValidFor time.Duration
}

// approvalURL is the approval link of a plan, or "".
func (r Result) approvalURL() string {
	if r.Type != hermes.ResultPlan {
		return ""
	}
	return previewURL(r.ApprovalURL)
}

// validFor words how long an approval link works: "24 hours", "90
// minutes", "2 days"; "" when unknown.
func validFor(d time.Duration) string {
	switch {
	case d <= 0:
		return ""
	case d%(24*time.Hour) == 0 && d > 24*time.Hour:
		return strconv.Itoa(int(d/(24*time.Hour))) + " days"
	case d%time.Hour == 0:
		if d == time.Hour {
			return "1 hour"
		}
		return strconv.Itoa(int(d/time.Hour)) + " hours"
	}
	return strconv.Itoa(int((d+time.Minute-1)/time.Minute)) + " minutes"
}

// Limits of what a result reply shows.
const (
	resultSummaryLen  = 4000 // email summary, runes
	resultErrorLen    = 300  // error line, runes
	resultEmailFiles  = 20   // files listed in an email
	resultChatFiles   = 10   // files listed in a chat reply
	resultChatSummary = 2000 // chat summary, runes
	commitLen         = 12   // a commit hash is shown shortened to this
)

// failed reports whether the reply words a failure.
func (r Result) failed() bool {
	return r.Type == hermes.ResultError || r.Type == hermes.ResultDone && !r.Success
}

// headline is the first sentence of every result reply.
func (r Result) headline() string {
	switch {
	case r.Type == hermes.ResultInterrupted:
		return "Stopped — a newer message interrupted this request. The work so far is saved, and your new instruction runs on top of it."
	case r.Type == hermes.ResultPlan:
		return "Here is the plan for your request. Nothing has been changed yet."
	case r.failed():
		return "Sorry — your request could not be applied."
	}
	return "Done — your change is applied."
}

// smsStatus is the short status of an SMS.
func (r Result) smsStatus() string {
	switch {
	case r.Type == hermes.ResultInterrupted:
		return "Stopped by your newer message; work saved."
	case r.Type == hermes.ResultPlan:
		return "Plan ready, nothing changed yet:"
	case r.failed():
		return "Sorry, that could not be applied:"
	}
	return "Done:"
}

// detail is the text an SMS quotes: the error of a failure (else the
// summary).
func (r Result) detail() string {
	if r.failed() && strings.TrimSpace(r.Error) != "" {
		return r.Error
	}
	return r.Summary
}

// shortCommit returns the commit hash shortened, or "" when it is not a
// hexadecimal hash.
func shortCommit(c string) string {
	c = strings.ToLower(strings.TrimSpace(c))
	if c == "" || strings.IndexFunc(c, func(r rune) bool { return !strings.ContainsRune("0123456789abcdef", r) }) >= 0 {
		return ""
	}
	if len(c) > commitLen {
		c = c[:commitLen]
	}
	return c
}

// files returns up to max file names on one line each, and how many more
// there are.
func files(fs []string, max int) (list []string, more int) {
	for _, f := range fs {
		f = excerpt(f, 200, "…")
		if f == "" {
			continue
		}
		if len(list) == max {
			more++
			continue
		}
		list = append(list, f)
	}
	return list, more
}

// multiline cleans a multi-line text: valid UTF-8, LF line breaks, no
// control characters but tabs and line breaks, at most 2 blank lines in a
// row, trimmed, at most max runes.
func multiline(s string, max int) string {
	s = strings.ReplaceAll(strings.ReplaceAll(strings.ToValidUTF8(s, ""), "\r\n", "\n"), "\r", "\n")
	s = strings.Map(func(r rune) rune {
		if r != '\n' && r != '\t' && (unicode.IsControl(r) || unicode.Is(unicode.Cf, r) && r != '\u200d') {
			return -1
		}
		return r
	}, s)
	for strings.Contains(s, "\n\n\n\n") {
		s = strings.ReplaceAll(s, "\n\n\n\n", "\n\n\n")
	}
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > max {
		s = strings.TrimRightFunc(string(r[:max-1]), unicode.IsSpace) + "…"
	}
	return s
}

// resultData is what the result email templates see.
type resultData struct {
	Headline   string
	Summary    string
	Error      string
	Files      []string
	MoreFiles  int
	Commit     string
	PreviewURL string
	Token      string
	// A plan's approval: the page, how long it works, and whether a reply
	// can decide (not on the API channel).
	ApprovalURL string
	ValidFor    string
}

var resultTextTemplate = texttemplate.Must(texttemplate.Must(emailTextFrame.Clone()).Parse(
	`{{.Headline}}
{{- with .Summary}}

{{.}}
{{- end}}
{{- with .Error}}

Error: {{.}}
{{- end}}
{{- if .Files}}

Files changed:
{{- range .Files}}
- {{.}}
{{- end}}
{{- if .MoreFiles}}
… and {{.MoreFiles}} more
{{- end}}
{{- end}}
{{- with .Commit}}

Commit: {{.}}
{{- end}}
{{- with .ApprovalURL}}

Approve or reject the plan here: {{.}}
Or reply "approve" or "reject" to this email.
{{- with $.ValidFor}} The link works for {{.}}.{{end}}
{{- end}}
{{- template "tail" .}}
`))

var resultHTMLTemplate = htmltemplate.Must(htmltemplate.Must(emailHTMLFrame.Clone()).Parse(`{{template "head"}}
<p style="margin: 0 0 12px;">{{.Headline}}</p>
{{- with .Summary}}
<div style="margin: 0 0 12px; white-space: pre-wrap;">{{.}}</div>
{{- end}}
{{- with .Error}}
<p style="margin: 0 0 12px; color: #a00000;">Error: {{.}}</p>
{{- end}}
{{- if .Files}}
<p style="margin: 0 0 4px;">Files changed:</p>
<ul style="margin: 0 0 12px; padding-left: 20px;">
{{- range .Files}}
<li><code>{{.}}</code></li>
{{- end}}
{{- if .MoreFiles}}
<li>… and {{.MoreFiles}} more</li>
{{- end}}
</ul>
{{- end}}
{{- with .Commit}}
<p style="margin: 0 0 12px;">Commit: <code>{{.}}</code></p>
{{- end}}
{{- with .ApprovalURL}}
<p style="margin: 0 0 12px;"><a href="{{.}}" style="display: inline-block; padding: 8px 16px; background: #1a56db; color: #ffffff; text-decoration: none; border-radius: 4px;">Review the plan: approve or reject</a></p>
<p style="margin: 0 0 12px;">Or reply &#34;approve&#34; or &#34;reject&#34; to this email.
{{- with $.ValidFor}} The link works for {{.}}.{{end}}</p>
{{- end}}
{{- template "tail" .}}`))

// ResultEmail returns the plain-text and HTML bodies of the email reply to
// a result: the headline (done, interrupted — work saved, plan — nothing
// changed, or could not be applied), the agent's summary (or the plan; at
// most 4000 characters, line breaks kept), the error of a failure (one
// line, at most 300 characters), the files changed (at most 20, then "… and
// N more"), the commit (shortened to 12 hexadecimal digits; anything else
// is left out), the preview link, for a plan its approval link (with "or
// reply approve or reject" and how long the link works), and the footer
// with the conversation token. Every value is escaped in the HTML body. A token that is not a
// conversation token gives an hermes.Invalid error.
func ResultEmail(r Result) (text, html string, err error) {
	tok, ok := refToken(r.Token)
	if !ok {
		return "", "", hermes.Errorf(hermes.Invalid, "notify: invalid conversation token %q", r.Token)
	}
	d := resultData{
		Headline:   r.headline(),
		Summary:    multiline(r.Summary, resultSummaryLen),
		Commit:     shortCommit(r.Commit),
		PreviewURL: previewURL(r.PreviewURL),
	}
	if d.ApprovalURL = r.approvalURL(); d.ApprovalURL != "" {
		d.ValidFor = validFor(r.ApprovalValidFor)
	}
	if r.failed() {
		d.Error = excerpt(r.Error, resultErrorLen, "…")
	}
	d.Files, d.MoreFiles = files(r.FilesChanged, resultEmailFiles)
	if tok != "" {
		d.Token = "[" + tok + "]"
	}
	var tb, hb bytes.Buffer
	if err := resultTextTemplate.Execute(&tb, d); err != nil {
		return "", "", hermes.E("notify.ResultEmail", hermes.Internal, err)
	}
	if err := resultHTMLTemplate.Execute(&hb, d); err != nil {
		return "", "", hermes.E("notify.ResultEmail", hermes.Internal, err)
	}
	return tb.String(), hb.String(), nil
}

// ResultSMS returns the SMS reply to a result in one GSM-7 segment (at most
// 160 septets, GSM-7 characters only, folded as in AckSMS):
// "{Project}: {status} {excerpt} {preview} ref:xxxxxxxx"; a plan has
// "Reply approve or reject, or open {approval link}" instead of the
// preview (shortened to "Approve or reject: {link}" when room is short,
// after the project name is left out). The link
// is kept whenever it fits (and is written in GSM-7); the excerpt — the
// summary, or the error of a failure — takes the room that is left and is
// cut with "..."; the project name and then the token are left out when
// there is no room for them. SMSSummaryRoom tells how much room that is.
func ResultSMS(r Result) string {
	head, tail, room := smsLayout(r)
	msg := head
	if ex := toGSM7(oneLine(r.detail())); room > 0 && hasAlnum(ex) {
		if septets(ex) > room {
			ex = strings.TrimRightFunc(cutSeptets(ex, room-3), unicode.IsSpace) + "..."
		}
		msg += " " + ex
	}
	msg += tail
	if septets(msg) > SMSMaxSeptets { // a guard: the parts were measured
		msg = cutSeptets(msg, SMSMaxSeptets)
	}
	return msg
}

// SMSSummaryRoom returns the room ResultSMS leaves for r's summary, in
// GSM-7 septets (a character of the alphabet is one, one of its extension
// set, such as € or [, two; others are folded first, as ResultSMS writes
// them: "…" takes three), and whether the summary fits it whole: it is
// quoted as it is rather than cut. The room does not depend on the
// summary, so a shorter summary can be measured against the same room by
// asking again. The room is 0 when the SMS quotes no summary — a failure
// with an error quotes the error — or when the project name, status, link
// and token leave too little room for an excerpt; fits is then false.
func SMSSummaryRoom(r Result) (room int, fits bool) {
	if r.failed() && strings.TrimSpace(r.Error) != "" {
		return 0, false
	}
	_, _, room = smsLayout(r)
	if room == 0 {
		return 0, false
	}
	ex := toGSM7(oneLine(r.Summary))
	return room, hasAlnum(ex) && septets(ex) <= room
}

// smsLayout arranges the SMS reply to r: head is the project name and the
// status, tail the link and the token (each with its leading space), and
// room the septets left for the excerpt between them (its separating
// space excluded), 0 when that is less than an excerpt needs.
func smsLayout(r Result) (head, tail string, room int) {
	status := toGSM7(r.smsStatus())
	link := previewURL(r.PreviewURL)
	plan := false
	if a := r.approvalURL(); a != "" {
		link, plan = a, true
	}
	if l, clean := toGSM7Clean(link); !clean || l != link {
		link = ""
	}
	tokPart := ""
	if tok, ok := refToken(r.Token); ok && tok != "" {
		tokPart = " " + tok
	}
	linkPart := ""
	if link != "" {
		linkPart = " " + link
		if plan {
			linkPart = " Reply approve or reject, or open " + link
		}
	}
	project, clean := toGSM7Clean(oneLine(r.ProjectName))
	prefix := ""
	if clean && project != "" {
		if septets(project) > smsProjectLen {
			project = cutSeptets(project, smsProjectLen-3) + "..."
		}
		prefix = project + ": "
	}
	fits := func() bool { return septets(prefix+status+linkPart+tokPart) <= SMSMaxSeptets }
	if !fits() {
		prefix = ""
	}
	if !fits() && plan {
		linkPart = " Approve or reject: " + link
	}
	if !fits() {
		tokPart = ""
	}
	if !fits() {
		linkPart = ""
	}
	head, tail = prefix+status, linkPart+tokPart
	room = SMSMaxSeptets - septets(head+tail) - 1
	if room < smsMinExcerpt {
		room = 0
	}
	return head, tail, room
}

// ResultChat returns the chat reply to a result in Slack mrkdwn: the
// headline in bold, the summary (at most 2000 characters), the error of a
// failure, the files changed (at most 10, in code spans), and a last line
// with the commit, the preview link and the conversation token. Text is
// escaped (&, <, >) so that nothing in it becomes a mention or a link.
func ResultChat(r Result) string {
	var b strings.Builder
	b.WriteString("*" + slackEscape(r.headline()) + "*")
	if s := multiline(r.Summary, resultChatSummary); s != "" {
		b.WriteString("\n" + slackEscape(s))
	}
	if e := excerpt(r.Error, resultErrorLen, "…"); r.failed() && e != "" {
		b.WriteString("\nError: " + slackEscape(e))
	}
	if fs, more := files(r.FilesChanged, resultChatFiles); len(fs) > 0 {
		for i, f := range fs {
			fs[i] = "`" + slackEscape(strings.ReplaceAll(f, "`", "'")) + "`"
		}
		line := "Files changed: " + strings.Join(fs, ", ")
		if more > 0 {
			line += " and " + strconv.Itoa(more) + " more"
		}
		b.WriteString("\n" + line)
	}
	var extra []string
	if c := shortCommit(r.Commit); c != "" {
		extra = append(extra, "Commit `"+c+"`")
	}
	if u := previewURL(r.PreviewURL); u != "" && !strings.ContainsAny(u, "|<>") {
		extra = append(extra, "<"+slackEscape(u)+"|Preview>")
	}
	if tok, ok := refToken(r.Token); ok && tok != "" {
		extra = append(extra, "Reference: `"+tok+"`")
	}
	if len(extra) > 0 {
		b.WriteString("\n" + strings.Join(extra, " · "))
	}
	if u := r.approvalURL(); u != "" && !strings.ContainsAny(u, "|<>") {
		b.WriteString("\n<" + slackEscape(u) + "|Review the plan> to approve or reject it, or reply `approve` or `reject` in this thread.")
		if v := validFor(r.ApprovalValidFor); v != "" {
			b.WriteString(" The link works for " + v + ".")
		}
	}
	return b.String()
}
