package notify

import (
	"strings"
	"unicode"
)

// The GSM 03.38 alphabet (3GPP TS 23.038): the basic set, one septet each,
// and the extension set, two septets each (escape + character). Line feed,
// carriage return and the escape itself are in the basic set but never
// written by this package.
const (
	gsm7Basic = "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsm7Extension = "^{}\\[~]|€"
)

var gsm7Septets = func() map[rune]int {
	m := make(map[rune]int, 140)
	for _, r := range gsm7Basic {
		m[r] = 1
	}
	for _, r := range gsm7Extension {
		m[r] = 2
	}
	return m
}()

// gsm7Fold maps characters outside GSM-7 to their nearest GSM-7 form:
// typographic punctuation, and Latin letters with diacritics GSM-7 lacks.
var gsm7Fold = func() map[rune]string {
	m := make(map[rune]string, 200)
	for _, f := range []struct{ from, to string }{
		{"‘’‚‛′´`", "'"}, {"“”„‟″«»", "\""}, {"‐‑‒–—―−", "-"}, {"…", "..."},
		{"•", "*"}, {"·", "."}, {"×", "x"}, {"÷", "/"}, {"™", "TM"}, {"©", "(c)"}, {"®", "(R)"},
		{"áâãāăą", "a"}, {"ÀÁÂÃĀĂĄ", "A"},
		{"çćĉċč", "c"}, {"ĆĈĊČ", "C"},
		{"ďđð", "d"}, {"ĎĐÐ", "D"},
		{"êëēĕėęě", "e"}, {"ÈÊËĒĔĖĘĚ", "E"},
		{"ĝğġģ", "g"}, {"ĜĞĠĢ", "G"}, {"ĥħ", "h"}, {"ĤĦ", "H"},
		{"íîïĩīĭįı", "i"}, {"ÌÍÎÏĨĪĬĮİ", "I"}, {"ĵ", "j"}, {"Ĵ", "J"}, {"ķ", "k"}, {"Ķ", "K"},
		{"ĺļľŀł", "l"}, {"ĹĻĽĿŁ", "L"},
		{"ńņňŉ", "n"}, {"ŃŅŇ", "N"},
		{"óôõōŏő", "o"}, {"ÒÓÔÕŌŎŐ", "O"}, {"œ", "oe"}, {"Œ", "OE"},
		{"ŕŗř", "r"}, {"ŔŖŘ", "R"},
		{"śŝşšș", "s"}, {"ŚŜŞŠȘ", "S"},
		{"ţťŧț", "t"}, {"ŢŤŦȚ", "T"},
		{"úûũūŭůűų", "u"}, {"ÙÚÛŨŪŬŮŰŲ", "U"},
		{"ŵ", "w"}, {"Ŵ", "W"}, {"ýÿŷ", "y"}, {"ÝŶŸ", "Y"},
		{"źżž", "z"}, {"ŹŻŽ", "Z"}, {"þ", "th"}, {"Þ", "Th"},
	} {
		for _, r := range f.from {
			m[r] = f.to
		}
	}
	return m
}()

// toGSM7Clean returns s in the GSM-7 alphabet: characters of the
// alphabet are kept (except line breaks and escape, which become spaces),
// others are folded (gsm7Fold) or dropped; white space is collapsed. clean
// reports whether no letter or digit was dropped (emoji and symbols may
// have been).
func toGSM7Clean(s string) (gsm string, clean bool) {
	var b strings.Builder
	clean = true
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r' || r == '\x1b' || unicode.IsSpace(r):
			b.WriteByte(' ')
		case gsm7Septets[r] > 0:
			b.WriteRune(r)
		case gsm7Fold[r] != "":
			b.WriteString(gsm7Fold[r])
		default:
			if unicode.IsLetter(r) || unicode.IsDigit(r) {
				clean = false
			}
		}
	}
	return oneLine(b.String()), clean
}

// toGSM7 is toGSM7Clean without the report.
func toGSM7(s string) string {
	g, _ := toGSM7Clean(s)
	return g
}

// septets returns the length of s in GSM-7 septets (characters outside the
// alphabet count as 2, as if escaped; toGSM7 output has none).
func septets(s string) int {
	n := 0
	for _, r := range s {
		if k := gsm7Septets[r]; k > 0 {
			n += k
		} else {
			n += 2
		}
	}
	return n
}

// cutSeptets returns the longest prefix of s of at most n septets.
func cutSeptets(s string, n int) string {
	used := 0
	for i, r := range s {
		k := gsm7Septets[r]
		if k == 0 {
			k = 2
		}
		if used+k > n {
			return s[:i]
		}
		used += k
	}
	return s
}
