package classify

import "strings"

// ApprovalReply reads a reply on a thread that waits for an approval (see
// the package documentation): approve or reject, or neither when the first
// unquoted line is not a plain yes or no. Never both.
func ApprovalReply(text string) (approve, reject bool) {
	ws := allWords(firstLine(text))
	if len(ws) == 0 {
		return false, false
	}
	var neg bool
	for i := 0; i < len(ws); {
		r, n := replyUnitAt(ws, i)
		i += n
		switch r {
		case replyUnknown:
			return false, false
		case replyNegation:
			neg = true
		case replyApprove:
			if neg {
				reject = true
			} else {
				approve = true
			}
			neg = false
		case replyReject:
			if neg { // "don't cancel": a double negative is not plain
				approve = true
			}
			reject = true
			neg = false
		}
	}
	if neg {
		reject = true
	}
	if approve && reject {
		return false, false
	}
	return approve, reject
}

// firstLine returns the first line of text that is neither blank nor quoted.
func firstLine(text string) string {
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, ">") {
			return line
		}
	}
	return ""
}

type replyUnit uint8

const (
	replyUnknown replyUnit = iota
	replyFiller
	replyApprove
	replyReject
	replyNegation
)

// replyPhrases are the reply vocabulary, longest first so that "do not"
// wins over "do it" and "go for it" over "go".
var replyPhrases = []struct {
	words []string
	unit  replyUnit
}{
	{[]string{"go", "for", "it"}, replyApprove},
	{[]string{"thank", "you"}, replyFiller},
	{[]string{"go", "ahead"}, replyApprove},
	{[]string{"do", "it"}, replyApprove},
	{[]string{"do", "not"}, replyNegation},
	{[]string{"looks", "good"}, replyApprove},
	{[]string{"look", "good"}, replyApprove},
	{[]string{"sounds", "good"}, replyApprove},
	{[]string{"ship", "it"}, replyApprove},
	{[]string{"of", "course"}, replyApprove},
}

var replyWords = map[string]replyUnit{}

func init() {
	for _, w := range []string{"approve", "approved", "yes", "yeah", "yep", "yup", "ok",
		"okay", "sure", "confirm", "confirmed", "accept", "accepted", "proceed", "lgtm"} {
		replyWords[w] = replyApprove
	}
	for _, w := range []string{"reject", "rejected", "no", "nope", "nah", "cancel",
		"cancelled", "canceled", "stop", "decline", "declined", "abort"} {
		replyWords[w] = replyReject
	}
	for _, w := range []string{"not", "don't", "dont", "never"} {
		replyWords[w] = replyNegation
	}
	for _, w := range []string{"please", "pls", "thanks", "thx", "cheers", "it", "that",
		"this", "the", "plan", "i", "we", "just", "now", "then", "and", "fine", "great",
		"good", "all", "right", "alright", "hi", "hello", "hey", "is", "thats", "its",
		"do", "go", "for", "me", "us", "with"} {
		replyWords[w] = replyFiller
	}
}

// replyUnitAt returns the unit at ws[i] and how many words it spans.
func replyUnitAt(ws []word, i int) (replyUnit, int) {
	for _, p := range replyPhrases {
		if i+len(p.words) > len(ws) {
			continue
		}
		ok := true
		for k, w := range p.words {
			if ws[i+k].text != w {
				ok = false
				break
			}
		}
		if ok {
			return p.unit, len(p.words)
		}
	}
	return replyWords[ws[i].text], 1
}
