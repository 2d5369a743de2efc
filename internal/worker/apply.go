package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/webordinary/hermes"
)

// Limits of what a result carries.
const (
	MaxSummary    = 4 << 10 // bytes of the agent's output kept as the summary
	MaxErrorTail  = 2 << 10 // bytes of the agent's (or build's) standard error kept in a failure
	maxSubject    = 72      // runes of a commit subject
	maxStdoutRead = 1 << 20
)

// gitTimeout bounds the git work of a job (checkout, commit, reset). Git
// runs on a context that a cancelled job does not cancel: a git command
// killed half way could leave the checkout locked.
const gitTimeout = 2 * time.Minute

// ErrInterrupted is the cause (context.Cause) with which the Loop cancels
// a running job when a newer job interrupts it. Apply then reports a
// hermes.ResultInterrupted result.
var ErrInterrupted = errors.New("worker: interrupted by a newer job")

// Notes of interrupted results.
const (
	noteInterrupted      = "Interrupted by a newer instruction before finishing. The partial work is saved as a checkpoint commit on the thread's branch, and the newer instruction runs on top of it."
	noteInterruptedBuild = "Interrupted by a newer instruction while building the preview. The change itself is committed; the preview is rebuilt after the newer instruction."
	noteInterruptedPlan  = "Interrupted by a newer instruction before the plan was ready. Nothing was changed."
)

// Apply runs the job with the project's agent on the thread's branch and
// returns the result to report.
//
// An instruction job runs the agent, commits every change ("WIP: …" when
// the agent failed or was stopped), then — when the agent succeeded — runs
// the project's build and publishes the preview, and pushes the branch when
// the project says so. An execute job does the same with the approved plan
// (job.Plan) in the agent's prompt. A plan job runs the agent in plan mode
// and then discards whatever changed: its result (hermes.ResultPlan) has the
// plan as summary and no commit.
//
// The result's type is hermes.ResultDone when the agent ran (Success says
// whether the change was applied, built and published), hermes.ResultPlan
// for a plan, hermes.ResultInterrupted when ctx was cancelled with the
// cause ErrInterrupted or by its parent (the agent's process group is
// stopped and its partial work committed), and hermes.ResultError when the
// job cannot be applied at all (invalid ids, an unsupported agent or job
// type, a failed plan). A non-nil error, with a nil result, means the
// workspace itself failed (git): the job may succeed when retried.
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
	prompt, problem := w.check(job)
	if problem != "" {
		return failed(res, problem), nil
	}
	branch := BranchName(job.ThreadID)
	res.Branch = branch
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), gitTimeout)
	defer cancel()
	if err := w.Checkout(gctx, job.ThreadID); err != nil {
		return nil, err
	}
	log := w.log().With("job", job.ID, "type", job.Type, "thread", job.ThreadID, "branch", branch)
	plan := job.Type == hermes.JobPlan
	log.InfoContext(ctx, "running the agent", "agent", w.Project.Agent.Kind, "plan", plan)
	run := w.runAgent(ctx, job, prompt, plan)
	interrupted := ctx.Err() != nil && errors.Is(context.Cause(ctx), ErrInterrupted)
	if plan {
		return w.finishPlan(ctx, gctx, res, run, interrupted)
	}

	subject := subjectOf(job.Instruction)
	if strings.TrimSpace(job.Instruction) == "" {
		subject = subjectOf(job.Plan)
	}
	body := "Job: " + job.ID
	if run.summary != "" {
		body += "\n\n" + run.summary
	}
	res.Summary = run.summary
	switch {
	case run.err == nil:
		res.Success = true
	case interrupted:
		subject = "WIP: " + subject
		res.Type, res.Interrupted, res.Summary = hermes.ResultInterrupted, true, noteInterrupted
		body += "\n\nInterrupted by a newer instruction; this is its partial work."
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
	if res.Success {
		w.buildAndPublish(ctx, job, res)
	}
	if w.Project.Push {
		w.pushBranch(ctx, log, res)
	}
	res.FinishedAt = time.Now().UTC()
	log.InfoContext(ctx, "job finished", "success", res.Success, "result", res.Type, "commit", hash, "files", len(files), "preview", res.PreviewURL != "")
	return res, nil
}

// finishPlan discards whatever the agent changed in plan mode and describes
// the plan.
func (w *Workspace) finishPlan(ctx, gctx context.Context, res *hermes.ResultMessage, run agentRun, interrupted bool) (*hermes.ResultMessage, error) {
	if err := w.discard(gctx); err != nil {
		return nil, fmt.Errorf("worker: discarding the changes of plan job %s: %w", res.JobID, err)
	}
	switch {
	case interrupted || ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
		res.Type, res.Interrupted, res.Summary = hermes.ResultInterrupted, true, noteInterruptedPlan
	case run.err != nil:
		msg := "the agent could not make a plan: " + run.err.Error()
		if run.stderr != "" {
			msg += ": " + run.stderr
		}
		return failed(res, msg), nil
	case strings.TrimSpace(run.summary) == "":
		return failed(res, "the agent proposed no plan"), nil
	default:
		res.Type, res.Success, res.Summary = hermes.ResultPlan, true, run.summary
	}
	res.FinishedAt = time.Now().UTC()
	w.log().InfoContext(ctx, "plan job finished", "job", res.JobID, "result", res.Type)
	return res, nil
}

// pushBranch pushes the thread's branch; a failure is reported in the
// result's error, and the commit stays.
func (w *Workspace) pushBranch(ctx context.Context, log *slog.Logger, res *hermes.ResultMessage) {
	timeout := orDefault(w.PushTimeout, DefaultPushTimeout)
	if ctx.Err() != nil {
		timeout = min(timeout, 20*time.Second) // stopping: push the checkpoint quickly, or not at all
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := w.push(pctx, res.Branch); err != nil {
		log.ErrorContext(ctx, "pushing the thread's branch", "err", err)
		msg := "pushing " + res.Branch + " to the repository failed (the commit is kept in the workspace): " + err.Error()
		if res.Error == "" {
			res.Error = msg
		} else {
			res.Error += "; " + msg
		}
		return
	}
	log.InfoContext(ctx, "pushed the thread's branch")
}

// check validates the job and the project's agent, and returns the prompt
// for the agent or why the job cannot be applied.
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
	case hermes.JobInstruction, hermes.JobPlan:
	case hermes.JobExecute:
		text = executePrompt(job.Plan, job.Instruction)
	case hermes.JobControl:
		return "", "control jobs are carried out by the worker's loop, not applied"
	default:
		return "", fmt.Sprintf("job type %q is not supported by this worker", job.Type)
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
	default:
		return "", fmt.Sprintf("unknown agent kind %q", a.Kind)
	}
	return text, ""
}

// executePrompt is the prompt of an execute job: the approved plan and the
// request it answers.
func executePrompt(plan, instruction string) string {
	plan, instruction = strings.TrimSpace(plan), strings.TrimSpace(instruction)
	switch {
	case plan == "":
		return instruction
	case instruction == "":
		return "Carry out this approved plan:\n\n" + plan + "\n"
	}
	return "Carry out this approved plan:\n\n" + plan + "\n\nOriginal request: " + instruction + "\n"
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
