package mail

import (
	"bytes"
	"html"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/webordinary/hermes"
)

// Reply is an email reply of Hermes, ready to be composed into a message.
// Addresses are bare ("edit@amelia.example.com"); message ids are written
// without angle brackets (brackets are tolerated and removed).
type Reply struct {
	From       string   // bare address: the project's address
	FromName   string   // display name, any Unicode; may be empty
	To         []string // bare addresses, at least one
	Subject    string   // final subject (see ReplySubject)
	MessageID  string   // this message's id (see NewMessageID); required
	InReplyTo  string   // the parent's Message-ID; may be empty
	References []string // the full chain (see ReferencesFor); the parent last
	ThreadID   string   // the thread (hermes.ValidTokenID), for X-Hermes-Thread
	Text       string   // plain-text body; required
	HTML       string   // HTML body, already safe; empty → made from Text
	Date       time.Time
	Kind       string // "ack", "result", "plan", "error", … for X-Hermes-Kind; may be empty
}

// maxHeaderLine is RFC 5322's hard limit of a line, without CRLF.
const maxHeaderLine = 998

// foldAt is the length after which header lines are folded when they can be
// (RFC 5322's recommended 78).
const foldAt = 78

// Compose returns the raw RFC 5322 message of r, with CRLF line endings:
//
//	Date: Mon, 02 Jan 2006 15:04:05 -0700      (RFC 1123Z; now when r.Date is zero)
//	From: "Name" <from>                         (RFC 2047-encoded when the name is not ASCII)
//	To: a@x, b@y
//	Subject: …                                  (RFC 2047 Q-encoded UTF-8 when not ASCII)
//	Message-ID: <id>
//	In-Reply-To: <parent>                       (when set)
//	References: <root> … <parent>               (r.References, or <parent> when empty)
//	MIME-Version: 1.0
//	Content-Type: multipart/alternative; boundary="=_hermes_…"
//	Auto-Submitted: auto-replied                (RFC 3834: robots must not answer)
//	X-Auto-Response-Suppress: All               (Exchange: no out-of-office replies)
//	X-Hermes-Thread: {threadID}
//	X-Hermes-Kind: {kind}                       (when set)
//
// The body has a text/plain and a text/html part, both charset=utf-8 and
// quoted-printable. Line breaks of the bodies (LF, CRLF or CR) become CRLF;
// a decoder gets the text back byte for byte otherwise. The encoding keeps
// lines short, never lets a line start with "." or "From " (so neither SMTP
// dot-stuffing nor mbox "From " escaping can change the text) and never
// splits a UTF-8 character over two lines. Header lines are folded at
// spaces after 78 characters.
//
// Every value is checked: header values with line breaks or other control
// characters (header injection), invalid or non-ASCII addresses, invalid
// message ids or thread ids, invalid UTF-8 and an empty text give an
// hermes.Invalid error, and nothing is composed.
func Compose(r Reply) ([]byte, error) {
	if err := checkAddress("From", r.From); err != nil {
		return nil, err
	}
	if err := checkHeaderText("FromName", r.FromName); err != nil {
		return nil, err
	}
	if len(r.To) == 0 {
		return nil, hermes.Errorf(hermes.Invalid, "compose: no recipient")
	}
	for _, to := range r.To {
		if err := checkAddress("To", to); err != nil {
			return nil, err
		}
	}
	if err := checkHeaderText("Subject", r.Subject); err != nil {
		return nil, err
	}
	msgID, err := checkMessageID("MessageID", r.MessageID)
	if err != nil {
		return nil, err
	}
	var inReplyTo string
	if r.InReplyTo != "" {
		if inReplyTo, err = checkMessageID("InReplyTo", r.InReplyTo); err != nil {
			return nil, err
		}
	}
	refs := make([]string, 0, len(r.References)+1)
	for _, ref := range r.References {
		id, err := checkMessageID("References", ref)
		if err != nil {
			return nil, err
		}
		refs = append(refs, "<"+id+">")
	}
	if len(refs) == 0 && inReplyTo != "" {
		refs = append(refs, "<"+inReplyTo+">") // a reply always names its parent in References
	}
	if !hermes.ValidTokenID(r.ThreadID) {
		return nil, hermes.Errorf(hermes.Invalid, "compose: invalid thread id %q", r.ThreadID)
	}
	if r.Kind != "" && !validKind(r.Kind) {
		return nil, hermes.Errorf(hermes.Invalid, "compose: invalid kind %q", r.Kind)
	}
	if strings.TrimSpace(r.Text) == "" {
		return nil, hermes.Errorf(hermes.Invalid, "compose: empty text body")
	}
	if !utf8.ValidString(r.Text) || !utf8.ValidString(r.HTML) {
		return nil, hermes.Errorf(hermes.Invalid, "compose: body is not valid UTF-8")
	}
	htmlBody := r.HTML
	if htmlBody == "" {
		htmlBody = "<!DOCTYPE html>\n<html><body><div style=\"white-space: pre-wrap\">" +
			html.EscapeString(r.Text) + "</div></body></html>\n"
	}
	date := r.Date
	if date.IsZero() {
		date = time.Now()
	}

	boundary := "=_hermes_" + randomLowerBase32(24) // "=_" never occurs in quoted-printable text
	var h headerWriter
	h.add("Date", date.Format(time.RFC1123Z))
	from := r.From
	if r.FromName != "" {
		from = (&mail.Address{Name: r.FromName, Address: r.From}).String()
	}
	h.add("From", from)
	h.add("To", strings.Join(r.To, ", "))
	h.add("Subject", encodeHeaderText(r.Subject))
	h.add("Message-ID", "<"+msgID+">")
	if inReplyTo != "" {
		h.add("In-Reply-To", "<"+inReplyTo+">")
	}
	if len(refs) > 0 {
		h.add("References", strings.Join(refs, " "))
	}
	h.add("MIME-Version", "1.0")
	h.add("Content-Type", mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": boundary}))
	h.add("Auto-Submitted", "auto-replied")
	h.add("X-Auto-Response-Suppress", "All")
	h.add("X-Hermes-Thread", r.ThreadID)
	if r.Kind != "" {
		h.add("X-Hermes-Kind", r.Kind)
	}
	if h.err != nil {
		return nil, h.err
	}

	msg := &h.buf
	msg.WriteString("\r\n")
	mw := multipart.NewWriter(msg)
	if err := mw.SetBoundary(boundary); err != nil {
		return nil, hermes.E("compose", hermes.Internal, err)
	}
	for _, p := range []struct{ mediaType, body string }{
		{"text/plain; charset=utf-8", r.Text},
		{"text/html; charset=utf-8", htmlBody},
	} {
		part, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {p.mediaType},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, hermes.E("compose", hermes.Internal, err)
		}
		if _, err := part.Write(encodeQuotedPrintable(p.body)); err != nil {
			return nil, hermes.E("compose", hermes.Internal, err)
		}
	}
	if err := mw.Close(); err != nil {
		return nil, hermes.E("compose", hermes.Internal, err)
	}
	return msg.Bytes(), nil
}

