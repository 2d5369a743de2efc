package mail

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/webordinary/hermes"
)

// Thread ids and Hermes Message-IDs used by the samples in testdata/.
const (
	sampleH1 = "hermes.k3j5q7w9x2c4v6b8n1m3.aaaabbbbccccdddd@amelia.example.com"
	sampleH2 = "hermes.k3j5q7w9x2c4v6b8n1m3.eeeeffffgggghhhh@amelia.example.com"
	sampleH3 = "hermes.k3j5q7w9x2c4v6b8n1m3.iiiijjjjkkkkllll@amelia.example.com"
)

// blowUpLimit is the time a pathological input may take before the test
// fails. The inputs are sized so that the guarded code needs well under a
// second (a few seconds under -race) while the unguarded code (quadratic)
// would need minutes; the limit tells the two apart on a shared, noisy
// machine. BenchmarkParse has the real timings.
const blowUpLimit = 60 * time.Second

func sampleDate(t *testing.T, s string) time.Time {
	t.Helper()
	d, err := time.Parse(time.RFC1123Z, s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// checkParsed compares every field of got with want, naming the fields
// that differ. Empty and nil slices and maps are equal; dates are compared
// as instants.
func checkParsed(t *testing.T, got, want *Parsed) {
	t.Helper()
	str := func(name, g, w string) {
		if g != w {
			t.Errorf("%s:\n got %q\nwant %q", name, g, w)
		}
	}
	list := func(name string, g, w []string) {
		if len(g) != 0 || len(w) != 0 {
			if !reflect.DeepEqual(g, w) {
				t.Errorf("%s:\n got %q\nwant %q", name, g, w)
			}
		}
	}
	str("MessageID", got.MessageID, want.MessageID)
	list("InReplyTo", got.InReplyTo, want.InReplyTo)
	list("References", got.References, want.References)
	str("From", got.From, want.From)
	str("FromName", got.FromName, want.FromName)
	list("To", got.To, want.To)
	list("Cc", got.Cc, want.Cc)
	str("ReplyTo", got.ReplyTo, want.ReplyTo)
	str("Subject", got.Subject, want.Subject)
	if !got.Date.Equal(want.Date) || got.Date.IsZero() != want.Date.IsZero() {
		t.Errorf("Date: got %v, want %v", got.Date, want.Date)
	}
	str("Text", got.Text, want.Text)
	str("Instruction", got.Instruction, want.Instruction)
	str("Auto", string(got.Auto), string(want.Auto))
	if len(got.Headers) != 0 || len(want.Headers) != 0 {
		if !reflect.DeepEqual(got.Headers, want.Headers) {
			t.Errorf("Headers:\n got %q\nwant %q", got.Headers, want.Headers)
		}
	}
	if got.Instruction != ReplyText(got.Text) {
		t.Errorf("Instruction is not ReplyText(Text)")
	}
}

func TestParseSamples(t *testing.T) {
	tests := []struct {
		name string
		file string
		want Parsed
	}{
		{
			name: "Gmail reply: multipart/alternative, UTF-8 quoted-printable, quoted history",
			file: "gmail_reply.eml",
			want: Parsed{
				MessageID:  "CAJ8x9Yt2kQ7m+vW3nJdV0u5s1=Xq4rZ_pLh8Ty6Ns0Wq3Rv@mail.gmail.com",
				InReplyTo:  []string{sampleH2},
				References: []string{sampleH1, sampleH2},
				From:       "scott@example.com",
				FromName:   "Scott Example",
				To:         []string{"edit@amelia.example.com"},
				Cc:         []string{"amelia@example.com"},
				Subject:    "Re: Your preview is ready [ref:ab2cd3ef]",
				Date:       sampleDate(t, "Tue, 14 Jan 2025 10:32:11 -0800"),
				Text: "Looks great! Two more things:\n" +
					"- make the café photo on the home page a bit larger\n" +
					"- change the footer phone number to 555-0134\n" +
					"\n" +
					"Thanks,\n" +
					"Scott\n" +
					"\n" +
					"On Tue, Jan 14, 2025 at 10:15\u202fAM Hermes <edit@amelia.example.com> wrote:\n" +
					"\n" +
					"> Your preview is ready: https://edit.amelia.example.com/k3j5q7w9x2c4v6b8n1m3/\n" +
					">\n" +
					"> Changed: index.html, styles.css\n" +
					">\n" +
					"> [ref:ab2cd3ef]\n" +
					">",
				Instruction: "Looks great! Two more things:\n" +
					"- make the café photo on the home page a bit larger\n" +
					"- change the footer phone number to 555-0134\n" +
					"\n" +
					"Thanks,\n" +
					"Scott",
				Headers: map[string][]string{
					"Return-Path":            {"<scott@example.com>"},
					"Authentication-Results": {"mx.amelia.example.com; dkim=pass header.d=example.com; spf=pass smtp.mailfrom=scott@example.com"},
				},
			},
		},
		{
			name: "Outlook reply: Windows-1252 quoted-printable, RFC 2047 subject, folded Message-ID, Outlook header block",
			file: "outlook_reply.eml",
			want: Parsed{
				MessageID:  "DM6PR04MB65751E0C5D2B0F7C8A9E1B2FD01A2@DM6PR04MB6575.namprd04.prod.outlook.com",
				InReplyTo:  []string{sampleH2},
				References: []string{sampleH2},
				From:       "jane.doe@contoso.com",
				FromName:   "Doe, Jane",
				To:         []string{"edit@amelia.example.com"},
				Cc:         []string{"bob.smith@contoso.com", "amelia@example.com"},
				Subject:    "RE: Café menu – your preview is ready [ref:ab2cd3ef]",
				Date:       sampleDate(t, "Tue, 14 Jan 2025 18:40:02 +0000"),
				Text: "Hi,\n" +
					"\n" +
					"That’s perfect – please publish it. Could you also change “Café Menu” to “Our Menu”?\n" +
					"\n" +
					"Thanks,\n" +
					"Jane\n" +
					"\n" +
					"________________________________\n" +
					"From: Hermes <edit@amelia.example.com>\n" +
					"Sent: Tuesday, January 14, 2025 10:15 AM\n" +
					"To: Doe, Jane <Jane.Doe@contoso.com>\n" +
					"Subject: Café menu – your preview is ready [ref:ab2cd3ef]\n" +
					"\n" +
					"Your preview is ready: https://edit.amelia.example.com/k3j5q7w9x2c4v6b8n1m3/\n" +
					"\n" +
					"Changed: menu.html\n" +
					"\n" +
					"[ref:ab2cd3ef]",
				Instruction: "Hi,\n" +
					"\n" +
					"That’s perfect – please publish it. Could you also change “Café Menu” to “Our Menu”?\n" +
					"\n" +
					"Thanks,\n" +
					"Jane",
				Headers: map[string][]string{
					"Authentication-Results": {"spf=pass (sender IP is 40.107.94.71) smtp.mailfrom=contoso.com; dkim=pass (signature was verified) header.d=contoso.com;dmarc=pass action=none header.from=contoso.com;"},
				},
			},
		},
		{
			name: "Apple Mail reply: quoted attribution line, soft line breaks, comment in Mime-Version",
			file: "apple_mail_reply.eml",
			want: Parsed{
				MessageID:  "7A1F3C52-9D4E-4B8A-A6C1-2E5F8D9B0C13@example.com",
				InReplyTo:  []string{sampleH3},
				References: []string{sampleH1, sampleH2, sampleH3},
				From:       "scott@example.com",
				FromName:   "Scott Example",
				To:         []string{"edit@amelia.example.com"},
				Subject:    "Re: Your preview is ready [ref:ab2cd3ef]",
				Date:       sampleDate(t, "Wed, 15 Jan 2025 09:05:44 +0100"),
				Text: "Please swap the two photos in the gallery — the bakery one should come first.\n" +
					"\n" +
					"> On 14 Jan 2025, at 19:15, Hermes <edit@amelia.example.com> wrote:\n" +
					"> \n" +
					"> Your preview is ready: https://edit.amelia.example.com/k3j5q7w9x2c4v6b8n1m3/\n" +
					"> \n" +
					"> [ref:ab2cd3ef]",
				Instruction: "Please swap the two photos in the gallery — the bakery one should come first.",
				Headers:     map[string][]string{"Return-Path": {"<scott@example.com>"}},
			},
		},
		{
			name: "iPhone reply: text/plain only, emoji, mobile signature",
			file: "iphone_reply.eml",
			want: Parsed{
				MessageID:  "E3B1C9A4-2F6D-4E7A-9B8C-5D0F1A2B3C4D@example.com",
				InReplyTo:  []string{sampleH3},
				References: []string{sampleH1, sampleH3},
				From:       "scott@example.com",
				FromName:   "Scott Example",
				To:         []string{"edit@amelia.example.com"},
				Subject:    "Re: Your preview is ready [ref:ab2cd3ef]",
				Date:       sampleDate(t, "Wed, 15 Jan 2025 12:41:09 -0800"),
				Text: "Yes, publish it please 👍\n" +
					"\n" +
					"Sent from my iPhone\n" +
					"\n" +
					"> On Jan 15, 2025, at 12:30, Hermes <edit@amelia.example.com> wrote:\n" +
					"> \n" +
					"> \ufeffYour preview is ready: https://edit.amelia.example.com/k3j5q7w9x2c4v6b8n1m3/\n" +
					"> \n" +
					"> [ref:ab2cd3ef]",
				Instruction: "Yes, publish it please 👍",
			},
		},
		{
			name: "HTML-only mail: converted to text, links kept, style and script dropped, blockquote history removed",
			file: "html_only.eml",
			want: Parsed{
				MessageID: "1737014400.4821.1@smtp.example.es",
				InReplyTo: []string{sampleH2},
				From:      "maria@example.es",
				FromName:  "María García",
				To:        []string{"edit@amelia.example.com"},
				Subject:   "Opening hours page",
				Date:      sampleDate(t, "Thu, 16 Jan 2025 08:00:00 +0000"),
				Text: "Hello,\n" +
					"\n" +
					"Please add a page with our *opening hours* : Mon–Fri 8–18, Sat 9–14.\n" +
					"The prices are on the menu page ( https://amelia.example.com/menu ) & in my last email.\n" +
					"\n" +
					"María\n" +
					"\n" +
					"On Wednesday, January 15, 2025 at 10:15:02 AM GMT+1, Hermes <edit@amelia.example.com> wrote:\n" +
					"\n" +
					"> \n> \n> \n" +
					"> Your preview is ready.\n" +
					"> \n> \n> \n" +
					"> [ref:ab2cd3ef]\n" +
					"> \n>",
				Instruction: "Hello,\n" +
					"\n" +
					"Please add a page with our *opening hours* : Mon–Fri 8–18, Sat 9–14.\n" +
					"The prices are on the menu page ( https://amelia.example.com/menu ) & in my last email.\n" +
					"\n" +
					"María",
				Headers: map[string][]string{"Return-Path": {"<maria@example.es>"}},
			},
		},
		{
			name: "base64 UTF-8 body, RFC 2047 B-encoded subject and name, date with comment",
			file: "base64_utf8.eml",
			want: Parsed{
				MessageID: "20250117081200.GA12345@example.de",
				From:      "juergen@example.de",
				FromName:  "Jürgen Groß",
				To:        []string{"edit@amelia.example.com"},
				Subject:   "Überschrift ändern",
				Date:      sampleDate(t, "Fri, 17 Jan 2025 09:12:00 +0100"),
				Text: "Hallo,\n" +
					"\n" +
					"bitte ändere die Überschrift auf der Startseite zu „Willkommen im Café Amelia“.\n" +
					"Außerdem: 日本語のページも追加してください。\n" +
					"\n" +
					"Danke!\n" +
					"Jürgen",
				Instruction: "Hallo,\n" +
					"\n" +
					"bitte ändere die Überschrift auf der Startseite zu „Willkommen im Café Amelia“.\n" +
					"Außerdem: 日本語のページも追加してください。\n" +
					"\n" +
					"Danke!\n" +
					"Jürgen",
			},
		},
		{
			name: "ISO-8859-1 8-bit body, subject in two folded encoded words",
			file: "latin1_subject_rfc2047.eml",
			want: Parsed{
				MessageID: "000b01db69a7$2c8f1e40$85ad5ac0$@example.fr",
				From:      "francois@example.fr",
				FromName:  "François Lefèvre",
				To:        []string{"edit@amelia.example.com"},
				Subject:   "Réponse : la page « café » est prête",
				Date:      sampleDate(t, "Sat, 18 Jan 2025 14:03:27 +0100"),
				Text: "Bonjour,\n" +
					"\n" +
					"Merci\u00a0! Pouvez-vous mettre «\u00a0Crème brûlée\u00a0» en haut de la carte ?\n" +
					"\n" +
					"François",
				Instruction: "Bonjour,\n" +
					"\n" +
					"Merci\u00a0! Pouvez-vous mettre «\u00a0Crème brûlée\u00a0» en haut de la carte ?\n" +
					"\n" +
					"François",
				Headers: map[string][]string{"Return-Path": {"<francois@example.fr>"}},
			},
		},
		{
			name: "vacation auto-reply (Sieve): auto-reply wins over auto-submitted and bulk",
			file: "auto_reply_vacation.eml",
			want: Parsed{
				MessageID:  "dovecot-sieve-1736878509-823401-0@mail.contoso.com",
				InReplyTo:  []string{sampleH2},
				References: []string{sampleH2},
				From:       "jane.doe@contoso.com",
				FromName:   "Jane Doe",
				To:         []string{"edit@amelia.example.com"},
				Subject:    "Out of office: Your preview is ready [ref:ab2cd3ef]",
				Date:       sampleDate(t, "Tue, 14 Jan 2025 18:15:09 +0000"),
				Text: "I am out of the office until January 20 with limited access to email.\n" +
					"For anything urgent about the café, please contact bob.smith@contoso.com.",
				Instruction: "I am out of the office until January 20 with limited access to email.\n" +
					"For anything urgent about the café, please contact bob.smith@contoso.com.",
				Auto: AutoReply,
				Headers: map[string][]string{
					"Return-Path":    {"<jane.doe@contoso.com>"},
					"Auto-Submitted": {"auto-replied (vacation)"},
					"Precedence":     {"bulk"},
					"X-Autoreply":    {"yes"},
				},
			},
		},
		{
			name: "mailing list (Mailman 3): list wins over Precedence: list",
			file: "mailing_list.eml",
			want: Parsed{
				MessageID: "87h6a2k9zq.fsf@example.com",
				From:      "scott@example.com",
				FromName:  "Scott Example",
				To:        []string{"site-owners@lists.example.org"},
				Cc:        []string{"edit@amelia.example.com"},
				Subject:   "[site-owners] New hours for the holidays",
				Date:      sampleDate(t, "Mon, 20 Jan 2025 08:29:55 +0100"),
				Text: "Hi all,\n" +
					"\n" +
					"we will be closed from December 24 to January 2. Please put a banner\n" +
					"on the home page.\n" +
					"\n" +
					"Scott\n" +
					"_______________________________________________\n" +
					"site-owners mailing list -- site-owners@lists.example.org\n" +
					"To unsubscribe send an email to site-owners-leave@lists.example.org",
				// ReplyText keeps a list footer that is not preceded by a
				// blank line; list mail is never executed anyway.
				Instruction: "Hi all,\n" +
					"\n" +
					"we will be closed from December 24 to January 2. Please put a banner\n" +
					"on the home page.\n" +
					"\n" +
					"Scott\n" +
					"_______________________________________________\n" +
					"site-owners mailing list -- site-owners@lists.example.org\n" +
					"To unsubscribe send an email to site-owners-leave@lists.example.org",
				Auto: AutoList,
				Headers: map[string][]string{
					"Return-Path":      {"<site-owners-bounces@lists.example.org>"},
					"Precedence":       {"list"},
					"List-Id":          {"Site owners <site-owners.lists.example.org>"},
					"List-Post":        {"<mailto:site-owners@lists.example.org>"},
					"List-Unsubscribe": {"<mailto:site-owners-leave@lists.example.org>"},
				},
			},
		},
		{
			name: "delivery status notification (Postfix): bounce, only the human-readable part is text",
			file: "bounce_dsn.eml",
			want: Parsed{
				MessageID: "20250114182031.4YXq9M2Qj3z4x1C@mx.contoso.com",
				From:      "mailer-daemon@mx.contoso.com",
				FromName:  "Mail Delivery System",
				To:        []string{"edit@amelia.example.com"},
				Subject:   "Undelivered Mail Returned to Sender",
				Date:      sampleDate(t, "Tue, 14 Jan 2025 18:20:31 +0000"),
				Text: "This is the mail system at host mx.contoso.com.\n" +
					"\n" +
					"I'm sorry to have to inform you that your message could not\n" +
					"be delivered to one or more recipients. It's attached below.\n" +
					"\n" +
					"For further assistance, please send mail to postmaster.\n" +
					"\n" +
					"If you do so, please include this problem report. You can\n" +
					"delete your own text from the attached returned message.\n" +
					"\n" +
					"                   The mail system\n" +
					"\n" +
					"<nobody@contoso.com>: host mail.contoso.com[10.0.0.5] said: 550 5.1.1\n" +
					"    <nobody@contoso.com>: Recipient address rejected: User unknown in virtual\n" +
					"    mailbox table (in reply to RCPT TO command)",
				Instruction: "This is the mail system at host mx.contoso.com.\n" +
					"\n" +
					"I'm sorry to have to inform you that your message could not\n" +
					"be delivered to one or more recipients. It's attached below.\n" +
					"\n" +
					"For further assistance, please send mail to postmaster.\n" +
					"\n" +
					"If you do so, please include this problem report. You can\n" +
					"delete your own text from the attached returned message.\n" +
					"\n" +
					"                   The mail system\n" +
					"\n" +
					"<nobody@contoso.com>: host mail.contoso.com[10.0.0.5] said: 550 5.1.1\n" +
					"    <nobody@contoso.com>: Recipient address rejected: User unknown in virtual\n" +
					"    mailbox table (in reply to RCPT TO command)",
				Auto: AutoBounce,
				Headers: map[string][]string{
					"Return-Path":    {"<>"},
					"Auto-Submitted": {"auto-replied"},
				},
			},
		},
		{
			name: "no Message-ID, no Date, no MIME headers, 8-bit UTF-8 body",
			file: "no_message_id.eml",
			want: Parsed{
				From:        "scott@example.com",
				To:          []string{"edit@amelia.example.com"},
				Subject:     "make the title bigger",
				Text:        "Mach den Titel größer, bitte.",
				Instruction: "Mach den Titel größer, bitte.",
			},
		},
		{
			name: "unterminated boundary and truncated attachment: the text part is kept",
			file: "broken_mime_unterminated_boundary.eml",
			want: Parsed{
				MessageID:   "1234567890.1.1737281700000@laptop.example.com",
				From:        "scott@example.com",
				FromName:    "Scott Example",
				To:          []string{"edit@amelia.example.com"},
				Subject:     "Logo update",
				Date:        sampleDate(t, "Sun, 19 Jan 2025 10:15:00 +0000"),
				Text:        "Here is the new logo, please use it in the header.",
				Instruction: "Here is the new logo, please use it in the header.",
			},
		},
		{
			name: "multipart/mixed with PDF and text attachments: attachments are not text, signature removed",
			file: "attachment_with_text.eml",
			want: Parsed{
				MessageID: "CAJ8x9Ys1MzQ3vK7nR2pT5wL9dF0hG4jB6cN8mX1aZ3eY5uI7oP@mail.gmail.com",
				From:      "scott@example.com",
				FromName:  "Scott Example",
				To:        []string{"edit@amelia.example.com", "amelia@example.com"},
				Cc:        []string{"bob@example.com", "edit@amelia.example.com"},
				ReplyTo:   "scott.work@example.com",
				Subject:   "Menu PDF for the new page",
				Date:      sampleDate(t, "Sun, 19 Jan 2025 20:01:02 -0500"),
				Text: "Please add the attached menu as a new page called \"Menu\", and link it\n" +
					"from the navigation bar.\n" +
					"\n" +
					"-- \n" +
					"Scott Example\n" +
					"Owner, Café Amelia",
				Instruction: "Please add the attached menu as a new page called \"Menu\", and link it\n" +
					"from the navigation bar.",
				Headers: map[string][]string{"Return-Path": {"<scott@example.com>"}},
			},
		},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file] = true
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(readSample(t, tt.file))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			checkParsed(t, got, &tt.want)
		})
	}
	// Every sample in testdata has its expectations here.
	files, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("testdata/%s has no test case", filepath.Base(f))
		}
	}
}

