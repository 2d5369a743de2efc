package mail

// Parsing of inbound email (SPEC §3, §4, §8).
//
// Parse turns a raw RFC 5322 / MIME message, as received from the SMTP
// server, the HTTP intake or SES, into the few things Hermes needs: the
// threading ids, the sender and recipients, the subject, the plain text and
// the instruction (the new text of the reply, see ReplyText), and whether the
// mail was sent automatically (loop guards: auto-replies, bounces, lists and
// our own mail are never executed).
//
// The MIME work (multipart structure, transfer encodings, charsets) is done
// by github.com/jhillyerd/enmime; HTML-only mail is turned into text with the
// converter enmime uses (github.com/jaytaylor/html2text). Around them Parse
// adds the guarantees a mail intake needs:
//
//   - Errors: a message without a header, without the blank line that ends
//     the header, or that enmime cannot read at the top level is a
//     hermes.Invalid error. Problems inside parts (broken boundaries, bad
//     base64, unknown charsets) are tolerated: whatever can be read is kept.
//   - Cost: callers bound the size; within that bound the work is linear.
//     enmime reads every byte once per enclosing multipart, so Parse honours
//     at most maxMultiparts multipart containers (deeper or further ones are
//     read as opaque leaves); enmime walks its list of parts on every
//     insertion, so a multipart message with more than maxParts possible
//     part starts is refused; the HTML parser and converter have costs that
//     grow with the nesting of quotes and formatting, so HTML is reduced to
//     what the converter renders first, and HTML that would still make it
//     work too hard is converted by a linear tokenizer instead (htmlToText).
//   - Charsets: a declared charset is trusted (no statistical guessing); text
//     declared us-ascii or without a charset is read as UTF-8; bytes that
//     are still not valid UTF-8 are read as Windows-1252 (the de-facto
//     meaning of "8-bit text without a charset"), one byte at a time, so the
//     result is always valid UTF-8.
//   - Parse never panics: a panic inside a dependency is turned into an
//     Invalid error (FuzzParse exercises the parser without that net).

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jaytaylor/html2text"
	"github.com/jhillyerd/enmime"
	"github.com/jhillyerd/enmime/mediatype"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"

	"github.com/webordinary/hermes"
)

// Parsed is what Hermes needs of an inbound email.
type Parsed struct {
	MessageID  string   // without angle brackets; "" if absent
	InReplyTo  []string // message ids, without brackets
	References []string // in order, without brackets, deduplicated (first occurrence kept)
	From       string   // bare address, lowercased ("" if unparseable)
	FromName   string   // display name, RFC 2047 decoded
	// To and Cc are the bare addresses, lowercased and deduplicated, of the
	// To and Cc headers only; envelope recipients (RCPT TO, Delivered-To,
	// X-Original-To) are passed separately by callers.
	To, Cc  []string
	ReplyTo string    // bare address, lowercased; "" if absent or unparseable
	Subject string    // decoded (RFC 2047), trimmed
	Date    time.Time // zero if absent/unparseable
	// Text is the full plain-text body: the text part (the text parts of a
	// multipart/mixed message, joined by a blank line), or the HTML part
	// converted to text when there is no (non-blank) text part. Line endings
	// are LF, trailing white space is removed; it is always valid UTF-8.
	Text        string
	Instruction string   // ReplyText(Text): the new text only
	Auto        AutoKind // why this mail is automatic, "" for a human message
	// Headers holds selected raw (undecoded, unfolded) headers kept for
	// auditing, keyed by the net/textproto canonical name ("Auto-Submitted",
	// "List-Id", "X-Hermes-Thread"): the loop-guard headers, Return-Path,
	// the authentication results and every X-Hermes-* header. At most
	// maxAuditValues values of at most maxAuditValueLen bytes are kept per
	// name. Nil when the message has none of them.
	Headers map[string][]string
}

// AutoKind says why a message is automatic. Automatic mail is recorded but
// never executed and never answered (SPEC §2.1, §8).
type AutoKind string

// The kinds of automatic mail. When several apply, the first in this list
// wins.
const (
	AutoHermes    AutoKind = "hermes"         // our own outgoing mail (header X-Hermes-Thread)
	AutoBounce    AutoKind = "bounce"         // a delivery status notification
	AutoReply     AutoKind = "auto-reply"     // a vacation / out-of-office / read-receipt answer
	AutoSubmitted AutoKind = "auto-submitted" // Auto-Submitted other than "no" (RFC 3834)
	AutoList      AutoKind = "list"           // mailing-list mail (List-Id, List-Unsubscribe, List-Post)
	AutoBulk      AutoKind = "bulk"           // Precedence: bulk, junk or list
)

