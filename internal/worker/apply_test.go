package worker_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/worker"
	"github.com/webordinary/hermes/internal/worker/workertest"
)

// fakeClaude copies the fake CLI into a directory of the test's own, where
// it keeps this test's sessions and calls.
func fakeClaude(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(claudeBin)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "claude")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

func claudeCalls(t *testing.T, bin string) []workertest.FakeCall {
	t.Helper()
	calls, err := workertest.FakeClaudeCalls(bin)
	if err != nil {
		t.Fatal(err)
	}
	return calls
}

// setupClaude is setup with the claude agent (the fake CLI) and args.
func setupClaude(t *testing.T, args ...string) (*worker.Workspace, string) {
	t.Helper()
	w := setup(t, "noop")
	w.Project.Agent = hermes.Agent{Kind: hermes.AgentClaude, Model: "claude-sonnet-4-5", Args: args}
	w.ClaudeBin = fakeClaude(t)
	return w, w.ClaudeBin
}

// claudeSessions reads the worker's record of the threads' sessions.
func claudeSessions(t *testing.T, w *worker.Workspace) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(w.Dir, ".git", worker.ClaudeSessionsFile))
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]struct{ SessionID string }
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k, v := range rec {
		out[k] = v.SessionID
	}
	return out
}

func title(t *testing.T, w *worker.Workspace) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(w.Dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(b), "<title>")
	got, _, _ := strings.Cut(rest, "</title>")
	return got
}

func TestClaudeSessionPerThread(t *testing.T) {
	t.Setenv("ANTHROPIC_API_KEY", "sk-ant-test")
	t.Setenv("HERMES_API_KEYS", "a-secret=admin")
	t.Setenv("SMTP_URL", "smtp://user:pass@mail.example.com:587")
	w, bin := setupClaude(t)
	thread := hermes.NewToken()
	instr := "Change the title to Stamps"
	res := apply(t, w, newJob(thread, instr))
	if !res.Success || res.Type != hermes.ResultDone || res.Summary != `Set the page title to "Stamps".` || res.Commit == "" ||
		!slices.Equal(res.FilesChanged, []string{"index.html"}) || title(t, w) != "Stamps" {
		t.Fatalf("result %+v, title %q", res, title(t, w))
	}
	calls := claudeCalls(t, bin)
	if len(calls) != 1 {
		t.Fatalf("%d calls", len(calls))
	}
	c := calls[0]
	if want := []string{"-p", "--output-format", "json", "--model", "claude-sonnet-4-5", "--permission-mode", "acceptEdits"}; !slices.Equal(c.Args, want) {
		t.Errorf("args %q, want %q", c.Args, want)
	}
	if c.Stdin != instr {
		t.Errorf("stdin %q", c.Stdin)
	}
	if d, _ := filepath.EvalSymlinks(w.Dir); c.Dir != d && c.Dir != w.Dir {
		t.Errorf("ran in %s, not the checkout %s", c.Dir, w.Dir)
	}
	if c.Env["ANTHROPIC_API_KEY"] != "sk-ant-test" || c.Env["HERMES_THREAD_ID"] != thread {
		t.Errorf("the CLI's environment lacks its key or the thread: %v", c.Env)
	}
	for _, k := range []string{"HERMES_API_KEYS", "SMTP_URL"} {
		if _, ok := c.Env[k]; ok {
			t.Errorf("the worker's secret %s reached the agent", k)
		}
	}
	session := claudeSessions(t, w)[thread]
	if session == "" {
		t.Fatal("no session recorded for the thread")
	}

	// A follow-up on the thread resumes its session.
	res2 := apply(t, w, newJob(thread, "Now set the title to Letters"))
	if !res2.Success || res2.Summary != "Resumed session "+session+`. Set the page title to "Letters".` || title(t, w) != "Letters" {
		t.Fatalf("follow-up %+v", res2)
	}
	calls = claudeCalls(t, bin)
	if i := slices.Index(calls[1].Args, "--resume"); i < 0 || calls[1].Args[i+1] != session {
		t.Errorf("follow-up args %q do not resume %s", calls[1].Args, session)
	}
	if got := claudeSessions(t, w)[thread]; got != session {
		t.Errorf("session %q after the follow-up, want %q", got, session)
	}

	// Another thread has a session of its own.
	other := hermes.NewToken()
	apply(t, w, newJob(other, "Change the title to Other"))
	calls = claudeCalls(t, bin)
	if slices.Contains(calls[2].Args, "--resume") {
		t.Errorf("a new thread resumed a session: %q", calls[2].Args)
	}
	if s := claudeSessions(t, w); s[other] == "" || s[other] == session || s[thread] != session {
		t.Errorf("sessions %v", s)
	}
}