// msg builds a small message with CRLF line endings from header lines and a
// body.
func msg(body string, headers ...string) []byte {
	var b strings.Builder
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n" + strings.ReplaceAll(body, "\n", "\r\n"))
	return []byte(b.String())
}

func TestParseInvalid(t *testing.T) {
	garbage := make([]byte, 64<<10)
	rand.New(rand.NewSource(1)).Read(garbage)
	tests := []struct {
		name string
		raw  []byte
	}{
		{"empty", nil},
		{"empty slice", []byte{}},
		{"white space only", []byte(" \r\n\t\r\n\r\n")},
		{"header only, no blank line", []byte("From: scott@example.com\r\nTo: edit@amelia.example.com\r\nSubject: hi\r\n")},
		{"header only, no final line break", []byte("From: scott@example.com\r\nSubject: hi")},
		{"body without header", []byte("\r\nplease make the title bigger\r\n")},
		{"text that is not a header", []byte("please make the title bigger\r\nthanks\r\n\r\nScott\r\n")},
		{"binary garbage", garbage},
		{"binary garbage after a header line", append([]byte("Subject: x\r\n"), garbage...)},
		{"NUL in header", []byte("From: scott@example.com\r\nSubject: a\x00b\r\n\r\nbody\r\n")},
		{"header name with space", []byte("Not a header: x\r\n\r\nbody\r\n")},
		{"line starting with colon", []byte(": x\r\n\r\nbody\r\n")},
		{"unparseable top-level Content-Type", msg("body", "From: scott@example.com", "Content-Type: text plain")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(tt.raw)
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", p)
			}
			if p != nil {
				t.Errorf("Parse returned a result with its error")
			}
			if hermes.ErrorKind(err) != hermes.Invalid {
				t.Errorf("error kind %v (%v), want invalid", hermes.ErrorKind(err), err)
			}
			if m := hermes.ErrorMessage(err); m == "" || strings.Contains(m, "internal") {
				t.Errorf("error message %q is not a caller-safe description", m)
			}
		})
	}
}

