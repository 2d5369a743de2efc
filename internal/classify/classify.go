// Package classify holds the keyword rules of Hermes: the embedded
// hermes.Model, which says whether an instruction is destructive or large
// (SPEC §7: it then runs as a plan that the user must approve), and
// ApprovalReply, which reads a reply such as "approve" or "no" on a thread
// that waits for an approval. Both are pure and never fail; they are also
// the fallback when the production model cannot be reached.
//
// # Instructions
//
// The text is lowercased and split into clauses at . ! ? ; : , and line
// breaks, and each clause into words (letters and digits; a curly apostrophe
// becomes a straight one, a trailing "'s" is dropped and inner hyphens are
// removed, so "re-design" is "redesign" and "drop-down" is "dropdown").
// Words are matched whole, never inside other words, and in all their
// listed inflections ("deleting", "deleted", "removes", "rebuilt",
// "migration"). An instruction needs approval when any of these matches:
//
//  1. A large word, by itself: wipe, destroy, reset, rebuild, migrate,
//     redesign, restructure, overhaul, revamp.
//  2. A large phrase: "major change/update/rewrite", "start over",
//     "from scratch", "all pages" ("all the pages", "all of the pages"),
//     "every page", "each page", "whole site", "entire site" ("website"
//     counts as "site").
//  3. A destructive verb — delete, remove, drop, erase, clear, purge,
//     rewrite, refactor, replace, revert, "get rid of", "take down" — with
//     a scope within the next four words of its clause, where a scope is a
//     quantifier (all, everything, every, entire, whole) or a noun naming
//     much content (site, page, homepage, section, blog, gallery, database,
//     data, and the plurals images, photos, pictures, files, posts,
//     articles, products, users, accounts, records, tables). The window
//     ends early at a preposition (in, on, from, at, to, …): "remove the
//     typo in the header" and "remove the typo on the page" are small,
//     since what follows a preposition says where, not what. A scope noun
//     directly followed by a part word (title, header, heading, footer,
//     background, link, logo, icon, name, number, colour, font, …) is a
//     modifier, not the object: "remove the page title" is small. So
//     "clear all", "clear everything", "refactor everything", "rewrite the
//     whole site" and "delete the about us page" need approval.
//  4. A destructive verb in the passive whose subject is a scope: "the
//     about page should be deleted", "all images have to be removed" (the
//     word before the be/get verb, skipping modals such as should, must,
//     has to).
//
// The rules lean to asking for approval. Accepted false positives, kept in
// the tests: a negated instruction ("don't delete any pages"), a quantifier
// used for small things ("remove all the typos"), and the large words in
// any sense ("reset the form's colours"). Known misses are left to the
// production model: an object more than four words after its verb, and
// paraphrases outside the lists ("make the site look completely different").
//
// # Approval replies
//
// ApprovalReply reads the first line of a reply that is not blank and not
// quoted ('>'), lowercased and split into words as above. Every word must
// belong to the reply vocabulary, or the line is neither an approval nor a
// rejection (so "yes but change the heading first" and "no idea" are
// neither): approve words and phrases (approve, approved, yes, yeah, yep,
// ok, okay, sure, confirm, accept, proceed, lgtm, "go ahead", "do it",
// "go for it", "looks good", "sounds good", "ship it", "of course"), reject
// words (reject, no, nope, nah, cancel, stop, decline, abort), negations
// (not, don't, never, "do not") and fillers (please, thanks, thank you, it, that, the,
// plan, i, we, just, now, then, and, …). A negation turns the next approve
// word into a rejection ("don't do it", "not approved"); a negation with
// nothing after it rejects ("don't", "do not"). A line with both an
// approval and a rejection ("yes no", "don't cancel") is neither.
package classify

import (
	"context"
	"strings"
	"unicode"

	"github.com/webordinary/hermes"
)

// window is how many words after a destructive verb may hold its scope.
const window = 4

// Rules is the keyword classifier. The zero value is ready to use.
type Rules struct{}

var _ hermes.Model = Rules{}

// Classify applies the keyword rules to instruction. It never fails.
func (Rules) Classify(_ context.Context, instruction string) (hermes.Classification, error) {
	return Classify(instruction), nil
}

