package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
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

var (
	agentBin  string // the test agent, built by TestMain
	claudeBin string // the fake Claude Code CLI, built by TestMain; tests use copies (fakeClaude)
)

func TestMain(m *testing.M) {
	if _, err := exec.LookPath("git"); err != nil {
		fmt.Fprintln(os.Stderr, "!!! SKIPPING internal/worker tests: git is not on PATH !!!")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "hermes-worker-agent")
	if err != nil {
		panic(err)
	}
	agentBin = filepath.Join(dir, "agent")
	if out, err := exec.Command("go", "build", "-o", agentBin, "./testdata/agent").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the test agent: %v\n%s", err, out)
		os.Exit(1)
	}
	if claudeBin, err = workertest.BuildFakeClaude(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	args = append([]string{"-c", "user.name=Test", "-c", "user.email=test@localhost", "-c", "commit.gpgsign=false"}, args...)
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// setup makes an origin repository with index.html on main and a prepared
// workspace whose agent runs the test agent in mode.
func setup(t *testing.T, mode string) *worker.Workspace {
	t.Helper()
	root := t.TempDir()
	origin := filepath.Join(root, "origin")
	if err := os.MkdirAll(origin, 0o755); err != nil {
		t.Fatal(err)
	}
	git(t, origin, "init", "-q", "-b", "main")
	page := "<html><head><title>Old</title></head><body>Hi</body></html>\n"
	if err := os.WriteFile(filepath.Join(origin, "index.html"), []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, origin, "add", "-A")
	git(t, origin, "commit", "-q", "-m", "Initial site")
	w := &worker.Workspace{
		Dir: filepath.Join(root, "work", "ws"),
		Project: &hermes.Project{ClientID: "amelia", ID: "site", RepoURL: origin, DefaultBranch: "main",
			Agent: hermes.Agent{Kind: hermes.AgentCommand, Command: []string{agentBin, mode}}},
		KillGrace: 300 * time.Millisecond,
	}
	if err := w.Prepare(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := w.Prepare(t.Context()); err != nil { // a second time fetches
		t.Fatal(err)
	}
	return w
}

func newJob(threadID, instruction string) *hermes.Job {
	return &hermes.Job{Version: hermes.JobVersion, ID: hermes.NewToken(), Type: hermes.JobInstruction,
		SessionID: hermes.NewToken(), ThreadID: threadID, Branch: worker.BranchName(threadID),
		ClientID: "amelia", ProjectID: "site", UserID: "scott", Instruction: instruction,
		Reply: hermes.ReplyContext{Channel: hermes.ChannelAPI}}
}

func apply(t *testing.T, w *worker.Workspace, job *hermes.Job) *hermes.ResultMessage {
	t.Helper()
	res, err := w.Apply(t.Context(), job)
	if err != nil {
		t.Fatal(err)
	}
	if res.JobID != job.ID || res.ThreadID != job.ThreadID || res.SessionID != job.SessionID || res.Version != hermes.ResultVersion ||
		res.StartedAt.IsZero() || res.FinishedAt.Before(res.StartedAt) {
		t.Fatalf("result does not describe the job: %+v", res)
	}
	return res
}

func TestApplyCommitsOnThreadBranch(t *testing.T) {
	w := setup(t, "title")
	main := git(t, w.Dir, "rev-parse", "refs/remotes/origin/main")
	thread := hermes.NewToken()
	job := newJob(thread, "Change the title to Stamps")
	res := apply(t, w, job)
	if res.Type != hermes.ResultDone || !res.Success || res.Error != "" {
		t.Fatalf("result %+v", res)
	}
	if res.Branch != "thread-"+thread || git(t, w.Dir, "symbolic-ref", "--short", "HEAD") != res.Branch {
		t.Errorf("branch %q, HEAD %q", res.Branch, git(t, w.Dir, "symbolic-ref", "--short", "HEAD"))
	}
	if res.Summary != `Set the page title to "Stamps".` {
		t.Errorf("summary %q", res.Summary)
	}
	if !slices.Equal(res.FilesChanged, []string{"index.html"}) {
		t.Errorf("files changed %q", res.FilesChanged)
	}
	if head := git(t, w.Dir, "rev-parse", "HEAD"); res.Commit != head {
		t.Errorf("commit %q, HEAD %q", res.Commit, head)
	}
	if parent := git(t, w.Dir, "rev-parse", res.Commit+"^"); parent != main {
		t.Errorf("branch not created from main: parent %s, main %s", parent, main)
	}
	msg := git(t, w.Dir, "log", "-1", "--format=%an <%ae>%n%B", res.Commit)
	want := "Hermes <hermes@localhost>\nChange the title to Stamps\n\nJob: " + job.ID + "\n\n" + res.Summary
	if msg != want {
		t.Errorf("commit message\n%s\nwant\n%s", msg, want)
	}
	page, _ := os.ReadFile(filepath.Join(w.Dir, "index.html"))
	if !strings.Contains(string(page), "<title>Stamps</title>") {
		t.Errorf("index.html: %s", page)
	}

	// A follow-up builds on the previous commit.
	res2 := apply(t, w, newJob(thread, "Now call it Letters"))
	if !res2.Success || res2.Commit == "" || git(t, w.Dir, "rev-parse", res2.Commit+"^") != res.Commit {
		t.Errorf("follow-up %+v does not build on %s", res2, res.Commit)
	}
}

func TestSwitchingThreadsCommitsWIP(t *testing.T) {
	w := setup(t, "title")
	first, second := hermes.NewToken(), hermes.NewToken()
	res := apply(t, w, newJob(first, "Title First"))
	if err := os.WriteFile(filepath.Join(w.Dir, "draft.md"), []byte("unsaved\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := w.Checkout(t.Context(), second); err != nil {
		t.Fatal(err)
	}
	if head := git(t, w.Dir, "symbolic-ref", "--short", "HEAD"); head != "thread-"+second {
		t.Fatalf("HEAD %s", head)
	}
	if _, err := os.Stat(filepath.Join(w.Dir, "draft.md")); err == nil {
		t.Error("the draft leaked onto the other thread")
	}
	tip := "thread-" + first
	if got := git(t, w.Dir, "log", "-1", "--format=%s", tip); got != "WIP: checkpoint before switching to thread-"+second {
		t.Errorf("first thread's tip: %q", got)
	}
	if git(t, w.Dir, "rev-parse", tip+"^") != res.Commit || git(t, w.Dir, "show", tip+":draft.md") != "unsaved" {
		t.Error("the WIP commit does not hold the draft on top of the job's commit")
	}
	// Back on the first thread, the work continues from the checkpoint.
	res2 := apply(t, w, newJob(first, "Title Again"))
	if git(t, w.Dir, "rev-parse", res2.Commit+"^^") != res.Commit {
		t.Error("the first thread lost its checkpoint")
	}
}

func TestAgentFailureKeepsPartialWork(t *testing.T) {
	w := setup(t, "fail")
	res := apply(t, w, newJob(hermes.NewToken(), "Rebuild everything"))
	if res.Success || res.Type != hermes.ResultDone || !strings.Contains(res.Error, "status 3") ||
		!strings.Contains(res.Error, "boom: could not finish") || res.Summary != "started" {
		t.Fatalf("result %+v", res)
	}
	if res.Commit == "" || !slices.Equal(res.FilesChanged, []string{"partial.txt"}) {
		t.Fatalf("partial work not committed: %+v", res)
	}
	if s := git(t, w.Dir, "log", "-1", "--format=%s", res.Commit); s != "WIP: Rebuild everything" {
		t.Errorf("subject %q", s)
	}
}

func TestNoChange(t *testing.T) {
	w := setup(t, "noop")
	before := git(t, w.Dir, "rev-parse", "HEAD")
	res := apply(t, w, newJob(hermes.NewToken(), "Is the title fine?"))
	if !res.Success || res.Commit != "" || len(res.FilesChanged) != 0 || res.Summary != "Nothing to change." {
		t.Fatalf("result %+v", res)
	}
	if git(t, w.Dir, "rev-parse", "HEAD") != before {
		t.Error("a commit was made")
	}
}

func TestInstructionReachesAgentVerbatim(t *testing.T) {
	w := setup(t, "echo")
	instr := "$(rm -rf /); \"quotes\" `id` 'single' && echo hi | cat > /tmp/x\n--force -rf\n"
	job := newJob(hermes.NewToken(), instr)
	res := apply(t, w, job)
	if !res.Success {
		t.Fatalf("result %+v", res)
	}
	var got struct {
		Stdin string
		Env   map[string]string
		Args  []string
	}
	b, err := os.ReadFile(filepath.Join(w.Dir, "received.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Stdin != instr || got.Env["HERMES_INSTRUCTION"] != instr || !slices.Equal(got.Args, []string{"echo"}) {
		t.Errorf("the agent got stdin %q, env %q, args %q", got.Stdin, got.Env["HERMES_INSTRUCTION"], got.Args)
	}
	want := map[string]string{"HERMES_THREAD_ID": job.ThreadID, "HERMES_SESSION_ID": job.SessionID,
		"HERMES_CLIENT_ID": "amelia", "HERMES_PROJECT_ID": "site", "HERMES_USER_ID": "scott"}
	for k, v := range want {
		if got.Env[k] != v {
			t.Errorf("%s = %q, want %q", k, got.Env[k], v)
		}
	}
	for k := range got.Env {
		if !strings.HasPrefix(k, "HERMES_") && k != "PATH" && k != "HOME" && k != "LANG" {
			t.Errorf("the agent's environment has %s", k)
		}
	}
	if s := git(t, w.Dir, "log", "-1", "--format=%s", res.Commit); s != "$(rm -rf /); \"quotes\" `id` 'single' && echo hi | cat > /tmp/x" {
		t.Errorf("subject %q", s)
	}
}

func TestCancelKillsAgent(t *testing.T) {
	w := setup(t, "sleep")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type out struct {
		res *hermes.ResultMessage
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := w.Apply(ctx, newJob(hermes.NewToken(), "Take forever"))
		done <- out{res, err}
	}()
	var pid int
	for deadline := time.Now().Add(20 * time.Second); pid == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the agent did not start its child")
		}
		if b, err := os.ReadFile(filepath.Join(w.Dir, "child.pid")); err == nil && len(b) > 0 {
			pid, _ = strconv.Atoi(string(b))
		}
	}
	start := time.Now()
	cancel()
	var o out
	select {
	case o = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Apply did not return after cancel")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Apply took %v after cancel", took)
	}
	if o.err != nil {
		t.Fatal(o.err)
	}
	if o.res.Type != hermes.ResultInterrupted || !o.res.Interrupted || o.res.Success || o.res.Commit == "" {
		t.Fatalf("result %+v", o.res)
	}
	if s := git(t, w.Dir, "log", "-1", "--format=%s", o.res.Commit); s != "WIP: Take forever" {
		t.Errorf("subject %q", s)
	}
	for deadline := time.Now().Add(5 * time.Second); alive(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the agent's child %d survived", pid)
		}
	}
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}