func TestParseTolerated(t *testing.T) {
	tests := []struct {
		name        string
		raw         []byte
		wantText    string
		wantSubject string
	}{
		{"header with empty body", []byte("From: scott@example.com\r\nSubject: hi\r\n\r\n"), "", "hi"},
		{"LF line endings", []byte("From: scott@example.com\nSubject: hi\n\nmake it blue\n"), "make it blue", "hi"},
		{"mbox From line before the header", []byte("From scott@example.com Tue Jan 14 10:32:11 2025\nFrom: scott@example.com\nSubject: hi\n\nmake it blue\n"), "make it blue", "hi"},
		{"space before the colon of the first field", []byte("From : scott@example.com\nSubject : hi\n\nmake it blue\n"), "make it blue", "hi"},
		{"non-indented header continuation", msg("make it blue", "From: scott@example.com", "Subject: a long", "subject"), "make it blue", "a long subject"},
		{"bad base64 in the text part", msg("bWFrZSBpdCBibHVl!!!*\n", "From: scott@example.com", "Subject: b", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: base64"), "make it blue", "b"},
		{"unknown transfer encoding", msg("make it blue", "From: scott@example.com", "Subject: u", "Content-Transfer-Encoding: x-uuencode"), "make it blue", "u"},
		{"unknown charset", msg("make it blue", "From: scott@example.com", "Subject: c", "Content-Type: text/plain; charset=x-unknown-42"), "make it blue", "c"},
		{"multipart without boundary parameter read as one part", msg("make it blue", "From: scott@example.com", "Subject: m", "Content-Type: multipart/mixed"), "", "m"},
		{"multipart with no parts", msg("just a preamble\n", "From: scott@example.com", "Subject: m", `Content-Type: multipart/mixed; boundary="b"`), "", "m"},
		{"part with unparseable Content-Type is skipped", msg("--b\nContent-Type: text plain\n\nlost\n--b\nContent-Type: text/plain\n\nkept\n--b--\n", "From: scott@example.com", "Subject: s", `Content-Type: multipart/mixed; boundary="b"`), "kept", "s"},
		{"attachment-only message", msg("JVBERi0xLjQK\n", "From: scott@example.com", "Subject: pdf", "Content-Type: application/pdf", "Content-Disposition: attachment; filename=a.pdf", "Content-Transfer-Encoding: base64"), "", "pdf"},
		{"top-level text/plain attachment is not the body", msg("a,b\n1,2\n", "From: scott@example.com", "Subject: csv", "Content-Type: text/plain; name=a.csv", "Content-Disposition: attachment; filename=a.csv"), "", "csv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(tt.raw)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if p.Text != tt.wantText {
				t.Errorf("Text %q, want %q", p.Text, tt.wantText)
			}
			if p.Subject != tt.wantSubject {
				t.Errorf("Subject %q, want %q", p.Subject, tt.wantSubject)
			}
		})
	}
}