// encodeHeaderText returns s as an unstructured header value (RFC 2047):
// unchanged when it is ASCII; otherwise the span from the first to the last
// word that needs encoding (not ASCII, or looking like an encoded-word
// "=?…") is Q-encoded as UTF-8 in encoded-words of at most 75 characters,
// and the words before and after it stay as they are, so "Re: " and the
// "[ref:xxxxxxxx]" token of a subject stay readable on the wire even to a
// program that does not decode headers.
func encodeHeaderText(s string) string {
	words := strings.Split(s, " ")
	first, last := -1, -1
	for i, w := range words {
		if strings.Contains(w, "=?") || !isASCIIText(w) {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		return s
	}
	parts := append([]string(nil), words[:first]...)
	parts = append(parts, qEncodeWords(strings.Join(words[first:last+1], " ")))
	parts = append(parts, words[last+1:]...)
	return strings.Join(parts, " ")
}

// isASCIIText reports whether s is printable ASCII (tab allowed).
func isASCIIText(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' || c > '~') && c != '\t' {
			return false
		}
	}
	return true
}

// qEncodeWords encodes s as RFC 2047 "Q" encoded-words in UTF-8, each at
// most 75 characters, separated by spaces (which decoders drop between
// encoded-words). Characters are never split between words. Unlike
// mime.QEncoding it always encodes, and it is safe in any unstructured
// header: only letters, digits and "!*+-/" stay literal (RFC 2047 §5(3)).
func qEncodeWords(s string) string {
	const open, closing = "=?utf-8?q?", "?="
	const room = 75 - len(open) - len(closing)
	var b strings.Builder
	b.WriteString(open)
	n := 0
	for i := 0; i < len(s); {
		size := 1
		if s[i] >= utf8.RuneSelf {
			_, size = utf8.DecodeRuneInString(s[i:])
		}
		var tok string
		switch c := s[i]; {
		case c == ' ':
			tok = "_"
		case size == 1 && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!*+-/", c) >= 0):
			tok = s[i : i+1]
		default:
			var t [12]byte
			k := 0
			for j := i; j < i+size; j++ {
				t[k], t[k+1], t[k+2] = '=', upperHex[s[j]>>4], upperHex[s[j]&15]
				k += 3
			}
			tok = string(t[:k])
		}
		if n+len(tok) > room {
			b.WriteString(closing + " " + open)
			n = 0
		}
		b.WriteString(tok)
		n += len(tok)
		i += size
	}
	b.WriteString(closing)
	return b.String()
}