const (
	// maxMultiparts bounds the multipart containers (the top level
	// included) whose structure is read; real mail uses at most a handful.
	// Further containers are kept as opaque leaves, so enmime reads no byte
	// more than maxMultiparts+1 times.
	maxMultiparts = 10
	// maxParts bounds the places where a MIME part may start (see
	// countPartMarkers); a multipart message with more is refused.
	maxParts = 5000
	// maxPartErrors bounds the part warnings enmime keeps.
	maxPartErrors = 32
	// htmlWorkBudget bounds the estimated work of the HTML converter (bytes
	// of HTML times one plus the deepest nesting of quotes and formatting
	// elements, which it copies or prefixes once per level).
	htmlWorkBudget = 64 << 20
	// maxAuditValues and maxAuditValueLen bound Parsed.Headers.
	maxAuditValues   = 8
	maxAuditValueLen = 998
)

// Parse reads a raw email. The error, if any, is a hermes.Invalid error.
func Parse(raw []byte) (p *Parsed, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, &hermes.Error{Op: "mail.Parse", Kind: hermes.Invalid,
				Message: "the email could not be read", Err: fmt.Errorf("panic: %v", r)}
		}
	}()
	return parse(raw)
}

// parse is Parse without the recover, for the fuzzer.
func parse(raw []byte) (*Parsed, error) {
	raw = skipMboxFromLine(raw)
	bodyStart, err := checkHeaderSection(raw)
	if err != nil {
		return nil, err
	}
	if bytes.Contains(bytes.ToLower(raw[:bodyStart]), []byte("multipart")) &&
		countPartMarkers(raw[bodyStart:], maxParts) > maxParts {
		return nil, hermes.Errorf(hermes.Invalid, "the email has more than %d MIME parts", maxParts)
	}
	root, err := newInboundParser().ReadParts(bytes.NewReader(raw))
	if err != nil {
		return nil, &hermes.Error{Op: "mail.Parse", Kind: hermes.Invalid,
			Message: "the email could not be decoded", Err: err}
	}
	h := indexHeader(root.Header)
	p := &Parsed{
		MessageID:  firstOf(parseMessageIDs(h["message-id"])),
		InReplyTo:  parseMessageIDs(h["in-reply-to"]),
		References: parseMessageIDs(h["references"]),
		To:         addressList(h["to"]),
		Cc:         addressList(h["cc"]),
		Subject:    cleanHeaderText(decodeWords(firstOf(h["subject"]))),
		Headers:    auditHeaders(root.Header),
	}
	p.From, p.FromName = firstAddress(h["from"])
	p.ReplyTo, _ = firstAddress(h["reply-to"])
	if d := strings.TrimSpace(firstOf(h["date"])); d != "" {
		if t, err := mail.ParseDate(d); err == nil {
			p.Date = t
		}
	}
	p.Text = bodyText(root)
	p.Instruction = ReplyText(p.Text)
	p.Auto = detectAuto(h, p.From)
	return p, nil
}

// newInboundParser returns an enmime parser for one message. It keeps going
// past broken parts, trusts declared charsets, reads undeclared text as
// UTF-8, and honours at most maxMultiparts boundaries (see boundedMediaType).
func newInboundParser() *enmime.Parser {
	return enmime.NewParser(
		enmime.SkipMalformedParts(true),
		enmime.SetReadPartErrorPolicy(enmime.AllowCorruptTextPartErrorPolicy),
		enmime.MaxStoredPartErrors(maxPartErrors),
		enmime.DisableTextConversion(true), // we convert (with a cost guard) ourselves
		enmime.DisableCharacterDetection(true),
		enmime.SetCustomParseMediaType(boundedMediaType(maxMultiparts)),
	)
}

// boundedMediaType returns a media type parser for one message: enmime's
// own, except that (1) text/plain declared us-ascii or without a charset is
// declared UTF-8 (so that 8-bit text is not read as Windows-1252 by enmime's
// us-ascii mapping; invalid UTF-8 is repaired later by fixUTF8), and (2)
// only the first limit results carrying a boundary keep it. enmime recurses
// exactly into parts whose media type has a boundary, so this bounds the
// multipart containers it reads, hence its work per byte. enmime parses the
// top-level Content-Type first (twice, before any part), so the top level
// always keeps its boundary.
func boundedMediaType(limit int) enmime.CustomParseMediaType {
	left := limit + 1 // the top level is parsed twice
	return func(ctype string) (string, map[string]string, []string, error) {
		mtype, params, invalid, err := mediatype.Parse(ctype)
		if err != nil {
			return mtype, params, invalid, err
		}
		if strings.HasPrefix(mtype, "text/") {
			cs := strings.ToLower(strings.TrimSpace(params["charset"]))
			switch {
			case mtype == "text/plain" && (cs == "" || asciiLabels[cs]):
				params = setParam(params, "charset", "utf-8")
			case latin1Labels[cs]:
				params = setParam(params, "charset", "windows-1252")
			}
		}
		if _, ok := params["boundary"]; ok {
			if left <= 0 {
				delete(params, "boundary")
			} else {
				left--
			}
		}
		return mtype, params, invalid, nil
	}
}

