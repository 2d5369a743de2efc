package notify

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/webordinary/hermes"
)

// gsm7Table is the GSM 03.38 default alphabet in code order (0x00–0x7F),
// written out independently of the implementation; "\x00" marks the three
// positions that are not printable characters (LF 0x0A, CR 0x0D, ESC 0x1B).
var gsm7Table = []rune("@£$¥èéùìòÇ\x00Øø\x00Åå" +
	"Δ_ΦΓΛΩΠΨΣΘΞ\x00ÆæßÉ" +
	" !\"#¤%&'()*+,-./" +
	"0123456789:;<=>?" +
	"¡ABCDEFGHIJKLMNO" +
	"PQRSTUVWXYZÄÖÑÜ§" +
	"¿abcdefghijklmno" +
	"pqrstuvwxyzäöñüà")

// gsm7ExtensionTable: characters reached through ESC (two septets each).
var gsm7ExtensionTable = []rune{'\f', '^', '{', '}', '\\', '[', '~', ']', '|', '€'}

// gsm7Check returns the septet length of s and the first character that is
// not in the GSM-7 alphabet (0 when all are).
func gsm7Check(s string) (septets int, bad rune) {
	if len(gsm7Table) != 128 {
		panic("gsm7Table must have 128 entries")
	}
	for _, r := range s {
		switch {
		case r != 0 && containsRune(gsm7Table, r):
			septets++
		case containsRune(gsm7ExtensionTable, r):
			septets += 2
		default:
			return septets, r
		}
	}
	return septets, 0
}

func containsRune(rs []rune, r rune) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

func TestGSM7Tables(t *testing.T) {
	// The implementation's alphabet is exactly the table.
	for _, r := range gsm7Table {
		if r != 0 && gsm7Septets[r] != 1 {
			t.Errorf("%q missing from the basic set", r)
		}
	}
	for _, r := range gsm7ExtensionTable[1:] {
		if gsm7Septets[r] != 2 {
			t.Errorf("%q missing from the extension set", r)
		}
	}
	if len(gsm7Septets) != 125+9 {
		t.Errorf("alphabet has %d characters", len(gsm7Septets))
	}
	// Every fold target is GSM-7.
	for from, to := range gsm7Fold {
		if _, bad := gsm7Check(to); bad != 0 || gsm7Septets[from] != 0 {
			t.Errorf("fold %q → %q", from, to)
		}
	}
}

func TestToGSM7(t *testing.T) {
	for in, want := range map[string]string{
		"plain text": "plain text",
		"“curly” ‘quotes’ — dash – en … ellipsis": "\"curly\" 'quotes' - dash - en ... ellipsis",
		"Café Müller: Grüße, Ærø, Ñandú":          "Café Müller: Grüße, Ærø, Ñandu",
		"Żółć Łódź Škoda Ærø Øresund":             "Zolc Lodz Skoda Ærø Øresund",
		"emoji 🎉 👍🏽 here":                         "emoji here",
		"line\nbreaks\r\nand\ttabs":               "line breaks and tabs",
		"{braces} [brackets] €5 ~ | ^ \\":         "{braces} [brackets] €5 ~ | ^ \\",
		"ΔΦΓ αβγ":                                 "ΔΦΓ",
		"nbsp\u00a0and\u2009thin":                 "nbsp and thin",
		"escape\x1bchar":                          "escape char",
	} {
		got := toGSM7(in)
		if got != want {
			t.Errorf("toGSM7(%q) = %q, want %q", in, got, want)
		}
		if _, bad := gsm7Check(got); bad != 0 {
			t.Errorf("toGSM7(%q) has %q", in, bad)
		}
	}
	if _, clean := toGSM7Clean("Bäckerei 🍞"); !clean {
		t.Error("dropping an emoji is clean")
	}
	if _, clean := toGSM7Clean("東京カフェ"); clean {
		t.Error("dropping letters is not clean")
	}
	if septets("a€[") != 5 || cutSeptets("ab€c", 3) != "ab" || cutSeptets("ab€c", 4) != "ab€" {
		t.Error("septet counting")
	}
}

func TestWakeTime(t *testing.T) {
	for s, want := range map[int]string{1: "1 second", 2: "2 seconds", 30: "30 seconds", 119: "119 seconds", 120: "2 minutes", 149: "2 minutes", 150: "3 minutes", 600: "10 minutes"} {
		if got := wakeTime(s); got != want {
			t.Errorf("wakeTime(%d) = %q, want %q", s, got, want)
		}
	}
}