func TestParseAuto(t *testing.T) {
	const from = "From: Scott <scott@example.com>"
	tests := []struct {
		name    string
		headers []string
		want    AutoKind
	}{
		{"human message", []string{from}, ""},
		{"Auto-Submitted: no", []string{from, "Auto-Submitted: no"}, ""},
		{"Auto-Submitted: No with comment", []string{from, "Auto-Submitted: No (a person wrote this)"}, ""},
		{"Auto-Submitted: auto-generated", []string{from, "Auto-Submitted: auto-generated"}, AutoSubmitted},
		{"Auto-Submitted: auto-replied with parameter", []string{from, "Auto-Submitted: auto-replied; owner-email=\"a@b.example\""}, AutoSubmitted},
		{"Auto-Submitted: auto-notified", []string{from, "auto-submitted: Auto-Notified"}, AutoSubmitted},
		{"empty Auto-Submitted", []string{from, "Auto-Submitted:"}, ""},
		{"X-Autoreply: yes", []string{from, "X-Autoreply: yes"}, AutoReply},
		{"X-Autoreply: no", []string{from, "X-Autoreply: no"}, ""},
		{"X-Autorespond with a value", []string{from, "X-Autorespond: Your preview is ready"}, AutoReply},
		{"X-Auto-Response-Suppress: All (Exchange OOF)", []string{from, "X-Auto-Response-Suppress: All"}, AutoReply},
		{"X-Auto-Response-Suppress list with OOF", []string{from, "X-Auto-Response-Suppress: DR, OOF, AutoReply"}, AutoReply},
		{"X-Auto-Response-Suppress without autoreply values", []string{from, "X-Auto-Response-Suppress: DR, NDR, RN, NRN"}, ""},
		{"Precedence: auto_reply", []string{from, "Precedence: auto_reply"}, AutoReply},
		{"Precedence: bulk", []string{from, "Precedence: bulk"}, AutoBulk},
		{"Precedence: junk", []string{from, "Precedence: JUNK"}, AutoBulk},
		{"Precedence: list", []string{from, "Precedence: list"}, AutoBulk},
		{"Precedence: first-class", []string{from, "Precedence: first-class"}, ""},
		{"List-Id", []string{from, "List-Id: <owners.lists.example.org>"}, AutoList},
		{"List-Unsubscribe", []string{from, "List-Unsubscribe: <https://lists.example.org/u>"}, AutoList},
		{"List-Post", []string{from, "List-Post: NO"}, AutoList},
		{"list beats bulk", []string{from, "Precedence: bulk", "List-Id: <x.example.org>"}, AutoList},
		{"auto-submitted beats list", []string{from, "List-Id: <x.example.org>", "Auto-Submitted: auto-generated"}, AutoSubmitted},
		{"delivery-status report", []string{"From: Mail System <mailer@mx.example.com>", `Content-Type: multipart/report; report-type="delivery-status"; boundary="b"`}, AutoBounce},
		{"disposition notification (read receipt)", []string{from, `Content-Type: multipart/report; report-type=disposition-notification; boundary="b"`}, AutoReply},
		{"From MAILER-DAEMON", []string{"From: MAILER-DAEMON@mx.example.com (Mail Delivery System)"}, AutoBounce},
		{"From postmaster", []string{"From: Postmaster <Postmaster@example.com>"}, AutoBounce},
		{"From bare MAILER-DAEMON without domain", []string{"From: MAILER-DAEMON (Mail Delivery Subsystem)"}, AutoBounce},
		{"postmaster only in the display name", []string{"From: Postmaster Team <help@example.com>"}, ""},
		{"empty Return-Path", []string{from, "Return-Path: <>"}, AutoBounce},
		{"empty Return-Path with space", []string{from, "Return-Path: < >"}, AutoBounce},
		{"Return-Path with an address", []string{from, "Return-Path: <scott@example.com>"}, ""},
		{"bounce beats auto-submitted", []string{"From: MAILER-DAEMON@mx.example.com", "Auto-Submitted: auto-replied"}, AutoBounce},
		{"our own mail", []string{"From: Hermes <edit@amelia.example.com>", "X-Hermes-Thread: k3j5q7w9x2c4v6b8n1m3"}, AutoHermes},
		{"our own mail beats everything", []string{"From: MAILER-DAEMON@x.example", "Auto-Submitted: auto-generated", "List-Id: <x>", "x-hermes-thread: t"}, AutoHermes},
		{"other X-Hermes header is not ours", []string{from, "X-Hermes-Kind: ack"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(msg("body", append([]string{"To: edit@amelia.example.com", "Subject: s"}, tt.headers...)...))
			if err != nil {
				t.Fatal(err)
			}
			if p.Auto != tt.want {
				t.Errorf("Auto %q, want %q", p.Auto, tt.want)
			}
		})
	}
}