// Classify applies the keyword rules (see the package documentation) to
// instruction.
func Classify(instruction string) hermes.Classification {
	var matched []string
	add := func(ws []word) {
		parts := make([]string, len(ws))
		for i, w := range ws {
			parts[i] = w.text
		}
		m := strings.Join(parts, " ")
		for _, old := range matched {
			if old == m {
				return
			}
		}
		matched = append(matched, m)
	}
	for _, c := range clauses(instruction) {
		for i := range c {
			for _, p := range largePhrases {
				if hasPhrase(c, i, p) {
					add(c[i : i+len(p)])
				}
			}
			if c[i].kind&large != 0 {
				add(c[i : i+1])
			}
			n := verbLen(c, i)
			if n == 0 {
				continue
			}
			// 3. A scope within the window after the verb.
			for j := i + n; j < len(c) && j < i+n+window; j++ {
				if c[j].kind&prep != 0 {
					break
				}
				if isScope(c, j) {
					add(c[i : j+1])
					break
				}
			}
			// 4. The passive: scope, modals, be/get, verb.
			if i > 0 && c[i-1].kind&aux != 0 {
				k := i - 2
				for k >= 0 && c[k].kind&(aux|modal) != 0 {
					k--
				}
				if k >= 0 && c[k].kind&(scope|quant) != 0 {
					add(c[k : i+n])
				}
			}
		}
	}
	if len(matched) == 0 {
		return hermes.Classification{Reason: "no destructive or large change found"}
	}
	return hermes.Classification{
		NeedsApproval: true,
		Reason:        "may be destructive or large: " + quoteAll(matched),
		Matched:       matched,
	}
}

// isScope says whether c[j] is a scope: a quantifier, or a scope noun not
// directly followed by a part word.
func isScope(c []word, j int) bool {
	switch {
	case c[j].kind&quant != 0:
		return true
	case c[j].kind&scope == 0:
		return false
	}
	return j+1 == len(c) || c[j+1].kind&part == 0
}

// verbLen returns the number of words of the destructive verb at c[i], or 0.
func verbLen(c []word, i int) int {
	if c[i].kind&destructive != 0 {
		return 1
	}
	for _, p := range verbPhrases {
		if hasPhrase(c, i, p) {
			return len(p)
		}
	}
	return 0
}

func hasPhrase(c []word, i int, p []string) bool {
	if i+len(p) > len(c) {
		return false
	}
	for k, l := range p {
		if c[i+k].lemma != l {
			return false
		}
	}
	return true
}

func quoteAll(ms []string) string {
	var b strings.Builder
	for i, m := range ms {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('"')
		b.WriteString(m)
		b.WriteByte('"')
	}
	return b.String()
}

// word is one word of a clause.
type word struct {
	text  string // as written, lowercased and normalised
	lemma string // the lexicon's base form, or text
	kind  kind
}

// clauses splits s into clauses of words.
func clauses(s string) [][]word {
	var (
		out   [][]word
		cur   []word
		start = -1
	)
	flush := func(end int) {
		if start < 0 {
			return
		}
		if w, ok := normalise(s[start:end]); ok {
			e := lexicon[w]
			if e.lemma == "" {
				e.lemma = w
			}
			cur = append(cur, word{text: w, lemma: e.lemma, kind: e.kind})
		}
		start = -1
	}
	for i, r := range s {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '\'' || r == '’' || r == '-':
			if start < 0 {
				start = i
			}
			continue
		case strings.ContainsRune(".!?;:,\n\r", r):
			flush(i)
			if len(cur) > 0 {
				out = append(out, cur)
				cur = nil
			}
		default:
			flush(i)
		}
	}
	flush(len(s))
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// normalise lowercases a raw word, straightens apostrophes, drops a
// trailing "'s" and removes hyphens. ok is false when nothing is left.
func normalise(raw string) (string, bool) {
	w := strings.ToLower(strings.ReplaceAll(raw, "’", "'"))
	w = strings.Trim(w, "'-")
	w = strings.TrimSuffix(w, "'s")
	w = strings.ReplaceAll(w, "-", "")
	return w, w != ""
}

// allWords splits s into words, ignoring clause boundaries.
func allWords(s string) []word {
	var out []word
	for _, c := range clauses(s) {
		out = append(out, c...)
	}
	return out
}
