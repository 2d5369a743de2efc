package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/webordinary/hermes/internal/sqlite"
	"github.com/webordinary/hermes/internal/worker/workertest"
)

// testAgent builds the worker tests' command agent (its first argument
// picks a behaviour: title, multi, gate, …) and returns its path.
func testAgent(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "agent")
	cmd := exec.Command("go", "build", "-o", bin, "./internal/worker/testdata/agent")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the test agent: %v\n%s", err, out)
	}
	return bin
}

// editServe starts serve with workers on the example site, its project
// using the agent described by agentJSON, and returns a client, the SMTP
// address and the serve's logs.
func editServe(t *testing.T, agentJSON string, extra map[string]string) (client, string, *logLines, map[string]string) {
	t.Helper()
	dir := exampleProject(t)
	projects := filepath.Join(dir, "projects.json")
	if err := os.WriteFile(projects, fmt.Appendf(nil, `{"clients":[{"id":"amelia","name":"Amelia Stamps","projects":[{"id":"site",
		"repoUrl":%q,"emailAddresses":["edit@amelia.example.com"],"agent":%s}],
		"users":[{"id":"scott","emails":["scott@example.com"]}]}]}`, filepath.Join(dir, "site.git"), agentJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := baseVars(t)
	withWorkers(t, vars)
	vars["HERMES_PROJECTS_FILE"] = projects
	vars["HERMES_SMTP_ADDR"] = "127.0.0.1:0"
	vars["HERMES_API_KEYS"] = "an-admin-key-for-tests=admin"
	for k, v := range extra {
		vars[k] = v
	}
	base, logs, _ := startServe(t, vars)
	smtpAddr := logs.wait(t, "smtp server listening", 5*time.Second)["addr"].(string)
	return client{t: t, base: base, key: "an-admin-key-for-tests"}, smtpAddr, logs, vars
}

func mail(t *testing.T, smtpAddr, msgID, subject, body string, replyTo *outboxItem) {
	t.Helper()
	h := map[string]string{"Subject": subject, "Message-ID": msgID}
	if replyTo != nil {
		h["Subject"] = "Re: " + replyTo.Subject
		h["In-Reply-To"] = replyTo.Headers["Message-ID"]
		h["References"] = strings.TrimSpace(replyTo.Headers["References"] + " " + replyTo.Headers["Message-ID"])
	}
	if err := sendMail(t, smtpAddr, "scott@example.com", "edit@amelia.example.com", h, body); err != nil {
		t.Fatal(err)
	}
}

func (c client) count(kind, inReplyTo string) int {
	n := 0
	for _, it := range c.outbox() {
		if it.Kind == kind && it.Headers["In-Reply-To"] == inReplyTo {
			n++
		}
	}
	return n
}

func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestInterruptEndToEnd: a second message in the thread interrupts the
// running agent: the partial work is committed as a checkpoint, the first
// request gets an "interrupted" reply, and the new instruction runs on top.
func TestInterruptEndToEnd(t *testing.T) {
	agent := testAgent(t)
	c, smtpAddr, _, vars := editServe(t, fmt.Sprintf(`{"kind":"command","command":[%q,"multi"]}`, agent), nil)
	mail(t, smtpAddr, "<int1@example.com>", "Slow one", "wait for it slowpoke\n", nil)
	var ack outboxItem
	waitLong(t, "the acknowledgement", func() (ok bool) { ack, ok = c.find("ack", "<int1@example.com>"); return })
	waitLong(t, "the agent at work", func() bool { s, d := c.containerState(); return s == "running" && d == "busy" })
	time.Sleep(300 * time.Millisecond) // the agent has written its partial work
	mail(t, smtpAddr, "<int2@example.com>", "", "title Quickly\n", &ack)

	var interrupted, result outboxItem
	waitLong(t, "the interrupted reply", func() (ok bool) { interrupted, ok = c.find("interrupted", "<int1@example.com>"); return })
	waitLong(t, "the new instruction's result", func() (ok bool) { result, ok = c.find("result", "<int2@example.com>"); return })
	if interrupted.ThreadID != ack.ThreadID || result.ThreadID != ack.ThreadID {
		t.Fatalf("threads: ack %s interrupted %s result %s", ack.ThreadID, interrupted.ThreadID, result.ThreadID)
	}
	ws := filepath.Join(vars["HERMES_DATA_DIR"], "workspaces", "amelia_site_scott")
	branch := "thread-" + ack.ThreadID
	log := gitOut(t, ws, "log", "--format=%s", branch)
	if !strings.Contains(log, "WIP") {
		t.Errorf("no checkpoint commit of the interrupted work:\n%s", log)
	}
	if gitOut(t, ws, "show", branch+":partial-slowpoke.txt") != "half done\n" {
		t.Error("the interrupted work is not in the checkpoint")
	}
	if !strings.Contains(gitOut(t, ws, "show", branch+":index.html"), "<title>Quickly</title>") {
		t.Error("the new instruction was not applied")
	}
	time.Sleep(time.Second)
	if c.count("result", "<int1@example.com>") != 0 || c.count("interrupted", "<int1@example.com>") != 1 || c.count("result", "<int2@example.com>") != 1 {
		t.Errorf("replies: %+v", c.outbox())
	}
}

// TestWorkerKilledEndToEnd: `kill -9` of the worker in the middle of a job;
// the runner restarts it, the job is delivered again and completed once.
func TestWorkerKilledEndToEnd(t *testing.T) {
	agent := testAgent(t)
	c, smtpAddr, logs, vars := editServe(t, fmt.Sprintf(`{"kind":"command","command":[%q,"gate"]}`, agent), nil)
	mail(t, smtpAddr, "<kill1@example.com>", "Gated", "set the title Survivor\n", nil)
	pid := int(logs.wait(t, "container starting", 30*time.Second)["pid"].(float64))
	waitLong(t, "the agent at work", func() bool { s, d := c.containerState(); return s == "running" && d == "busy" })
	ws := filepath.Join(vars["HERMES_DATA_DIR"], "workspaces", "amelia_site_scott")
	waitLong(t, "the partial work", func() bool {
		_, err := os.Stat(filepath.Join(ws, "partial-Survivor.txt"))
		return err == nil
	})
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	logs.wait(t, "container crashed; restarting", 10*time.Second)
	// Let the redelivered job through.
	if err := os.WriteFile(filepath.Join(ws, ".git", "hermes-test-gate"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var result outboxItem
	waitLong(t, "the result", func() (ok bool) { result, ok = c.find("result", "<kill1@example.com>"); return })
	if !strings.Contains(gitOut(t, ws, "show", "thread-"+result.ThreadID+":index.html"), "<title>Survivor</title>") {
		t.Fatal("the job was not completed")
	}
	time.Sleep(2 * time.Second)
	if n := c.count("result", "<kill1@example.com>"); n != 1 {
		t.Fatalf("%d results, want 1", n)
	}
	if d := c.inputDepth(); d != 0 {
		t.Fatalf("input depth %d after the job", d)
	}
}

// TestClaudeEndToEnd: the claude agent (a fake CLI with the real one's
// JSON output) edits the site; a follow-up in the thread resumes the
// agent's own session.
func TestClaudeEndToEnd(t *testing.T) {
	claude := workertest.FakeClaude(t)
	c, smtpAddr, _, vars := editServe(t, `{"kind":"claude","model":"claude-sonnet-4-5"}`, map[string]string{"HERMES_CLAUDE_BIN": claude})
	mail(t, smtpAddr, "<cl1@example.com>", "Title", "Please change the title to Claude Was Here\n", nil)
	var r1, r2 outboxItem
	waitLong(t, "the first result", func() (ok bool) { r1, ok = c.find("result", "<cl1@example.com>"); return })
	mail(t, smtpAddr, "<cl2@example.com>", "", "Now change the title to Claude Came Back\n", &r1)
	waitLong(t, "the follow-up's result", func() (ok bool) { r2, ok = c.find("result", "<cl2@example.com>"); return })
	if r2.ThreadID != r1.ThreadID {
		t.Fatalf("threads %s %s", r1.ThreadID, r2.ThreadID)
	}
	calls, err := workertest.FakeClaudeCalls(claude)
	if err != nil || len(calls) != 2 {
		t.Fatalf("%d calls, %v", len(calls), err)
	}
	if argValue(calls[0].Args, "--resume") != "" || argValue(calls[0].Args, "--model") != "claude-sonnet-4-5" {
		t.Errorf("first call %q", calls[0].Args)
	}
	if argValue(calls[1].Args, "--resume") == "" {
		t.Errorf("the follow-up did not resume the session: %q", calls[1].Args)
	}
	for _, call := range calls {
		if strings.Contains(strings.Join(call.Args, " "), "Claude") {
			t.Errorf("user text in argv: %q", call.Args)
		}
	}
	ws := filepath.Join(vars["HERMES_DATA_DIR"], "workspaces", "amelia_site_scott")
	if n := strings.Count(gitOut(t, ws, "log", "--format=%H", "main..thread-"+r1.ThreadID), "\n"); n != 2 {
		t.Errorf("%d commits on the thread branch, want 2", n)
	}
}

func argValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

func gitRun(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// startBinary runs the built hermes binary with vars and returns the
// process and its client once it listens.
func startBinary(t *testing.T, vars map[string]string) (*exec.Cmd, client, *logLines) {
	t.Helper()
	cmd := exec.Command(hermesBinary(t), "serve")
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "PATH="+os.Getenv("PATH"), "HOME="+os.Getenv("HOME"))
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	logs := newLogLines()
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			logs.Write(append(sc.Bytes(), '\n'))
		}
	}()
	addr := logs.wait(t, "hermes started", 20*time.Second)["addr"].(string)
	port := addr[strings.LastIndex(addr, ":")+1:]
	return cmd, client{t: t, base: "http://127.0.0.1:" + port, key: "an-admin-key-for-tests"}, logs
}

func (c client) outputDepth() int {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.base+"/api/containers", nil)
	req.Header.Set("Authorization", "Bearer "+c.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var cs []struct {
		Queues map[string]struct{ Depth int }
	}
	if err := json.NewDecoder(resp.Body).Decode(&cs); err != nil {
		c.t.Fatal(err)
	}
	n := 0
	for _, x := range cs {
		n += x.Queues["output"].Depth
	}
	return n
}

// TestHermesKilledEndToEnd: `kill -9` of Hermes itself after the worker
// reported its result and before Hermes relayed it; after a restart on the
// same data the user gets the reply exactly once (and, with mailpit, one
// email). Hermes relays results as they arrive, so it is stopped (SIGSTOP)
// while the agent waits at its gate, and killed once the result is queued.
func TestHermesKilledEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	agent := testAgent(t)
	dir := exampleProject(t)
	projects := filepath.Join(dir, "projects.json")
	if err := os.WriteFile(projects, fmt.Appendf(nil, `{"clients":[{"id":"amelia","name":"Amelia Stamps","projects":[{"id":"site",
		"repoUrl":%q,"emailAddresses":["edit@amelia.example.com"],"agent":{"kind":"command","command":[%q,"gate"]}}],
		"users":[{"id":"scott","emails":["scott@example.com"]}]}]}`, filepath.Join(dir, "site.git"), agent), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := baseVars(t)
	delete(vars, "HERMES_WORKER_BIN") // the binary itself
	vars["HERMES_PROJECTS_FILE"] = projects
	vars["HERMES_SMTP_ADDR"] = "127.0.0.1:0"
	vars["HERMES_API_KEYS"] = "an-admin-key-for-tests=admin"
	vars["HERMES_LOG_LEVEL"] = "info"
	mailpitAPI := os.Getenv("HERMES_TEST_MAILPIT_API")
	if smtpAddr := os.Getenv("HERMES_TEST_MAILPIT_SMTP"); smtpAddr != "" && mailpitAPI != "" {
		vars["HERMES_MAILER"] = "smtp"
		vars["SMTP_URL"] = "smtp://" + smtpAddr
	}
	first, c, logs := startBinary(t, vars)
	smtpAddr := logs.wait(t, "smtp server listening", 5*time.Second)["addr"].(string)
	marker := fmt.Sprint(time.Now().UnixNano())
	msgID := "<killed-hermes." + marker + "@example.com>"
	mail(t, smtpAddr, msgID, "Survive "+marker, "set the title Standing\n", nil)
	ws := filepath.Join(vars["HERMES_DATA_DIR"], "workspaces", "amelia_site_scott")
	waitLong(t, "the agent at work", func() bool {
		_, err := os.Stat(filepath.Join(ws, "partial-Standing.txt"))
		return err == nil
	})
	waitLong(t, "the started notice relayed", func() bool { return c.outputDepth() == 0 })
	if err := first.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, ".git", "hermes-test-gate"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(t.Context(), filepath.Join(vars["HERMES_DATA_DIR"], "hermes.db"))
	if err != nil {
		t.Fatal(err)
	}
	waitLong(t, "the result on the output queue", func() bool {
		st, err := db.Stats(t.Context(), "webordinary-output-amelia_site_scott")
		return err == nil && st.Visible == 1
	})
	db.Close()
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()

	vars["HERMES_RESULTS_INTERVAL"] = "200ms"
	_, c2, logs2 := startBinary(t, vars)
	defer func() {
		if t.Failed() {
			t.Logf("second hermes:\n%s", logs2)
		}
	}()
	waitLong(t, "the result reply after the restart", func() bool { _, ok := c2.find("result", msgID); return ok })
	time.Sleep(time.Second)
	if n := c2.count("result", msgID); n != 1 {
		t.Fatalf("%d result replies, want 1", n)
	}
	if mailpitAPI != "" {
		waitLong(t, "the reply in mailpit", func() bool {
			resp, err := http.Get(mailpitAPI + "/api/v1/search?query=" + url.QueryEscape(marker))
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			var r struct{ Messages []struct{ Subject string } }
			_ = json.NewDecoder(resp.Body).Decode(&r)
			return len(r.Messages) == 2 // the acknowledgement and the result, once each
		})
	}
}

// TestHermesKilledMidJobEndToEnd: `kill -9` of Hermes while its worker runs
// a job. The worker is told (SIGTERM from the kernel), checkpoints and
// leaves the job on its queue; the next Hermes wakes the container for it
// and the user gets one result.
func TestHermesKilledMidJobEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	agent := testAgent(t)
	dir := exampleProject(t)
	projects := filepath.Join(dir, "projects.json")
	if err := os.WriteFile(projects, fmt.Appendf(nil, `{"clients":[{"id":"amelia","name":"Amelia Stamps","projects":[{"id":"site",
		"repoUrl":%q,"emailAddresses":["edit@amelia.example.com"],"agent":{"kind":"command","command":[%q,"gate"]}}],
		"users":[{"id":"scott","emails":["scott@example.com"]}]}]}`, filepath.Join(dir, "site.git"), agent), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := baseVars(t)
	delete(vars, "HERMES_WORKER_BIN") // the binary itself
	vars["HERMES_PROJECTS_FILE"] = projects
	vars["HERMES_SMTP_ADDR"] = "127.0.0.1:0"
	vars["HERMES_API_KEYS"] = "an-admin-key-for-tests=admin"
	vars["HERMES_LOG_LEVEL"] = "info"
	vars["HERMES_RECONCILE_INTERVAL"] = "500ms"
	first, c, logs := startBinary(t, vars)
	smtpAddr := logs.wait(t, "smtp server listening", 5*time.Second)["addr"].(string)
	mail(t, smtpAddr, "<midjob@example.com>", "Gated", "set the title Phoenix\n", nil)
	ws := filepath.Join(vars["HERMES_DATA_DIR"], "workspaces", "amelia_site_scott")
	waitLong(t, "the agent at work", func() bool {
		_, err := os.Stat(filepath.Join(ws, "partial-Phoenix.txt"))
		return err == nil
	})
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	if err := os.WriteFile(filepath.Join(ws, ".git", "hermes-test-gate"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, c2, _ := startBinary(t, vars)
	var result outboxItem
	waitLong(t, "the result after the restart", func() (ok bool) { result, ok = c2.find("result", "<midjob@example.com>"); return })
	if !strings.Contains(gitOut(t, ws, "show", "thread-"+result.ThreadID+":index.html"), "<title>Phoenix</title>") {
		t.Fatal("the job was not completed")
	}
	time.Sleep(time.Second)
	if n := c2.count("result", "<midjob@example.com>"); n != 1 {
		t.Fatalf("%d results, want 1", n)
	}
	_ = c
}

// TestApprovalEndToEnd: a destructive request is answered with a plan (the
// agent ran in plan mode: nothing changed) and an approval link; the page
// shows the plan and changes nothing on GET; its Approve button (a POST
// with the page's CSRF token) makes the container carry the plan out.
func TestApprovalEndToEnd(t *testing.T) {
	dir := exampleProject(t)
	vars := baseVars(t)
	withWorkers(t, vars)
	vars["HERMES_PROJECTS_FILE"] = filepath.Join(dir, "projects.json")
	vars["HERMES_SMTP_ADDR"] = "127.0.0.1:0"
	vars["HERMES_API_KEYS"] = "an-admin-key-for-tests=admin"
	base, logs, _ := startServe(t, vars)
	smtpAddr := logs.wait(t, "smtp server listening", 5*time.Second)["addr"].(string)
	c := client{t: t, base: base, key: "an-admin-key-for-tests"}

	mail(t, smtpAddr, "<appr1@example.com>", "Big change", "Redesign the home page: change the title to Grand Reopening\n", nil)
	var plan outboxItem
	waitLong(t, "the plan", func() (ok bool) { plan, ok = c.find("plan", "<appr1@example.com>"); return })
	if !strings.Contains(plan.Text, "Plan: set the title of index.html to “Grand Reopening”") {
		t.Fatalf("plan reply %q", plan.Text)
	}
	ws := filepath.Join(vars["HERMES_DATA_DIR"], "workspaces", "amelia_site_scott")
	branch := "thread-" + plan.ThreadID
	if out, err := exec.Command("git", "-C", ws, "log", "--format=%s", "main.."+branch).CombinedOutput(); err == nil && strings.TrimSpace(string(out)) != "" {
		t.Fatalf("plan mode changed the branch: %s", out)
	}
	link := ""
	for _, f := range strings.Fields(plan.Text) {
		if i := strings.Index(f, "/approvals/"); i >= 0 {
			link = strings.Trim(f[i:], "<>().,")
		}
	}
	if link == "" {
		t.Fatalf("no approval link in %q", plan.Text)
	}

	// The page: GET twice (a mail scanner, then the user) changes nothing.
	jar := map[string]string{}
	get := func() string {
		resp, err := http.Get(base + link)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		for _, ck := range resp.Cookies() {
			jar[ck.Name] = ck.Value
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("approval page: %d %s", resp.StatusCode, b)
		}
		return string(b)
	}
	get()
	page := get()
	if !strings.Contains(page, "Grand Reopening") || !strings.Contains(page, `value="approve"`) {
		t.Fatalf("approval page:\n%s", page)
	}
	if _, ok := c.find("result", "<appr1@example.com>"); ok {
		t.Fatal("executed on GET")
	}
	csrf := ""
	if i := strings.Index(page, `name="csrf" value="`); i >= 0 {
		csrf = page[i+len(`name="csrf" value="`):]
		csrf = csrf[:strings.Index(csrf, `"`)]
	}
	post := func(token string) int {
		form := url.Values{"decision": {"approve"}, "csrf": {token}}
		req, _ := http.NewRequest("POST", base+link, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", base)
		req.AddCookie(&http.Cookie{Name: "hermes_approval_csrf", Value: jar["hermes_approval_csrf"]})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("forged-" + csrf); code != http.StatusForbidden {
		t.Fatalf("POST with a wrong CSRF token: %d", code)
	}
	if code := post(csrf); code != http.StatusOK {
		t.Fatalf("approve: %d", code)
	}
	var result outboxItem
	waitLong(t, "the execution's result", func() bool {
		for _, it := range c.outbox() {
			if it.Kind == "result" && it.ThreadID == plan.ThreadID {
				result = it
				return true
			}
		}
		return false
	})
	if !strings.Contains(result.Text, "Grand Reopening") {
		t.Fatalf("result %q", result.Text)
	}
	if !strings.Contains(gitOut(t, ws, "show", branch+":index.html"), "<title>Grand Reopening</title>") {
		t.Fatal("the approved plan was not carried out")
	}
	if code := post(csrf); code != http.StatusConflict {
		t.Fatalf("a second approval: %d, want 409", code)
	}
}

// TestDeactivateEndToEnd: deactivating a session stops its container only
// once no other live session uses it; the worker checkpoints and exits.
func TestDeactivateEndToEnd(t *testing.T) {
	dir := exampleProject(t)
	vars := baseVars(t)
	withWorkers(t, vars)
	vars["HERMES_PROJECTS_FILE"] = filepath.Join(dir, "projects.json")
	vars["HERMES_API_KEYS"] = "an-admin-key-for-tests=admin"
	base, _, _ := startServe(t, vars)
	c := client{t: t, base: base, key: "an-admin-key-for-tests"}
	activate := func(title string) string {
		code, body, _ := c.call("POST", "/api/sessions/activate", `{"clientId":"amelia","userId":"scott","instruction":"change the title to `+title+`"}`)
		if code != 201 {
			t.Fatalf("activate: %d %v", code, body)
		}
		id := body["sessionId"].(string)
		waitLong(t, "the session's result", func() bool {
			_, st, _ := c.call("GET", "/api/sessions/"+id+"/status", "")
			return st["lastResult"] != nil
		})
		return id
	}
	s1, s2 := activate("One"), activate("Two")
	if status, _ := c.containerState(); status != "running" {
		t.Fatalf("container %s after two results", status)
	}
	if code, body, _ := c.call("POST", "/api/sessions/"+s1+"/deactivate", ""); code != 202 {
		t.Fatalf("deactivate: %d %v", code, body)
	}
	time.Sleep(time.Second)
	if status, detail := c.containerState(); status != "running" {
		t.Fatalf("stopped while another session uses it: %s %s", status, detail)
	}
	if code, body, _ := c.call("POST", "/api/sessions/"+s2+"/deactivate", ""); code != 202 {
		t.Fatalf("deactivate: %d %v", code, body)
	}
	waitLong(t, "the container to stop", func() bool {
		status, detail := c.containerState()
		return status == "stopped" && detail == "deactivated"
	})
}