// ackVariants are the four situations, with their status sentence.
var ackVariants = []struct {
	name   string
	ack    Ack
	status string
}{
	{"waking", Ack{WakeSeconds: 30}, "Got it — your editor is waking up, usually about 30 seconds."},
	{"queued", Ack{Queued: true, WakeSeconds: 30}, "Got it — queued behind your current request."},
	{"working", Ack{}, "Got it — working on it now."},
	{"busy", Ack{Busy: true, Queued: true, WakeSeconds: 30}, "You have too many requests waiting; please try again in a few minutes."},
}

func fill(a Ack) Ack {
	a.ProjectName = "Amelia Stamps"
	a.Instruction = "Make the header blue"
	a.Token = "[ref:abcd2345]"
	a.PreviewURL = "https://edit.amelia.example.com/t1/"
	return a
}

func TestAckEmail(t *testing.T) {
	for _, v := range ackVariants {
		text, html, err := AckEmail(fill(v.ack))
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		if !strings.HasPrefix(text, v.status+"\n") {
			t.Errorf("%s: text starts %q", v.name, text)
		}
		if !strings.Contains(html, "<p style=\"margin: 0 0 12px;\">"+v.status+"</p>") {
			t.Errorf("%s: html lacks the status:\n%s", v.name, html)
		}
		footer := "Reply to this email to continue the conversation. Reference: [ref:abcd2345]"
		if !strings.HasSuffix(text, "\n\n"+footer+"\n") || !strings.Contains(html, footer) {
			t.Errorf("%s: footer missing:\n%s", v.name, text)
		}
		next := "You'll get a reply in this thread when it's done."
		if strings.Contains(text, next) == v.ack.Busy || strings.Contains(html, next) == v.ack.Busy {
			t.Errorf("%s: 'what next' wrong:\n%s", v.name, text)
		}
		if v.ack.Busy != strings.Contains(text, "This request was not queued for Amelia Stamps:") {
			t.Errorf("%s: not-queued note wrong:\n%s", v.name, text)
		}
		if !strings.Contains(text, "\"Make the header blue\"") || !strings.Contains(html, ">Make the header blue</blockquote>") {
			t.Errorf("%s: excerpt missing", v.name)
		}
		if !strings.Contains(text, "\nPreview: https://edit.amelia.example.com/t1/\n") || !strings.Contains(html, `<a href="https://edit.amelia.example.com/t1/">`) {
			t.Errorf("%s: preview missing", v.name)
		}
	}

	// The whole text of one variant, pinned.
	text, _, err := AckEmail(fill(Ack{WakeSeconds: 25}))
	want := `Got it — your editor is waking up, usually about 25 seconds.

Your request for Amelia Stamps:
"Make the header blue"

You'll get a reply in this thread when it's done.

Preview: https://edit.amelia.example.com/t1/

Reply to this email to continue the conversation. Reference: [ref:abcd2345]
`
	if err != nil || text != want {
		t.Errorf("text (%v):\n%s\nwant:\n%s", err, text, want)
	}

	// Nothing optional: status and what next only.
	text, html, err := AckEmail(Ack{})
	if err != nil || text != "Got it — working on it now.\n\nYou'll get a reply in this thread when it's done.\n" {
		t.Errorf("minimal text (%v): %q", err, text)
	}
	if strings.Contains(html, "Reference") || strings.Contains(html, "href") || strings.Contains(html, "blockquote") {
		t.Errorf("minimal html: %s", html)
	}
}

func TestAckEmailEscaping(t *testing.T) {
	a := fill(Ack{})
	a.Instruction = `<script>alert("x")</script> & <b>bold</b> 'quote'`
	a.ProjectName = `<img src=x onerror=alert(1)> & Co`
	a.PreviewURL = `https://example.com/p?a=1&b="2"`
	text, html, err := AckEmail(a)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<script", "<img", "<b>bold", `"2"`} {
		if strings.Contains(html, bad) {
			t.Errorf("html contains %q:\n%s", bad, html)
		}
	}
	for _, good := range []string{"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt; &#39;quote&#39;", "&lt;img src=x onerror=alert(1)&gt; &amp; Co", `href="https://example.com/p?a=1&amp;b=%222%22"`} {
		if !strings.Contains(html, good) {
			t.Errorf("html lacks %q:\n%s", good, html)
		}
	}
	if !strings.Contains(text, a.Instruction) {
		t.Errorf("plain text changed the instruction:\n%s", text)
	}

	// Only http(s) preview links.
	for _, u := range []string{"javascript:alert(1)", "data:text/html,x", "/relative", "https://", "https://ex ample.com/", "ftp://example.com/"} {
		a := fill(Ack{})
		a.PreviewURL = u
		text, html, _ := AckEmail(a)
		if strings.Contains(text, "Preview") || strings.Contains(html, "href") {
			t.Errorf("preview %q kept", u)
		}
		if strings.Contains(AckChat(a), "Preview") {
			t.Errorf("chat preview %q kept", u)
		}
	}
}

