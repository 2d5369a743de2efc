// Command agent is the example command agent of the quick tour: a tiny,
// honest stand-in for Claude Code that understands two kinds of
// instruction on the example site's index.html —
//
//	change the title to <text>     (the <title> and the <h1>)
//	change the tagline to <text>   (the paragraph of class "tagline")
//
// It reads the instruction on standard input (as Hermes passes it), writes
// what it did on standard output (the summary of the reply), and exits 1
// with an explanation for anything else. With HERMES_MODE=plan it only
// says what it would do.
package main

import (
	"fmt"
	"html"
	"io"
	"os"
	"regexp"
	"strings"
)

var (
	instruction = regexp.MustCompile(`(?is)\b(?:change|set|make)\s+the\s+(title|heading|tagline)\s+(?:to|into)\s+["“']?(.+?)["”']?\s*[.!]?\s*$`)
	titleTag    = regexp.MustCompile(`(?s)<title>.*?</title>`)
	heading     = regexp.MustCompile(`(?s)<h1>.*?</h1>`)
	tagline     = regexp.MustCompile(`(?s)<p class="tagline">.*?</p>`)
)

const page = "index.html"

func main() {
	in, err := io.ReadAll(io.LimitReader(os.Stdin, 64<<10))
	if err != nil {
		fail("reading the instruction: %v", err)
	}
	// The instruction is the first paragraph that asks for something.
	var what, text string
	for _, line := range strings.Split(string(in), "\n") {
		if m := instruction.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			what, text = strings.ToLower(m[1]), strings.TrimSpace(m[2])
			break
		}
	}
	if what == "" || text == "" {
		fail("I can change the title or the tagline of the page: try “change the title to Fresh Bread Daily”.")
	}
	if os.Getenv("HERMES_MODE") == "plan" {
		fmt.Printf("Plan: set the %s of %s to “%s”. Nothing else changes.\n", what, page, text)
		return
	}
	b, err := os.ReadFile(page)
	if err != nil {
		fail("reading %s: %v", page, err)
	}
	esc := html.EscapeString(text)
	out := string(b)
	switch what {
	case "title", "heading":
		out = titleTag.ReplaceAllLiteralString(out, "<title>"+esc+"</title>")
		out = heading.ReplaceAllLiteralString(out, "<h1>"+esc+"</h1>")
	case "tagline":
		if !tagline.MatchString(out) {
			fail("%s has no tagline paragraph to change.", page)
		}
		out = tagline.ReplaceAllLiteralString(out, `<p class="tagline">`+esc+`</p>`)
	}
	if out == string(b) {
		fmt.Printf("The %s already reads “%s”; nothing changed.\n", what, text)
		return
	}
	if err := os.WriteFile(page, []byte(out), 0o644); err != nil {
		fail("writing %s: %v", page, err)
	}
	fmt.Printf("Changed the %s of the home page to “%s”.\n", what, text)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}