func TestClaudePlanThenExecute(t *testing.T) {
	w, bin := setupClaude(t, "--permission-mode", "bypassPermissions", "--dangerously-skip-permissions", "--max-turns", "5")
	base := git(t, w.Dir, "rev-parse", "refs/remotes/origin/main")
	thread := hermes.NewToken()
	planJob := newJob(thread, "Change the title to Stamps")
	planJob.Type = hermes.JobPlan
	res := apply(t, w, planJob)
	if res.Type != hermes.ResultPlan || !res.Success || res.Commit != "" || len(res.FilesChanged) != 0 ||
		!strings.Contains(res.Summary, "Plan:\n1. Set the title to Stamps in index.html.") {
		t.Fatalf("plan result %+v", res)
	}
	if head := git(t, w.Dir, "rev-parse", "HEAD"); head != base {
		t.Errorf("plan mode committed: HEAD %s, base %s", head, base)
	}
	if st := git(t, w.Dir, "status", "--porcelain"); st != "" || title(t, w) != "Old" {
		t.Errorf("plan mode changed the checkout: %q, title %q", st, title(t, w))
	}
	calls := claudeCalls(t, bin)
	if want := []string{"-p", "--output-format", "json", "--model", "claude-sonnet-4-5", "--permission-mode", "plan", "--max-turns", "5"}; !slices.Equal(calls[0].Args, want) {
		t.Errorf("plan args %q, want %q (nothing that lifts plan mode)", calls[0].Args, want)
	}
	session := claudeSessions(t, w)[thread]

	exec := newJob(thread, planJob.Instruction)
	exec.Type, exec.Plan, exec.ApprovalID = hermes.JobExecute, res.Summary, hermes.NewToken()
	res2 := apply(t, w, exec)
	if res2.Type != hermes.ResultDone || !res2.Success || res2.Commit == "" || title(t, w) != "Stamps" {
		t.Fatalf("execute result %+v", res2)
	}
	calls = claudeCalls(t, bin)
	want := "Carry out this approved plan:\n\n" + strings.TrimSpace(res.Summary) + "\n\nOriginal request: Change the title to Stamps\n"
	if calls[1].Stdin != want {
		t.Errorf("execute prompt %q, want %q", calls[1].Stdin, want)
	}
	if wantArgs := []string{"-p", "--output-format", "json", "--model", "claude-sonnet-4-5", "--resume", session, "--permission-mode", "acceptEdits",
		"--permission-mode", "bypassPermissions", "--dangerously-skip-permissions", "--max-turns", "5"}; !slices.Equal(calls[1].Args, wantArgs) {
		t.Errorf("execute args %q, want %q", calls[1].Args, wantArgs)
	}
	if s := git(t, w.Dir, "log", "-1", "--format=%s", res2.Commit); s != "Change the title to Stamps" {
		t.Errorf("subject %q", s)
	}
}