// asciiLabels and latin1Labels are charset labels (lowercased) of US-ASCII
// and of ISO-8859-1; the latter is read as its superset Windows-1252, as
// the WHATWG encoding standard (and every mail client) does, because mail
// labelled ISO-8859-1 often holds Windows-1252 quotes and dashes.
var (
	asciiLabels  = map[string]bool{"us-ascii": true, "ascii": true, "us": true, "ansi_x3.4-1968": true, "iso646-us": true, "csascii": true}
	latin1Labels = map[string]bool{"iso-8859-1": true, "iso8859-1": true, "iso_8859-1": true, "iso_8859-1:1987": true, "latin1": true, "l1": true, "iso-ir-100": true, "cp819": true, "ibm819": true, "csisolatin1": true}
)

func setParam(params map[string]string, k, v string) map[string]string {
	if params == nil {
		params = make(map[string]string, 1)
	}
	params[k] = v
	return params
}

// skipMboxFromLine drops the "From sender date" line that mbox files and
// some tools put before the header.
func skipMboxFromLine(raw []byte) []byte {
	if !bytes.HasPrefix(raw, []byte("From ")) {
		return raw
	}
	line, rest, found := bytes.Cut(raw, []byte("\n"))
	if !found || isHeaderField(line) { // "From : a@b" is a header field
		return raw
	}
	return rest
}

// checkHeaderSection checks the shape of the header: it starts with a header
// field and ends with a blank line, and holds no NUL byte. enmime accepts
// anything (text without a colon becomes a header continuation), so this is
// where garbage and header-only messages are refused. It returns the offset
// of the body.
func checkHeaderSection(raw []byte) (int, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return 0, hermes.Errorf(hermes.Invalid, "the email is empty")
	}
	first := true
	for off := 0; off < len(raw); {
		line := raw[off:]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i]
			off += i + 1
		} else {
			off = len(raw)
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			if first {
				return 0, hermes.Errorf(hermes.Invalid, "the email has no header")
			}
			return off, nil
		}
		if bytes.IndexByte(line, 0) >= 0 {
			return 0, hermes.Errorf(hermes.Invalid, "the email header contains binary data")
		}
		if first && !isHeaderField(line) {
			return 0, hermes.Errorf(hermes.Invalid, "the email does not start with a header field")
		}
		first = false
	}
	return 0, hermes.Errorf(hermes.Invalid, "the email has no blank line between header and body")
}

// countPartMarkers counts, up to limit+1, the places where a MIME part can
// start: a "--" at most three bytes after a CR or LF. enmime ends a part
// only where its boundary follows a line break that closely, and it links
// parts in a list it walks on every insertion (quadratic in their number),
// so this bounds both the parts and that work. Each multipart's first part
// may start elsewhere (enmime skips the preamble line by line), which
// maxMultiparts bounds.
func countPartMarkers(body []byte, limit int) int {
	n := 0
	for off := 0; n <= limit; {
		i := bytes.Index(body[off:], []byte("--"))
		if i < 0 {
			break
		}
		q := off + i
		for k := max(q-3, 0); k < q; k++ {
			if body[k] == '\n' || body[k] == '\r' {
				n++
				break
			}
		}
		if q < 3 { // the body starts with it: a part may start there
			n++
		}
		off = q + 1
	}
	return n
}

// isHeaderField reports whether line starts a header field: a name of
// printable ASCII other than ':' (spaces before the colon are tolerated, as
// enmime does), then ':'.
func isHeaderField(line []byte) bool {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return false
	}
	name := bytes.TrimRight(line[:colon], " \t")
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// indexHeader maps lowercased header names to their raw values.
func indexHeader(h textproto.MIMEHeader) map[string][]string {
	out := make(map[string][]string, len(h))
	for k, v := range h {
		lk := strings.ToLower(k)
		out[lk] = append(out[lk], v...)
	}
	return out
}

func firstOf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// auditNames are the headers kept in Parsed.Headers (besides X-Hermes-*).
var auditNames = map[string]bool{
	"auto-submitted":           true,
	"precedence":               true,
	"list-id":                  true,
	"list-unsubscribe":         true,
	"list-post":                true,
	"x-autoreply":              true,
	"x-autorespond":            true,
	"x-auto-response-suppress": true,
	"return-path":              true,
	"x-failed-recipients":      true,
	"x-loop":                   true,
	"authentication-results":   true,
	"received-spf":             true,
}

