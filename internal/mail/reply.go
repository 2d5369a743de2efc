// Package mail reads the email that carries Hermes edit requests.
//
// ReplyText keeps only the new text of a plain-text reply: what the sender
// wrote, without the quoted history and without signatures. It follows the
// behaviour of GitHub's email_reply_parser, in our own line-oriented form:
//
//  1. Line endings are normalised (CRLF and lone CR become LF).
//  2. Every line is classified: blank (white space only), quoted (first
//     non-space character is '>'), or text.
//  3. Quote headers are recognised on text lines: "On <date>, <name> wrote:"
//     (also the French "Le … a écrit :", German "Am … schrieb …:" and
//     Spanish "El … escribió:"), possibly wrapped over up to three lines.
//     A header must contain a digit (every real header carries a date), and
//     a wrapped header's continuation lines must be non-blank, unquoted and
//     must not themselves start a header, so a paragraph that merely begins
//     with "On" is never swallowed.
//  4. Hard cuts: everything from the first of these to the end is history:
//     an Outlook "-----Original Message-----" line (and its translations);
//     an Outlook header block, "From: …" followed within three lines by
//     "Sent: …" or "Date: …" (plain, *bold*, or all on one line), together
//     with a separator line of dashes or underscores just above it; and a
//     quote header followed by unquoted text (a client that did not quote).
//     A quote header followed by quoted text (or by nothing) is soft: it is
//     dropped like the quoted lines, and the text after it is kept, so inline
//     replies survive.
//  5. Signatures start at: a "--" / "-- " line; a mobile line such as
//     "Sent from my iPhone", "Sent from my Verizon Wireless BlackBerry",
//     "Get Outlook for iOS" (at most five words after the fixed prefix,
//     no sentence punctuation); or, after a blank line, a line of
//     underscores ("__…", mailing-list footers) or a sign-off like
//     "-Abhishek Kona" that ends its paragraph. A signature runs to the next
//     quoted line (or the end).
//  6. Walking up from the bottom, quoted lines, quote headers, blank lines and
//     signatures are hidden until the first text that is not part of a
//     signature; everything above that point is visible, except that quoted
//     lines and quote headers are dropped everywhere (inline replies keep the
//     text written between quoted blocks).
//  7. Visible lines have trailing white space removed; a blank line left
//     doubled by a dropped quoted block is collapsed; leading blank lines and
//     trailing white space of the result are trimmed.
//
// Every step is a bounded number of passes over the lines, so the cost is
// linear in the size of the input; invalid UTF-8 is carried through as is.
package mail

import (
	"regexp"
	"strings"
	"sync"
	"unicode"
)

// kind is the classification of one line.
type kind uint8

const (
	text   kind = iota
	blank       // white space only
	quoted      // first non-space character is '>'
	header      // a soft quote header ("On … wrote:" followed by quoted text)
)

// maxHeaderLen bounds a (joined) quote header; longer text is a paragraph.
const maxHeaderLen = 300

var (
	// headerStartRE: the first word of a quote header, English and a few others.
	headerStartRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(On|Le|Am|El)\s`) })
	// headerRE: a whole (joined) quote header.
	headerRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(On\s.*wrote\s?|Le\s.*\sa\s+écrit\s?|El\s.*escribió\s?|Am\s.*\sschrieb\s.*):$`)
	})
	// originalRE: Outlook's marker line above the quoted message.
	originalRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)^-{2,}\s*(original message|ursprüngliche nachricht|message d'origine|mensaje original)\s*-{2,}$`)
	})
	// fromRE / sentRE: the first fields of an Outlook header block.
	fromRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\*?(From|De|Von)\s?:\*?\s`) })
	sentRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\*?(Sent|Date|Gesendet|Datum|Envoyé)\s?:\*?\s`) })
	// inlineSentRE: an Outlook header block squeezed onto one line.
	inlineSentRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\s\*?Sent:\*?\s`) })
	// signOffRE: a "-Name" sign-off of one to three capitalised words.
	signOffRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^--?\s?\p{Lu}[\p{L}.'’-]*(\s\p{Lu}[\p{L}.'’-]*){0,2}$`)
	})
)

// mobilePrefixes start a client signature such as "Sent from my iPhone".
var mobilePrefixes = []string{
	"sent from my ", "sent from ", "sent with ", "sent via ",
	"get outlook for ", "envoyé de mon ", "von meinem ",
}

// ReplyText returns the visible text of a plain-text email reply: the new
// text only, without quoted history, quote headers and signatures. See the
// package documentation for the rules. It never panics.
func ReplyText(body string) string {
	body = strings.ReplaceAll(body, "\r\n", "\n")
	body = strings.ReplaceAll(body, "\r", "\n")
	lines := strings.Split(body, "\n")
	kinds := make([]kind, len(lines))
	for i, l := range lines {
		kinds[i] = classify(l)
	}

	n := markHeaders(lines, kinds)
	lines, kinds = lines[:n], kinds[:n]
	end := visibleEnd(lines, kinds)
	return render(lines[:end], kinds[:end])
}

func classify(line string) kind {
	t := strings.TrimLeftFunc(line, unicode.IsSpace)
	switch {
	case t == "":
		return blank
	case t[0] == '>':
		return quoted
	}
	return text
}

// markHeaders marks soft quote headers and returns the number of lines
// before the first hard cut (len(lines) if there is none).
func markHeaders(lines []string, kinds []kind) int {
	for i := 0; i < len(lines); i++ {
		if kinds[i] != text {
			continue
		}
		t := strings.TrimSpace(lines[i])
		if n := quoteHeaderLen(lines, kinds, i); n > 0 {
			next := i + n
			for next < len(lines) && kinds[next] == blank {
				next++
			}
			if next < len(lines) && kinds[next] != quoted {
				return i // a header above unquoted history
			}
			for j := i; j < i+n; j++ {
				kinds[j] = header
			}
			i += n - 1
			continue
		}
		if (len(t) <= 100 && originalRE().MatchString(t)) || outlookHeader(lines, kinds, i) {
			return cutAbove(lines, kinds, i)
		}
	}
	return len(lines)
}