func TestParseMessageIDs(t *testing.T) {
	long := strings.Repeat("x", 900) + "@e"
	tests := []struct {
		name   string
		values []string
		want   []string
	}{
		{"bracketed", []string{"<a@example.com>"}, []string{"a@example.com"}},
		{"missing brackets", []string{"a@example.com"}, []string{"a@example.com"}},
		{"missing closing bracket", []string{"<a@example.com"}, []string{"a@example.com"}},
		{"missing closing bracket before a comment", []string{"<a@example.com (first)"}, []string{"a@example.com"}},
		{"missing opening bracket", []string{"a@example.com>"}, []string{"a@example.com"}},
		{"several, folded", []string{"<a@x.example>\r\n\t<b@y.example>\r\n <c@z.example>"}, []string{"a@x.example", "b@y.example", "c@z.example"}},
		{"unfolded by the parser", []string{"<a@x.example> <b@y.example>"}, []string{"a@x.example", "b@y.example"}},
		{"no space between", []string{"<a@x.example><b@y.example>"}, []string{"a@x.example", "b@y.example"}},
		{"comma separated", []string{"<a@x.example>, <b@y.example>"}, []string{"a@x.example", "b@y.example"}},
		{"bare, comma separated", []string{"a@x.example, b@y.example"}, []string{"a@x.example", "b@y.example"}},
		{"extra white space inside brackets", []string{"<  a@x.example  >"}, []string{"a@x.example"}},
		{"id folded inside the brackets", []string{"<abc\r\n def@x.example>"}, []string{"abcdef@x.example"}},
		{"comment after", []string{`<a@x.example> (Scott's message of "Tue, 14 Jan 2025")`}, []string{"a@x.example"}},
		{"nested comment with escaped parenthesis", []string{`(a (b \) c@d) e) <a@x.example>`}, []string{"a@x.example"}},
		{"old In-Reply-To phrase", []string{`Your message of "Tue, 14 Jan 2025 10:15:00" <a@x.example>`}, []string{"a@x.example"}},
		{"phrase with an address is ignored when an id is bracketed", []string{`scott@example.com's message <a@x.example>`}, []string{"a@x.example"}},
		{"garbage tokens dropped", []string{"foo bar <baz> <a@x.example> <@x> <x@> <a b>"}, []string{"a@x.example"}},
		{"only garbage", []string{"none, (comment) \"quoted@x.example\""}, nil},
		{"stray opening bracket", []string{"<<a@x.example>"}, []string{"a@x.example"}},
		{"non-ASCII dropped", []string{"<ä@x.example> <a@x.example>"}, []string{"a@x.example"}},
		{"too long dropped", []string{"<" + long + ">", "<a@x.example>"}, []string{"a@x.example"}},
		{"deduplicated keeping order", []string{"<a@x.example> <b@x.example> <a@x.example>", "<c@x.example> <b@x.example>"}, []string{"a@x.example", "b@x.example", "c@x.example"}},
		{"empty", []string{""}, nil},
		{"none", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseMessageIDs(tt.values)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseThreadingHeaders(t *testing.T) {
	p, err := Parse(msg("ok",
		"From: scott@example.com",
		"Message-ID: <root@x.example> (the first)",
		"In-Reply-To: <c@x.example>",
		"References: <root@x.example>",
		"  <b@x.example> garbage",
		"\t<c@x.example>",
		"References: <b@x.example> <d@x.example>",
	))
	if err != nil {
		t.Fatal(err)
	}
	if p.MessageID != "root@x.example" {
		t.Errorf("MessageID %q", p.MessageID)
	}
	if want := []string{"c@x.example"}; !reflect.DeepEqual(p.InReplyTo, want) {
		t.Errorf("InReplyTo %q, want %q", p.InReplyTo, want)
	}
	if want := []string{"root@x.example", "b@x.example", "c@x.example", "d@x.example"}; !reflect.DeepEqual(p.References, want) {
		t.Errorf("References %q, want %q", p.References, want)
	}
}

func TestParseAddresses(t *testing.T) {
	tests := []struct {
		name                  string
		headers               []string
		from, fromName, reply string
		to, cc                []string
	}{
		{"quoted name with comma", []string{`From: "Doe, Jane" <Jane.Doe@Contoso.COM>`}, "jane.doe@contoso.com", "Doe, Jane", "", nil, nil},
		{"bare address", []string{"From: SCOTT@example.com"}, "scott@example.com", "", "", nil, nil},
		{"angle address only", []string{"From: <scott@example.com>"}, "scott@example.com", "", "", nil, nil},
		{"old comment form", []string{"From: scott@example.com (Scott Example)"}, "scott@example.com", "Scott Example", "", nil, nil},
		{"RFC 2047 Q name in Windows-1252", []string{"From: =?windows-1252?Q?Andr=E9_=93Dr=E9=94_L=E9v=EAque?= <andre@example.fr>"}, "andre@example.fr", "André “Dré” Lévêque", "", nil, nil},
		{"RFC 2047 B name in UTF-8", []string{"From: =?UTF-8?B?5bGx55Sw5aSq6YOO?= <taro@example.jp>"}, "taro@example.jp", "山田太郎", "", nil, nil},
		{"unquoted name with dots", []string{"From: John Q. Public <JQP@example.com>"}, "jqp@example.com", "John Q. Public", "", nil, nil},
		{"unquoted name with a comma is read piece by piece", []string{"From: Doe, Jane <jane@example.com>"}, "jane@example.com", "Jane", "", nil, nil},
		{"raw UTF-8 name", []string{"From: Jürgen Groß <juergen@example.de>"}, "juergen@example.de", "Jürgen Groß", "", nil, nil},
		{"raw Latin-1 name", []string{"From: J\xfcrgen <juergen@example.de>"}, "juergen@example.de", "Jürgen", "", nil, nil},
		{"unparseable From", []string{"From: not an address"}, "", "", "", nil, nil},
		{"empty From", []string{"From:"}, "", "", "", nil, nil},
		{"missing From", nil, "", "", "", nil, nil},
		{"name with encoded line break is cleaned", []string{"From: =?utf-8?q?Evil=0D=0ABcc:_x?= <evil@example.com>"}, "evil@example.com", "Evil  Bcc: x", "", nil, nil},
		{"Reply-To", []string{"From: scott@example.com", "Reply-To: Scott (work) <Scott.Work@Example.com>"}, "scott@example.com", "", "scott.work@example.com", nil, nil},
		{"To and Cc lists, deduplicated, lowercased", []string{"From: scott@example.com",
			`To: "Edit" <EDIT@amelia.example.com>, amelia@example.com, edit@amelia.example.com`,
			"Cc: bob@example.com,", " Carol <carol@example.com>", "Cc: BOB@example.com, dave@example.com"},
			"scott@example.com", "", "", []string{"edit@amelia.example.com", "amelia@example.com"}, []string{"bob@example.com", "carol@example.com", "dave@example.com"}},
		{"group syntax", []string{"From: scott@example.com", "To: undisclosed-recipients:;", "Cc: team: a@example.com, b@example.com;"},
			"scott@example.com", "", "", nil, []string{"a@example.com", "b@example.com"}},
		{"one broken entry does not lose the others", []string{"From: scott@example.com", `To: "unterminated <a@example.com>, b@example.com, <c@example.com`},
			"scott@example.com", "", "", []string{"a@example.com", "b@example.com"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(msg("x", append([]string{"Subject: s"}, tt.headers...)...))
			if err != nil {
				t.Fatal(err)
			}
			if p.From != tt.from || p.FromName != tt.fromName || p.ReplyTo != tt.reply {
				t.Errorf("From %q name %q Reply-To %q, want %q %q %q", p.From, p.FromName, p.ReplyTo, tt.from, tt.fromName, tt.reply)
			}
			if !reflect.DeepEqual(p.To, tt.to) || !reflect.DeepEqual(p.Cc, tt.cc) {
				t.Errorf("To %q Cc %q, want %q %q", p.To, p.Cc, tt.to, tt.cc)
			}
		})
	}
}

func TestParseCharsets(t *testing.T) {
	const from = "From: scott@example.com"
	tests := []struct {
		name     string
		raw      []byte
		text     string
		subject  string
		fromName string
	}{
		{"ISO-8859-1 quoted-printable", msg("Cr=E8me br=FBl=E9e, s'il vous pla=EEt=\n !", from, "Subject: s", "Content-Type: text/plain; charset=ISO-8859-1", "Content-Transfer-Encoding: quoted-printable"),
			"Crème brûlée, s'il vous plaît !", "s", ""},
		{"ISO-8859-1 label read as Windows-1252", msg("=93quoted=94 =80 5", from, "Subject: s", "Content-Type: text/plain; charset=iso-8859-1", "Content-Transfer-Encoding: quoted-printable"),
			"“quoted” € 5", "s", ""},
		{"Windows-1252 8-bit", []byte("From: scott@example.com\r\nSubject: s\r\nContent-Type: text/plain; charset=windows-1252\r\nContent-Transfer-Encoding: 8bit\r\n\r\nIt\x92s \x93done\x94 \x96 \x80 9\r\n"),
			"It’s “done” – € 9", "s", ""},
		{"UTF-8 quoted-printable", msg("gr=C3=B6=C3=9Fer =E2=86=92 =F0=9F=8E=89", from, "Subject: s", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: quoted-printable"),
			"größer → 🎉", "s", ""},
		{"UTF-8 base64", msg(base64.StdEncoding.EncodeToString([]byte("größer → 🎉")), from, "Subject: s", "Content-Type: text/plain; charset=UTF-8", "Content-Transfer-Encoding: base64"),
			"größer → 🎉", "s", ""},
		{"ISO-8859-1 base64", msg(base64.StdEncoding.EncodeToString([]byte("gr\xf6\xdfer")), from, "Subject: s", "Content-Type: text/plain; charset=latin1", "Content-Transfer-Encoding: base64"),
			"größer", "s", ""},
		{"8-bit UTF-8 declared us-ascii", msg("größer", from, "Subject: s", "Content-Type: text/plain; charset=us-ascii"), "größer", "s", ""},
		{"8-bit Latin-1 without charset", []byte("From: scott@example.com\r\nSubject: s\r\n\r\ngr\xf6\xdfer\r\n"), "größer", "s", ""},
		{"invalid bytes in UTF-8 text are read as Windows-1252 one by one", []byte("From: scott@example.com\r\nSubject: s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ngrößer \xe9t\xe9\r\n"), "größer été", "s", ""},
		{"unknown charset keeps the bytes", msg("caf\xc3\xa9", from, "Subject: s", "Content-Type: text/plain; charset=x-mac-klingon"), "café", "s", ""},
		{"subject: UTF-8 Q", msg("x", from, "Subject: =?utf-8?Q?Caf=C3=A9_menu?="), "x", "Café menu", ""},
		{"subject: UTF-8 B, lower-case labels", msg("x", from, "Subject: =?utf-8?b?w5xiZXJzY2hyaWZ0?="), "x", "Überschrift", ""},
		{"subject: Windows-1252 with euro sign", msg("x", from, "Subject: =?windows-1252?q?Preis_=80_5?="), "x", "Preis € 5", ""},
		{"subject: adjacent encoded words joined", msg("x", from, "Subject: =?UTF-8?Q?a?= =?UTF-8?Q?b?=", " =?UTF-8?Q?_c?="), "x", "ab c", ""},
		{"subject: encoded word between plain words", msg("x", from, "Subject: Re: =?ISO-8859-1?Q?caf=E9?= menu"), "x", "Re: café menu", ""},
		{"subject: raw UTF-8", msg("x", from, "Subject: Größer bitte"), "x", "Größer bitte", ""},
		{"subject: ISO-8859-1 encoded word with Windows-1252 quotes", msg("x", from, "Subject: =?iso-8859-1?q?=93Caf=E9=94_=96_menu?="), "x", "“Café” – menu", ""},
		{"subject: raw Latin-1", []byte("From: scott@example.com\r\nSubject: Gr\xf6\xdfer\r\n\r\nx\r\n"), "x", "Größer", ""},
		{"subject: malformed encoded word kept", msg("x", from, "Subject: =?utf-8?Q?broken"), "x", "=?utf-8?Q?broken", ""},
		{"subject: unknown charset kept", msg("x", from, "Subject: =?x-klingon?Q?abc?="), "x", "=?x-klingon?Q?abc?=", ""},
		{"subject: white space trimmed, encoded CR LF removed", msg("x", from, "Subject:   =?utf-8?Q?a=0D=0Ab?=   "), "x", "a  b", ""},
		{"name: ISO-8859-1 Q", msg("x", "From: =?ISO-8859-1?Q?Fran=E7ois?= <f@example.fr>", "Subject: s"), "x", "s", "François"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			if p.Text != tt.text {
				t.Errorf("Text %q, want %q", p.Text, tt.text)
			}
			if p.Subject != tt.subject {
				t.Errorf("Subject %q, want %q", p.Subject, tt.subject)
			}
			if p.FromName != tt.fromName {
				t.Errorf("FromName %q, want %q", p.FromName, tt.fromName)
			}
		})
	}
}

func TestParseBodySelection(t *testing.T) {
	const top = "From: scott@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
	tests := []struct {
		name string
		raw  string
		text string
	}{
		{"alternative: text part preferred over HTML",
			top + "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nplain\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--b--\r\n",
			"plain"},
		{"alternative: blank text part falls back to HTML",
			top + "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n \r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>from <i>html</i></p>\r\n--b--\r\n",
			"from html"},
		{"related HTML with inline image, no text part",
			top + "Content-Type: multipart/related; boundary=r\r\n\r\n--r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>see <img src=\"cid:i1\" alt=\"logo\"> caf\xc3\xa9</p>\r\n--r\r\nContent-Type: image/png\r\nContent-ID: <i1>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--r--\r\n",
			"see café"},
		{"mixed: text split around an attachment is joined by a blank line (Apple Mail)",
			top + "Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\nContent-Type: text/plain\r\n\r\nfirst half\r\n--m\r\nContent-Type: image/jpeg; name=a.jpg\r\nContent-Disposition: inline; filename=a.jpg\r\nContent-Transfer-Encoding: base64\r\n\r\n/9j/4AAQ\r\n--m\r\nContent-Type: text/plain\r\n\r\nsecond half\r\n--m--\r\n",
			"first half\n\nsecond half"},
		{"mixed: a named inline text file is not the body",
			top + "Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\nContent-Type: text/plain\r\n\r\nthe body\r\n--m\r\nContent-Type: text/plain; name=log.txt\r\nContent-Disposition: inline; filename=log.txt\r\n\r\nlog line\r\n--m--\r\n",
			"the body"},
		{"mixed: a named text part is the body when it is the only one",
			top + "Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\nContent-Type: text/plain; name=body.txt\r\n\r\nthe body\r\n--m--\r\n",
			"the body"},
		{"signed message: the signature is not text",
			top + "Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; micalg=pgp-sha256; boundary=s\r\n\r\n--s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsigned text\r\n--s\r\nContent-Type: application/pgp-signature; name=signature.asc\r\n\r\n-----BEGIN PGP SIGNATURE-----\r\nabc\r\n-----END PGP SIGNATURE-----\r\n--s--\r\n",
			"signed text"},
		{"forwarded message attachment is not text",
			top + "Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\nContent-Type: text/plain\r\n\r\nsee below\r\n--m\r\nContent-Type: message/rfc822\r\n\r\nFrom: a@example.com\r\nSubject: old\r\n\r\nold text\r\n--m--\r\n",
			"see below"},
		{"CRLF, lone CR and leading blank lines normalised",
			top + "\r\n\r\n  \r\nline one\rline two\r\nline three  \r\n\r\n",
			"line one\nline two\nline three"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.raw))
			if err != nil {
				t.Fatal(err)
			}
			if p.Text != tt.text {
				t.Errorf("Text %q, want %q", p.Text, tt.text)
			}
		})
	}
}

