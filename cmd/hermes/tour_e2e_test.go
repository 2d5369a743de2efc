package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// exampleProject runs examples/quickstart.sh into a temporary directory
// (the README's quick tour: the example site as a git repository, the
// example command agent, a projects file) and returns that directory.
func exampleProject(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("SKIPPING: git is not installed")
	}
	dir := t.TempDir()
	cmd := exec.Command("sh", "examples/quickstart.sh", dir)
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("examples/quickstart.sh: %v\n%s", err, out)
	}
	return dir
}

// withWorkers makes serve's local runner start real workers: this test
// binary, which runs `hermes worker` when asked to (TestMain).
func withWorkers(t *testing.T, vars map[string]string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	vars["HERMES_WORKER_BIN"] = exe
	vars["HERMES_RECONCILE_INTERVAL"] = "1s"
	vars["HERMES_JOB_VISIBILITY"] = "5s"
}

// waitLong is waitFor with a longer deadline, for steps that start
// processes and run git.
func waitLong(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c client) find(kind, inReplyTo string) (outboxItem, bool) {
	for _, it := range c.outbox() {
		if it.Kind == kind && (inReplyTo == "" || it.Headers["In-Reply-To"] == inReplyTo) {
			return it, true
		}
	}
	return outboxItem{}, false
}

// containerState returns the status and detail of the only container.
func (c client) containerState() (string, string) {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.base+"/api/containers", nil)
	req.Header.Set("Authorization", "Bearer "+c.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var cs []struct{ Status, Detail string }
	if err := json.Unmarshal(b, &cs); err != nil || len(cs) != 1 {
		c.t.Fatalf("containers: %s %v", b, err)
	}
	return cs[0].Status, cs[0].Detail
}