func TestRejectedJobs(t *testing.T) {
	w := setup(t, "noop")
	bad := newJob("Not-A-Token", "x")
	if res := apply(t, w, bad); res.Type != hermes.ResultError || res.Success || res.Branch != "" {
		t.Errorf("invalid thread id: %+v", res)
	}
	if err := w.Checkout(t.Context(), "../../etc"); err == nil {
		t.Error("Checkout took an invalid thread id")
	}
	control := newJob(hermes.NewToken(), "")
	control.Type, control.Control = hermes.JobControl, "deactivate"
	if res := apply(t, w, control); res.Type != hermes.ResultError || !strings.Contains(res.Error, "control jobs") {
		t.Errorf("control job: %+v", res)
	}
	w.Project.Agent = hermes.Agent{Kind: "robot"}
	if res := apply(t, w, newJob(hermes.NewToken(), "x")); res.Type != hermes.ResultError || !strings.Contains(res.Error, "unknown agent kind") {
		t.Errorf("unknown agent: %+v", res)
	}
	w.Project.Agent = hermes.Agent{Kind: hermes.AgentClaude}
	w.ClaudeBin = filepath.Join(t.TempDir(), "no-such-claude")
	res := apply(t, w, newJob(hermes.NewToken(), "x"))
	if res.Type != hermes.ResultDone || res.Success || !strings.Contains(res.Error, "could not be run") {
		t.Errorf("missing claude: %+v", res)
	}
}