func TestParseHTML(t *testing.T) {
	tests := []struct {
		name        string
		html        string
		contains    []string
		notContains []string
	}{
		{"links keep their target",
			`<p>See <a href="https://amelia.example.com/menu">the menu</a> and <a href="https://amelia.example.com/">https://amelia.example.com/</a>.</p>`,
			[]string{"the menu ( https://amelia.example.com/menu )", "https://amelia.example.com/"}, []string{"<a", "href"}},
		{"scripts, styles, head and comments do not leak",
			`<html><head><title>T</title><style>.x{color:red}</style><script>var secret = 1;</script></head><body><!-- hidden --><p>visible</p><script type="text/javascript">alert("x")</script><style>p{margin:0}</style></body></html>`,
			[]string{"visible"}, []string{"color", "secret", "alert", "hidden", "margin", "T\n"}},
		{"entities decoded",
			`<p>Fish &amp; chips &ndash; 5&nbsp;&euro; &lt;b&gt;</p>`,
			[]string{"Fish & chips – 5\u00a0€ <b>"}, nil},
		{"blockquote becomes quoted lines",
			`<div>new text</div><div>On Tue, Jan 14, 2025 at 10:15 AM Hermes wrote:</div><blockquote>old text</blockquote>`,
			[]string{"new text", "> old text"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(msg(tt.html, "From: scott@example.com", "Subject: s", "Content-Type: text/html; charset=utf-8"))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tt.contains {
				if !strings.Contains(p.Text, s) {
					t.Errorf("Text %q does not contain %q", p.Text, s)
				}
			}
			for _, s := range tt.notContains {
				if strings.Contains(p.Text, s) {
					t.Errorf("Text %q contains %q", p.Text, s)
				}
			}
		})
	}
}

// reopened returns 200 distinct tag elements closed by their enclosing
// div but left active: the HTML parser re-opens all of them in every
// following block.
func reopened(tag string) string {
	var b strings.Builder
	b.WriteString("<div>")
	for i := range 200 {
		fmt.Fprintf(&b, "<%s class=c%d>", tag, i)
	}
	b.WriteString("</div>")
	return b.String()
}

