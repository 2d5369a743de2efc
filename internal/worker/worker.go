// Package worker is what an edit container does (SPEC §9, docs/jobs.md).
//
// Workspace is one clone of the project's repository and what is done with
// one job in it: switch to the thread's branch thread-{threadId}
// (checkpointing work in progress first), run the project's agent — the
// Claude Code CLI in print mode, resumed per thread, or a generic command —
// on the instruction without a shell, commit what it changed, run the
// project's build and publish the thread's preview, push when the project
// asks for it, and describe the outcome as a hermes.ResultMessage. Plan jobs
// run the agent in plan mode and change nothing; execute jobs carry out an
// approved plan.
//
// Loop is the queue loop on top of it: one job at a time from the
// container's input queue, a "started" notice and a result on the output
// queue for each, visibility extended and the container record heartbeated
// while a job runs, the input queue watched meanwhile so that a newer job
// interrupts the running one (busy policy "interrupt", SPEC §2.7) or waits
// behind it ("queue"), deactivation by a control job, exit when idle or on
// SIGTERM — never losing or repeating a job.
package worker

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/webordinary/hermes"
)

// DefaultKillGrace is how long a cancelled agent gets between SIGTERM and
// SIGKILL when Workspace.KillGrace is zero.
const DefaultKillGrace = 5 * time.Second

// Default limits of a Workspace.
const (
	DefaultBuildTimeout   = 10 * time.Minute
	DefaultPushTimeout    = 2 * time.Minute
	DefaultPublishTimeout = 5 * time.Minute
)

// Workspace is one clone of a project's repository.
type Workspace struct {
	Dir     string          // the checkout; created by Prepare
	Project *hermes.Project // RepoURL, DefaultBranch, Agent, Build and Push are used
	Git     string          // git binary; "git" when empty
	Log     *slog.Logger    // slog.Default() when nil
	// KillGrace is the time a cancelled agent's (or build's) process group
	// gets between SIGTERM and SIGKILL; DefaultKillGrace when zero.
	KillGrace time.Duration
	// ClaudeBin is the Claude Code CLI of the claude agent; "claude" (looked
	// up on PATH) when empty.
	ClaudeBin string
	// Publisher publishes the previews (an S3 bucket on AWS:
	// internal/s3site). When nil, previews are published into PreviewRoot.
	Publisher Publisher
	// PreviewRoot is where previews are published without a Publisher:
	// {PreviewRoot}/{clientId}/{projectId}/{threadId}/, served by Hermes at
	// /preview/{clientId}/{projectId}/{threadId}/ (a DirPublisher). Empty:
	// nothing is published.
	PreviewRoot string
	// PublicURL is the base of the preview links Hermes serves itself
	// (HERMES_PUBLIC_URL); see hermes.PreviewURL.
	PublicURL string
	// GitToken, when set, authenticates git's clone, fetch and push to an
	// http(s) repository with HTTP Basic as GitUsername
	// (DefaultGitUsername when empty): in the git process's environment
	// only, never in its arguments, the remote's URL, the agent's or the
	// build's environment, a log or a result (see gitAuthEnv).
	GitToken    string
	GitUsername string
	// BuildTimeout bounds the project's build command; DefaultBuildTimeout
	// when zero.
	BuildTimeout time.Duration
	// PushTimeout bounds git push; DefaultPushTimeout when zero.
	PushTimeout time.Duration
	// PublishTimeout bounds the publication of a preview (an S3 sync);
	// DefaultPublishTimeout when zero.
	PublishTimeout time.Duration

	noLink sync.Once // the warning that previews have no link
}

// DefaultGitUsername is the user name of a GitToken's HTTP Basic
// authentication: GitHub's for tokens (x-access-token); GitLab takes any
// name with a token, Bitbucket wants x-token-auth.
const DefaultGitUsername = "x-access-token"

// Commit identity: -c options, so no global git configuration is needed.
var identity = []string{"-c", "user.name=Hermes", "-c", "user.email=hermes@localhost", "-c", "commit.gpgsign=false"}

// BranchName is the git branch of a thread.
func BranchName(threadID string) string { return "thread-" + threadID }

func (w *Workspace) log() *slog.Logger {
	if w.Log != nil {
		return w.Log
	}
	return slog.Default()
}

func (w *Workspace) gitBin() string {
	if w.Git != "" {
		return w.Git
	}
	return "git"
}

func (w *Workspace) defaultBranch() string {
	if w.Project != nil && w.Project.DefaultBranch != "" {
		return w.Project.DefaultBranch
	}
	return "main"
}