// checkAddress checks a bare ASCII address (no display name).
func checkAddress(field, addr string) error {
	if _, ok := hermes.NormalizeEmail(addr); !ok || !isASCIIPrintable(addr) {
		return hermes.Errorf(hermes.Invalid, "compose: invalid %s address %q", field, addr)
	}
	return nil
}

// checkHeaderText checks a free-text header value: valid UTF-8 without
// line breaks or other control characters (tab allowed).
func checkHeaderText(field, s string) error {
	if !utf8.ValidString(s) {
		return hermes.Errorf(hermes.Invalid, "compose: %s is not valid UTF-8", field)
	}
	for _, r := range s {
		if r == '\r' || r == '\n' {
			return hermes.Errorf(hermes.Invalid, "compose: %s contains a line break", field)
		}
		if r != '\t' && unicode.IsControl(r) {
			return hermes.Errorf(hermes.Invalid, "compose: %s contains a control character", field)
		}
	}
	return nil
}

// checkMessageID returns id without brackets if ValidMessageID accepts it.
func checkMessageID(field, id string) (string, error) {
	bare := trimMsgIDBrackets(id)
	if !ValidMessageID(bare) {
		return "", hermes.Errorf(hermes.Invalid, "compose: invalid %s message id %q", field, id)
	}
	return bare, nil
}

// validKind: 1–32 characters of [a-z0-9_-].
func validKind(s string) bool {
	if len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func isASCIIPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// headerWriter writes folded header fields; err is set when a value cannot
// be written within RFC 5322's line limit.
type headerWriter struct {
	buf bytes.Buffer
	err error
}

// add writes "name: value" folded at spaces: a line is broken before a
// space that is followed by a non-space once it would pass foldAt
// characters, so unfolding gives the value back and no line is white space
// only. The value must be free of line breaks (checked by the caller).
func (h *headerWriter) add(name, value string) {
	if h.err != nil {
		return
	}
	start := h.buf.Len()
	h.buf.WriteString(name)
	h.buf.WriteString(": ")
	col := len(name) + 2
	for i := 0; i < len(value); {
		j := i + 1
		for j < len(value) && !(value[j] == ' ' && j+1 < len(value) && value[j+1] != ' ' && value[j+1] != '\t') {
			j++
		}
		word := value[i:j]
		if i > 0 && col+len(word) > foldAt {
			h.buf.WriteString("\r\n")
			col = 0
		}
		h.buf.WriteString(word)
		col += len(word)
		i = j
	}
	h.buf.WriteString("\r\n")
	for line := range strings.SplitSeq(strings.TrimSuffix(h.buf.String()[start:], "\r\n"), "\r\n") {
		if len(line) > maxHeaderLine {
			h.err = hermes.Errorf(hermes.Invalid, "compose: %s has a word too long for one line", name)
			return
		}
	}
}

// encodeQuotedPrintable encodes s as quoted-printable text (RFC 2045
// §6.7) with CRLF line breaks. Line breaks in s (LF, CRLF, CR) are hard
// line breaks. Encoded lines are at most 76 characters; "=", control
// characters, bytes above 0x7e and white space at the end of a line are
// encoded; so are a "." or the "F" of "From " at the start of a line. A
// UTF-8 character is never split by a soft line break.
func encodeQuotedPrintable(s string) []byte {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	var b bytes.Buffer
	b.Grow(len(s) + len(s)/8)
	for n, line := range strings.Split(s, "\n") {
		if n > 0 {
			b.WriteString("\r\n")
		}
		col := 0
		for i := 0; i < len(line); {
			size := 1
			if line[i] >= utf8.RuneSelf {
				_, size = utf8.DecodeRuneInString(line[i:])
			}
			last := i+size == len(line)
			tok := qpToken(line, i, size, col == 0, last)
			limit := 75 // leaves room for the "=" of a soft line break
			if last {
				limit = 76
			}
			if col > 0 && col+len(tok) > limit {
				b.WriteString("=\r\n")
				col = 0
				tok = qpToken(line, i, size, true, last)
			}
			b.WriteString(tok)
			col += len(tok)
			i += size
		}
	}
	return b.Bytes()
}

const upperHex = "0123456789ABCDEF"

// qpToken returns the encoding of line[i:i+size] at the start of an encoded
// line (lineStart) or not, at the end of the text line (last) or not.
func qpToken(line string, i, size int, lineStart, last bool) string {
	c := line[i]
	literal := false
	switch {
	case size > 1 || c == '=' || c > '~':
	case c == ' ' || c == '\t':
		literal = !last
	case c < ' ':
	case lineStart && c == '.':
	case lineStart && c == 'F' && strings.HasPrefix(line[i:], "From "):
	default:
		literal = true
	}
	if literal {
		return line[i : i+1]
	}
	var t [12]byte
	k := 0
	for j := i; j < i+size; j++ {
		t[k], t[k+1], t[k+2] = '=', upperHex[line[j]>>4], upperHex[line[j]&15]
		k += 3
	}
	return string(t[:k])
}