// TestHTMLToTextGuard: markup that would make html2text or the HTML parser
// work quadratically (deep quotes, deep formatting, formatting elements
// re-opened at every block) or fail (more than 512 open elements) is
// sanitized or converted by the linear fallback, keeping the text and links.
func TestHTMLToTextGuard(t *testing.T) {
	words := strings.Repeat("word ", 100<<10)
	tests := []struct {
		name     string
		html     string
		contains []string
		absent   string // what html2text would have made of it
	}{
		{"deep blockquotes with many lines", strings.Repeat("<blockquote>", 400) + strings.Repeat("line<br>", 200<<10), []string{"> line\n> line\n"}, ">>"},
		{"deep bold", strings.Repeat("<b>", 400) + words, []string{"word word"}, "**"},
		{"more than 512 nested elements", strings.Repeat("<div>", 3000) + "deep text <a href=\"https://x.example/\">link</a>", []string{"deep text link ( https://x.example/ )"}, ""},
		{"self-closing bold still nests", strings.Repeat("<b/>", 400) + words, []string{"word word"}, "**"},
		{"quotes kept open by end tags the parser ignores", strings.Repeat("<blockquote><table><td></blockquote></td></table>", 100) + strings.Repeat("line<br>", 200<<10), []string{"line\nline\n"}, ">>"},
		{"formatting elements re-opened at every block", reopened("i") + strings.Repeat("<div>para</div>", 50<<10), []string{"para\npara"}, ""},
		{"bold re-opened at every block", reopened("b") + strings.Repeat("<div>para</div>", 50<<10), []string{"para\npara"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			got := htmlToText(tt.html)
			if d := time.Since(start); d > blowUpLimit {
				t.Errorf("took %v", d)
			}
			for _, s := range tt.contains {
				if !strings.Contains(got, s) {
					t.Errorf("output does not contain %q (starts %q)", s, got[:min(len(got), 200)])
				}
			}
			if tt.absent != "" && strings.Contains(got, tt.absent) {
				t.Errorf("output contains %q: html2text was used", tt.absent)
			}
		})
	}
}

func TestPlainFromHTML(t *testing.T) {
	tests := []struct{ name, html, want string }{
		{"paragraphs and breaks", "<p>one</p><p>two<br>three</p>", "one\n\ntwo\nthree"},
		{"inline elements keep spacing", "a <b>bold</b>: c<i>d</i> e", "a bold: cd e"},
		{"links", `<a href="https://x.example/p">page</a> <a href="mailto:a@x.example">a@x.example</a>`, "page ( https://x.example/p ) a@x.example"},
		{"quotes, one marker at any depth", "<p>new</p><blockquote>old<blockquote>older</blockquote></blockquote>", "new\n\n> old\n\n> older"},
		{"pre keeps lines", "<pre>a  b\n  c</pre>", "a  b\n  c"},
		{"head, script and style skipped", "<head><title>t</title><style>x</style></head><script>s</script>body", "body"},
		{"unclosed head", "<head><title>t</title><meta charset=utf-8>text", "text"},
		{"nested hidden elements", "<template>a<template>b</template>c</template>d", "d"},
		{"runs of breaks collapse", "a<br><br><br><br><p></p><p>b</p>", "a\n\nb"},
		{"lists", "<ul><li>one</li><li>two</li></ul>", "one\ntwo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := plainFromHTML(tt.html); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestPlainFromHTMLLinear: runs of breaks and empty blocks cost no more
// than their length.
func TestPlainFromHTMLLinear(t *testing.T) {
	start := time.Now()
	got := plainFromHTML("a" + strings.Repeat("<br>", 1<<19) + strings.Repeat("<p>", 1<<19) + strings.Repeat("<blockquote>", 1<<17) + "end")
	if d := time.Since(start); d > blowUpLimit {
		t.Errorf("took %v", d)
	}
	if got != "a\n\n> end" {
		t.Errorf("got %.40q", got)
	}
}

func TestParseAuditHeaders(t *testing.T) {
	headers := []string{"From: scott@example.com", "Subject: s", "X-Hermes-Thread: t1", "x-hermes-kind: ack", "Received-SPF: pass", "X-Spam: no", "Precedence: " + strings.Repeat("b", 2000)}
	for i := 0; i < 20; i++ {
		headers = append(headers, fmt.Sprintf("X-Loop: hop-%d", i))
	}
	p, err := Parse(msg("x", headers...))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Headers["X-Hermes-Thread"]; !reflect.DeepEqual(got, []string{"t1"}) {
		t.Errorf("X-Hermes-Thread %q", got)
	}
	if got := p.Headers["X-Hermes-Kind"]; !reflect.DeepEqual(got, []string{"ack"}) {
		t.Errorf("X-Hermes-Kind %q", got)
	}
	if got := p.Headers["Received-Spf"]; !reflect.DeepEqual(got, []string{"pass"}) {
		t.Errorf("Received-Spf %q", got)
	}
	if _, ok := p.Headers["X-Spam"]; ok {
		t.Errorf("X-Spam kept")
	}
	if _, ok := p.Headers["Subject"]; ok {
		t.Errorf("Subject kept")
	}
	if got := p.Headers["X-Loop"]; len(got) != maxAuditValues || got[0] != "hop-0" {
		t.Errorf("X-Loop %q, want the first %d values", got, maxAuditValues)
	}
	if got := p.Headers["Precedence"]; len(got) != 1 || len(got[0]) != maxAuditValueLen {
		t.Errorf("Precedence not cut to %d bytes", maxAuditValueLen)
	}
}

// TestParseLarge: a 5 MB body is parsed in linear time and kept whole.
func TestParseLarge(t *testing.T) {
	line := "The quick brown fox jumps over the lazy dog; größer bitte.\n"
	body := strings.Repeat(line, (5<<20)/len(line)+1)
	tests := []struct {
		name string
		raw  []byte
	}{
		{"5 MB text/plain", msg(body, "From: scott@example.com", "Subject: big", "Content-Type: text/plain; charset=utf-8")},
		{"5 MB text/plain in base64 inside multipart/mixed", msg(
			"--b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"+
				base64.StdEncoding.EncodeToString([]byte(body))+"\n--b--\n",
			"From: scott@example.com", "Subject: big", `Content-Type: multipart/mixed; boundary="b"`)},
	}
	want := strings.TrimRight(body, "\n")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			p, err := Parse(tt.raw)
			d := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d bytes in %v", len(tt.raw), d)
			if d > blowUpLimit {
				t.Errorf("took %v", d)
			}
			if p.Text != want {
				t.Errorf("Text has %d bytes, want %d", len(p.Text), len(want))
			}
			if p.Instruction != want {
				t.Errorf("Instruction has %d bytes, want %d", len(p.Instruction), len(want))
			}
		})
	}
}

