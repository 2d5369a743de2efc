package mail

// Thread identification of email conversations (SPEC §4).
//
// Hermes carries the thread id of a conversation in three independent ways,
// because mail clients lose some of them:
//
//  1. Message-IDs. Every message Hermes sends has a Message-ID of the form
//
//     hermes.{threadID}.{16 random base32 characters}@{domain}
//
//     (NewMessageID). A reply from the site owner names it in In-Reply-To and
//     References, so ThreadFromHeaders finds the thread without any lookup.
//     The random part keeps every Message-ID unique; the thread id is the
//     unguessable 16–64 character id of hermes.ValidTokenID.
//  2. The conversation token, 8 lowercase base32 characters stored on the
//     thread, shown as "[ref:xxxxxxxx]" in the subject (ReplySubject) and in
//     the footer of the body. It survives clients that drop or rewrite
//     threading headers, and works across channels (an SMS can quote it).
//     FindToken finds it in a subject or a body; the caller maps it to the
//     thread with a store lookup.
//  3. X-Hermes-Thread, a header on every reply (see Compose). It is for
//     operators and logs only: a site owner's reply does not carry it, and
//     an inbound message's X-Hermes-Thread must never be trusted.
//
// The order in which a router applies them is fixed by the spec: a Hermes
// Message-ID in In-Reply-To/References (ThreadFromHeaders) → the
// conversation token (FindToken) → the root of References → In-Reply-To →
// the message's own Message-ID (a new thread).
//
// Knowing a thread id or a token proves nothing about the sender: the
// router must still check that the verified sender is a member of the
// thread's project before acting on it.

import (
	"crypto/rand"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/webordinary/hermes"
)

// messageIDPrefix starts the local part of every Message-ID Hermes issues.
const messageIDPrefix = "hermes."

// FallbackMessageIDDomain is the domain of Hermes Message-IDs when no valid
// domain is configured (RFC 2606 reserves .invalid).
const FallbackMessageIDDomain = "hermes.invalid"

// messageIDRandLen is the length of the random part of a Message-ID
// (80 bits).
const messageIDRandLen = 16

// TokenLen is the length of a conversation token (40 random bits: enough to
// tell conversations apart, not a secret — see the package notes).
const TokenLen = 8

// MaxReferences caps the References chain written by ReferencesFor: the root
// and the newest MaxReferences-1 message ids. RFC 5322 §3.6.4 lets a
// References field be trimmed in the middle; keeping the root keeps the
// "root of References" rule working and keeping the newest ids keeps the
// parent (and with it a Hermes Message-ID) in every reply, so a thread
// survives any number of messages.
const MaxReferences = 21

// maxMessageIDLen bounds a message id (without brackets) so that a header
// line that holds one never exceeds RFC 5322's 998 characters.
const maxMessageIDLen = 900

// base32Alphabet is the lowercase RFC 4648 alphabet of tokens and ids.
const base32Alphabet = "abcdefghijklmnopqrstuvwxyz234567"

// randomLowerBase32 returns n random characters of base32Alphabet.
func randomLowerBase32(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand documents it)
	for i := range b {
		b[i] = base32Alphabet[b[i]&31] // 256 is a multiple of 32: no bias
	}
	return string(b)
}

func isLowerBase32(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// NewMessageID returns a new Message-ID (without angle brackets) that
// carries threadID: "hermes.{threadID}.{16 random base32 chars}@{domain}".
// The domain is lowercased; a bare address such as "edit@amelia.example.com"
// may be passed and its domain is used. An empty or invalid domain gives
// FallbackMessageIDDomain. A threadID that is not a valid thread id
// (hermes.ValidTokenID) gives a unique Message-ID that carries no thread,
// "hermes.{random}@{domain}", which ThreadFromMessageID does not recognise.
func NewMessageID(threadID, domain string) string {
	if strings.ContainsRune(domain, '@') {
		addr, ok := hermes.NormalizeEmail(strings.TrimSpace(domain))
		if !ok {
			addr = ""
		}
		domain = addr[strings.LastIndexByte(addr, '@')+1:]
	}
	domain = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(domain)), ".")
	if !validIDDomain(domain) {
		domain = FallbackMessageIDDomain
	}
	if !hermes.ValidTokenID(threadID) {
		return messageIDPrefix + randomLowerBase32(messageIDRandLen) + "@" + domain
	}
	return messageIDPrefix + threadID + "." + randomLowerBase32(messageIDRandLen) + "@" + domain
}

