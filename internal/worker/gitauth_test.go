package worker_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/worker"
)

// gitServer is a git smart-HTTP server: git http-backend through CGI over
// the bare repositories in its root, behind HTTP Basic authentication
// when user is set. It records the Authorization headers it got.
type gitServer struct {
	*httptest.Server
	root string

	mu    sync.Mutex
	auths []string // the Authorization header of every request ("" for none)
}

func newGitServer(t *testing.T, user, password string) *gitServer {
	t.Helper()
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	s := &gitServer{root: t.TempDir()}
	backend := &cgi.Handler{Path: gitPath, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + s.root, "GIT_HTTP_EXPORT_ALL=1"}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.auths = append(s.auths, r.Header.Get("Authorization"))
		s.mu.Unlock()
		if user != "" {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// repo makes the bare repository name.git (main with index.html) that
// accepts pushes, and returns its URL.
func (s *gitServer) repo(t *testing.T, name string) string {
	t.Helper()
	src := t.TempDir()
	git(t, src, "init", "-q", "-b", "main")
	if err := os.WriteFile(filepath.Join(src, "index.html"), []byte("<html><head><title>Old</title></head></html>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, src, "add", "-A")
	git(t, src, "commit", "-q", "-m", "Initial site")
	bare := filepath.Join(s.root, name+".git")
	git(t, "", "clone", "-q", "--bare", src, bare)
	git(t, bare, "config", "http.receivepack", "true")
	return s.URL + "/" + name + ".git"
}

func (s *gitServer) authorizations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.auths...)
}

// gitWrapper writes a git that records its arguments (what /proc/PID/cmdline
// shows), one command a line, in the returned log, and runs the real git.
func gitWrapper(t *testing.T) (string, string) {
	t.Helper()
	real, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "argv.log")
	script := fmt.Sprintf("#!/bin/sh\nprintf '%%s ' \"$@\" >> '%s'\necho >> '%s'\nexec '%s' \"$@\"\n", log, log, real)
	bin := filepath.Join(dir, "git")
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, log
}

// TestGitToken: with HERMES_GIT_TOKEN the worker clones, fetches and
// pushes an http(s) repository that wants Basic credentials; the token is
// in no argument, no remote configuration, no log, no result, and not in
// the environment of the agent or of a hook.
func TestGitToken(t *testing.T) {
	const user = "x-access-token"
	token := "ghs_" + hermes.NewToken()
	t.Setenv("HERMES_GIT_TOKEN", token) // the worker's environment has it, as in production
	srv := newGitServer(t, user, token)
	repoURL := srv.repo(t, "site")
	gitBin, argvLog := gitWrapper(t)
	var logs bytes.Buffer
	w := &worker.Workspace{
		Dir: filepath.Join(t.TempDir(), "ws"), Git: gitBin, GitToken: token,
		Project: &hermes.Project{ClientID: "amelia", ID: "site", RepoURL: repoURL, DefaultBranch: "main", Push: true,
			Agent: hermes.Agent{Kind: hermes.AgentCommand, Command: []string{agentBin, "echo"}}},
		Log:       slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		KillGrace: 300 * time.Millisecond,
	}
	if err := w.Prepare(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := w.Prepare(t.Context()); err != nil { // a fetch
		t.Fatal(err)
	}
	if got := git(t, w.Dir, "remote", "get-url", "origin"); got != repoURL {
		t.Errorf("origin is %q, want %q", got, repoURL)
	}
	// An agent could leave a hook in the checkout: it must not run with
	// the credentials.
	hookOut := filepath.Join(t.TempDir(), "hook-env")
	hook := fmt.Sprintf("#!/bin/sh\nenv > '%s'\n", hookOut)
	if err := os.WriteFile(filepath.Join(w.Dir, ".git", "hooks", "pre-push"), []byte(hook), 0o755); err != nil {
		t.Fatal(err)
	}

	thread := hermes.NewToken()
	res := apply(t, w, newJob(thread, "Echo the environment"))
	if !res.Success || res.Error != "" || res.Commit == "" {
		t.Fatalf("result %+v", res)
	}
	bare := filepath.Join(srv.root, "site.git")
	if got := git(t, bare, "rev-parse", "refs/heads/thread-"+thread); got != res.Commit {
		t.Errorf("the server's thread-%s is %s, want %s", thread, got, res.Commit)
	}
	if _, err := os.Stat(hookOut); err == nil {
		t.Error("the pre-push hook ran with the credentials")
	}
	sent := 0
	for _, a := range srv.authorizations() {
		if a != "" {
			sent++
		}
	}
	if sent == 0 {
		t.Error("the server never got credentials")
	}

	basic := strings.TrimPrefix(basicAuth(user, token), "Basic ")
	resJSON, _ := json.Marshal(res)
	agentEnv, _ := os.ReadFile(filepath.Join(w.Dir, "received.json"))
	config, _ := os.ReadFile(filepath.Join(w.Dir, ".git", "config"))
	argv, err := os.ReadFile(argvLog)
	if err != nil || !strings.Contains(string(argv), "push --quiet origin") || !strings.Contains(string(argv), "clone --quiet") {
		t.Fatalf("the wrapper recorded %q, %v", argv, err)
	}
	for what, text := range map[string]string{"the result": string(resJSON), "the logs": logs.String(), "git's arguments": string(argv),
		"the agent's environment": string(agentEnv), "the checkout's git configuration": string(config)} {
		if strings.Contains(text, token) || strings.Contains(text, basic) {
			t.Errorf("the token shows in %s:\n%s", what, text)
		}
	}
	if !strings.Contains(string(agentEnv), "HERMES_THREAD_ID") {
		t.Errorf("the agent's environment was not recorded: %s", agentEnv)
	}

	// A wrong token: a clear error, without the token.
	wrong := "ghs_" + hermes.NewToken()
	w.GitToken = wrong
	res = apply(t, w, newJob(thread, "Echo again"))
	if !res.Success || !strings.Contains(res.Error, "pushing thread-"+thread) || !strings.Contains(res.Error, "refused the git token") {
		t.Errorf("a wrong token: %+v", res)
	}
	t.Logf("a wrong token: %s", res.Error)
	fresh := &worker.Workspace{Dir: filepath.Join(t.TempDir(), "ws"), Project: w.Project, GitToken: wrong, Log: w.Log}
	err = fresh.Prepare(t.Context())
	if err == nil || !strings.Contains(err.Error(), "refused the git token") {
		t.Errorf("a clone with a wrong token: %v", err)
	}
	t.Logf("a clone with a wrong token: %v", err)
	// No token at all: git is told not to prompt, and the error says what to set.
	w.GitToken = ""
	res = apply(t, w, newJob(thread, "Echo once more"))
	if !strings.Contains(res.Error, "set HERMES_GIT_TOKEN") {
		t.Errorf("no token: %+v", res)
	}
	resJSON, _ = json.Marshal(res)
	for _, text := range []string{string(resJSON), logs.String(), fmt.Sprint(err)} {
		for _, secret := range []string{token, basic, wrong, strings.TrimPrefix(basicAuth(user, wrong), "Basic ")} {
			if strings.Contains(text, secret) {
				t.Errorf("a secret shows in %s", text)
			}
		}
	}
}

// TestGitTokenScope: the token goes to the repository's origin only, not
// to another host (here: port) that the checkout's remote is pointed at,
// and never to a repository that is not http(s).
func TestGitTokenScope(t *testing.T) {
	token := "ghs_" + hermes.NewToken()
	srv := newGitServer(t, "hermes", token)
	other := newGitServer(t, "", "")
	otherURL := other.repo(t, "site")
	w := &worker.Workspace{
		Dir: filepath.Join(t.TempDir(), "ws"), GitToken: token, GitUsername: "hermes",
		Project: &hermes.Project{ClientID: "amelia", ID: "site", RepoURL: srv.repo(t, "site"), DefaultBranch: "main", Push: true,
			Agent: hermes.Agent{Kind: hermes.AgentCommand, Command: []string{agentBin, "title"}}},
		KillGrace: 300 * time.Millisecond,
	}
	if err := w.Prepare(t.Context()); err != nil {
		t.Fatal(err)
	}
	git(t, w.Dir, "remote", "set-url", "origin", otherURL)
	thread := hermes.NewToken()
	res := apply(t, w, newJob(thread, "Change the title to Stamps"))
	if !res.Success || res.Error != "" {
		t.Fatalf("result %+v", res)
	}
	if got := git(t, filepath.Join(other.root, "site.git"), "rev-parse", "refs/heads/thread-"+thread); got != res.Commit {
		t.Errorf("not pushed to the other server: %s", got)
	}
	for _, a := range other.authorizations() {
		if a != "" {
			t.Errorf("the other host got Authorization %q", a)
		}
	}

	// A local repository: the token is not used (and nothing breaks).
	// Hooks run as usual then, and never get the token from the worker's
	// environment.
	t.Setenv("HERMES_GIT_TOKEN", token)
	local := setup(t, "title")
	local.GitToken = token
	local.Project.Push = true
	bare := filepath.Join(t.TempDir(), "origin.git")
	git(t, "", "clone", "-q", "--bare", local.Project.RepoURL, bare)
	local.Project.RepoURL = bare
	git(t, local.Dir, "remote", "set-url", "origin", bare)
	if err := local.Prepare(t.Context()); err != nil {
		t.Fatal(err)
	}
	hookOut := filepath.Join(t.TempDir(), "hook-env")
	hook := fmt.Sprintf("#!/bin/sh\nenv > '%s'\n", hookOut)
	if err := os.WriteFile(filepath.Join(local.Dir, ".git", "hooks", "pre-push"), []byte(hook), 0o755); err != nil {
		t.Fatal(err)
	}
	if res := apply(t, local, newJob(hermes.NewToken(), "Change the title to Letters")); !res.Success || res.Error != "" {
		t.Errorf("local push: %+v", res)
	}
	env, err := os.ReadFile(hookOut)
	if err != nil || !strings.Contains(string(env), "GIT_TERMINAL_PROMPT=0") || strings.Contains(string(env), token) {
		t.Errorf("the hook's environment (%v):\n%s", err, env)
	}
}

func basicAuth(user, password string) string {
	r, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	r.SetBasicAuth(user, password)
	return r.Header.Get("Authorization")
}