// TestParseHugeHeaders: header fields of megabytes (address lists,
// references, comments, encoded words, parameters) are read in linear time.
func TestParseHugeHeaders(t *testing.T) {
	tests := []struct {
		name    string
		headers []string
		check   func(p *Parsed) bool
	}{
		{"40000 recipients", []string{"To: " + strings.Repeat("Some Body <x@y.example>, ", 40000) + "last@y.example"},
			func(p *Parsed) bool { return reflect.DeepEqual(p.To, []string{"x@y.example", "last@y.example"}) }},
		{"40000 recipients without commas", []string{"To: " + strings.Repeat("Some Body <x@y.example> ", 40000)},
			func(p *Parsed) bool { return reflect.DeepEqual(p.To, []string{"x@y.example"}) }},
		{"unbalanced quotes and brackets", []string{"To: " + strings.Repeat("\"a <, ", 200000)},
			func(p *Parsed) bool { return len(p.To) == 0 }},
		{"200000 references", []string{"References: " + strings.Repeat("<a@b.example> <c@d.example>\r\n ", 100000)},
			func(p *Parsed) bool { return len(p.References) == 2 }},
		{"unterminated ids", []string{"References: " + strings.Repeat("<a@b.example", 200000)},
			func(p *Parsed) bool { return len(p.References) == 1 }},
		{"500000 open comments", []string{"References: " + strings.Repeat("(", 500000), "Auto-Submitted: " + strings.Repeat("(", 500000)},
			func(p *Parsed) bool { return len(p.References) == 0 && p.Auto == "" }},
		{"100000 encoded words", []string{"Subject: " + strings.Repeat("=?utf-8?q?a?= ", 100000)},
			func(p *Parsed) bool { return p.Subject == strings.Repeat("a", 100000) }},
		{"200000 parameters", []string{"Content-Type: text/plain; " + strings.Repeat("a=b; ", 200000)},
			func(p *Parsed) bool { return p.Text == "body" }},
		{"200000 header fields", []string{strings.Repeat("X-A: b\r\n", 200000) + "X-B: c"},
			func(p *Parsed) bool { return p.Text == "body" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			p, err := Parse(msg("body", append([]string{"From: scott@example.com"}, tt.headers...)...))
			if d := time.Since(start); d > blowUpLimit {
				t.Errorf("took %v", d)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(p) {
				t.Errorf("unexpected result: To %d, References %d, Subject %.30q, Text %.30q", len(p.To), len(p.References), p.Subject, p.Text)
			}
		})
	}
}

// nested returns a message whose text part is inside depth nested
// multiparts.
func nested(depth int, text string) []byte {
	var b bytes.Buffer
	b.WriteString("From: scott@example.com\r\nSubject: deep\r\nMIME-Version: 1.0\r\n")
	for i := 0; i < depth; i++ {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"level%d\"\r\n\r\n--level%d\r\n", i, i)
	}
	b.WriteString("Content-Type: text/plain\r\n\r\n" + text + "\r\n")
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--level%d--\r\n", i)
	}
	return b.Bytes()
}

// TestParseDeepNesting: multiparts are read to maxMultiparts levels; deeper
// ones are opaque (their text is not read), without an error and without
// work that grows with the depth.
func TestParseDeepNesting(t *testing.T) {
	big := strings.Repeat("filler text line\r\n", (1<<20)/18)
	tests := []struct {
		name  string
		depth int
		text  string
		want  string
	}{
		{"3 deep (a real message)", 3, "hello", "hello"},
		{"at the limit", maxMultiparts, "hello", "hello"},
		{"one past the limit", maxMultiparts + 1, "hello", ""},
		{"50 deep", 50, "hello", ""},
		{"50 deep with 1 MB inside", 50, big, ""},
		{"2000 deep", 2000, "hello", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := nested(tt.depth, tt.text)
			start := time.Now()
			p, err := Parse(raw)
			d := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			if d > blowUpLimit {
				t.Errorf("%d bytes took %v", len(raw), d)
			}
			if p.Text != tt.want {
				t.Errorf("Text %.40q, want %q", p.Text, tt.want)
			}
			if p.Subject != "deep" || p.From != "scott@example.com" {
				t.Errorf("header lost: %q %q", p.Subject, p.From)
			}
		})
	}
	// Deeper still, the boundary lines alone are more than maxParts.
	start := time.Now()
	if _, err := Parse(nested(100000, "hello")); hermes.ErrorKind(err) != hermes.Invalid {
		t.Errorf("100000 deep: %v, want an invalid error", err)
	}
	if d := time.Since(start); d > blowUpLimit {
		t.Errorf("100000 deep took %v", d)
	}
}

// TestParseManyParts: enmime links parts in a list it walks on every
// insertion; a message with more possible part starts than maxParts is
// refused before that quadratic work.
func TestParseManyParts(t *testing.T) {
	parts := func(n int) []byte {
		var b bytes.Buffer
		b.WriteString("From: scott@example.com\r\nSubject: parts\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n")
		b.WriteString("--b\r\nContent-Type: text/plain\r\n\r\nthe body\r\n")
		for i := 1; i < n; i++ {
			b.WriteString("--b\r\n\r\nx\r\n")
		}
		b.WriteString("--b--\r\n")
		return b.Bytes()
	}
	start := time.Now()
	p, err := Parse(parts(maxParts - 10))
	if err != nil {
		t.Fatalf("%d parts: %v", maxParts-10, err)
	}
	if !strings.HasPrefix(p.Text, "the body") {
		t.Errorf("Text %.40q", p.Text)
	}
	_, err = Parse(parts(500000))
	if hermes.ErrorKind(err) != hermes.Invalid {
		t.Errorf("500000 parts: %v, want an invalid error", err)
	}
	if d := time.Since(start); d > blowUpLimit {
		t.Errorf("took %v", d)
	}
	// Dashes in a plain (not multipart) body are not counted.
	plain := msg(strings.Repeat("-- a\n", 2*maxParts), "From: scott@example.com", "Subject: dashes")
	if _, err := Parse(plain); err != nil {
		t.Errorf("plain text with many dash lines: %v", err)
	}
}

// TestParsePrefixes: every prefix of a sample (a message cut anywhere)
// parses or fails with an Invalid error.
func TestParsePrefixes(t *testing.T) {
	for _, f := range []string{"gmail_reply.eml", "bounce_dsn.eml", "html_only.eml", "attachment_with_text.eml"} {
		raw := readSample(t, f)
		for cut := 0; cut < len(raw); cut += 1 + len(raw)/200 {
			p, err := Parse(raw[:cut])
			if err != nil && (p != nil || hermes.ErrorKind(err) != hermes.Invalid) || err == nil && p == nil {
				t.Fatalf("%s cut at %d: %v %v", f, cut, p, err)
			}
		}
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(""))
	f.Add([]byte("Subject: x\r\n"))
	f.Add(nested(12, "hello"))
	f.Add(msg("<blockquote><b>x</b></blockquote>", "From: a@b.example", "Content-Type: text/html"))
	f.Add(msg("=?utf-8?q?x?=", "From: =?utf-8?b?!!?= <a@b.example>", "References: <a@b> (c (d) \\) <e@f", "Subject: =?iso-8859-1?q?=FF?="))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := parse(raw)
		if err != nil {
			if p != nil {
				t.Fatal("result with an error")
			}
			if hermes.ErrorKind(err) != hermes.Invalid {
				t.Fatalf("error kind %v: %v", hermes.ErrorKind(err), err)
			}
			return
		}
		for name, s := range map[string]string{"Text": p.Text, "Instruction": p.Instruction, "Subject": p.Subject, "FromName": p.FromName, "From": p.From} {
			if !utf8.ValidString(s) {
				t.Fatalf("%s is not valid UTF-8: %q", name, s)
			}
		}
		if p.Instruction != ReplyText(p.Text) {
			t.Fatal("Instruction is not ReplyText(Text)")
		}
		if p.From != strings.ToLower(p.From) || p.From != "" && !strings.Contains(p.From, "@") {
			t.Fatalf("From %q", p.From)
		}
		if strings.ContainsAny(p.Subject+p.FromName, "\r\n") {
			t.Fatalf("line break in Subject or FromName")
		}
		ids := append([]string{p.MessageID}, p.InReplyTo...)
		if p.MessageID == "" {
			ids = ids[1:]
		}
		seen := map[string]bool{}
		for _, id := range p.References {
			if seen[id] {
				t.Fatalf("duplicate reference %q", id)
			}
			seen[id] = true
			ids = append(ids, id)
		}
		for _, id := range ids {
			if !ValidMessageID(id) {
				t.Fatalf("invalid message id %q", id)
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	for _, f := range []string{"gmail_reply.eml", "outlook_reply.eml", "html_only.eml", "attachment_with_text.eml"} {
		raw := readSample(b, f)
		b.Run(f, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, err := Parse(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	big := msg(strings.Repeat("The quick brown fox jumps over the lazy dog.\n", 5<<20/45), "From: a@b.example", "Subject: s")
	b.Run("5MB", func(b *testing.B) {
		b.SetBytes(int64(len(big)))
		for b.Loop() {
			if _, err := Parse(big); err != nil {
				b.Fatal(err)
			}
		}
	})
}
