package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/smtp"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// editResult is section (e): edit containers through the built binary on
// the README's example site with its example command agent.
type editResult struct {
	// Wake: a job queued (the router's queued event) → the worker started
	// on it (the worker's started notice): for a sleeping container (a new
	// process: exec, store, git fetch, first receive) and a running one
	// (the worker's next receive).
	WakeSleeping, WakeRunning []time.Duration
	// E2E: SMTP DATA accepted → the result reply in the outbox.
	E2ESleeping, E2ERunning []time.Duration
	// Floor: what the worker must do at least, run directly in a clone:
	// the agent, then git add and commit.
	Floor []time.Duration
}

const editKey = "hermesbench-edit-admin-key-0123456789"

type editBench struct {
	base, smtpAddr string
	client         *http.Client
}

// editBench measures section (e); n samples of each kind.
func editBenchRun(ctx context.Context, root, tmp string, h hermesTarget, n int) (editResult, error) {
	var res editResult
	dir := filepath.Join(tmp, "edit")
	qs := exec.CommandContext(ctx, "sh", "examples/quickstart.sh", dir)
	qs.Dir = root
	if out, err := qs.CombinedOutput(); err != nil {
		return res, fmt.Errorf("examples/quickstart.sh: %w\n%s", err, out)
	}
	if err := floor(ctx, dir, n, &res); err != nil {
		return res, fmt.Errorf("floor: %w", err)
	}

	smtpPort, err := freePort()
	if err != nil {
		return res, err
	}
	start := h.start(filepath.Join(dir, "data"), []string{
		"HERMES_PROJECTS_FILE=" + filepath.Join(dir, "projects.json"),
		"HERMES_API_KEYS=" + editKey + "=admin",
		"HERMES_IDLE_TIMEOUT=1s",
		"HERMES_LOG_LEVEL=warn",
		"HERMES_SMTP_ADDR=127.0.0.1:" + strconv.Itoa(smtpPort),
	})
	c, base, err := start()
	if err != nil {
		return res, err
	}
	defer c.stop(30 * time.Second)
	if _, err := waitHealthy(ctx, c, base+"/health/ready", 5*time.Millisecond, 20*time.Second); err != nil {
		return res, err
	}
	b := editBench{base: base, smtpAddr: "127.0.0.1:" + strconv.Itoa(smtpPort), client: &http.Client{Transport: &http.Transport{Proxy: nil}}}

	// Wake times, through the API and the session's event stream.
	session, err := b.activate(ctx)
	if err != nil {
		return res, err
	}
	for i := range n {
		if err := b.waitAsleep(ctx); err != nil {
			return res, err
		}
		d, err := b.wake(ctx, session, fmt.Sprintf("change the tagline to Sleeping %d", i))
		if err != nil {
			return res, fmt.Errorf("wake of a sleeping container: %w", err)
		}
		res.WakeSleeping = append(res.WakeSleeping, d)
		d, err = b.wake(ctx, session, fmt.Sprintf("change the tagline to Running %d", i))
		if err != nil {
			return res, fmt.Errorf("wake of a running container: %w", err)
		}
		res.WakeRunning = append(res.WakeRunning, d)
	}

	// End to end, through SMTP and the outbox.
	for i := range n {
		if err := b.waitAsleep(ctx); err != nil {
			return res, err
		}
		d, err := b.email(ctx, fmt.Sprintf("<bench-cold-%d-%d@example.com>", i, time.Now().UnixNano()), fmt.Sprintf("Cold %d", i))
		if err != nil {
			return res, fmt.Errorf("email to a sleeping container: %w", err)
		}
		res.E2ESleeping = append(res.E2ESleeping, d)
		d, err = b.email(ctx, fmt.Sprintf("<bench-warm-%d-%d@example.com>", i, time.Now().UnixNano()), fmt.Sprintf("Warm %d", i))
		if err != nil {
			return res, fmt.Errorf("email to a running container: %w", err)
		}
		res.E2ERunning = append(res.E2ERunning, d)
	}
	return res, nil
}

// floor times the example agent and a commit in a plain clone.
func floor(ctx context.Context, dir string, n int, res *editResult) error {
	ws := filepath.Join(dir, "floor")
	if out, err := exec.CommandContext(ctx, "git", "clone", "-q", filepath.Join(dir, "site.git"), ws).CombinedOutput(); err != nil {
		return fmt.Errorf("git clone: %w\n%s", err, out)
	}
	git := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-c", "user.name=b", "-c", "user.email=b@localhost", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Dir = ws
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %v: %w\n%s", args, err, out)
		}
		return nil
	}
	for i := range n {
		t0 := time.Now()
		agent := exec.CommandContext(ctx, filepath.Join(dir, "example-agent"))
		agent.Dir = ws
		agent.Stdin = strings.NewReader(fmt.Sprintf("change the title to Floor %d\n", i))
		if out, err := agent.CombinedOutput(); err != nil {
			return fmt.Errorf("agent: %w\n%s", err, out)
		}
		if err := git("add", "-A"); err != nil {
			return err
		}
		if err := git("commit", "-qm", "floor"); err != nil {
			return err
		}
		res.Floor = append(res.Floor, time.Since(t0))
	}
	return nil
}