// auditHeaders returns the raw values of the headers kept for auditing.
func auditHeaders(h textproto.MIMEHeader) map[string][]string {
	var out map[string][]string
	for k, vs := range h {
		lk := strings.ToLower(k)
		if !auditNames[lk] && !strings.HasPrefix(lk, "x-hermes-") {
			continue
		}
		if out == nil {
			out = make(map[string][]string)
		}
		ck := textproto.CanonicalMIMEHeaderKey(lk)
		for _, v := range vs {
			if len(out[ck]) >= maxAuditValues {
				break
			}
			if len(v) > maxAuditValueLen {
				cut := maxAuditValueLen
				for cut > 0 && !utf8.RuneStart(v[cut]) {
					cut--
				}
				v = v[:cut]
			}
			out[ck] = append(out[ck], v)
		}
	}
	return out
}

// ---- message ids ----

// parseMessageIDs returns the message ids of header values, in order,
// without brackets, deduplicated (first occurrence kept). Within one value,
// ids in angle brackets are taken (white space inside the brackets is
// dropped, a missing closing bracket is tolerated); comments "(…)", quoted
// strings and other words are ignored. A value without any bracketed id is
// read as bare ids separated by white space or commas. Candidates that are
// not "left@right" of printable ASCII (at most 900 bytes, ValidMessageID) are
// dropped as garbage.
func parseMessageIDs(values []string) []string {
	var out []string
	var seen map[string]bool
	for _, v := range values {
		for _, id := range scanMessageIDs(v) {
			if seen[id] {
				continue
			}
			if seen == nil {
				seen = make(map[string]bool)
			}
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// scanMessageIDs reads the ids of one header value; see parseMessageIDs.
func scanMessageIDs(v string) []string {
	var bracketed, bare []string
	for i := 0; i < len(v); {
		switch c := v[i]; {
		case c == '(':
			i = skipComment(v, i)
		case c == '"':
			i = skipQuoted(v, i)
		case c == '<':
			end := strings.IndexAny(v[i+1:], "<>")
			var cand string
			switch {
			case end < 0: // no closing bracket: take the next word
				cand = v[i+1:]
				if k := strings.IndexAny(cand, " \t\r\n(,"); k >= 0 {
					cand = cand[:k]
				}
				i += 1 + len(cand)
			case v[i+1+end] == '<': // a stray '<': what follows it is garbage
				i += 1 + end
				continue
			default:
				cand, i = v[i+1:i+1+end], i+1+end+1
			}
			if id := dropSpace(cand); ValidMessageID(id) {
				bracketed = append(bracketed, id)
			}
		case isIDSeparator(c) || c == '>' || c == ')':
			i++
		default:
			j := i
			for j < len(v) && !isIDSeparator(v[j]) && !strings.ContainsRune("<>()\"", rune(v[j])) {
				j++
			}
			if ValidMessageID(v[i:j]) {
				bare = append(bare, v[i:j])
			}
			i = j
		}
	}
	if len(bracketed) > 0 {
		return bracketed
	}
	return bare
}

func isIDSeparator(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ','
}

// skipComment returns the index after the comment that starts at v[i] ==
// '(' (comments nest; a backslash quotes the next byte), or len(v).
func skipComment(v string, i int) int {
	depth := 0
	for ; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case '(':
			depth++
		case ')':
			if depth--; depth == 0 {
				return i + 1
			}
		}
	}
	return len(v)
}

// skipQuoted returns the index after the quoted string that starts at
// v[i] == '"', or len(v).
func skipQuoted(v string, i int) int {
	for i++; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(v)
}

// dropSpace removes white space (folding inside a broken id).
func dropSpace(s string) string {
	if !strings.ContainsAny(s, " \t\r\n") {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
}

// ---- addresses and header text ----

// firstAddress returns the first address of the header values, lowercased,
// with its decoded display name; "", "" when there is none.
func firstAddress(values []string) (addr, name string) {
	for _, v := range values {
		if list := parseAddresses(v); len(list) > 0 {
			return list[0].Address, list[0].Name
		}
	}
	return "", ""
}

// addressList returns the addresses of the header values, lowercased and
// deduplicated, in order; nil when there are none.
func addressList(values []string) []string {
	var out []string
	seen := make(map[string]bool)
	for _, v := range values {
		for _, a := range parseAddresses(v) {
			if !seen[a.Address] {
				seen[a.Address] = true
				out = append(out, a.Address)
			}
		}
	}
	return out
}

// parseAddresses parses an address list with enmime's tolerant parser and,
// when that fails, piece by piece (so that one broken entry does not lose
// the others). Addresses are lowercased; names are decoded and cleaned.
func parseAddresses(v string) []*mail.Address {
	list, err := enmime.ParseAddressList(v)
	if err != nil {
		list = looseAddresses(v)
	}
	out := list[:0]
	for _, a := range list {
		if a == nil {
			continue
		}
		addr := strings.ToLower(strings.TrimSpace(a.Address))
		if !plausibleAddress(addr) {
			continue
		}
		out = append(out, &mail.Address{Address: addr, Name: cleanHeaderText(a.Name)})
	}
	return out
}

// plausibleAddress: local@domain, both non-empty, no white space, no
// brackets, valid UTF-8.
func plausibleAddress(a string) bool {
	at := strings.LastIndexByte(a, '@')
	return at > 0 && at < len(a)-1 && utf8.ValidString(a) &&
		!strings.ContainsAny(a, " \t\r\n<>(),;")
}

// looseAddresses splits an address list at commas and semicolons outside
// quotes and angle brackets (at every comma and semicolon if a quote is
// left open) and reads each piece as `name <addr>` or `addr`.
func looseAddresses(v string) []*mail.Address {
	if out, ok := splitAddresses(v, true); ok {
		return out
	}
	out, _ := splitAddresses(v, false)
	return out
}

// splitAddresses is looseAddresses with or without honouring quotes; ok is
// false when a quote was left open.
func splitAddresses(v string, quotes bool) (out []*mail.Address, ok bool) {
	inQuote, inAngle, start := false, false, 0
	for i := 0; i <= len(v); i++ {
		if i < len(v) {
			switch v[i] {
			case '\\':
				if inQuote {
					i++
				}
				continue
			case '"':
				inQuote = quotes && !inQuote
				continue
			case '<':
				inAngle = !inQuote
				continue
			case '>':
				inAngle = false
				continue
			case ',', ';':
				if inQuote || inAngle {
					continue
				}
			default:
				continue
			}
		}
		piece := v[start:min(i, len(v))]
		start = i + 1
		if a := looseAddress(piece); a != nil {
			out = append(out, a)
		}
	}
	return out, !inQuote
}

func looseAddress(piece string) *mail.Address {
	piece = strings.TrimSpace(piece)
	name, addr := "", piece
	if lt := strings.LastIndexByte(piece, '<'); lt >= 0 {
		gt := strings.IndexByte(piece[lt:], '>')
		if gt < 0 {
			return nil
		}
		addr = piece[lt+1 : lt+gt]
		name = strings.TrimSpace(piece[:lt])
		name = strings.TrimSuffix(strings.TrimPrefix(name, `"`), `"`)
		name = strings.ReplaceAll(name, `\"`, `"`)
	}
	addr = strings.TrimSpace(addr)
	if _, err := mail.ParseAddress("<" + addr + ">"); err != nil {
		return nil
	}
	return &mail.Address{Name: decodeWords(name), Address: addr}
}

// wordDecoder decodes RFC 2047 encoded words in any charset the WHATWG
// encoding standard knows (ISO-8859-1 is read as Windows-1252, as browsers
// and mail clients do).
var wordDecoder = &mime.WordDecoder{CharsetReader: func(charset string, input io.Reader) (io.Reader, error) {
	enc, err := htmlindex.Get(charset)
	if err != nil {
		return nil, err
	}
	return enc.NewDecoder().Reader(input), nil
}}

// decodeWords decodes RFC 2047 encoded words; on an error it keeps s.
func decodeWords(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	d, err := wordDecoder.DecodeHeader(s)
	if err != nil {
		return s
	}
	return d
}

// cleanHeaderText makes header text safe to show and to reuse: valid UTF-8,
// C1 controls read as Windows-1252 (Go decodes ISO-8859-1 encoded words
// itself, strictly, so "=?iso-8859-1?q?=93?=" would give U+0093), other
// control characters (a decoded CR/LF, say) turned into spaces, trimmed.
func cleanHeaderText(s string) string {
	s = fixUTF8(s)
	s = strings.Map(func(r rune) rune {
		if r >= 0x80 && r <= 0x9f {
			r = charmap.Windows1252.DecodeByte(byte(r))
		}
		if r < ' ' || r >= 0x7f && r <= 0x9f {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// fixUTF8 returns s with every byte that is not part of valid UTF-8 read as
// Windows-1252.
func fixUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + len(s)/8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			r = charmap.Windows1252.DecodeByte(s[i])
		}
		b.WriteRune(r)
		i += size
	}
	return b.String()
}

// ---- body ----

// bodyText returns the plain text of the message (see Parsed.Text).
func bodyText(root *enmime.Part) string {
	var text, htm string
	if root.FirstChild == nil {
		switch {
		case root.Disposition == "attachment":
		case root.ContentType == "text/plain":
			text = string(root.Content)
		case root.ContentType == "text/html":
			htm = string(root.Content)
		}
	} else {
		text = multipartText(root)
		if p := root.DepthMatchFirst(isHTMLBody); p != nil {
			htm = string(p.Content)
		}
	}
	if strings.TrimSpace(text) == "" && strings.TrimSpace(htm) != "" {
		text = htmlToText(fixUTF8(htm))
	}
	return cleanBody(text)
}

func isTextBody(p *enmime.Part) bool {
	return p.ContentType == "text/plain" && p.Disposition != "attachment"
}

func isHTMLBody(p *enmime.Part) bool {
	return p.ContentType == "text/html" && p.Disposition != "attachment"
}

// multipartText picks the text parts as enmime does: the first text part of
// a multipart/alternative, every text part of other multiparts (parts with a
// file name only when there is no other), joined by a blank line (enmime
// joins with "--", which would read as a signature delimiter).
func multipartText(root *enmime.Part) string {
	if root.ContentType == "multipart/alternative" {
		if p := root.BreadthMatchFirst(isTextBody); p != nil {
			return string(p.Content)
		}
		return ""
	}
	parts := root.DepthMatchAll(isTextBody)
	named := 0
	for _, p := range parts {
		if p.FileName != "" {
			named++
		}
	}
	var b strings.Builder
	for _, p := range parts {
		if p.FileName != "" && named < len(parts) {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("\n\n")
		}
		b.Write(bytes.TrimRight(p.Content, " \t\r\n"))
	}
	return b.String()
}

// cleanBody repairs UTF-8, normalises line endings to LF, drops leading
// blank lines and trailing white space.
func cleanBody(s string) string {
	s = fixUTF8(s)
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = strings.TrimRight(s, " \t\n")
	for {
		line, rest, ok := strings.Cut(s, "\n")
		if !ok || strings.TrimSpace(line) != "" {
			return s
		}
		s = rest
	}
}

// htmlToText converts HTML to text with html2text, enmime's converter
// (links kept as "text ( url )", quotes as "> " lines, scripts and styles
// dropped). Two things make html2text and the HTML parser under it work
// much harder than the size of their input on hostile markup, so:
//
//  1. The markup is first reduced to the elements and attributes html2text
//     renders (sanitizeHTML). Other elements only pass their text through,
//     so the rendering is the same, but formatting elements that the parser
//     re-opens at every block (one copy per block and open element) are
//     gone, and the b and strong that remain carry no attributes, which
//     caps their re-opened copies at three each (the parser's "Noah's ark"
//     rule); a is re-opened at most once.
//  2. html2text prefixes every line with one '>' per quote level and copies
//     the text of b, strong and h1–h3 once per nesting level. The parsed
//     tree gives the exact nesting; when the size times the nesting is over
//     htmlWorkBudget, or the parser refuses the tree (over 512 open
//     elements), or html2text fails, the linear plainFromHTML is used.
func htmlToText(h string) string {
	clean := sanitizeHTML(h)
	doc, err := html.Parse(strings.NewReader(clean))
	if err == nil && len(clean)*(1+htmlNesting(doc)) <= htmlWorkBudget {
		if s, ok := html2textSafe(doc); ok {
			return s
		}
	}
	return plainFromHTML(h)
}

// html2textSafe runs html2text, reporting failure (an error, or a panic of
// the converter on hostile markup) instead of losing the message.
func html2textSafe(doc *html.Node) (s string, ok bool) {
	defer func() {
		if recover() != nil {
			s, ok = "", false
		}
	}()
	s, err := html2text.FromHTMLNode(doc)
	return s, err == nil
}

// renderedAtoms are the elements html2text renders in a special way (or
// whose block structure it relies on); sanitizeHTML keeps only these.
var renderedAtoms = map[atom.Atom]bool{
	atom.A: true, atom.B: true, atom.Strong: true, atom.Blockquote: true, atom.Br: true,
	atom.H1: true, atom.H2: true, atom.H3: true, atom.H4: true, atom.H5: true, atom.H6: true,
	atom.P: true, atom.Div: true, atom.Pre: true, atom.Hr: true, atom.Img: true,
	atom.Ul: true, atom.Ol: true, atom.Li: true, atom.Dl: true, atom.Dt: true, atom.Dd: true,
	atom.Table: true, atom.Caption: true, atom.Thead: true, atom.Tbody: true, atom.Tfoot: true,
	atom.Tr: true, atom.Td: true, atom.Th: true,
}

// hiddenAtoms are the elements whose content is never shown.
var hiddenAtoms = map[atom.Atom]bool{
	atom.Script: true, atom.Style: true, atom.Title: true, atom.Noscript: true, atom.Template: true,
	atom.Textarea: true, atom.Iframe: true, atom.Noembed: true, atom.Noframes: true, atom.Xmp: true,
}

// sanitizeHTML rewrites HTML keeping its text and the renderedAtoms
// elements, with no attributes but a's href and img's alt; comments,
// doctypes and the content of hiddenAtoms elements are dropped. One pass
// of the tokenizer: linear.
func sanitizeHTML(h string) string {
	z := html.NewTokenizer(strings.NewReader(h))
	var b strings.Builder
	b.Grow(len(h) / 2)
	var hidden atom.Atom // the hidden element being skipped
	hiddenDepth := 0
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return b.String()
		case html.TextToken:
			if hiddenDepth == 0 {
				b.WriteString(html.EscapeString(string(z.Text())))
			}
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			name, hasAttr := z.TagName()
			a := atom.Lookup(name)
			if hiddenDepth > 0 {
				if a == hidden && tt == html.StartTagToken {
					hiddenDepth++
				} else if a == hidden && tt == html.EndTagToken {
					hiddenDepth--
				}
				continue
			}
			if hiddenAtoms[a] && tt == html.StartTagToken {
				hidden, hiddenDepth = a, 1
				continue
			}
			if !renderedAtoms[a] {
				continue
			}
			if tt == html.EndTagToken {
				b.WriteString("</" + a.String() + ">")
				continue
			}
			b.WriteString("<" + a.String())
			for hasAttr {
				var k, v []byte
				k, v, hasAttr = z.TagAttr()
				if a == atom.A && string(k) == "href" || a == atom.Img && string(k) == "alt" {
					b.WriteString(" " + string(k) + `="` + html.EscapeString(string(v)) + `"`)
				}
			}
			b.WriteString(">")
		}
	}
}

// htmlNesting returns the deepest nesting, on one path of the tree, of
// blockquotes plus b, strong, h1, h2 and h3 elements: the factor by which
// html2text's work exceeds the size of its input.
func htmlNesting(doc *html.Node) int {
	type item struct {
		n     *html.Node
		depth int
	}
	deepest := 0
	stack := []item{{doc, 0}}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		d := it.depth
		if it.n.Type == html.ElementNode {
			switch it.n.DataAtom {
			case atom.Blockquote, atom.B, atom.Strong, atom.H1, atom.H2, atom.H3:
				d++
			}
		}
		deepest = max(deepest, d)
		for c := it.n.FirstChild; c != nil; c = c.NextSibling {
			stack = append(stack, item{c, d})
		}
	}
	return deepest
}

