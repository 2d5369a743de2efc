package notify

import (
	"strings"
	"testing"

	"github.com/webordinary/hermes"
)

var done = Result{
	ProjectName: "Amelia", Type: hermes.ResultDone, Success: true,
	Summary:      "Made the header blue.\n\nAlso fixed the <nav> contrast & spacing.",
	FilesChanged: []string{"src/components/Header.astro", "src/styles/global.css"},
	Commit:       "3F2A9C1D0E4B5A6978C0D1E2F3A4B5C6D7E8F901",
	PreviewURL:   "https://edit.amelia.example.com/57zohdjscuc3a7rj4w7jiznpvm/",
	Token:        "[ref:2sa27xvk]",
}

func TestResultEmail(t *testing.T) {
	text, html, err := ResultEmail(done)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Done — your change is applied.", "Made the header blue.\n\nAlso fixed the <nav> contrast & spacing.",
		"Files changed:\n- src/components/Header.astro\n- src/styles/global.css", "Commit: 3f2a9c1d0e4b",
		"Preview: https://edit.amelia.example.com/57zohdjscuc3a7rj4w7jiznpvm/", "Reference: [ref:2sa27xvk]",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "Error") {
		t.Errorf("a success mentions an error:\n%s", text)
	}
	for _, want := range []string{"&lt;nav&gt; contrast &amp; spacing", `<a href="https://edit.amelia.example.com/57zohdjscuc3a7rj4w7jiznpvm/">`, "<code>src/styles/global.css</code>"} {
		if !strings.Contains(html, want) {
			t.Errorf("html lacks %q:\n%s", want, html)
		}
	}
	if strings.Contains(html, "<nav>") {
		t.Error("html not escaped")
	}

	if _, _, err := ResultEmail(Result{Type: hermes.ResultDone, Token: "nonsense!"}); !hermes.IsKind(err, hermes.Invalid) {
		t.Errorf("bad token: %v", err)
	}
}

func TestResultEmailKinds(t *testing.T) {
	many := make([]string, 25)
	for i := range many {
		many[i] = "f" + string(rune('a'+i))
	}
	for _, tc := range []struct {
		name      string
		r         Result
		want, not []string
	}{
		{"error", Result{Type: hermes.ResultError, Error: "build failed:\nnpm ERR! missing script", Commit: "not a hash"},
			[]string{"Sorry — your request could not be applied.", "Error: build failed: npm ERR! missing script"}, []string{"Commit", "Reference"}},
		{"unsuccessful result", Result{Type: hermes.ResultDone, Success: false, Error: "agent exited 1"},
			[]string{"could not be applied", "Error: agent exited 1"}, nil},
		{"interrupted", Result{Type: hermes.ResultInterrupted, Summary: "Checkpoint of the header work", Error: "ignored"},
			[]string{"Stopped — a newer message interrupted this request. The work so far is saved", "Checkpoint of the header work"}, []string{"Error"}},
		{"plan", Result{Type: hermes.ResultPlan, Summary: "1. Delete the blog\n2. Remove its links"},
			[]string{"Nothing has been changed yet.", "1. Delete the blog\n2. Remove its links"}, []string{"Done"}},
		{"many files", Result{Type: hermes.ResultDone, Success: true, FilesChanged: many},
			[]string{"- ft\n… and 5 more"}, []string{"- fu"}},
		{"unsafe preview", Result{Type: hermes.ResultDone, Success: true, PreviewURL: "javascript:alert(1)"},
			nil, []string{"Preview", "javascript"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text, html, err := ResultEmail(tc.r)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("text lacks %q:\n%s", w, text)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(text, w) || strings.Contains(html, w) {
					t.Errorf("has %q:\n%s", w, text)
				}
			}
		})
	}
}