func TestAckEmailExcerpt(t *testing.T) {
	a := fill(Ack{})
	a.Instruction = "Please   update\nthe calendar:\n\n" + strings.Repeat("add the March show at the Blue Room, ", 40)
	text, html, err := AckEmail(a)
	if err != nil {
		t.Fatal(err)
	}
	var ex string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, `"`) {
			ex = strings.Trim(line, `"`)
		}
	}
	if n := utf8.RuneCountInString(ex); n > emailExcerptLen || n < emailExcerptLen*3/4 || !strings.HasSuffix(ex, "…") || !strings.HasPrefix(ex, "Please update the calendar: add") {
		t.Errorf("excerpt (%d runes): %q", n, ex)
	}
	if !strings.Contains(html, ex) {
		t.Errorf("html excerpt differs")
	}
}

func TestAckEmailNonASCII(t *testing.T) {
	a := fill(Ack{WakeSeconds: 40})
	a.ProjectName = "Café Müller — 東京 🎉"
	a.Instruction = "Ändere die Überschrift „Willkommen“ in 日本語 🎉"
	text, html, err := AckEmail(a)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{text, html} {
		if !strings.Contains(s, "Café Müller — 東京 🎉") || !strings.Contains(s, "Ändere die Überschrift „Willkommen“ in 日本語 🎉") || !utf8.ValidString(s) {
			t.Errorf("non-ASCII text lost:\n%s", s)
		}
	}
}

func TestAckTokens(t *testing.T) {
	for _, tok := range []string{"[ref:abcd2345]", "ref:abcd2345", "abcd2345", "[REF:ABCD2345]", " [ref:abcd2345] "} {
		a := fill(Ack{})
		a.Token = tok
		text, _, err := AckEmail(a)
		if err != nil || !strings.Contains(text, "Reference: [ref:abcd2345]") {
			t.Errorf("token %q: %v\n%s", tok, err, text)
		}
		if sms := AckSMS(a); !strings.HasSuffix(sms, " ref:abcd2345") {
			t.Errorf("token %q: sms %q", tok, sms)
		}
		if chat := AckChat(a); !strings.Contains(chat, "Reference: `ref:abcd2345`") {
			t.Errorf("token %q: chat %q", tok, chat)
		}
	}
	for _, tok := range []string{"[ref:abc]", "ref:abcd2381", "[ref:abcd2345] x", "<b>"} {
		a := fill(Ack{})
		a.Token = tok
		if _, _, err := AckEmail(a); hermes.ErrorKind(err) != hermes.Invalid {
			t.Errorf("token %q: err %v", tok, err)
		}
		if sms := AckSMS(a); strings.Contains(sms, "ref:") {
			t.Errorf("token %q: sms %q", tok, sms)
		}
		if chat := AckChat(a); strings.Contains(chat, "Reference") {
			t.Errorf("token %q: chat %q", tok, chat)
		}
	}
	a := fill(Ack{})
	a.Token = ""
	text, html, err := AckEmail(a)
	if err != nil || strings.Contains(text, "Reference") || strings.Contains(html, "Reference") {
		t.Errorf("no token: %v %q", err, text)
	}
}