// plainFromHTML is a linear HTML to text conversion: text with collapsed
// white space, line breaks at block elements (at most one blank line in a
// row), "> " before quoted lines (one marker whatever the depth), link
// targets after the link text, and the content of hiddenAtoms elements
// dropped.
func plainFromHTML(h string) string {
	z := html.NewTokenizer(strings.NewReader(h))
	var b strings.Builder
	var hidden atom.Atom // the hidden element being skipped
	hiddenDepth, quote, pre := 0, 0, 0
	space := false // white space is pending between two pieces of text
	newlines := 0  // line breaks at the end of b
	href, linkStart := "", -1
	breakLine := func(max int) {
		if b.Len() > 0 && newlines < max {
			b.WriteByte('\n')
			newlines++
		}
		space = false
	}
	endBlock := func(blank bool) {
		breakLine(1)
		if blank {
			breakLine(2)
		}
	}
	write := func(s string) {
		if s == "" {
			return
		}
		if newlines > 0 && quote > 0 {
			b.WriteString("> ")
		}
		b.WriteString(s)
		newlines = 0
	}
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return strings.TrimSpace(b.String())
		case html.TextToken:
			if hiddenDepth > 0 {
				continue
			}
			t := string(z.Text())
			if pre > 0 {
				for i, line := range strings.Split(t, "\n") {
					if i > 0 {
						b.WriteByte('\n')
						newlines++
					}
					write(line)
				}
				continue
			}
			words := strings.Join(strings.Fields(t), " ")
			if words == "" {
				space = space || t != ""
				continue
			}
			if newlines == 0 && b.Len() > 0 && (space || words[0] != t[0]) {
				words = " " + words
			}
			write(words)
			space = words[len(words)-1] != t[len(t)-1]
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			name, hasAttr := z.TagName()
			a := atom.Lookup(name)
			start := tt != html.EndTagToken
			if hiddenDepth > 0 {
				if a == hidden && tt == html.StartTagToken {
					hiddenDepth++
				} else if a == hidden && tt == html.EndTagToken {
					hiddenDepth--
				}
				continue
			}
			if hiddenAtoms[a] {
				if tt == html.StartTagToken {
					hidden, hiddenDepth = a, 1
				}
				continue
			}
			switch a {
			case atom.Br:
				breakLine(2)
			case atom.Pre:
				endBlock(true)
				if start {
					pre++
				} else if pre > 0 {
					pre--
				}
			case atom.Blockquote:
				endBlock(true)
				if start {
					quote++
				} else if quote > 0 {
					quote--
				}
			case atom.P, atom.Table, atom.Ul, atom.Ol, atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6:
				endBlock(true)
			case atom.Div, atom.Tr, atom.Li, atom.Hr, atom.Dt, atom.Dd:
				endBlock(false)
			case atom.A:
				if start {
					href, linkStart = "", b.Len()
					for hasAttr {
						var k, v []byte
						k, v, hasAttr = z.TagAttr()
						if string(k) == "href" {
							href = strings.TrimPrefix(strings.TrimSpace(string(v)), "mailto:")
						}
					}
				} else if href != "" && linkStart >= 0 {
					if strings.TrimSpace(b.String()[linkStart:]) != href {
						write(" ( " + href + " )")
					}
					href, linkStart = "", -1
				}
			}
		}
	}
}

