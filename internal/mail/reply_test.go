package mail

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"
)

// fixtureDir holds the email_reply_parser fixtures. Tests run in the package
// directory; shared/ sits beside the repository (/work/main, /work/shared).
var fixtureDir = filepath.Join("..", "..", "..", "shared", "peer", "email_reply_parser")

// fixtureCase is one entry of cases.json.
type fixtureCase struct {
	File        string   `json:"file"`
	Exact       *string  `json:"exact"`
	StartsWith  *string  `json:"starts_with"`
	Contains    []string `json:"contains"`
	NotContains []string `json:"not_contains"`
	MaxMS       int      `json:"max_ms"`
}

// slowFactor: machines are shared and noisy, so a case fails its max_ms only
// above slowFactor times the limit; BenchmarkReplyTextPathological has the
// real timing.
const slowFactor = 10

func loadFixtures(tb testing.TB) []fixtureCase {
	tb.Helper()
	dir, err := filepath.Abs(fixtureDir)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		tb.Fatalf("email_reply_parser fixtures missing: %v (expected shared/peer/email_reply_parser beside the repository)", err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var doc struct {
		About string        `json:"about"`
		Cases []fixtureCase `json:"cases"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // a new kind of check must not be ignored silently
	if err := dec.Decode(&doc); err != nil {
		tb.Fatalf("cases.json: %v", err)
	}
	if len(doc.Cases) == 0 {
		tb.Fatal("cases.json has no cases")
	}
	return doc.Cases
}

func readFixture(tb testing.TB, name string) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func TestReplyTextFixtures(t *testing.T) {
	for _, c := range loadFixtures(t) {
		t.Run(c.File, func(t *testing.T) {
			if c.Exact == nil && c.StartsWith == nil && c.Contains == nil && c.NotContains == nil && c.MaxMS == 0 {
				t.Fatal("case has no check")
			}
			body := readFixture(t, c.File)
			start := time.Now()
			got := ReplyText(body)
			elapsed := time.Since(start)

			if c.Exact != nil && strings.TrimRightFunc(got, unicode.IsSpace) != *c.Exact {
				t.Errorf("exact:\n got %q\nwant %q", got, *c.Exact)
			}
			if c.StartsWith != nil && !strings.HasPrefix(got, *c.StartsWith) {
				t.Errorf("does not start with %q:\n%s", *c.StartsWith, got)
			}
			for _, s := range c.Contains {
				if !strings.Contains(got, s) {
					t.Errorf("does not contain %q:\n%s", s, got)
				}
			}
			for _, s := range c.NotContains {
				if strings.Contains(got, s) {
					t.Errorf("contains %q:\n%s", s, got)
				}
			}
			if c.MaxMS > 0 && elapsed > slowFactor*time.Duration(c.MaxMS)*time.Millisecond {
				t.Errorf("took %v, limit %d ms (failing above %d×)", elapsed, c.MaxMS, slowFactor)
			}
		})
	}
}

// ourCases are replies as Hermes receives them from common clients.
var ourCases = []struct {
	name, body, want string
}{
	{
		name: "gmail",
		body: "Please change the headline to \"Spring sale\".\n\n" +
			"On Mon, Nov 2, 2026 at 10:15 AM Amelia <amelia@example.com> wrote:\n\n" +
			"> Hi Bob, what should we change on the site?\n>\n> Amelia\n",
		want: "Please change the headline to \"Spring sale\".",
	},
	{
		name: "gmail header wrapped over two lines",
		body: "Make the logo twice as big.\n\n" +
			"On Mon, Nov 2, 2026 at 10:15 AM Amelia Example <\n" +
			"amelia@example.com> wrote:\n\n" +
			"> Anything else?\n",
		want: "Make the logo twice as big.",
	},
	{
		name: "gmail header wrapped before wrote",
		body: "Yes, publish it.\n\n" +
			"On Mon, Nov 2, 2026 at 10:15 AM, Amelia Example\n" +
			"<amelia@example.com> wrote:\n" +
			"> Shall I publish the draft?\n",
		want: "Yes, publish it.",
	},
	{
		name: "outlook desktop",
		body: "Swap the hero image for the blue one.\r\n\r\n" +
			"________________________________\r\n" +
			"From: Amelia <amelia@example.com>\r\n" +
			"Sent: Monday, November 2, 2026 10:15 AM\r\n" +
			"To: Bob <bob@example.com>\r\n" +
			"Subject: Site edits\r\n\r\n" +
			"Hi Bob, what should we change?\r\n",
		want: "Swap the hero image for the blue one.",
	},
	{
		name: "outlook header fields on one line",
		body: "Done, thanks.\n\n" +
			"From: Amelia <amelia@example.com> Sent: Monday, November 2, 2026 10:15 AM To: Bob Subject: Site edits\n" +
			"Hi Bob\n",
		want: "Done, thanks.",
	},
	{
		name: "outlook original message",
		body: "Remove the second paragraph of the About page.\n\n" +
			"-----Original Message-----\n" +
			"From: Amelia [mailto:amelia@example.com]\n" +
			"Sent: Monday, November 2, 2026 10:15 AM\n" +
			"To: Bob\n" +
			"Subject: About page\n\n" +
			"What do you think of the About page?\n",
		want: "Remove the second paragraph of the About page.",
	},
	{
		name: "apple mail",
		body: "Fix the typo in the footer: \"Copyrihgt\".\n\n" +
			"> On 2 Nov 2026, at 10:15, Amelia <amelia@example.com> wrote:\n" +
			">\n> Anything else?\n",
		want: "Fix the typo in the footer: \"Copyrihgt\".",
	},
	{
		name: "apple mail unquoted header",
		body: "Fix the typo in the footer.\n\n" +
			"On 2 Nov 2026, at 10:15, Amelia <amelia@example.com> wrote:\n\n" +
			"> Anything else?\n",
		want: "Fix the typo in the footer.",
	},
	{
		name: "iphone",
		body: "Change the phone number to 555-0100.\n\nSent from my iPhone\n\n" +
			"On Nov 2, 2026, at 10:15 AM, Amelia <amelia@example.com> wrote:\n\n" +
			"> Anything else?\n",
		want: "Change the phone number to 555-0100.",
	},
	{
		name: "iphone without blank line",
		body: "Change the phone number to 555-0100.\nSent from my iPhone",
		want: "Change the phone number to 555-0100.",
	},
	{
		name: "android galaxy",
		body: "Add the new opening hours.\n\nSent from my Galaxy\n",
		want: "Add the new opening hours.",
	},
	{
		name: "get outlook for android",
		body: "Add the new opening hours.\n\nGet Outlook for Android\n\n" +
			"________________________________\nFrom: Amelia\nSent: Monday, November 2, 2026 10:15 AM\n\nHi\n",
		want: "Add the new opening hours.",
	},
	{
		name: "get outlook for ios",
		body: "Looks good.\n\nGet Outlook for iOS",
		want: "Looks good.",
	},
	{
		name: "dash dash space signature",
		body: "Publish the draft post.\n\n-- \nBob Smith\nACME Corp | +1 555 0100\n",
		want: "Publish the draft post.",
	},
	{
		name: "dash name sign-off",
		body: "Publish the draft post.\n\n-Bob\n",
		want: "Publish the draft post.",
	},
	{
		name: "only quoted text",
		body: "> Hi Bob,\n>\n> what should we change?\n",
		want: "",
	},
	{
		name: "only header and quoted text",
		body: "\n\nOn Mon, Nov 2, 2026 at 10:15 AM Amelia <amelia@example.com> wrote:\n> Hi\n",
		want: "",
	},
	{
		name: "top-posted instruction with On lines",
		body: "Please make these edits:\n\n" +
			"On the pricing page, change the Pro plan to $29/month.\n" +
			"On 3 Nov, publish the spring post.\n\n" +
			"On the contact page, the map is wrong; Amelia wrote:\n" +
			"the office moved to 10 Main St.\n\n" +
			"Thanks,\nBob\n\n" +
			"On Mon, Nov 2, 2026 at 10:15 AM Amelia <amelia@example.com> wrote:\n" +
			"> What needs changing?\n",
		want: "Please make these edits:\n\n" +
			"On the pricing page, change the Pro plan to $29/month.\n" +
			"On 3 Nov, publish the spring post.\n\n" +
			"On the contact page, the map is wrong; Amelia wrote:\n" +
			"the office moved to 10 Main St.\n\n" +
			"Thanks,\nBob",
	},
	{
		name: "dash bullets are not a signature",
		body: "Please change:\n\n-the title\n-the footer\n",
		want: "Please change:\n\n-the title\n-the footer",
	},
	{
		name: "inline reply",
		body: "On Mon, Nov 2, 2026 at 10:15 AM Amelia <amelia@example.com> wrote:\n" +
			"> Which colour for the button?\n\n" +
			"Green.\n\n" +
			"> And the font?\n\n" +
			"Keep it.\n\n" +
			"> Amelia\n\n-- \nBob\n",
		want: "Green.\n\nKeep it.",
	},
	{
		name: "header above unquoted history",
		body: "Do it.\n\nOn Mon, Nov 2, 2026 at 10:15 AM Amelia <amelia@example.com> wrote:\n\n" +
			"Should I change the title?\n",
		want: "Do it.",
	},
	{
		name: "french",
		body: "Changez le titre.\n\n" +
			"Le lun. 2 nov. 2026 à 10:15, Amelia <amelia@example.com> a écrit :\n" +
			"> Bonjour\n",
		want: "Changez le titre.",
	},
	{
		name: "german",
		body: "Bitte den Titel ändern.\n\n" +
			"Am 02.11.2026 um 10:15 schrieb Amelia <amelia@example.com>:\n" +
			"> Hallo\n\nVon meinem iPhone gesendet\n",
		want: "Bitte den Titel ändern.",
	},
	{
		name: "crlf and trailing white space",
		body: "Line one.  \r\nLine two.\r\n\r\n\r\n",
		want: "Line one.\nLine two.",
	},
	{
		name: "empty",
		body: "",
		want: "",
	},
	{
		name: "invalid utf-8",
		body: "Fix \xff\xfe the title\n> quoted \xc3\n",
		want: "Fix \xff\xfe the title",
	},
}

func TestReplyText(t *testing.T) {
	for _, c := range ourCases {
		t.Run(c.name, func(t *testing.T) {
			if got := ReplyText(c.body); got != c.want {
				t.Errorf("ReplyText:\n got %q\nwant %q", got, c.want)
			}
		})
	}
}

func FuzzReplyText(f *testing.F) {
	for _, c := range ourCases {
		f.Add(c.body)
	}
	if names, err := filepath.Glob(filepath.Join(fixtureDir, "*.txt")); err == nil {
		for _, name := range names {
			if b, err := os.ReadFile(name); err == nil && len(b) < 64<<10 {
				f.Add(string(b))
			}
		}
	}
	f.Fuzz(func(t *testing.T, body string) {
		got := ReplyText(body)
		if got != strings.TrimRightFunc(got, unicode.IsSpace) {
			t.Fatalf("trailing white space in %q", got)
		}
		for line := range strings.SplitSeq(got, "\n") {
			if !strings.Contains(body, strings.TrimSpace(line)) {
				t.Fatalf("output line %q is not in the input", line)
			}
			if strings.HasPrefix(strings.TrimLeftFunc(line, unicode.IsSpace), ">") {
				t.Fatalf("quoted line %q in the output", line)
			}
		}
	})
}

func BenchmarkReplyTextPathological(b *testing.B) {
	body := readFixture(b, "pathological.txt")
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		ReplyText(body)
	}
}