func TestClaudeLostSessionAndFailures(t *testing.T) {
	w, bin := setupClaude(t)
	thread := hermes.NewToken()
	// A session this CLI does not know (a new container): a new one is started.
	rec := `{"` + thread + `":{"sessionId":"0b7c5d2e-gone","usedAt":"2026-01-02T03:04:05Z"}}`
	if err := os.WriteFile(filepath.Join(w.Dir, ".git", worker.ClaudeSessionsFile), []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	res := apply(t, w, newJob(thread, "Change the title to Stamps"))
	if !res.Success || title(t, w) != "Stamps" {
		t.Fatalf("result %+v", res)
	}
	calls := claudeCalls(t, bin)
	if len(calls) != 2 || !slices.Contains(calls[0].Args, "0b7c5d2e-gone") || slices.Contains(calls[1].Args, "--resume") {
		t.Fatalf("calls %+v: want the resume, then a new session", calls)
	}
	if s := claudeSessions(t, w)[thread]; s == "" || s == "0b7c5d2e-gone" {
		t.Errorf("session %q", s)
	}

	// An error result.
	res = apply(t, w, newJob(thread, "Change the title FAKE:error"))
	if res.Type != hermes.ResultDone || res.Success || !strings.Contains(res.Error, "stopped with an error (error_during_execution)") ||
		!strings.HasSuffix(res.Summary, "The edit failed half way.") {
		t.Errorf("error result %+v", res)
	}

	// Output that is not the CLI's result.
	w.ClaudeBin = agentBin
	res = apply(t, w, newJob(thread, "Change the title to X"))
	if res.Success || !strings.Contains(res.Error, "printed no result") {
		t.Errorf("no result: %+v", res)
	}
}

func TestCommandPlanChangesNothing(t *testing.T) {
	w := setup(t, "planner")
	base := git(t, w.Dir, "rev-parse", "refs/remotes/origin/main")
	job := newJob(hermes.NewToken(), "Rename the site")
	job.Type = hermes.JobPlan
	res := apply(t, w, job)
	if res.Type != hermes.ResultPlan || !res.Success || res.Summary != "Plan (mode plan):\n1. Change the title." || res.Commit != "" {
		t.Fatalf("result %+v", res)
	}
	if git(t, w.Dir, "rev-parse", "HEAD") != base || git(t, w.Dir, "status", "--porcelain", "--ignored") != "" || title(t, w) != "Old" {
		t.Errorf("plan mode left changes: %q", git(t, w.Dir, "status", "--porcelain", "--ignored"))
	}
	// The same agent outside plan mode commits what it does.
	res = apply(t, w, newJob(job.ThreadID, "Rename the site"))
	if !res.Success || !strings.Contains(res.Summary, "mode edit") || len(res.FilesChanged) != 3 {
		t.Errorf("edit result %+v", res)
	}
}

func TestExecuteGivesPlanToAgent(t *testing.T) {
	w := setup(t, "echo")
	job := newJob(hermes.NewToken(), "Redo the header")
	job.Type, job.Plan = hermes.JobExecute, "1. Do X\n2. Do Y\n"
	res := apply(t, w, job)
	if !res.Success {
		t.Fatalf("result %+v", res)
	}
	var got struct{ Stdin string }
	b, _ := os.ReadFile(filepath.Join(w.Dir, "received.json"))
	json.Unmarshal(b, &got)
	if want := "Carry out this approved plan:\n\n1. Do X\n2. Do Y\n\nOriginal request: Redo the header\n"; got.Stdin != want {
		t.Errorf("stdin %q, want %q", got.Stdin, want)
	}
	if s := git(t, w.Dir, "log", "-1", "--format=%s", res.Commit); s != "Redo the header" {
		t.Errorf("subject %q", s)
	}
}

func TestInterruptedApply(t *testing.T) {
	w := setup(t, "sleep")
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	done := make(chan *hermes.ResultMessage, 1)
	go func() {
		res, err := w.Apply(ctx, newJob(hermes.NewToken(), "Take forever"))
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	waitChild(t, w)
	cancel(worker.ErrInterrupted)
	var res *hermes.ResultMessage
	select {
	case res = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Apply did not return after the interrupt")
	}
	if res == nil || res.Type != hermes.ResultInterrupted || !res.Interrupted || res.Success || res.Error != "" || res.Commit == "" ||
		!strings.HasPrefix(res.Summary, "Interrupted by a newer instruction") {
		t.Fatalf("result %+v", res)
	}
	msg := git(t, w.Dir, "log", "-1", "--format=%B", res.Commit)
	if !strings.HasPrefix(msg, "WIP: Take forever\n") || !strings.Contains(msg, "Interrupted by a newer instruction") {
		t.Errorf("checkpoint message %q", msg)
	}
	if git(t, w.Dir, "show", res.Commit+":partial.txt") != "half done" {
		t.Error("the partial work is not in the checkpoint")
	}
}

// waitChild waits for the test agent in mode sleep to have started its
// child, and returns the child's pid.
func waitChild(t *testing.T, w *worker.Workspace) int {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the agent did not start its child")
		}
		if b, err := os.ReadFile(filepath.Join(w.Dir, "child.pid")); err == nil && len(b) > 0 {
			pid, _ := strconv.Atoi(string(b))
			return pid
		}
	}
}