// validIDDomain reports whether s is a lowercase DNS host name: dot-separated
// labels of 1–63 letters, digits and inner hyphens, 253 characters at most.
func validIDDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// ThreadFromMessageID returns the thread id carried by a Message-ID that
// Hermes issued (NewMessageID), with or without angle brackets and in any
// case. It reports false for every other id, including Hermes ids that
// carry no thread.
func ThreadFromMessageID(id string) (threadID string, ok bool) {
	id = strings.ToLower(trimMsgIDBrackets(strings.TrimSpace(id)))
	local, domain, found := strings.Cut(id, "@")
	if !found || domain == "" || strings.ContainsRune(domain, '@') {
		return "", false
	}
	rest, found := strings.CutPrefix(local, messageIDPrefix)
	if !found {
		return "", false
	}
	thread, random, found := strings.Cut(rest, ".")
	if !found || len(random) != messageIDRandLen || !isLowerBase32(random) || !hermes.ValidTokenID(thread) {
		return "", false
	}
	return thread, true
}

// trimMsgIDBrackets removes one pair of enclosing angle brackets.
func trimMsgIDBrackets(s string) string {
	if len(s) >= 2 && s[0] == '<' && s[len(s)-1] == '>' {
		return s[1 : len(s)-1]
	}
	return s
}

// ValidMessageID reports whether id (without angle brackets) can be written
// in a Message-ID, In-Reply-To or References header: printable ASCII without
// spaces or angle brackets, "left@right" with both sides non-empty, at most
// 900 characters. It is the check Compose applies; it is deliberately more
// lenient than RFC 5322's msg-id grammar, because real clients issue ids
// that break it.
func ValidMessageID(id string) bool {
	if len(id) == 0 || len(id) > maxMessageIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || c == '<' || c == '>' {
			return false
		}
	}
	at := strings.LastIndexByte(id, '@')
	return at > 0 && at < len(id)-1
}

// messageIDList splits header values into message ids, without brackets, in
// order. Each value may hold one id or a whole header ("<a@x> <b@y>"); ids
// in angle brackets are taken from between them (comments and other text
// around them are ignored), a value without brackets is split at white
// space and commas. Empty results are dropped; ids are not validated.
func messageIDList(values []string) []string {
	var out []string
	for _, v := range values {
		if !strings.ContainsRune(v, '<') {
			out = append(out, strings.FieldsFunc(v, func(r rune) bool { return unicode.IsSpace(r) || r == ',' })...)
			continue
		}
		for {
			i := strings.IndexByte(v, '<')
			if i < 0 {
				break
			}
			j := strings.IndexByte(v[i+1:], '>')
			if j < 0 {
				break
			}
			if id := strings.TrimSpace(v[i+1 : i+1+j]); id != "" {
				out = append(out, id)
			}
			v = v[i+1+j+1:]
		}
	}
	return out
}

// ThreadFromHeaders returns the thread id of the first Hermes Message-ID in
// In-Reply-To, then in References from the newest reference (the last) to
// the root. Each element may be one message id (with or without brackets)
// or a whole header value holding several.
func ThreadFromHeaders(inReplyTo, references []string) (string, bool) {
	for _, id := range messageIDList(inReplyTo) {
		if t, ok := ThreadFromMessageID(id); ok {
			return t, true
		}
	}
	refs := messageIDList(references)
	for i := len(refs) - 1; i >= 0; i-- {
		if t, ok := ThreadFromMessageID(refs[i]); ok {
			return t, true
		}
	}
	return "", false
}

// ReferencesFor returns the References of a reply to a message whose
// Message-ID is parentMessageID and whose own References are
// parentReferences: the parent's references (deduplicated, first
// occurrence kept, in order) followed by the parent's Message-ID, all
// without brackets. Elements may be single ids or whole header values.
// Ids that ValidMessageID rejects are dropped, so the result can always be
// given to Compose. When the chain is longer than MaxReferences, the root
// and the newest MaxReferences-1 ids are kept. When the parent has no
// (valid) Message-ID, the parent's references are returned as they are
// (still capped); the result may be empty.
func ReferencesFor(parentMessageID string, parentReferences []string) []string {
	parent := trimMsgIDBrackets(strings.TrimSpace(parentMessageID))
	if !ValidMessageID(parent) {
		parent = ""
	}
	seen := make(map[string]bool)
	var refs []string
	for _, id := range messageIDList(parentReferences) {
		if id == parent || seen[id] || !ValidMessageID(id) {
			continue
		}
		seen[id] = true
		refs = append(refs, id)
	}
	if parent != "" {
		refs = append(refs, parent)
	}
	if len(refs) > MaxReferences {
		refs = append(refs[:1], refs[len(refs)-(MaxReferences-1):]...)
	}
	return refs
}