// quoteHeaderLen reports how many lines, starting at i, form a quote
// header, or 0 if none does.
func quoteHeaderLen(lines []string, kinds []kind, i int) int {
	joined := strings.TrimSpace(lines[i])
	if len(joined) > maxHeaderLen || !headerStartRE().MatchString(joined) {
		return 0
	}
	for n := 1; n <= 3; n++ {
		if n > 1 {
			j := i + n - 1
			if j >= len(lines) || kinds[j] != text {
				return 0
			}
			next := strings.TrimSpace(lines[j])
			if headerStartRE().MatchString(next) {
				return 0
			}
			joined += " " + next
			if len(joined) > maxHeaderLen {
				return 0
			}
		}
		if headerRE().MatchString(joined) && strings.ContainsAny(joined, "0123456789") {
			return n
		}
	}
	return 0
}

// outlookHeader reports whether an Outlook header block ("From: …" then
// "Sent: …") starts at line i.
func outlookHeader(lines []string, kinds []kind, i int) bool {
	t := strings.TrimSpace(lines[i])
	if !fromRE().MatchString(prefix(t)) {
		return false
	}
	if len(t) <= maxHeaderLen && inlineSentRE().MatchString(t) {
		return true
	}
	for j := i + 1; j <= i+3 && j < len(lines) && kinds[j] == text; j++ {
		if sentRE().MatchString(prefix(strings.TrimSpace(lines[j]))) {
			return true
		}
	}
	return false
}

// cutAbove moves a hard cut at line i up over blank lines and one separator
// line ("_____", "-----") directly above them, when there is one.
func cutAbove(lines []string, kinds []kind, i int) int {
	j := i
	for j > 0 && kinds[j-1] == blank {
		j--
	}
	if j > 0 && isSeparator(strings.TrimSpace(lines[j-1])) {
		return j - 1
	}
	return i
}

func isSeparator(t string) bool {
	return len(t) >= 5 && strings.Trim(t, "-_") == ""
}

// prefix bounds the text an anchored field regexp has to look at.
func prefix(t string) string {
	if len(t) > 40 {
		return t[:40]
	}
	return t
}

// visibleEnd walks up from the bottom over quoted lines, headers, blank
// lines and signatures, and returns the end of the visible text.
func visibleEnd(lines []string, kinds []kind) int {
	i := len(lines)
	for i > 0 {
		if k := kinds[i-1]; k == quoted || k == header {
			i--
			continue
		}
		// [start, i) is a run of text and blank lines.
		start := i
		for start > 0 && (kinds[start-1] == text || kinds[start-1] == blank) {
			start--
		}
		top := i
		for j := start; j < i; j++ {
			if signatureStart(lines, kinds, j) {
				top = j
				break
			}
		}
		for j := top - 1; j >= start; j-- {
			if kinds[j] == text {
				return top
			}
		}
		i = start
	}
	return 0
}

// signatureStart reports whether a signature begins at line i.
func signatureStart(lines []string, kinds []kind, i int) bool {
	if kinds[i] != text {
		return false
	}
	l := lines[i]
	t := strings.TrimSpace(l)
	if t == "--" || mobileSignature(t) {
		return true
	}
	if i == 0 || kinds[i-1] != blank || len(t) > 60 {
		return false
	}
	if l[0] == '_' && strings.Trim(t, "_") == "" {
		return true // "____" above a mailing-list footer
	}
	lastOfParagraph := i+1 == len(lines) || kinds[i+1] != text
	return l[0] == '-' && lastOfParagraph && signOffRE().MatchString(t)
}

// mobileSignature reports whether t is a client signature such as "Sent
// from my iPhone" or "Get Outlook for Android": a known prefix followed by
// one to five words, with no sentence punctuation.
func mobileSignature(t string) bool {
	if len(t) > 80 {
		return false
	}
	lower := strings.ToLower(strings.TrimSuffix(t, "."))
	for _, p := range mobilePrefixes {
		rest, ok := strings.CutPrefix(lower, p)
		if !ok {
			continue
		}
		words := strings.Fields(rest)
		if len(words) == 0 || len(words) > 5 {
			return false
		}
		// One comma is allowed, after the first word: "Sent from my
		// Verizon, Samsung Galaxy smartphone".
		if strings.Count(rest, ",") > 1 || (strings.Contains(rest, ",") && !strings.HasSuffix(words[0], ",")) {
			return false
		}
		for _, r := range rest {
			if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.IsSpace(r) && !strings.ContainsRune(",-'’&()_", r) {
				return false
			}
		}
		return true
	}
	return false
}

// render joins the visible lines: text and blank lines, right-trimmed, with
// quoted lines and headers left out.
func render(lines []string, kinds []kind) string {
	out := make([]string, 0, len(lines))
	dropped := false // a quoted line or header was left out since the last kept line
	for i, l := range lines {
		switch kinds[i] {
		case quoted, header:
			dropped = true
			continue
		case blank:
			if len(out) == 0 || (dropped && out[len(out)-1] == "") {
				continue
			}
			l = ""
		default:
			l = strings.TrimRightFunc(l, unicode.IsSpace)
		}
		out = append(out, l)
		dropped = false
	}
	return strings.TrimRightFunc(strings.Join(out, "\n"), unicode.IsSpace)
}