// ---- automatic mail ----

// detectAuto says why the message is automatic ("" for a human message).
// h is the lowercased header index, from the parsed sender address.
func detectAuto(h map[string][]string, from string) AutoKind {
	switch {
	case len(h["x-hermes-thread"]) > 0:
		return AutoHermes
	case isBounce(h, from):
		return AutoBounce
	case isAutoReply(h):
		return AutoReply
	case anyValue(h["auto-submitted"], func(tok string) bool { return tok != "" && tok != "no" }):
		return AutoSubmitted
	case len(h["list-id"]) > 0 || len(h["list-unsubscribe"]) > 0 || len(h["list-post"]) > 0:
		return AutoList
	case anyValue(h["precedence"], func(tok string) bool { return tok == "bulk" || tok == "junk" || tok == "list" }):
		return AutoBulk
	}
	return ""
}

// isBounce: a delivery status report (multipart/report;
// report-type=delivery-status), mail from a MAILER-DAEMON or postmaster
// mailbox, or an empty Return-Path (the null sender of RFC 5321 §4.5.5).
func isBounce(h map[string][]string, from string) bool {
	if mtype, params := topMediaType(h); mtype == "multipart/report" &&
		strings.EqualFold(strings.TrimSpace(params["report-type"]), "delivery-status") {
		return true
	}
	local := from
	if at := strings.LastIndexByte(from, '@'); at >= 0 {
		local = from[:at]
	}
	if from == "" {
		// An unparseable From such as "MAILER-DAEMON (Mail Delivery System)".
		local = strings.ToLower(strings.TrimSpace(stripComments(firstOf(h["from"]))))
		local = strings.Trim(local, "<>\" ")
		if at := strings.LastIndexByte(local, '@'); at >= 0 {
			local = local[:at]
		}
	}
	if local == "mailer-daemon" || local == "postmaster" {
		return true
	}
	if rp, ok := h["return-path"]; ok && len(rp) > 0 && dropSpace(stripComments(rp[0])) == "<>" {
		return true
	}
	return false
}