// gitErr is a failed git command: its arguments and standard error, the
// secrets to keep out of its message, and a hint on what to do.
type gitErr struct {
	args   []string
	stderr string
	err    error
	hide   []string
	hint   string
}

func (e *gitErr) Error() string {
	msg := strings.TrimSpace(e.stderr)
	if msg == "" {
		msg = e.err.Error()
	}
	msg = fmt.Sprintf("git %s: %s", strings.Join(e.args, " "), msg)
	if e.hint != "" {
		msg += " (" + e.hint + ")"
	}
	msg = redact(msg)
	for _, h := range e.hide {
		msg = strings.ReplaceAll(msg, h, "***")
	}
	return msg
}

// urlCredentials matches the user information of a URL
// (https://user:token@host/…).
var urlCredentials = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@`) })

// redact removes the credentials a repository URL may carry from a
// message, so that they never reach a log or a result.
func redact(s string) string { return urlCredentials().ReplaceAllString(s, "${1}***@") }

func (e *gitErr) Unwrap() error { return e.err }

// run runs git in dir with stdin and returns its standard output.
func (w *Workspace) run(ctx context.Context, dir, stdin string, args ...string) (string, error) {
	out, err := w.runEnv(ctx, dir, stdin, nil, args...)
	if err != nil {
		return out, err
	}
	return out, nil
}

// runEnv is run with env added to git's environment.
func (w *Workspace) runEnv(ctx context.Context, dir, stdin string, env []string, args ...string) (string, *gitErr) {
	cmd := exec.CommandContext(ctx, w.gitBin(), args...)
	cmd.Dir = dir
	cmd.Env = append(append(gitEnviron(), "GIT_TERMINAL_PROMPT=0", "LC_ALL=C"), env...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), &gitErr{args: args, stderr: errb.String(), err: err, hide: w.secrets()}
	}
	return out.String(), nil
}

// gitTokenVar holds the git token in the worker's environment; git
// children never get it (hooks run with their environment).
const gitTokenVar = "HERMES_GIT_TOKEN"

// gitEnviron is the worker's environment for git, without the token.
func gitEnviron() []string {
	env := os.Environ()
	return slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, gitTokenVar+"=") })
}

// remote runs a git command that talks to the origin (clone, fetch,
// push). With a GitToken and an http(s) repository, git authenticates
// with it through its environment (gitAuthEnv); a refusal gets a hint.
func (w *Workspace) remote(ctx context.Context, dir string, args ...string) (string, error) {
	env := w.gitAuthEnv()
	out, err := w.runEnv(ctx, dir, "", env, args...)
	if err == nil {
		return out, nil
	}
	if credentialsRefused(err.stderr) {
		switch {
		case env != nil:
			err.hint = fmt.Sprintf("the repository refused the git token (HERMES_GIT_TOKEN, as user %q)", w.gitUsername())
		case w.GitToken != "":
			err.hint = "the repository asks for credentials, and the git token is only sent to http(s) repositories"
		default:
			err.hint = "the repository asks for credentials: set HERMES_GIT_TOKEN"
		}
	}
	return out, err
}

// credentialsRefused reports whether git's standard error says that the
// repository wanted credentials it did not get or refused those it got.
func credentialsRefused(stderr string) bool {
	for _, s := range []string{"could not read Username", "could not read Password", "Authentication failed",
		"The requested URL returned error: 401", "The requested URL returned error: 403"} {
		if strings.Contains(stderr, s) {
			return true
		}
	}
	return false
}

func (w *Workspace) gitUsername() string {
	if w.GitUsername != "" {
		return w.GitUsername
	}
	return DefaultGitUsername
}

// basicAuth is the Authorization header value of the GitToken.
func (w *Workspace) basicAuth() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(w.gitUsername()+":"+w.GitToken))
}

// secrets are the strings that must never show in an error: the token
// and its header value.
func (w *Workspace) secrets() []string {
	if w.GitToken == "" {
		return nil
	}
	return []string{w.basicAuth(), strings.TrimPrefix(w.basicAuth(), "Basic "), w.GitToken}
}

// gitAuthEnv is the environment that makes git send the GitToken to the
// repository's origin, or nil without a token or an http(s) repository.
//
// Git reads configuration from GIT_CONFIG_COUNT, GIT_CONFIG_KEY_n and
// GIT_CONFIG_VALUE_n (after any the worker's own environment sets), so the
// token is in no argument (visible in ps) and in no file: it sets
// http.{scheme}://{host}/.extraHeader to "Authorization: Basic …", which
// git sends to that origin only — not to another host the remote's URL
// may be changed to in the checkout's configuration. Hooks are off
// (core.hooksPath=/dev/null) for these commands: a hook is a program
// anyone who writes to the checkout (the agent) controls, and it would
// inherit the environment.
func (w *Workspace) gitAuthEnv() []string {
	if w.GitToken == "" || w.Project == nil {
		return nil
	}
	origin, ok := httpOrigin(w.Project.RepoURL)
	if !ok {
		return nil
	}
	n := 0
	if c, err := strconv.Atoi(os.Getenv("GIT_CONFIG_COUNT")); err == nil && c > 0 {
		n = c
	}
	return []string{
		fmt.Sprintf("GIT_CONFIG_COUNT=%d", n+2),
		fmt.Sprintf("GIT_CONFIG_KEY_%d=http.%s.extraHeader", n, origin),
		fmt.Sprintf("GIT_CONFIG_VALUE_%d=Authorization: %s", n, w.basicAuth()),
		fmt.Sprintf("GIT_CONFIG_KEY_%d=core.hooksPath", n+1),
		fmt.Sprintf("GIT_CONFIG_VALUE_%d=/dev/null", n+1),
	}
}

// httpOrigin is the scheme://host[:port]/ of an http(s) repository URL,
// without any user information.
func httpOrigin(repoURL string) (string, bool) {
	u, err := url.Parse(repoURL)
	if err != nil || u.Host == "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", false
	}
	return scheme + "://" + strings.ToLower(u.Host) + "/", true
}

func (w *Workspace) git(ctx context.Context, args ...string) (string, error) {
	return w.run(ctx, w.Dir, "", args...)
}

// exitCode is the exit status of a failed command, or -1.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// Prepare clones the repository into Dir when it is absent or empty, or
// fetches from origin when Dir already is a clone.
func (w *Workspace) Prepare(ctx context.Context) error {
	if w.Dir == "" || w.Project == nil || w.Project.RepoURL == "" {
		return errors.New("worker: prepare: the workspace needs a directory and a project with a repository URL")
	}
	if err := w.checkDefaultBranch(ctx); err != nil {
		return err
	}
	if _, ok := httpOrigin(w.Project.RepoURL); w.GitToken != "" && !ok {
		w.log().WarnContext(ctx, "the git token is not used: the repository URL is not http(s)")
	}
	dir, err := filepath.Abs(w.Dir)
	if err != nil {
		return fmt.Errorf("worker: prepare: %w", err)
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist) || err == nil && len(entries) == 0:
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return fmt.Errorf("worker: prepare: %w", err)
		}
		w.log().InfoContext(ctx, "cloning the repository", "dir", dir)
		if _, err := w.remote(ctx, "", "clone", "--quiet", "--no-checkout", "--", w.Project.RepoURL, dir); err != nil {
			return fmt.Errorf("worker: cloning the repository of project %s: %w", w.Project.ID, err)
		}
		// Check out the default branch explicitly, whatever the origin's HEAD is.
		if _, err := w.git(ctx, "checkout", "-q", "-B", w.defaultBranch(), "refs/remotes/origin/"+w.defaultBranch(), "--"); err != nil {
			return fmt.Errorf("worker: checking out the default branch %q: %w", w.defaultBranch(), err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("worker: prepare: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".git")); err != nil {
		return fmt.Errorf("worker: prepare: %s is neither empty nor a git checkout", dir)
	}
	if _, err := w.remote(ctx, dir, "fetch", "--quiet", "--prune", "origin"); err != nil {
		return fmt.Errorf("worker: fetching the repository of project %s: %w", w.Project.ID, err)
	}
	return nil
}

// checkDefaultBranch refuses a default branch that is not a plain branch name.
func (w *Workspace) checkDefaultBranch(ctx context.Context) error {
	b := w.defaultBranch()
	if strings.HasPrefix(b, "-") {
		return fmt.Errorf("worker: invalid default branch %q", b)
	}
	if _, err := w.run(ctx, "", "", "check-ref-format", "refs/heads/"+b); err != nil {
		return fmt.Errorf("worker: invalid default branch %q", b)
	}
	return nil
}

// Checkout switches to the thread's branch thread-{threadID}: the local
// branch if it exists, else the origin's (pushed by an earlier container),
// else a new one from the origin's default branch. Uncommitted work on the
// current branch is committed first ("WIP: checkpoint before switching to
// thread-…"), so nothing is lost.
func (w *Workspace) Checkout(ctx context.Context, threadID string) error {
	if !hermes.ValidTokenID(threadID) {
		return fmt.Errorf("worker: invalid thread id %q", threadID)
	}
	branch := BranchName(threadID)
	cur, err := w.git(ctx, "symbolic-ref", "--quiet", "--short", "HEAD")
	if err != nil && exitCode(err) != 1 { // 1: detached HEAD
		return fmt.Errorf("worker: reading the current branch: %w", err)
	}
	cur = strings.TrimSpace(cur)
	msg := "WIP: checkpoint before switching to " + branch
	if cur == branch {
		msg = "WIP: checkpoint of unfinished work on " + branch
	}
	hash, _, err := w.commitAll(ctx, msg+"\n")
	if err != nil {
		return fmt.Errorf("worker: checkpointing work in progress on %q: %w", cur, err)
	}
	if hash != "" {
		w.log().InfoContext(ctx, "checkpointed work in progress", "branch", cur, "commit", hash)
	}
	if cur == branch {
		return nil
	}
	switch {
	case w.refExists(ctx, "refs/heads/"+branch):
		_, err = w.git(ctx, "checkout", "-q", branch, "--")
	case w.refExists(ctx, "refs/remotes/origin/"+branch):
		_, err = w.git(ctx, "checkout", "-q", "--no-track", "-b", branch, "refs/remotes/origin/"+branch, "--")
	default:
		if err := w.checkDefaultBranch(ctx); err != nil {
			return err
		}
		_, err = w.git(ctx, "checkout", "-q", "--no-track", "-b", branch, "refs/remotes/origin/"+w.defaultBranch(), "--")
	}
	if err != nil {
		return fmt.Errorf("worker: switching to %s: %w", branch, err)
	}
	return nil
}

func (w *Workspace) refExists(ctx context.Context, ref string) bool {
	_, err := w.git(ctx, "rev-parse", "--verify", "--quiet", ref+"^{commit}")
	return err == nil
}

// commitAll commits every change in the checkout (git add -A) with msg and
// returns the commit and the files it changed; no change, no commit.
func (w *Workspace) commitAll(ctx context.Context, msg string) (string, []string, error) {
	if _, err := w.git(ctx, "add", "-A"); err != nil {
		return "", nil, err
	}
	if _, err := w.git(ctx, "diff", "--cached", "--quiet"); err == nil {
		return "", nil, nil
	} else if exitCode(err) != 1 {
		return "", nil, err
	}
	args := append(append([]string{}, identity...), "commit", "--quiet", "--no-verify", "-F", "-")
	if _, err := w.run(ctx, w.Dir, msg, args...); err != nil {
		return "", nil, err
	}
	hash, err := w.git(ctx, "rev-parse", "--verify", "HEAD")
	if err != nil {
		return "", nil, err
	}
	names, err := w.git(ctx, "diff-tree", "-r", "--root", "--no-commit-id", "--name-only", "-z", "HEAD")
	if err != nil {
		return "", nil, err
	}
	var files []string
	for _, f := range strings.Split(names, "\x00") {
		if f != "" {
			files = append(files, f)
		}
	}
	return strings.TrimSpace(hash), files, nil
}

// discard throws away every change in the checkout since HEAD: tracked
// files are reset and untracked ones removed (ignored files are kept).
func (w *Workspace) discard(ctx context.Context) error {
	if _, err := w.git(ctx, "reset", "--hard", "--quiet", "HEAD"); err != nil {
		return err
	}
	_, err := w.git(ctx, "clean", "-f", "-d", "--quiet")
	return err
}

// push pushes the thread's branch to origin (no force: a branch that moved
// on in the origin is rejected).
func (w *Workspace) push(ctx context.Context, branch string) error {
	_, err := w.remote(ctx, w.Dir, "push", "--quiet", "origin", "refs/heads/"+branch+":refs/heads/"+branch)
	return err
}

// Checkpoint commits every change in the checkout on the current branch
// with msg, and pushes the branch when the project pushes. It returns the
// commit, or "" when there was nothing to commit. Git runs to its end even
// when ctx is cancelled.
func (w *Workspace) Checkpoint(ctx context.Context, msg string) (string, error) {
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), gitTimeout)
	defer cancel()
	hash, _, err := w.commitAll(gctx, msg+"\n")
	if err != nil {
		return "", fmt.Errorf("worker: checkpoint: %w", err)
	}
	if hash != "" && w.Project != nil && w.Project.Push {
		if cur, err := w.git(gctx, "symbolic-ref", "--quiet", "--short", "HEAD"); err == nil && strings.HasPrefix(strings.TrimSpace(cur), "thread-") {
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(orDefault(w.PushTimeout, DefaultPushTimeout), 20*time.Second))
			defer cancel()
			if err := w.push(pctx, strings.TrimSpace(cur)); err != nil {
				w.log().ErrorContext(ctx, "pushing the checkpoint", "err", err)
			}
		}
	}
	return hash, nil
}
