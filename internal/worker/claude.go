package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/webordinary/hermes"
)

// ClaudeSessionsFile is the record of each thread's Claude Code session id,
// kept in the checkout's .git directory (never committed) and capped at
// maxClaudeSessions threads, least recently used dropped first.
const ClaudeSessionsFile = "hermes-claude-sessions.json"

const maxClaudeSessions = 1000

// claudeResult is the one object `claude -p --output-format json` prints
// when it is done (fields the worker does not use are ignored: usage,
// duration_api_ms, stop_reason, permission_denials, uuid, …).
type claudeResult struct {
	Type         string  `json:"type"`    // "result"
	Subtype      string  `json:"subtype"` // "success", "error_max_turns", "error_during_execution", …
	IsError      bool    `json:"is_error"`
	Result       string  `json:"result"` // the agent's final answer
	SessionID    string  `json:"session_id"`
	NumTurns     int     `json:"num_turns"`
	DurationMS   int64   `json:"duration_ms"`
	TotalCostUSD float64 `json:"total_cost_usd"`
}

// claudeSessionID is what a usable session id looks like (the CLI's are
// UUIDs); anything else is never passed to --resume.
var claudeSessionID = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`) })

// claudeEnvPrefixes are the worker's environment variables the CLI gets
// besides the agent's base environment: its own configuration and
// credentials (ANTHROPIC_API_KEY, CLAUDE_CODE_OAUTH_TOKEN, CLAUDE_CONFIG_DIR,
// …) and the proxy settings. AWS_* is added when the CLI uses Bedrock
// (CLAUDE_CODE_USE_BEDROCK).
var claudeEnvPrefixes = []string{"ANTHROPIC_", "CLAUDE_", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "NODE_EXTRA_CA_CERTS", "TMPDIR", "XDG_CONFIG_HOME"}

func (w *Workspace) claudeBin() string {
	if w.ClaudeBin != "" {
		return w.ClaudeBin
	}
	return "claude"
}

// claudeArgs is the CLI's command line: print mode with JSON output, the
// project's model, the thread's session resumed, plan mode for plan jobs
// (acceptEdits otherwise: file edits are allowed without asking), then the
// project's extra arguments — without any that would lift plan mode when
// planning. The prompt is never among them: it goes on standard input.
func claudeArgs(a hermes.Agent, session string, plan bool) []string {
	args := []string{"-p", "--output-format", "json"}
	if a.Model != "" {
		args = append(args, "--model", a.Model)
	}
	if session != "" {
		args = append(args, "--resume", session)
	}
	mode := "acceptEdits"
	if plan {
		mode = "plan"
	}
	args = append(args, "--permission-mode", mode)
	extra := a.Args
	if plan {
		extra = nil
		for i := 0; i < len(a.Args); i++ {
			switch x := a.Args[i]; {
			case x == "--permission-mode":
				i++ // and its value
			case strings.HasPrefix(x, "--permission-mode="), x == "--dangerously-skip-permissions", x == "--allow-dangerously-skip-permissions":
			default:
				extra = append(extra, x)
			}
		}
	}
	return append(args, extra...)
}

// claudeEnv is the CLI's environment.
func claudeEnv(job *hermes.Job) []string {
	env := agentEnv(job)
	bedrock := os.Getenv("CLAUDE_CODE_USE_BEDROCK") != ""
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if slices.ContainsFunc(claudeEnvPrefixes, func(p string) bool { return strings.HasPrefix(k, p) }) ||
			bedrock && strings.HasPrefix(k, "AWS_") {
			env = append(env, kv)
		}
	}
	return env
}

// runClaude runs the Claude Code CLI on prompt, resuming the thread's
// session. A session the CLI no longer knows (a new container, a cleared
// ~/.claude) is replaced by a new one.
func (w *Workspace) runClaude(ctx context.Context, job *hermes.Job, prompt string, plan bool) agentRun {
	a := w.Project.Agent
	if strings.HasPrefix(a.Model, "-") {
		return agentRun{err: fmt.Errorf("the project's claude model %q is not a model name", a.Model)}
	}
	log := w.log().With("job", job.ID, "thread", job.ThreadID)
	session, err := w.claudeSession(job.ThreadID)
	if err != nil {
		log.WarnContext(ctx, "the record of claude sessions is unreadable; starting a new session", "err", err)
	}
	p, out := w.claudeOnce(ctx, job, prompt, plan, session)
	if session != "" && out == nil && p.err != nil && ctx.Err() == nil && strings.Contains(p.stderr, "No conversation found") {
		log.WarnContext(ctx, "the thread's claude session is gone; starting a new one", "session", session)
		p, out = w.claudeOnce(ctx, job, prompt, plan, "")
	}
	if out == nil {
		run := agentRun{stderr: p.stderr, err: p.err}
		switch {
		case p.err != nil:
			run.err = fmt.Errorf("the agent (claude) %w", p.err)
		default:
			run.err = errors.New("the agent (claude) printed no result")
		}
		return run
	}
	log.InfoContext(ctx, "claude finished", "subtype", out.Subtype, "is_error", out.IsError, "session", out.SessionID,
		"turns", out.NumTurns, "duration_ms", out.DurationMS, "cost_usd", out.TotalCostUSD)
	if out.SessionID != "" && claudeSessionID().MatchString(out.SessionID) {
		if err := w.saveClaudeSession(job.ThreadID, out.SessionID); err != nil {
			log.ErrorContext(ctx, "recording the thread's claude session", "err", err)
		}
	}
	run := agentRun{summary: capUTF8(strings.TrimSpace(out.Result), MaxSummary), stderr: p.stderr}
	switch {
	case out.Subtype == "error_max_turns":
		run.err = errors.New("the agent (claude) ran out of turns before finishing")
	case out.IsError || out.Subtype != "success":
		run.err = fmt.Errorf("the agent (claude) stopped with an error (%s)", out.Subtype)
	}
	return run
}

// claudeOnce runs the CLI once and parses its result (nil when it printed
// none).
func (w *Workspace) claudeOnce(ctx context.Context, job *hermes.Job, prompt string, plan bool, session string) (process, *claudeResult) {
	argv := append([]string{w.claudeBin()}, claudeArgs(w.Project.Agent, session, plan)...)
	p := w.runProcess(ctx, argv, claudeEnv(job), prompt, false)
	return p, parseClaude(p.stdout)
}

// parseClaude finds the result object in the CLI's standard output: the
// whole output, or else its last line that is one.
func parseClaude(stdout string) *claudeResult {
	try := func(s string) *claudeResult {
		var r claudeResult
		if err := json.Unmarshal([]byte(s), &r); err != nil || r.Type != "result" {
			return nil
		}
		return &r
	}
	if r := try(strings.TrimSpace(stdout)); r != nil {
		return r
	}
	lines := strings.Split(stdout, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); strings.HasPrefix(l, "{") {
			if r := try(l); r != nil {
				return r
			}
		}
	}
	return nil
}

// claudeSessions is the record in ClaudeSessionsFile.
type claudeSessions map[string]claudeSessionEntry

type claudeSessionEntry struct {
	SessionID string    `json:"sessionId"`
	UsedAt    time.Time `json:"usedAt"`
}

func (w *Workspace) claudeSessionsFile() string {
	return filepath.Join(w.Dir, ".git", ClaudeSessionsFile)
}

func (w *Workspace) readClaudeSessions() (claudeSessions, error) {
	b, err := os.ReadFile(w.claudeSessionsFile())
	if errors.Is(err, os.ErrNotExist) {
		return claudeSessions{}, nil
	}
	if err != nil {
		return claudeSessions{}, err
	}
	s := claudeSessions{}
	if err := json.Unmarshal(b, &s); err != nil {
		return claudeSessions{}, fmt.Errorf("worker: %s: %w", w.claudeSessionsFile(), err)
	}
	return s, nil
}

// claudeSession returns the thread's session id, or "".
func (w *Workspace) claudeSession(threadID string) (string, error) {
	s, err := w.readClaudeSessions()
	if id := s[threadID].SessionID; claudeSessionID().MatchString(id) {
		return id, err
	}
	return "", err
}

// saveClaudeSession records the thread's session id (written to a
// temporary file and renamed).
func (w *Workspace) saveClaudeSession(threadID, sessionID string) error {
	s, err := w.readClaudeSessions()
	if err != nil {
		s = claudeSessions{} // a damaged record is replaced
	}
	s[threadID] = claudeSessionEntry{SessionID: sessionID, UsedAt: time.Now().UTC()}
	for len(s) > maxClaudeSessions {
		oldest := ""
		for t, e := range s {
			if oldest == "" || e.UsedAt.Before(s[oldest].UsedAt) {
				oldest = t
			}
		}
		delete(s, oldest)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp := w.claudeSessionsFile() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, w.claudeSessionsFile())
}