// NewToken returns a new conversation token: 8 random lowercase base32
// characters ([a-z2-7]{8}). Tokens are unique per thread in the store (the
// caller retries on the rare collision); they route replies, they do not
// authorise anything.
func NewToken() string { return randomLowerBase32(TokenLen) }

// ValidToken reports whether tok is a conversation token in canonical
// (lowercase) form.
func ValidToken(tok string) bool { return len(tok) == TokenLen && isLowerBase32(tok) }

// FormatToken returns the form of a token shown to users: "[ref:xxxxxxxx]".
// The token is lowercased; it is not otherwise checked.
func FormatToken(tok string) string { return "[ref:" + strings.ToLower(tok) + "]" }

// tokenMatch is one conversation token found in a text: text[start:end] is
// the whole match (with its brackets when it has them).
type tokenMatch struct {
	tok        string
	start, end int
}

// findTokens returns the conversation tokens in text, in order. A token is
// "ref:" followed by 8 base32 characters, in any case, not preceded or
// followed by a letter or digit (so "xref:abcdefgh" and "ref:abcdefghij"
// are not tokens). In brackets, white space (including a folded line
// break) may surround "ref:xxxxxxxx": "[ ref: ABCDEFGH ]".
func findTokens(text string, limit int) []tokenMatch {
	var out []tokenMatch
	for i := 0; i+4+TokenLen <= len(text) && (limit <= 0 || len(out) < limit); i++ {
		if !hasPrefixFoldASCII(text[i:], "ref:") {
			continue
		}
		start := i
		before, _ := utf8.DecodeLastRuneInString(text[:i])
		if alnumRune(before) {
			continue
		}
		// A bracket before "ref:", possibly with white space in between.
		bracketed := false
		if j := skipFoldSpaceBack(text, i); j > 0 && text[j-1] == '[' {
			bracketed, start = true, j-1
		}
		j := i + 4
		if bracketed {
			j = skipFoldSpace(text, j)
		}
		if j+TokenLen > len(text) {
			continue
		}
		tok := strings.ToLower(text[j : j+TokenLen])
		if !isLowerBase32(tok) {
			continue
		}
		end := j + TokenLen
		after, _ := utf8.DecodeRuneInString(text[end:])
		if alnumRune(after) {
			continue
		}
		if bracketed {
			if k := skipFoldSpace(text, end); k < len(text) && text[k] == ']' {
				end = k + 1
			} else {
				start = i // "[ref:x" without its closing bracket: keep the bracket
			}
		}
		out = append(out, tokenMatch{tok: tok, start: start, end: end})
		i = end - 1
	}
	return out
}

// FindToken returns the first conversation token in text (a subject or a
// body), lowercased. It finds "ref:xxxxxxxx" in any case, with or without
// brackets, wherever it is: after "Re:"/"Fwd:"/"AW:"/"SV:" prefixes, after a
// subject that a client folded or wrapped, in quoted text. It does not
// match inside longer runs of letters and digits.
func FindToken(text string) (tok string, ok bool) {
	if m := findTokens(text, 1); len(m) > 0 {
		return m[0].tok, true
	}
	return "", false
}

// FindTokens returns every distinct conversation token in text, in order of
// appearance. A router that finds no thread for the first token may try
// the others (a quoted older conversation, a false positive in prose).
func FindTokens(text string) []string {
	var out []string
	for _, m := range findTokens(text, 0) {
		if !slices.Contains(out, m.tok) {
			out = append(out, m.tok)
		}
	}
	return out
}