func (b editBench) do(ctx context.Context, method, path, body string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, strings.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+editKey)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return out, resp.StatusCode, err
}

// activate opens the session the wake samples use, and waits for its
// first result.
func (b editBench) activate(ctx context.Context) (string, error) {
	out, code, err := b.do(ctx, "POST", "/api/sessions/activate", `{"clientId":"amelia","userId":"scott","instruction":"change the title to Benchmarks"}`)
	if err != nil || code != http.StatusCreated {
		return "", fmt.Errorf("activate: %d %s %v", code, out, err)
	}
	var s struct{ SessionID string }
	if err := json.Unmarshal(out, &s); err != nil {
		return "", err
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		out, _, err := b.do(ctx, "GET", "/api/sessions/"+s.SessionID+"/status", "")
		if err == nil && strings.Contains(string(out), `"lastResult"`) {
			return s.SessionID, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "", errors.New("the first result never came")
}

// waitAsleep waits for the container's idle exit.
func (b editBench) waitAsleep(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		out, _, err := b.do(ctx, "GET", "/api/containers", "")
		var cs []struct{ Status string }
		if err == nil && json.Unmarshal(out, &cs) == nil && len(cs) == 1 && cs[0].Status == "stopped" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return errors.New("the container never went to sleep")
}

type sseEvent struct {
	Type  string    `json:"type"`
	JobID string    `json:"jobId"`
	At    time.Time `json:"at"`
}

// wake sends a follow-up on the session with its event stream open and
// returns the time from the job's queued event to its started event.
func (b editBench) wake(ctx context.Context, session, instruction string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", b.base+"/api/sessions/"+session+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+editKey)
	req.Header.Set("Last-Event-ID", fmt.Sprintf("%013d-z", time.Now().UnixMilli())) // live events only
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("events: %s", resp.Status)
	}
	body, _ := json.Marshal(map[string]string{"instruction": instruction})
	out, code, err := b.do(ctx, "POST", "/api/sessions/"+session+"/messages", string(body))
	if err != nil || code != http.StatusAccepted {
		return 0, fmt.Errorf("follow-up: %d %s %v", code, out, err)
	}
	var queued, started time.Time
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var e sseEvent
		if json.Unmarshal([]byte(data), &e) != nil {
			continue
		}
		switch e.Type {
		case "queued":
			queued = e.At
		case "started":
			started = e.At
		case "result", "error", "interrupted":
			if queued.IsZero() || started.IsZero() {
				return 0, fmt.Errorf("the stream had no queued or started event before the %s", e.Type)
			}
			return started.Sub(queued), nil
		}
	}
	return 0, fmt.Errorf("the event stream ended: %v", sc.Err())
}

// email sends one instruction by SMTP and returns the time from DATA
// accepted to the result reply in the outbox.
func (b editBench) email(ctx context.Context, msgID, title string) (time.Duration, error) {
	msg := "From: scott@example.com\r\nTo: edit@amelia.example.com\r\nSubject: " + title + "\r\nMessage-ID: " + msgID +
		"\r\n\r\nPlease change the title to " + title + ".\r\n"
	if err := smtp.SendMail(b.smtpAddr, nil, "scott@example.com", []string{"edit@amelia.example.com"}, []byte(msg)); err != nil {
		return 0, err
	}
	t0 := time.Now()
	deadline := t0.Add(time.Minute)
	for time.Now().Before(deadline) {
		out, _, err := b.do(ctx, "GET", "/api/outbox?limit=5", "")
		if err == nil {
			var items []struct {
				Kind    string
				Headers map[string]string
			}
			if json.Unmarshal(out, &items) == nil && slices.ContainsFunc(items, func(it struct {
				Kind    string
				Headers map[string]string
			}) bool {
				return it.Kind == "result" && it.Headers["In-Reply-To"] == msgID
			}) {
				return time.Since(t0), nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("no result reply to %s within a minute", msgID)
}

func sortedCopy(d []time.Duration) []time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s
}

// editSummary is p50 and p99 (the largest, with few samples) of samples.
func editSummary(d []time.Duration) (p50, p99 time.Duration) {
	s := sortedCopy(d)
	if len(s) == 0 {
		return 0, 0
	}
	return percentile(s, 0.50), percentile(s, 0.99)
}