// previewSetup is setup with previews published under a temporary root.
func previewSetup(t *testing.T, mode string) (*worker.Workspace, string) {
	t.Helper()
	w := setup(t, mode)
	w.PreviewRoot = filepath.Join(t.TempDir(), "previews")
	w.PublicURL = "http://hermes.test/base"
	return w, w.PreviewRoot
}

// tree lists the files under dir, relative, with their contents.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBuildPublishesPreview(t *testing.T) {
	w, root := previewSetup(t, "title")
	w.Project.Build = &hermes.Build{Command: []string{agentBin, "build"}, OutputDir: "dist"}
	thread := hermes.NewToken()
	res := apply(t, w, newJob(thread, "Change the title to Stamps"))
	if !res.Success || res.Error != "" || res.PreviewURL != "http://hermes.test/base/preview/amelia/site/"+thread+"/" {
		t.Fatalf("result %+v", res)
	}
	dir := filepath.Join(root, "amelia", "site", thread)
	got := tree(t, dir)
	if len(got) != 3 || !strings.Contains(got["index.html"], "<title>Stamps</title>") || got["css/site.css"] != "body{}\n" || got["built-Stamps.txt"] != "built\n" {
		t.Fatalf("published %v", got)
	}

	// The next job replaces the preview; the build's output is never committed.
	res = apply(t, w, newJob(thread, "Now the title to Letters"))
	if !res.Success || !slices.Equal(res.FilesChanged, []string{"index.html"}) {
		t.Fatalf("result %+v", res)
	}
	got = tree(t, dir)
	if _, old := got["built-Stamps.txt"]; old || got["built-Letters.txt"] != "built\n" || len(got) != 3 {
		t.Errorf("published %v", got)
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 || entries[0].Name() != thread {
		t.Errorf("left next to the preview: %v", entries)
	}
	if git(t, w.Dir, "ls-tree", "-r", "--name-only", "HEAD") != "index.html" {
		t.Errorf("committed: %s", git(t, w.Dir, "ls-tree", "-r", "--name-only", "HEAD"))
	}
}

func TestBuildFailureKeepsCommit(t *testing.T) {
	w, root := previewSetup(t, "title")
	w.Project.Build = &hermes.Build{Command: []string{agentBin, "buildfail"}, OutputDir: "dist"}
	thread := hermes.NewToken()
	res := apply(t, w, newJob(thread, "Change the title to Stamps"))
	if res.Type != hermes.ResultDone || res.Success || res.Commit == "" || res.PreviewURL != "" ||
		!strings.Contains(res.Error, "the build exited with status 2") || !strings.Contains(res.Error, "compiling…") ||
		!strings.Contains(res.Error, "error: src/index.astro:3: unexpected }") {
		t.Fatalf("result %+v", res)
	}
	if _, err := os.Stat(filepath.Join(root, "amelia", "site", thread)); err == nil {
		t.Error("a preview was published after a failed build")
	}
}

func TestBuildOutputMustStayInside(t *testing.T) {
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("secret"), 0o600)
	for _, tc := range []struct{ name, dir, want string }{
		{"parent", "../outside", "not a relative path inside the repository"},
		{"absolute", outside, "not a relative path inside the repository"},
		{"symlink out", "link", "outside the repository"},
		{"git dir", ".git", "inside .git"},
		{"missing", "nothing-here", "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, root := previewSetup(t, "title")
			thread := hermes.NewToken()
			if err := w.Checkout(t.Context(), thread); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, filepath.Join(w.Dir, "link")); err != nil {
				t.Fatal(err)
			}
			w.Project.Build = &hermes.Build{Command: []string{agentBin, "noop"}, OutputDir: tc.dir}
			res := apply(t, w, newJob(thread, "Change the title to Stamps"))
			if res.Success || res.Commit == "" || !strings.Contains(res.Error, tc.want) || res.PreviewURL != "" {
				t.Errorf("result %+v, want an error with %q", res, tc.want)
			}
			if _, err := os.Stat(root); err == nil {
				t.Error("something was published")
			}
		})
	}
}

