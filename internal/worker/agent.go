package worker

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"unicode/utf8"

	"github.com/webordinary/hermes"
)

// Agent modes, in HERMES_MODE of a command agent.
const (
	modeEdit = "edit"
	modePlan = "plan"
)

// agentRun is what came of running the agent.
type agentRun struct {
	summary string // the agent's answer, trimmed and capped
	stderr  string // the tail of standard error, trimmed and capped
	err     error  // nil: the agent succeeded
}

// runAgent runs the project's agent on prompt in the checkout.
func (w *Workspace) runAgent(ctx context.Context, job *hermes.Job, prompt string, plan bool) agentRun {
	if w.Project.Agent.Kind == hermes.AgentClaude {
		return w.runClaude(ctx, job, prompt, plan)
	}
	mode := modeEdit
	if plan {
		mode = modePlan
	}
	env := append(agentEnv(job), "HERMES_INSTRUCTION="+strings.ReplaceAll(prompt, "\x00", ""), "HERMES_MODE="+mode)
	p := w.runProcess(ctx, w.Project.Agent.Command, env, prompt, false)
	run := agentRun{summary: capUTF8(strings.TrimSpace(p.stdout), MaxSummary), stderr: p.stderr, err: p.err}
	if p.err != nil {
		run.err = fmt.Errorf("the agent %w", p.err)
	}
	return run
}

// process is what came of running a program.
type process struct {
	stdout string // at most maxStdoutRead bytes
	stderr string // the last MaxErrorTail bytes, trimmed
	err    error  // nil: exit status 0; else "exited with status N" or why it did not run
}

// runProcess runs argv in the checkout without a shell: stdin as its
// standard input, env as its whole environment, in a process group of its
// own that gets SIGTERM when ctx ends and SIGKILL KillGrace later. With
// combined, standard output and error are kept together, in process.stderr.
func (w *Workspace) runProcess(ctx context.Context, argv, env []string, stdin string, combined bool) process {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = w.Dir
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	cmd.Env = env
	stdout := &capped{max: maxStdoutRead}
	stderr := &capped{max: MaxErrorTail, tail: true}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if combined {
		cmd.Stdout = stderr
	}
	killGroup := setProcessGroup(cmd)
	cmd.WaitDelay = orDefault(w.KillGrace, DefaultKillGrace)
	err := cmd.Run()
	if ctx.Err() != nil {
		killGroup() // whatever outlived the grace period
	}
	p := process{stdout: stdout.String(), stderr: strings.TrimSpace(stderr.String())}
	switch code := exitCode(err); {
	case err == nil:
	case ctx.Err() != nil:
		p.err = fmt.Errorf("was stopped: %w", context.Cause(ctx))
	case code >= 0:
		p.err = fmt.Errorf("exited with status %d", code)
	default:
		p.err = fmt.Errorf("could not be run: %w", err)
	}
	return p
}

// agentEnv is the base environment of the agent and the build: PATH, HOME
// and LANG of the worker and the job's HERMES_* ids. Nothing else of the
// worker's environment (which holds its secrets) is passed on.
func agentEnv(job *hermes.Job) []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	env := []string{"PATH=" + path}
	for _, k := range []string{"HOME", "LANG"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return append(env,
		"HERMES_JOB_ID="+job.ID,
		"HERMES_THREAD_ID="+job.ThreadID,
		"HERMES_SESSION_ID="+job.SessionID,
		"HERMES_CLIENT_ID="+job.ClientID,
		"HERMES_PROJECT_ID="+job.ProjectID,
		"HERMES_USER_ID="+job.UserID,
	)
}

// capped keeps the first (or, with tail, the last) max bytes written to it.
type capped struct {
	max       int
	tail      bool
	buf       []byte
	truncated bool
}

var _ io.Writer = (*capped)(nil)

func (c *capped) Write(p []byte) (int, error) {
	n := len(p)
	if !c.tail {
		if room := c.max - len(c.buf); room < len(p) {
			p, c.truncated = p[:max(room, 0)], true
		}
		c.buf = append(c.buf, p...)
		return n, nil
	}
	c.buf = append(c.buf, p...)
	if over := len(c.buf) - c.max; over > 0 {
		c.buf, c.truncated = append(c.buf[:0], c.buf[over:]...), true
	}
	return n, nil
}

func (c *capped) String() string {
	s := strings.ToValidUTF8(string(c.buf), "")
	if c.truncated && c.tail {
		return "…" + s
	}
	return s
}

// capUTF8 cuts s to at most n bytes on a rune boundary.
func capUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