func TestResultSMS(t *testing.T) {
	long := strings.Repeat("Changed the hero copy and the footer links on every page. ", 10)
	for _, tc := range []struct {
		name string
		r    Result
		want []string
		not  []string
	}{
		{"done", done, []string{"Amelia: Done: Made the header blue. Also fixed the <nav> contrast & spacing. https://edit.amelia.example.com/57zohdjscuc3a7rj4w7jiznpvm/ ref:2sa27xvk"}, nil},
		{"long summary keeps the link", Result{ProjectName: "Amelia", Type: hermes.ResultDone, Success: true, Summary: long,
			PreviewURL: done.PreviewURL, Token: "2sa27xvk"}, []string{"Amelia: Done: Changed the hero", "... " + done.PreviewURL + " ref:2sa27xvk"}, nil},
		{"error quotes the error", Result{Type: hermes.ResultError, Summary: "s", Error: "Build failed — “npm” exited 1"},
			[]string{`Sorry, that could not be applied: Build failed - "npm" exited 1`}, []string{" s"}},
		{"interrupted", Result{Type: hermes.ResultInterrupted, Token: "2sa27xvk"}, []string{"Stopped by your newer message; work saved. ref:2sa27xvk"}, nil},
		{"link too long for any room", Result{Type: hermes.ResultDone, Success: true, Summary: "Blue header",
			PreviewURL: "https://example.com/" + strings.Repeat("a", 200)}, []string{"Done: Blue header"}, []string{"https"}},
		{"non-GSM link dropped", Result{Type: hermes.ResultDone, Success: true, Summary: "ok then",
			PreviewURL: "https://example.com/ş"}, []string{"Done: ok then"}, []string{"http"}},
		{"emoji project", Result{ProjectName: "🌸", Type: hermes.ResultPlan, Summary: "Delete the blog 🗑"},
			[]string{"Plan ready, nothing changed yet: Delete the blog"}, []string{"🌸", ":  "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ResultSMS(tc.r)
			n, bad := gsm7Check(got)
			if bad != 0 || n > SMSMaxSeptets {
				t.Errorf("%d septets, bad %q: %q", n, bad, got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("lacks %q: %q", w, got)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(got, w) {
					t.Errorf("has %q: %q", w, got)
				}
			}
		})
	}
}

func TestResultSMSAlwaysOneSegment(t *testing.T) {
	for _, summary := range []string{"", "x", strings.Repeat("€", 200), strings.Repeat("word ", 100), strings.Repeat("{[]}", 50)} {
		for _, link := range []string{"", done.PreviewURL, "https://e.com/" + strings.Repeat("b", 130), "https://e.com/" + strings.Repeat("b", 150)} {
			for _, typ := range []string{hermes.ResultDone, hermes.ResultError, hermes.ResultPlan, hermes.ResultInterrupted} {
				r := Result{ProjectName: strings.Repeat("Project ", 10), Type: typ, Summary: summary, Error: summary, PreviewURL: link, Token: "2sa27xvk"}
				got := ResultSMS(r)
				if n, bad := gsm7Check(got); bad != 0 || n > SMSMaxSeptets {
					t.Fatalf("%d septets, bad %q: %q", n, bad, got)
				}
				if link != "" && len(link) < 130 && !strings.Contains(got, link) {
					t.Errorf("link that fits was left out: %q", got)
				}
			}
		}
	}
}

func TestResultChat(t *testing.T) {
	got := ResultChat(done)
	want := "*Done — your change is applied.*\nMade the header blue.\n\nAlso fixed the &lt;nav&gt; contrast &amp; spacing.\n" +
		"Files changed: `src/components/Header.astro`, `src/styles/global.css`\n" +
		"Commit `3f2a9c1d0e4b` · <https://edit.amelia.example.com/57zohdjscuc3a7rj4w7jiznpvm/|Preview> · Reference: `ref:2sa27xvk`"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	got = ResultChat(Result{Type: hermes.ResultError, Error: "<!channel> boom"})
	if got != "*Sorry — your request could not be applied.*\nError: &lt;!channel&gt; boom" {
		t.Errorf("error: %q", got)
	}
}