// isAutoReply: X-Autoreply or X-Autorespond (with any value but a negative
// one), X-Auto-Response-Suppress naming All, OOF or AutoReply (set by
// Exchange on its automatic answers), Precedence: auto_reply, or a message
// disposition notification (a read receipt).
func isAutoReply(h map[string][]string) bool {
	yes := func(tok string) bool {
		return tok != "" && tok != "no" && tok != "false" && tok != "0" && tok != "off"
	}
	if anyValue(h["x-autoreply"], yes) || anyValue(h["x-autorespond"], yes) {
		return true
	}
	for _, v := range h["x-auto-response-suppress"] {
		for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\t' }) {
			if strings.EqualFold(f, "all") || strings.EqualFold(f, "oof") || strings.EqualFold(f, "autoreply") {
				return true
			}
		}
	}
	if anyValue(h["precedence"], func(tok string) bool { return tok == "auto_reply" }) {
		return true
	}
	mtype, params := topMediaType(h)
	return mtype == "multipart/report" &&
		strings.EqualFold(strings.TrimSpace(params["report-type"]), "disposition-notification")
}

// anyValue reports whether f holds for the first token (lowercased, before
// any ';', comment or white space) of one of the values.
func anyValue(values []string, f func(tok string) bool) bool {
	for _, v := range values {
		v = strings.TrimSpace(stripComments(v))
		if i := strings.IndexAny(v, "; \t"); i >= 0 {
			v = v[:i]
		}
		if f(strings.ToLower(v)) {
			return true
		}
	}
	return false
}

// stripComments removes RFC 5322 comments "(…)" outside quoted strings.
func stripComments(v string) string {
	if !strings.Contains(v, "(") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); {
		switch v[i] {
		case '(':
			i = skipComment(v, i)
			b.WriteByte(' ')
		case '"':
			j := skipQuoted(v, i)
			b.WriteString(v[i:j])
			i = j
		default:
			b.WriteByte(v[i])
			i++
		}
	}
	return b.String()
}

// topMediaType parses the top-level Content-Type.
func topMediaType(h map[string][]string) (string, map[string]string) {
	ct := firstOf(h["content-type"])
	if ct == "" {
		return "", nil
	}
	mtype, params, _, err := mediatype.Parse(ct)
	if err != nil {
		return "", nil
	}
	return mtype, params
}
