package mail

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/webordinary/hermes"
)

// composeTestReply is a valid reply that tests modify.
func composeTestReply() Reply {
	thread := testThreadID
	return Reply{
		From:       "edit@amelia.example.com",
		FromName:   "Amelia Stamps",
		To:         []string{"scott@example.com"},
		Subject:    ReplySubject("Make the header blue", "abcd2345"),
		MessageID:  NewMessageID(thread, "amelia.example.com"),
		InReplyTo:  "CAF=parent+1@mail.gmail.com",
		References: []string{"CAF=root@mail.gmail.com", "CAF=parent+1@mail.gmail.com"},
		ThreadID:   thread,
		Text:       "Done: the header is blue now.\n\nPreview: https://edit.amelia.example.com/x/\n",
		HTML:       "<p>Done: the header is <b>blue</b> now.</p>\n",
		Date:       time.Date(2026, 3, 14, 15, 9, 26, 0, time.FixedZone("CET", 3600)),
		Kind:       "result",
	}
}

// composedParts is a composed message read back with the standard library.
type composedParts struct {
	raw        []byte
	msg        *mail.Message
	text, html string // decoded by hand from the raw parts
}

// composeAndRead composes r and reads the result back, checking the
// structural rules every message must follow.
func composeAndRead(t *testing.T, r Reply) composedParts {
	t.Helper()
	raw, err := Compose(r)
	if err != nil {
		t.Fatalf("Compose: %v", err)
	}
	checkWireFormat(t, raw)
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("ReadMessage: %v\n%s", err, raw)
	}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/alternative" || params["boundary"] == "" {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	body, err := io.ReadAll(msg.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := composedParts{raw: raw, msg: msg}

	// Raw parts, decoded by hand: the wire encoding is checked.
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for i, want := range []string{"text/plain; charset=utf-8", "text/html; charset=utf-8"} {
		p, err := mr.NextRawPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if ct := p.Header.Get("Content-Type"); ct != want {
			t.Errorf("part %d Content-Type = %q, want %q", i, ct, want)
		}
		if cte := p.Header.Get("Content-Transfer-Encoding"); cte != "quoted-printable" {
			t.Errorf("part %d Content-Transfer-Encoding = %q", i, cte)
		}
		enc, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(enc), "\r\n") {
			if len(line) > 76 {
				t.Errorf("part %d: quoted-printable line of %d characters: %q", i, len(line), line)
			}
		}
		dec, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(enc)))
		if err != nil {
			t.Fatalf("part %d: quoted-printable: %v", i, err)
		}
		if i == 0 {
			out.text = string(dec)
		} else {
			out.html = string(dec)
		}
	}
	if _, err := mr.NextRawPart(); err != io.EOF {
		t.Errorf("more than two parts: %v", err)
	}

	// The same with the multipart reader's own decoding.
	mr = multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for i, want := range []string{out.text, out.html} {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(p)
		if err != nil || string(got) != want {
			t.Errorf("part %d decoded by NextPart differs: %v", i, err)
		}
	}
	return out
}

// checkWireFormat checks CRLF line endings, line lengths, and that no line
// starts with "From " or "." (both can be changed in transit).
func checkWireFormat(t *testing.T, raw []byte) {
	t.Helper()
	s := string(raw)
	if !strings.HasSuffix(s, "\r\n") {
		t.Error("message does not end with CRLF")
	}
	if strings.Count(s, "\n") != strings.Count(s, "\r\n") || strings.Count(s, "\r") != strings.Count(s, "\r\n") {
		t.Error("bare LF or CR in the message")
	}
	head, _, ok := strings.Cut(s, "\r\n\r\n")
	if !ok {
		t.Fatal("no header/body separator")
	}
	for _, line := range strings.Split(s, "\r\n") {
		if len(line) > maxHeaderLine {
			t.Errorf("line of %d characters", len(line))
		}
		if strings.HasPrefix(line, "From ") || strings.HasPrefix(line, ".") {
			t.Errorf("line starts with From or a dot: %q", line)
		}
		for _, r := range line {
			if r >= 0x7f || r < ' ' && r != '\t' {
				t.Fatalf("non-ASCII or control character %q in line %q", r, line)
			}
		}
	}
	for _, line := range strings.Split(head, "\r\n") {
		if strings.TrimSpace(line) == "" {
			t.Errorf("white-space-only header line in\n%s", head)
		}
		// A header line longer than 78 must be a single unbreakable word.
		if len(line) > foldAt && strings.Contains(strings.TrimLeft(line[strings.IndexByte(line, ':')+1:], " "), " ") {
			t.Errorf("header line not folded (%d): %q", len(line), line)
		}
	}
}