func TestAckSMS(t *testing.T) {
	for _, v := range ackVariants {
		got := AckSMS(fill(v.ack))
		status := strings.ReplaceAll(v.status, "—", "-")
		want := "Amelia Stamps: " + status + ` "Make the header blue" ref:abcd2345`
		if v.ack.Busy {
			want = "Amelia Stamps: " + status + ` Not queued: "Make the header blue" ref:abcd2345`
		}
		if got != want {
			t.Errorf("%s:\n got %q\nwant %q", v.name, got, want)
		}
	}
	if got := AckSMS(Ack{}); got != "Got it - working on it now." {
		t.Errorf("minimal: %q", got)
	}
	a := Ack{Busy: true, Token: "[ref:abcd2345]"}
	if got := AckSMS(a); got != busyText+" ref:abcd2345" {
		t.Errorf("busy without instruction: %q", got)
	}

	longWords := strings.Repeat("Please change the “Opening hours” section — make it bolder… ", 80)
	for _, project := range []string{"", "Amelia Stamps", "Café Müller", "Żabka Łódź", "東京カフェ", "Bäckerei 🍞", strings.Repeat("Very Long Project Name ", 10), strings.Repeat("€", 200)} {
		for _, instr := range []string{"", "blue", longWords, strings.Repeat("x", 5000), strings.Repeat("🎉", 300), strings.Repeat("日本語", 300), strings.Repeat("{[€]}", 300), "a" + strings.Repeat(" ", 500) + "b"} {
			for _, v := range ackVariants {
				a := v.ack
				a.ProjectName, a.Instruction, a.Token = project, instr, "[ref:abcd2345]"
				a.WakeSeconds *= 1000 // the longest status
				sms := AckSMS(a)
				septets, bad := gsm7Check(sms)
				if bad != 0 || septets > SMSMaxSeptets || utf8.RuneCountInString(sms) > SMSMaxSeptets {
					t.Fatalf("%s/%q/%.20q: %d septets, bad %q: %q", v.name, project, instr, septets, bad, sms)
				}
				if !strings.HasSuffix(sms, " ref:abcd2345") || !strings.Contains(sms, toGSM7(v.status[:20])) {
					t.Fatalf("%s: token or status missing: %q", v.name, sms)
				}
				if strings.Contains(sms, "  ") || strings.Contains(sms, `""`) {
					t.Fatalf("%s: bad spacing or empty excerpt: %q", v.name, sms)
				}
			}
		}
	}

	// Non-ASCII project names: kept in GSM-7 form, left out when they
	// cannot be written.
	for project, prefix := range map[string]string{
		"Café Müller": "Café Müller: ", "Żabka Łódź": "Zabka Lodz: ", "Bäckerei 🍞": "Bäckerei: ",
		"東京カフェ": "Got it", "Café 東京": "Got it",
		strings.Repeat("Long ", 20): "Long Long Long Long Long Lo...: ",
	} {
		sms := AckSMS(Ack{ProjectName: project, Instruction: "blue"})
		if !strings.HasPrefix(sms, prefix) {
			t.Errorf("project %q: %q", project, sms)
		}
	}

	// A long instruction is cut with "..." and fills the message.
	a = fill(Ack{WakeSeconds: 30})
	a.Instruction = longWords
	sms := AckSMS(a)
	if n, _ := gsm7Check(sms); n < SMSMaxSeptets-12 || !strings.Contains(sms, `..." ref:abcd2345`) || strings.ContainsAny(sms, "“”—…") {
		t.Errorf("long sms (%d): %q", n, sms)
	}
}

func TestAckChat(t *testing.T) {
	for _, v := range ackVariants {
		got := AckChat(fill(v.ack))
		want := v.status + "\n<https://edit.amelia.example.com/t1/|Preview> · Reference: `ref:abcd2345`"
		if got != want {
			t.Errorf("%s:\n got %q\nwant %q", v.name, got, want)
		}
	}
	if got := AckChat(Ack{WakeSeconds: 12}); got != "Got it — your editor is waking up, usually about 12 seconds." {
		t.Errorf("one line: %q", got)
	}
	if got := AckChat(Ack{Token: "ref:abcd2345"}); got != "Got it — working on it now.\nReference: `ref:abcd2345`" {
		t.Errorf("token only: %q", got)
	}
	a := Ack{PreviewURL: "https://example.com/p?a=1&b=<2>"}
	if got := AckChat(a); strings.Contains(got, "Preview") {
		t.Errorf("preview with angle brackets kept: %q", got)
	}
	a.PreviewURL = "https://example.com/p?a=1&b=2"
	if got := AckChat(a); !strings.Contains(got, "<https://example.com/p?a=1&amp;b=2|Preview>") {
		t.Errorf("ampersand not escaped: %q", got)
	}
	a.PreviewURL = "https://example.com/p|x"
	if got := AckChat(a); strings.Contains(got, "Preview") {
		t.Errorf("preview with a pipe kept: %q", got)
	}
	// At most two lines, whatever the input.
	a = fill(Ack{Busy: true})
	a.ProjectName, a.Instruction = "<!channel>\n\nx", "<!here> do it\n\nnow"
	if got := AckChat(a); strings.Count(got, "\n") > 1 || strings.Contains(got, "<!") {
		t.Errorf("chat: %q", got)
	}
}