// TestQuickTourEndToEnd is the README's quick tour, through the real
// serve: an email asks the example site for a new title; Hermes
// acknowledges it in the thread, wakes the container (a `hermes worker`
// child process), the example agent edits the page, the worker commits on
// the thread's branch and publishes the preview, and the result comes back
// as a threaded reply with the summary, the commit and a preview link that
// serves the new page. A follow-up in the same thread builds on that
// commit; once idle the worker exits, and the next email wakes it again.
func TestQuickTourEndToEnd(t *testing.T) {
	dir := exampleProject(t)
	vars := baseVars(t)
	withWorkers(t, vars)
	vars["HERMES_PROJECTS_FILE"] = filepath.Join(dir, "projects.json")
	vars["HERMES_SMTP_ADDR"] = "127.0.0.1:0"
	vars["HERMES_API_KEYS"] = "an-admin-key-for-tests=admin"
	vars["HERMES_IDLE_TIMEOUT"] = "3s"
	mailpitAPI := os.Getenv("HERMES_TEST_MAILPIT_API")
	if smtpAddr := os.Getenv("HERMES_TEST_MAILPIT_SMTP"); smtpAddr != "" && mailpitAPI != "" {
		vars["HERMES_MAILER"] = "smtp"
		vars["SMTP_URL"] = "smtp://" + smtpAddr
	} else if os.Getenv("HERMES_TEST_REQUIRE_EMULATORS") == "1" {
		t.Fatal("mailpit is required (HERMES_TEST_MAILPIT_SMTP/API) with HERMES_TEST_REQUIRE_EMULATORS=1")
	}
	base, logs, stop := startServe(t, vars)
	defer stop()
	smtpAddr := logs.wait(t, "smtp server listening", 5*time.Second)["addr"].(string)
	c := client{t: t, base: base, key: "an-admin-key-for-tests"}
	marker := fmt.Sprint(time.Now().UnixNano())

	first := "<tour1." + marker + "@example.com>"
	if err := sendMail(t, smtpAddr, "scott@example.com", "edit@amelia.example.com",
		map[string]string{"Subject": "New title " + marker, "Message-ID": first},
		"Hi! Please change the title to Fresh Stamps Daily.\n\nThanks,\nScott\n"); err != nil {
		t.Fatal(err)
	}
	var ack, result outboxItem
	waitLong(t, "the acknowledgement", func() (ok bool) { ack, ok = c.find("ack", first); return })
	if !strings.Contains(ack.Text, "waking") && !strings.Contains(ack.Text, "wak") {
		t.Errorf("acknowledgement without the wake estimate: %q", ack.Text)
	}
	waitLong(t, "the result", func() (ok bool) { result, ok = c.find("result", first); return })
	if result.ThreadID != ack.ThreadID || !strings.Contains(result.Text, "Changed the title of the home page to “Fresh Stamps Daily”") ||
		!strings.Contains(result.Text, "index.html") || !strings.Contains(result.Subject, "[ref:") {
		t.Fatalf("result reply %+v", result)
	}

	// The commit is on the thread's branch of the container's clone.
	ws := filepath.Join(vars["HERMES_DATA_DIR"], "workspaces", "amelia_site_scott")
	branch := "thread-" + result.ThreadID
	show := func(args ...string) string {
		out, err := exec.Command("git", append([]string{"-C", ws, "show"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("git show %s: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if !strings.Contains(show(branch+":index.html"), "<title>Fresh Stamps Daily</title>") {
		t.Fatal("the thread branch does not have the new title")
	}
	commit := strings.TrimSpace(show(branch, "--format=%H", "--no-patch"))
	if !strings.Contains(result.Text, commit[:7]) {
		t.Errorf("the reply does not name the commit %s: %q", commit[:7], result.Text)
	}

	// The preview link in the reply serves the new page.
	previewURL := ""
	for _, f := range strings.Fields(result.Text) {
		if strings.Contains(f, "/preview/amelia/site/"+result.ThreadID+"/") {
			previewURL = strings.Trim(f, "<>()")
		}
	}
	if previewURL == "" {
		t.Fatalf("no preview link in %q", result.Text)
	}
	u, err := url.Parse(previewURL)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(base + u.Path)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "<h1>Fresh Stamps Daily</h1>") || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("preview: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), page)
	}

	// A follow-up in the thread (a reply to the result) builds on it.
	second := "<tour2." + marker + "@example.com>"
	if err := sendMail(t, smtpAddr, "scott@example.com", "edit@amelia.example.com", map[string]string{
		"Subject": "Re: " + result.Subject, "Message-ID": second,
		"In-Reply-To": result.Headers["Message-ID"], "References": result.Headers["References"] + " " + result.Headers["Message-ID"],
	}, "Lovely. Now change the tagline to Open on Sundays too.\n\nOn Fri, Scott wrote:\n> earlier\n"); err != nil {
		t.Fatal(err)
	}
	var result2 outboxItem
	waitLong(t, "the follow-up's result", func() (ok bool) { result2, ok = c.find("result", second); return })
	if result2.ThreadID != result.ThreadID || !strings.Contains(result2.Text, "Open on Sundays too") {
		t.Fatalf("follow-up result %+v", result2)
	}
	index := show(branch + ":index.html")
	if !strings.Contains(index, "<title>Fresh Stamps Daily</title>") || !strings.Contains(index, `<p class="tagline">Open on Sundays too</p>`) {
		t.Fatalf("the follow-up did not build on the first commit:\n%s", index)
	}
	if parent := strings.TrimSpace(show(branch+"~1", "--format=%H", "--no-patch")); !strings.HasPrefix(parent, commit) {
		t.Errorf("the follow-up's parent is %s, want %s", parent, commit)
	}

	// Idle: the worker exits by itself…
	waitLong(t, "the idle exit", func() bool {
		status, detail := c.containerState()
		return status == "stopped" && detail == "idle exit"
	})
	// …and the next email wakes it again.
	third := "<tour3." + marker + "@example.com>"
	if err := sendMail(t, smtpAddr, "scott@example.com", "edit@amelia.example.com",
		map[string]string{"Subject": "Another page title " + marker, "Message-ID": third},
		"Change the title to Stamps and Letters\n"); err != nil {
		t.Fatal(err)
	}
	var result3 outboxItem
	waitLong(t, "the result after the wake", func() (ok bool) { result3, ok = c.find("result", third); return })
	if !strings.Contains(result3.Text, "Stamps and Letters") || result3.ThreadID == result.ThreadID {
		t.Fatalf("third result %+v", result3)
	}

	if mailpitAPI != "" {
		waitLong(t, "the replies in mailpit", func() bool {
			resp, err := http.Get(mailpitAPI + "/api/v1/search?query=" + url.QueryEscape(marker))
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			var r struct{ Messages []struct{ Subject string } }
			_ = json.NewDecoder(resp.Body).Decode(&r)
			return len(r.Messages) >= 6 // three acknowledgements and three results
		})
	}
}