func TestComposeHeaders(t *testing.T) {
	r := composeTestReply()
	c := composeAndRead(t, r)
	h := c.msg.Header

	from, err := mail.ParseAddress(h.Get("From"))
	if err != nil || from.Name != r.FromName || from.Address != r.From {
		t.Errorf("From = %q (%v)", h.Get("From"), err)
	}
	to, err := h.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Address != r.To[0] || to[0].Name != "" {
		t.Errorf("To = %q (%v)", h.Get("To"), err)
	}
	if got := h.Get("Subject"); got != "Re: Make the header blue [ref:abcd2345]" {
		t.Errorf("Subject = %q (ASCII subjects are not encoded)", got)
	}
	date, err := h.Date()
	if err != nil || !date.Equal(r.Date) {
		t.Errorf("Date = %q (%v)", h.Get("Date"), err)
	}
	if got := h.Get("Date"); got != "Sat, 14 Mar 2026 15:09:26 +0100" {
		t.Errorf("Date = %q, want RFC 1123Z", got)
	}
	for name, want := range map[string]string{
		"Message-Id":               "<" + r.MessageID + ">",
		"In-Reply-To":              "<CAF=parent+1@mail.gmail.com>",
		"References":               "<CAF=root@mail.gmail.com> <CAF=parent+1@mail.gmail.com>",
		"Mime-Version":             "1.0",
		"Auto-Submitted":           "auto-replied",
		"X-Auto-Response-Suppress": "All",
		"X-Hermes-Thread":          r.ThreadID,
		"X-Hermes-Kind":            "result",
	} {
		if got := h[name]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if got := c.text; got != strings.ReplaceAll(r.Text, "\n", "\r\n") {
		t.Errorf("text = %q", got)
	}
	if got := c.html; got != strings.ReplaceAll(r.HTML, "\n", "\r\n") {
		t.Errorf("html = %q", got)
	}
	// The user's reply to this message threads back to r.ThreadID.
	if got, ok := ThreadFromMessageID(h.Get("Message-ID")); !ok || got != r.ThreadID {
		t.Errorf("own Message-ID carries %q, %v", got, ok)
	}
	if got, ok := FindToken(h.Get("Subject")); !ok || got != "abcd2345" {
		t.Errorf("subject token %q, %v", got, ok)
	}
	// No header is repeated, and nothing unexpected is there.
	allowed := map[string]bool{"Date": true, "From": true, "To": true, "Subject": true, "Message-Id": true,
		"In-Reply-To": true, "References": true, "Mime-Version": true, "Content-Type": true,
		"Auto-Submitted": true, "X-Auto-Response-Suppress": true, "X-Hermes-Thread": true, "X-Hermes-Kind": true}
	for name, v := range h {
		if !allowed[name] || len(v) != 1 {
			t.Errorf("header %s: %q", name, v)
		}
	}
}

func TestComposeOptionalHeaders(t *testing.T) {
	// A first message: no parent, no kind, no display name.
	r := composeTestReply()
	r.InReplyTo, r.References, r.Kind, r.FromName = "", nil, "", ""
	h := composeAndRead(t, r).msg.Header
	for _, name := range []string{"In-Reply-To", "References", "X-Hermes-Kind"} {
		if v, ok := h[name]; ok {
			t.Errorf("%s present: %q", name, v)
		}
	}
	if got := h.Get("From"); got != r.From {
		t.Errorf("From = %q", got)
	}

	// A parent but no References: the parent is the chain.
	r = composeTestReply()
	r.References = nil
	if got := composeAndRead(t, r).msg.Header.Get("References"); got != "<"+r.InReplyTo+">" {
		t.Errorf("References = %q", got)
	}

	// Brackets on ids are tolerated.
	r = composeTestReply()
	r.MessageID, r.InReplyTo = "<"+r.MessageID+">", "<"+r.InReplyTo+">"
	r.References = []string{"<CAF=root@mail.gmail.com>"}
	h = composeAndRead(t, r).msg.Header
	if h.Get("In-Reply-To") != r.InReplyTo || h.Get("Message-Id") != r.MessageID || h.Get("References") != "<CAF=root@mail.gmail.com>" {
		t.Errorf("bracketed ids: %q %q %q", h.Get("Message-Id"), h.Get("In-Reply-To"), h.Get("References"))
	}

	// A zero Date is now.
	r = composeTestReply()
	r.Date = time.Time{}
	before := time.Now().Add(-time.Second)
	date, err := composeAndRead(t, r).msg.Header.Date()
	if err != nil || date.Before(before) || date.After(time.Now().Add(time.Second)) {
		t.Errorf("Date = %v (%v)", date, err)
	}

	// Several recipients.
	r = composeTestReply()
	r.To = []string{"scott@example.com", "amelia@example.com", "third.person+tag@example.org"}
	to, err := composeAndRead(t, r).msg.Header.AddressList("To")
	if err != nil || len(to) != 3 || to[2].Address != "third.person+tag@example.org" {
		t.Errorf("To = %v (%v)", to, err)
	}
}

func TestComposeBodies(t *testing.T) {
	longASCII := strings.Repeat("0123456789", 300)       // 3000 characters on one line
	longUTF8 := strings.Repeat("Grüße, 日本語 and 🎉 ", 120) // multi-byte characters across soft breaks
	for name, text := range map[string]string{
		"ascii":          "Hello.\nThe header is blue now.\n",
		"non-ascii":      "Café Müller — „neue Öffnungszeiten“ · 日本語 · Ελληνικά · עברית\n",
		"emoji":          "Done 🎉👍🏽 👨‍👩‍👧‍👦 ✅\n",
		"long ascii":     longASCII,
		"long utf-8":     longUTF8 + "\n" + longUTF8,
		"long spaces":    strings.Repeat("word ", 400) + "\n" + strings.Repeat(" ", 200),
		"from lines":     "From the start.\nFrom here\nFrom\n From x\n>From y\nfrom z\n",
		"dot lines":      ".\n..\n.hidden\n. space\nend.\n.",
		"long dot lines": strings.Repeat("x", 75) + ".From stuff\n" + strings.Repeat("y", 74) + "From here on\n" + strings.Repeat("z", 75) + "..\n",
		"equals":         "a=b\n=3D\n=\n==\n=_hermes_boundary\n--=_hermes_x\n",
		"trailing ws":    "trailing space \ntrailing tab\t\n \n\t\nend",
		"tabs":           "\tindented\n\t\tmore",
		"crlf":           "windows\r\nline\r\nendings\r\n",
		"cr":             "old\rmac",
		"controls":       "bell\a and escape\x1b and nul\x00 and del\x7f",
		"no newline":     "no trailing newline",
		"blank lines":    "\n\n\nmiddle\n\n\n",
		"boundary-like":  "--\n--=_hermes_abc\n--=_hermes_abc--\n",
		"mime-like":      "Content-Type: text/html\n\nMIME-Version: 1.0\nSubject: fake\n",
		"c1 and bom":     "\ufeffbom \u0085 nel \u2028 ls \u00a0 nbsp",
	} {
		t.Run(name, func(t *testing.T) {
			r := composeTestReply()
			r.Text = text
			r.HTML = "<p>" + text + "</p>"
			c := composeAndRead(t, r)
			norm := func(s string) string {
				return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
			}
			if got := norm(c.text); got != norm(text) {
				t.Errorf("text part differs:\n got %q\nwant %q", got, norm(text))
			}
			if got := norm(c.html); got != norm(r.HTML) {
				t.Errorf("html part differs:\n got %q\nwant %q", got, norm(r.HTML))
			}
		})
	}
}

func TestComposeDefaultHTML(t *testing.T) {
	r := composeTestReply()
	r.HTML = ""
	r.Text = "Use <b> & \"quotes\"\nline two"
	c := composeAndRead(t, r)
	if !strings.Contains(c.html, "Use &lt;b&gt; &amp; &#34;quotes&#34;\r\nline two") || !strings.Contains(c.html, "white-space: pre-wrap") {
		t.Errorf("generated html = %q", c.html)
	}
}

func TestComposeEncodedHeaders(t *testing.T) {
	dec := new(mime.WordDecoder)
	for _, subject := range []string{
		ReplySubject("Café Müller: neue Öffnungszeiten", "abcd2345"),
		ReplySubject("🎉 Launch party! 🎉", "abcd2345"),
		ReplySubject(strings.Repeat("日本語のテキスト ", 40), "abcd2345"),
		ReplySubject(strings.Repeat("Zażółć gęślą jaźń ", 20), "abcd2345"),
		"Re: \"quoted\" (parens) <angle> =?utf-8?q?not-a-word?= é",
		"Re: tab\tinside é",
		"Re: what does =?utf-8?q?x?= mean",
		"Re: " + strings.TrimSpace(strings.Repeat("long ascii words ", 30)),
		"Re: " + strings.Repeat("x", 500), // one long ASCII word: not foldable, but within 998
	} {
		r := composeTestReply()
		r.Subject = subject
		c := composeAndRead(t, r)
		raw := c.msg.Header.Get("Subject")
		got, err := dec.DecodeHeader(raw)
		if err != nil || got != subject {
			t.Errorf("subject round trip:\n got %q (%v)\nwant %q\n raw %q", got, err, subject, raw)
		}
		if tok, ok := FindToken(got); strings.Contains(subject, "[ref:") && (!ok || tok != "abcd2345") {
			t.Errorf("token lost from %q", got)
		}
		// The prefix and the token stay readable without decoding.
		if strings.Contains(subject, "[ref:") && (!strings.HasPrefix(raw, "Re: ") || !strings.HasSuffix(raw, " [ref:abcd2345]")) {
			t.Errorf("raw subject %q hides the prefix or the token", raw)
		}
	}

	for _, name := range []string{"Café Müller", "Amelia \"The Stamp\" Stamps", "Zoë, Ltd.", "日本語の店 " + strings.Repeat("とても長い名前 ", 10), "A"} {
		r := composeTestReply()
		r.FromName = name
		c := composeAndRead(t, r)
		from, err := mail.ParseAddress(c.msg.Header.Get("From"))
		if err != nil || from.Name != name || from.Address != r.From {
			t.Errorf("From name round trip: %q → %q (%v)", name, c.msg.Header.Get("From"), err)
		}
	}
}

func TestComposeLongReferences(t *testing.T) {
	var refs []string
	for range 40 {
		refs = append(refs, NewMessageID(testThreadID, "amelia.example.com"))
	}
	r := composeTestReply()
	r.References = ReferencesFor(r.InReplyTo, refs)
	c := composeAndRead(t, r)
	got := messageIDList([]string{c.msg.Header.Get("References")})
	if strings.Join(got, " ") != strings.Join(r.References, " ") || len(got) != MaxReferences {
		t.Errorf("References round trip: %d ids\n got %q\nwant %q", len(got), got, r.References)
	}
	if !strings.Contains(string(c.raw), "\r\n <hermes.") {
		t.Error("References not folded")
	}
	if thread, ok := ThreadFromHeaders([]string{c.msg.Header.Get("In-Reply-To")}, []string{c.msg.Header.Get("References")}); !ok || thread != testThreadID {
		t.Errorf("thread from composed headers: %q %v", thread, ok)
	}
}

func TestComposeRejects(t *testing.T) {
	for name, mutate := range map[string]func(r *Reply){
		"subject CRLF":          func(r *Reply) { r.Subject = "Hi\r\nBcc: victim@example.com" },
		"subject LF":            func(r *Reply) { r.Subject = "Hi\nBcc: victim@example.com" },
		"subject CR":            func(r *Reply) { r.Subject = "Hi\rBcc: victim@example.com" },
		"subject NUL":           func(r *Reply) { r.Subject = "Hi\x00" },
		"subject bad UTF-8":     func(r *Reply) { r.Subject = "Hi \xff" },
		"subject U+0085":        func(r *Reply) { r.Subject = "Hi \u0085 there" },
		"from name LF":          func(r *Reply) { r.FromName = "Amelia\nBcc: victim@example.com" },
		"from name bad UTF-8":   func(r *Reply) { r.FromName = "\xc3" },
		"from CRLF":             func(r *Reply) { r.From = "edit@amelia.example.com\r\nBcc: victim@example.com" },
		"from with name":        func(r *Reply) { r.From = "Amelia <edit@amelia.example.com>" },
		"from empty":            func(r *Reply) { r.From = "" },
		"from invalid":          func(r *Reply) { r.From = "not an address" },
		"from non-ASCII":        func(r *Reply) { r.From = "édit@amelia.example.com" },
		"to empty":              func(r *Reply) { r.To = nil },
		"to CRLF":               func(r *Reply) { r.To = []string{"scott@example.com\r\nBcc: victim@example.com"} },
		"to list in one":        func(r *Reply) { r.To = []string{"scott@example.com, victim@example.com"} },
		"to with name":          func(r *Reply) { r.To = []string{"Scott <scott@example.com>"} },
		"to second invalid":     func(r *Reply) { r.To = []string{"scott@example.com", "x"} },
		"message id empty":      func(r *Reply) { r.MessageID = "" },
		"message id CRLF":       func(r *Reply) { r.MessageID += "\r\nBcc: victim@example.com" },
		"message id space":      func(r *Reply) { r.MessageID = "a b@c" },
		"message id no at":      func(r *Reply) { r.MessageID = "abc" },
		"in-reply-to CRLF":      func(r *Reply) { r.InReplyTo = "a@b\r\nBcc: victim@example.com" },
		"in-reply-to bracket":   func(r *Reply) { r.InReplyTo = "a@b> <c@d" },
		"references CRLF":       func(r *Reply) { r.References = []string{"a@b", "c@d\r\nBcc: victim@example.com"} },
		"references two in one": func(r *Reply) { r.References = []string{"<a@b> <c@d>"} },
		"references empty id":   func(r *Reply) { r.References = []string{""} },
		"thread id empty":       func(r *Reply) { r.ThreadID = "" },
		"thread id CRLF":        func(r *Reply) { r.ThreadID = testThreadID + "\r\nBcc: victim@example.com" },
		"thread id uppercase":   func(r *Reply) { r.ThreadID = strings.ToUpper(testThreadID) },
		"kind CRLF":             func(r *Reply) { r.Kind = "ack\r\nBcc: victim@example.com" },
		"kind uppercase":        func(r *Reply) { r.Kind = "ACK" },
		"kind long":             func(r *Reply) { r.Kind = strings.Repeat("a", 33) },
		"text empty":            func(r *Reply) { r.Text = " \n " },
		"text bad UTF-8":        func(r *Reply) { r.Text = "a\xffb" },
		"html bad UTF-8":        func(r *Reply) { r.HTML = "a\xffb" },
		"subject word too long": func(r *Reply) { r.Subject = strings.Repeat("x", 1000) },
	} {
		r := composeTestReply()
		mutate(&r)
		raw, err := Compose(r)
		if err == nil || hermes.ErrorKind(err) != hermes.Invalid || raw != nil {
			t.Errorf("%s: Compose = %d bytes, %v; want an Invalid error", name, len(raw), err)
		}
	}
}

func TestEncodeQuotedPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"":                                 "",
		"abc":                              "abc",
		"a=b":                              "a=3Db",
		"é":                                "=C3=A9",
		"end ":                             "end=20",
		"end\t\nx":                         "end=09\r\nx",
		".":                                "=2E",
		"a\n.b":                            "a\r\n=2Eb",
		"From me":                          "=46rom me",
		"Fro":                              "Fro",
		"x From me":                        "x From me",
		"a\r\nb\rc\nd":                     "a\r\nb\r\nc\r\nd",
		strings.Repeat("a", 76):            strings.Repeat("a", 76),
		strings.Repeat("a", 77):            strings.Repeat("a", 75) + "=\r\naa",
		strings.Repeat("a", 75) + "From x": strings.Repeat("a", 75) + "=\r\n=46rom x",
		strings.Repeat("a", 75) + ".x":     strings.Repeat("a", 75) + "=\r\n=2Ex",
		strings.Repeat("a", 74) + "é":      strings.Repeat("a", 74) + "=\r\n=C3=A9", // not split
	} {
		if got := string(encodeQuotedPrintable(in)); got != want {
			t.Errorf("encodeQuotedPrintable(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestComposeParseRoundTrip reads composed mail with the package's own
// inbound parser: the threading headers, addresses, subject and text come
// back, the message is recognised as Hermes' own (loop guard), and a site
// owner's reply to it threads back.
func TestComposeParseRoundTrip(t *testing.T) {
	r := composeTestReply()
	r.FromName = "Café Müller"
	r.Subject = ReplySubject("Neue Öffnungszeiten 🎉", "abcd2345")
	r.Text = "Erledigt — die Überschrift ist jetzt blau 🎉\nFrom now on\n.\n" + strings.Repeat("lang ", 300) + "\n"
	raw, err := Compose(r)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(raw)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if p.MessageID != r.MessageID || strings.Join(p.InReplyTo, " ") != r.InReplyTo || strings.Join(p.References, " ") != strings.Join(r.References, " ") {
		t.Errorf("ids: %q %q %q", p.MessageID, p.InReplyTo, p.References)
	}
	if p.From != r.From || p.FromName != r.FromName || strings.Join(p.To, ",") != strings.Join(r.To, ",") {
		t.Errorf("addresses: %q %q %q", p.From, p.FromName, p.To)
	}
	if p.Subject != r.Subject || !p.Date.Equal(r.Date) {
		t.Errorf("subject/date: %q %v", p.Subject, p.Date)
	}
	if want := strings.TrimRight(strings.ReplaceAll(r.Text, " \n", "\n"), "\n"); strings.TrimRight(p.Text, "\n") != want {
		t.Errorf("text:\n got %q\nwant %q", p.Text, want)
	}
	if p.Auto != AutoHermes {
		t.Errorf("Auto = %q, want %q", p.Auto, AutoHermes)
	}

	// The site owner answers; their client keeps the chain.
	reply := "From: Scott <scott@example.com>\r\nTo: edit@amelia.example.com\r\n" +
		"Subject: Re: " + p.Subject + "\r\n" +
		"Message-ID: <CAF=answer@mail.gmail.com>\r\n" +
		"In-Reply-To: <" + p.MessageID + ">\r\n" +
		"References: <" + strings.Join(ReferencesFor(p.MessageID, p.References), "> <") + ">\r\n" +
		"Date: Sat, 14 Mar 2026 16:00:00 +0100\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\nAlso make it bigger.\r\n"
	q, err := Parse([]byte(reply))
	if err != nil {
		t.Fatal(err)
	}
	if thread, ok := ThreadFromHeaders(q.InReplyTo, q.References); !ok || thread != r.ThreadID {
		t.Errorf("reply thread %q, %v", thread, ok)
	}
	if tok, ok := FindToken(q.Subject); !ok || tok != "abcd2345" {
		t.Errorf("reply token %q, %v", tok, ok)
	}
	if q.Auto != "" {
		t.Errorf("a human reply is automatic: %q", q.Auto)
	}
}