func TestPreviewWithoutBuild(t *testing.T) {
	w, root := previewSetup(t, "title")
	thread := hermes.NewToken()
	if err := w.Checkout(t.Context(), thread); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(w.Dir, ".gitignore"), []byte("secret.env\n"), 0o644)
	os.WriteFile(filepath.Join(w.Dir, "secret.env"), []byte("TOKEN=x\n"), 0o600)
	os.MkdirAll(filepath.Join(w.Dir, "img"), 0o755)
	os.WriteFile(filepath.Join(w.Dir, "img", "a.svg"), []byte("<svg/>"), 0o644)
	os.Symlink("img/a.svg", filepath.Join(w.Dir, "logo.svg"))
	os.Symlink("/etc/passwd", filepath.Join(w.Dir, "passwd"))
	res := apply(t, w, newJob(thread, "Change the title to Stamps"))
	if !res.Success || res.PreviewURL != "http://hermes.test/base/preview/amelia/site/"+thread+"/" {
		t.Fatalf("result %+v", res)
	}
	got := tree(t, filepath.Join(root, "amelia", "site", thread))
	want := map[string]string{".gitignore": "secret.env\n", "img/a.svg": "<svg/>", "logo.svg": "<svg/>"}
	if !strings.Contains(got["index.html"], "<title>Stamps</title>") {
		t.Errorf("index.html: %q", got["index.html"])
	}
	delete(got, "index.html")
	if len(got) != len(want) {
		t.Errorf("published %v, want index.html and %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}

	// With a preview template, the link is the template's.
	w.Project.PreviewURLTemplate = "https://edit.amelia.example.com/{thread}/"
	res = apply(t, w, newJob(thread, "Now the title to Letters"))
	if res.PreviewURL != "https://edit.amelia.example.com/"+thread+"/" {
		t.Errorf("preview URL %q", res.PreviewURL)
	}
}

func TestPushToOrigin(t *testing.T) {
	w := setup(t, "title")
	bare := filepath.Join(t.TempDir(), "origin.git")
	git(t, "", "clone", "-q", "--bare", git(t, w.Dir, "remote", "get-url", "origin"), bare)
	git(t, w.Dir, "remote", "set-url", "origin", bare)
	w.Project.Push = true
	thread := hermes.NewToken()
	res := apply(t, w, newJob(thread, "Change the title to Stamps"))
	if !res.Success || res.Error != "" || res.Commit == "" {
		t.Fatalf("result %+v", res)
	}
	if got := git(t, bare, "rev-parse", "refs/heads/thread-"+thread); got != res.Commit {
		t.Errorf("origin's thread-%s is %s, want %s", thread, got, res.Commit)
	}

	// A failed push is reported; the commit stays; credentials never show.
	git(t, w.Dir, "remote", "set-url", "origin", "https://hermes:s3cret-token@127.0.0.1:1/site.git")
	res = apply(t, w, newJob(thread, "Now the title to Letters"))
	if !res.Success || res.Commit == "" || !strings.Contains(res.Error, "pushing thread-"+thread) || strings.Contains(res.Error, "s3cret") {
		t.Fatalf("result %+v", res)
	}
	if git(t, w.Dir, "rev-parse", "HEAD") != res.Commit {
		t.Error("the commit was lost")
	}
}

func TestCloneErrorHidesCredentials(t *testing.T) {
	w := &worker.Workspace{Dir: filepath.Join(t.TempDir(), "ws"),
		Project: &hermes.Project{ClientID: "amelia", ID: "site", RepoURL: "https://hermes:s3cret-token@127.0.0.1:1/site.git", DefaultBranch: "main"}}
	err := w.Prepare(t.Context())
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "***@127.0.0.1") {
		t.Errorf("err %v", err)
	}
}
