package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/webordinary/hermes"
)

// Limits of what a result carries.
const (
	MaxSummary    = 4 << 10 // bytes of the agent's standard output kept as the summary
	MaxErrorTail  = 2 << 10 // bytes of the agent's standard error kept in a failure
	maxSubject    = 72      // runes of a commit subject
	maxStdoutRead = 64 << 10
)

// checkpointTimeout bounds the WIP commit made after the job's context ended.
const checkpointTimeout = 30 * time.Second

// Apply runs the job's instruction with the project's command agent on the
// thread's branch and commits every change, and returns the result to report.
//
// The result's type is hermes.ResultDone when the agent ran (Success says
// whether it exited 0; on failure the partial changes are committed as
// "WIP: …"), hermes.ResultInterrupted when ctx was cancelled (the agent's
// process group is killed and its partial work committed as "WIP: …"), and
// hermes.ResultError when the job cannot be applied at all (invalid ids, an
// unsupported agent or job type). A non-nil error, with a nil result, means
// the workspace itself failed (git): the job may succeed when retried.
func (w *Workspace) Apply(ctx context.Context, job *hermes.Job) (*hermes.ResultMessage, error) {
	if job == nil {
		return nil, errors.New("worker: apply: nil job")
	}
	res := &hermes.ResultMessage{
		Version: hermes.ResultVersion, Type: hermes.ResultDone,
		SessionID: job.SessionID, ThreadID: job.ThreadID, Reply: job.Reply,
		StartedAt: time.Now().UTC(),
		Result:    hermes.Result{JobID: job.ID},
	}
	text, problem := w.check(job)
	if problem != "" {
		return failed(res, problem), nil
	}
	branch := BranchName(job.ThreadID)
	res.Branch = branch
	if err := w.Checkout(ctx, job.ThreadID); err != nil {
		return nil, err
	}
	log := w.log().With("job", job.ID, "thread", job.ThreadID, "branch", branch)
	log.InfoContext(ctx, "running the agent")
	run := w.runAgent(ctx, job, text)
	res.Summary = run.summary

	subject := subjectOf(text)
	body := "Job: " + job.ID
	if run.summary != "" {
		body += "\n\n" + run.summary
	}
	gctx := ctx
	if ctx.Err() != nil {
		// Checkpoint even though the job's context has ended.
		c, cancel := context.WithTimeout(context.WithoutCancel(ctx), checkpointTimeout)
		defer cancel()
		gctx = c
	}
	switch {
	case run.err == nil:
		res.Success = true
	case ctx.Err() != nil:
		subject = "WIP: " + subject
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			res.Error = "the agent did not finish in time; its partial work was kept"
		} else {
			res.Type, res.Interrupted = hermes.ResultInterrupted, true
			res.Error = "stopped before finishing; the partial work was kept"
		}
		body += "\n\n" + res.Error
	default:
		subject = "WIP: " + subject
		res.Error = run.err.Error()
		if run.stderr != "" {
			res.Error += ": " + run.stderr
		}
		body += "\n\nThe agent failed: " + res.Error
	}
	hash, files, err := w.commitAll(gctx, subject+"\n\n"+body+"\n")
	if err != nil {
		return nil, fmt.Errorf("worker: committing the changes of job %s: %w", job.ID, err)
	}
	res.Commit, res.FilesChanged = hash, files
	res.FinishedAt = time.Now().UTC()
	log.InfoContext(ctx, "job finished", "success", res.Success, "type", res.Type, "commit", hash, "files", len(files))
	return res, nil
}

// check validates the job and the project's agent, and returns the text for
// the agent or why the job cannot be applied.
func (w *Workspace) check(job *hermes.Job) (string, string) {
	switch {
	case job.Version != hermes.JobVersion:
		return "", fmt.Sprintf("unsupported job version %d", job.Version)
	case !hermes.ValidTokenID(job.ID):
		return "", "invalid job id"
	case !hermes.ValidTokenID(job.ThreadID):
		return "", "invalid thread id"
	case job.Branch != "" && job.Branch != BranchName(job.ThreadID):
		return "", fmt.Sprintf("the job's branch is not %s", BranchName(job.ThreadID))
	case w.Project == nil:
		return "", "no project for this workspace"
	}
	text := job.Instruction
	switch job.Type {
	case hermes.JobInstruction:
	case hermes.JobExecute:
		if text == "" {
			text = job.Plan
		}
	default:
		return "", fmt.Sprintf("job type %q is not supported yet by this worker", job.Type)
	}
	if strings.TrimSpace(text) == "" {
		return "", "the job has no instruction"
	}
	switch a := w.Project.Agent; a.Kind {
	case hermes.AgentCommand:
		if len(a.Command) == 0 || a.Command[0] == "" {
			return "", "the project's command agent has no command"
		}
	case hermes.AgentClaude:
		return "", "the claude agent is not supported yet by this worker"
	default:
		return "", fmt.Sprintf("unknown agent kind %q", a.Kind)
	}
	return text, ""
}

func failed(res *hermes.ResultMessage, msg string) *hermes.ResultMessage {
	res.Type, res.Success, res.Error = hermes.ResultError, false, msg
	res.FinishedAt = time.Now().UTC()
	return res
}

// subjectOf is the commit subject for an instruction: its first non-empty
// line without control characters, at most 72 runes.
func subjectOf(text string) string {
	line := ""
	for l := range strings.SplitSeq(text, "\n") {
		if line = strings.TrimSpace(l); line != "" {
			break
		}
	}
	line = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, line)
	if utf8.RuneCountInString(line) > maxSubject {
		line = strings.TrimSpace(string([]rune(line)[:maxSubject]))
	}
	if line == "" {
		return "Apply instruction"
	}
	return line
}

// agentRun is what came of running the agent.
type agentRun struct {
	summary string // standard output, trimmed and capped
	stderr  string // the tail of standard error, trimmed and capped
	err     error  // nil: exit status 0
}

// runAgent runs the command agent in the checkout: argv without a shell,
// the instruction on stdin and in HERMES_INSTRUCTION, a minimal environment,
// its own process group, killed (TERM, then KILL after KillGrace) when ctx ends.
func (w *Workspace) runAgent(ctx context.Context, job *hermes.Job, text string) agentRun {
	argv := w.Project.Agent.Command
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = w.Dir
	cmd.Stdin = strings.NewReader(text)
	cmd.Env = agentEnv(job, text)
	stdout := &capped{max: maxStdoutRead}
	stderr := &capped{max: MaxErrorTail, tail: true}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	grace := w.KillGrace
	if grace <= 0 {
		grace = DefaultKillGrace
	}
	killGroup := setProcessGroup(cmd)
	cmd.WaitDelay = grace
	err := cmd.Run()
	if ctx.Err() != nil {
		killGroup() // whatever outlived the grace period
	}
	run := agentRun{summary: capUTF8(strings.TrimSpace(stdout.String()), MaxSummary), stderr: strings.TrimSpace(stderr.String())}
	if err != nil {
		if code := exitCode(err); code >= 0 && ctx.Err() == nil {
			run.err = fmt.Errorf("the agent exited with status %d", code)
		} else {
			run.err = fmt.Errorf("running the agent: %w", err)
		}
	}
	return run
}

// agentEnv is the agent's environment: PATH, HOME and LANG of the worker
// and the job's HERMES_* variables.
func agentEnv(job *hermes.Job, text string) []string {
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
		"HERMES_INSTRUCTION="+strings.ReplaceAll(text, "\x00", ""),
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