func hasPrefixFoldASCII(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// alnumRune reports whether r is a letter or a digit (utf8.RuneError, the
// value for the start or end of the text, is neither).
func alnumRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

func foldSpaceByte(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func skipFoldSpace(s string, i int) int {
	for i < len(s) && foldSpaceByte(s[i]) {
		i++
	}
	return i
}

func skipFoldSpaceBack(s string, i int) int {
	for i > 0 && foldSpaceByte(s[i-1]) {
		i--
	}
	return i
}

// defaultReplySubject is the subject of a reply to a message without one.
const defaultReplySubject = "your edit request"

// maxSubjectRunes bounds the original subject kept in a reply subject.
const maxSubjectRunes = 200

// subjectReplyPrefixes are the reply and forward prefixes that clients stack on a
// subject, lowercased: English, German (AW, WG, Antw), Scandinavian (SV,
// VS), Dutch (Antw), French (TR), Italian (Rif), Polish (Odp, PD),
// Turkish (YNT), Portuguese (Res, Enc), Spanish (RV).
var subjectReplyPrefixes = []string{
	"re", "fw", "fwd", "aw", "wg", "antw", "antwort", "sv", "vs", "tr",
	"rif", "odp", "pd", "ynt", "res", "enc", "rv",
}

// cutSubjectPrefix removes one reply prefix ("Re:", "RE :", "Re[2]:",
// "Re(3):", "Re^2:", "AW:", "Fwd:", full-width colon too) and the white
// space after it from the start of s.
func cutSubjectPrefix(s string) (string, bool) {
	i := 0
	for i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z') {
		i++
	}
	if i == 0 || !slices.Contains(subjectReplyPrefixes, strings.ToLower(s[:i])) {
		return s, false
	}
	rest := s[i:]
	// A counter: [2], (2) or ^2.
	switch {
	case strings.HasPrefix(rest, "["), strings.HasPrefix(rest, "("):
		closer := "]"
		if rest[0] == '(' {
			closer = ")"
		}
		j := 1
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if j == 1 || !strings.HasPrefix(rest[j:], closer) {
			return s, false
		}
		rest = rest[j+1:]
	case strings.HasPrefix(rest, "^"):
		j := 1
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if j == 1 {
			return s, false
		}
		rest = rest[j:]
	}
	rest = strings.TrimLeft(rest, " \t")
	switch {
	case strings.HasPrefix(rest, ":"):
		rest = rest[1:]
	case strings.HasPrefix(rest, "："):
		rest = rest[len("："):]
	default:
		return s, false
	}
	return strings.TrimLeftFunc(rest, unicode.IsSpace), true
}

// ReplySubject returns the subject of Hermes' reply to a message with
// subject orig: "Re: " + orig without its stacked reply and forward
// prefixes ("Re: Fwd: AW: RE[2]: x" → "Re: x"), with the conversation token
// appended once as "[ref:xxxxxxxx]". Tokens already in orig are removed
// first, so the subject carries exactly one token, always this one. An
// empty original gives "Re: your edit request". White space (including
// folded line breaks) is collapsed, control characters and invalid UTF-8
// are removed, and an overlong original is shortened to 200 characters
// with "…", so the result is always a valid header value. An empty or
// invalid token (not [a-z2-7]{8}, case-insensitive) is left out.
func ReplySubject(orig, token string) string {
	s := strings.ToValidUTF8(orig, "")
	// Remove tokens, and the white space before them.
	if ms := findTokens(s, 0); len(ms) > 0 {
		var b strings.Builder
		last := 0
		for _, m := range ms {
			b.WriteString(s[last:m.start])
			b.WriteByte(' ')
			last = m.end
		}
		b.WriteString(s[last:])
		s = b.String()
	}
	s = cleanSubjectText(s)
	for {
		rest, ok := cutSubjectPrefix(s)
		if !ok {
			break
		}
		s = rest
	}
	if s == "" {
		s = defaultReplySubject
	}
	if utf8.RuneCountInString(s) > maxSubjectRunes {
		r := []rune(s)[:maxSubjectRunes-1]
		s = strings.TrimRightFunc(string(r), unicode.IsSpace) + "…"
	}
	s = "Re: " + s
	if tok := strings.ToLower(token); ValidToken(tok) {
		s += " " + FormatToken(tok)
	}
	return s
}

// cleanSubjectText replaces runs of white space with one space, drops other
// control characters and trims the ends.
func cleanSubjectText(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
			space = true
			continue
		case unicode.IsControl(r), r == utf8.RuneError:
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}
