package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/webordinary/hermes/internal/config"
)

const projectsFile = `{"clients": [{"id": "amelia", "name": "Amelia Stamps",
  "projects": [{"id": "site", "repoUrl": "/srv/amelia.git", "emailAddresses": ["edit@amelia.example.com"],
                "agent": {"kind": "command", "command": ["true"]}}],
  "users": [{"id": "scott", "name": "Scott", "emails": ["scott@example.com"], "phones": ["+15550100002"]}]}]}`

// logLines collects the JSON log lines hermes writes and tells when one
// with a given message appears.
type logLines struct {
	mu    sync.Mutex
	lines []map[string]any
	raw   bytes.Buffer
	added chan struct{}
}

func newLogLines() *logLines { return &logLines{added: make(chan struct{}, 1)} }

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.raw.Write(p)
	for _, line := range bytes.Split(bytes.TrimSpace(p), []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(line, &m) == nil {
			l.lines = append(l.lines, m)
		}
	}
	select {
	case l.added <- struct{}{}:
	default:
	}
	return len(p), nil
}

// wait returns the first line with msg, failing after d.
func (l *logLines) wait(t *testing.T, msg string, d time.Duration) map[string]any {
	t.Helper()
	deadline := time.After(d)
	for {
		l.mu.Lock()
		for _, m := range l.lines {
			if m["msg"] == msg {
				l.mu.Unlock()
				return m
			}
		}
		l.mu.Unlock()
		select {
		case <-l.added:
		case <-deadline:
			t.Fatalf("no %q log line within %s; log:\n%s", msg, d, l.String())
		}
	}
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.raw.String()
}

func (l *logLines) all() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]map[string]any(nil), l.lines...)
}

// env returns a getenv over m only: tests never read the real environment.
func env(m map[string]string) func(string) string { return config.Getenv(m, nil) }

// startServe runs `hermes serve` through run on port 0 and returns its base
// URL; the returned stop cancels it and returns run's error.
func startServe(t *testing.T, vars map[string]string) (base string, logs *logLines, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs = newLogLines()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, env(vars), logs, io.Discard) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = errors.New("serve did not stop within 30s")
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	started := make(chan map[string]any, 1)
	go func() {
		defer func() { recover() }() // wait may Fatal after the test ended
		started <- logs.wait(t, "hermes started", 20*time.Second)
	}()
	select {
	case m := <-started:
		addr := m["addr"].(string)
		port := addr[strings.LastIndex(addr, ":")+1:]
		return "http://127.0.0.1:" + port, logs, stop
	case err := <-done:
		t.Fatalf("serve ended before starting: %v\n%s", err, logs)
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not start; log:\n%s", logs)
	}
	return "", nil, nil
}

func baseVars(t *testing.T) map[string]string {
	dir := t.TempDir()
	pf := filepath.Join(dir, "projects.json")
	if err := os.WriteFile(pf, []byte(projectsFile), 0o600); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"PORT": "0", "HERMES_HOST": "127.0.0.1", "HERMES_DATA_DIR": filepath.Join(dir, "data"),
		"HERMES_PROJECTS_FILE": pf, "HERMES_SMTP_ADDR": "off", "HERMES_LOG_LEVEL": "debug",
		// No worker can start: these tests are about intake and sessions,
		// and their jobs wait on their queues. Tests of edit containers
		// call withWorkers.
		"HERMES_WORKER_BIN": filepath.Join(dir, "no-worker"),
	}
}

type client struct {
	t    *testing.T
	base string
	key  string
}

func (c client) call(method, path, body string) (int, map[string]any, http.Header) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(b) > 0 && b[0] == '{' {
		if err := json.Unmarshal(b, &out); err != nil {
			c.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	} else if len(b) > 0 && b[0] == '[' {
		var list []any
		_ = json.Unmarshal(b, &list)
		out = map[string]any{"list": list}
	}
	return resp.StatusCode, out, resp.Header
}

// waitStatus polls a session until it has the status, failing after d.
func (c client) waitStatus(id, want string, d time.Duration) map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		code, body, _ := c.call("GET", "/api/sessions/"+id+"/status", "")
		if code == 200 && body["status"] == want {
			return body
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("session %s: status %v (HTTP %d), want %s after %s", id, body["status"], code, want, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServeEndToEnd is the newcomer's tour through run: start on embedded
// defaults, find the generated key, activate, query, keep alive, list,
// deactivate, and watch a session expire when its lease passes.
func TestServeEndToEnd(t *testing.T) {
	vars := baseVars(t)
	vars["SESSION_TTL"] = "1s"
	vars["HERMES_REAPER_INTERVAL"] = "100ms"
	base, logs, stop := startServe(t, vars)

	keyPath := filepath.Join(vars["HERMES_DATA_DIR"], "admin-api-key")
	fi, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("admin key file mode %o, want 600", fi.Mode().Perm())
	}
	raw, _ := os.ReadFile(keyPath)
	key := strings.TrimSpace(string(raw))
	c := client{t: t, base: base, key: key}

	if code, _, _ := (client{t: t, base: base}).call("GET", "/api/sessions/client/amelia", ""); code != 401 {
		t.Errorf("unauthenticated list: %d, want 401", code)
	}
	code, act, _ := c.call("POST", "/api/sessions/activate", `{"clientId":"amelia","userId":"scott","instruction":"make the header blue"}`)
	if code != 201 || act["status"] != "initializing" || act["containerId"] != "amelia_site_scott" {
		t.Fatalf("activate: %d %v", code, act)
	}
	id := act["sessionId"].(string)
	code, st, _ := c.call("GET", "/api/sessions/"+id+"/status", "")
	if code != 200 || st["threadId"] != act["threadId"] || st["previewUrl"] != act["previewUrl"] {
		t.Fatalf("status: %d %v", code, st)
	}
	if code, ka, _ := c.call("POST", "/api/sessions/"+id+"/keepalive", ""); code != 200 || ka["ttl"] == nil {
		t.Fatalf("keepalive: %d %v", code, ka)
	}
	if code, list, _ := c.call("GET", "/api/sessions/client/amelia", ""); code != 200 || len(list["list"].([]any)) != 1 {
		t.Fatalf("list: %d %v", code, list)
	}
	if code, h, _ := c.call("GET", "/api/sessions/"+id+"/messages", ""); code != 200 || len(h["list"].([]any)) != 1 {
		t.Fatalf("messages: %d %v", code, h)
	}
	if code, d, _ := c.call("POST", "/api/sessions/"+id+"/deactivate", ""); code != 202 || d["status"] != "draining" {
		t.Fatalf("deactivate: %d %v", code, d)
	}
	if got := c.waitStatus(id, "expired", 10*time.Second); got["reason"] != "deactivated" {
		t.Errorf("deactivated session reason %v", got["reason"])
	}

	// A session left alone expires when its one-second lease passes.
	_, act2, _ := c.call("POST", "/api/sessions/activate", `{"clientId":"amelia","userId":"scott","instruction":"and the footer"}`)
	id2 := act2["sessionId"].(string)
	if got := c.waitStatus(id2, "expired", 15*time.Second); got["reason"] != "lease" {
		t.Errorf("lapsed session reason %v", got["reason"])
	}
	if code, _, _ := c.call("POST", "/api/sessions/"+id2+"/keepalive", ""); code != 409 {
		t.Errorf("keepalive of expired session: %d, want 409", code)
	}

	if err := stop(); err != nil {
		t.Fatalf("serve returned %v", err)
	}
	logs.wait(t, "stopped", time.Second)
	if strings.Contains(logs.String(), key) {
		t.Error("the admin key appears in the log")
	}
	requests := 0
	for _, m := range logs.all() {
		if m["msg"] == "http request" {
			requests++
			if id, _ := m["request_id"].(string); id == "" {
				t.Errorf("request log line without request_id: %v", m)
			}
		}
	}
	if requests < 8 {
		t.Errorf("%d request log lines, want one per request", requests)
	}

	// A restart keeps the key and the data.
	base, _, stop = startServe(t, vars)
	c.base = base
	if code, _, _ := c.call("GET", "/api/sessions/"+id+"/status", ""); code != 200 {
		t.Errorf("status after restart: %d", code)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigurationErrors(t *testing.T) {
	for _, tc := range []struct {
		name, variable, value, want string
	}{
		{"port", "PORT", "http", "PORT"},
		{"port range", "PORT", "70000", "PORT"},
		{"ttl", "SESSION_TTL", "banana", "SESSION_TTL"},
		{"store", "HERMES_STORE", "mongo", "HERMES_STORE"},
		{"ecs runner incomplete", "HERMES_RUNNER", "ecs", "ECS_TASK_DEFINITION"},
		{"base path", "BASE_PATH", "hermes/", "BASE_PATH"},
		{"api keys", "HERMES_API_KEYS", "short=admin", "HERMES_API_KEYS"},
		{"api key scope", "HERMES_API_KEYS", "0123456789abcdefgh=root", "HERMES_API_KEYS"},
		{"node env", "NODE_ENV", "staging", "NODE_ENV"},
		{"jwt without issuer", "HERMES_JWT_SECRET", strings.Repeat("s", 32), "HERMES_JWT_ISSUER"},
		{"projects file", "HERMES_PROJECTS_FILE", "/nonexistent/projects.json", "projects file"},
		{"smtp url", "SMTP_URL", "http://user:secretpw@host", "SMTP_URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := baseVars(t)
			vars[tc.variable] = tc.value
			err := run(context.Background(), []string{"serve"}, env(vars), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to name %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "secretpw") {
				t.Errorf("error echoes a secret: %v", err)
			}
		})
	}
}

// TestStoreUnreachable: a DynamoDB store that does not answer stops the
// start with an error that names the table and the way to create it.
func TestStoreUnreachable(t *testing.T) {
	vars := baseVars(t)
	for k, v := range map[string]string{
		"HERMES_STORE": "dynamodb", "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test",
		"AWS_SECRET_ACCESS_KEY": "test", "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:1",
	} {
		vars[k] = v
	}
	err := run(context.Background(), []string{"serve"}, env(vars), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "webordinary-edit-sessions") || !strings.Contains(err.Error(), "hermes setup") {
		t.Fatalf("err = %v, want it to name the table and hermes setup", err)
	}
}

func TestInvalidProjectsFile(t *testing.T) {
	vars := baseVars(t)
	pf := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(pf, []byte(`{"clients":[{"id":"Bad Id","projects":[{"id":"site","repoUrl":"x","smsNumbers":["555"]}]}]}`), 0o600)
	vars["HERMES_PROJECTS_FILE"] = pf
	err := run(context.Background(), []string{"serve"}, env(vars), io.Discard, io.Discard)
	for _, want := range []string{"clients[0].id", "clients[0].projects[0].smsNumbers[0]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to name %s", err, want)
		}
	}
}

func TestCommands(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, env(nil), &out, io.Discard); err != nil || !strings.HasPrefix(out.String(), "hermes ") {
		t.Errorf("version: %v %q", err, out.String())
	}
	err := run(context.Background(), []string{"frobnicate"}, env(nil), io.Discard, io.Discard)
	if err == nil || exitCode(err) != 2 {
		t.Errorf("unknown command: %v (exit %d), want a usage error", err, exitCode(err))
	}
	if err := run(context.Background(), nil, env(nil), io.Discard, io.Discard); exitCode(err) != 2 {
		t.Errorf("no command: %v", err)
	}
	// Nothing listens on this port: unhealthy.
	if err := run(context.Background(), []string{"healthcheck", "-timeout", "1s"}, env(map[string]string{"PORT": "1"}), io.Discard, io.Discard); err == nil {
		t.Error("healthcheck against nothing succeeded")
	}
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// hermesBinary builds cmd/hermes once for the tests that exec it.
func hermesBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hermes-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "hermes")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// TestBinaryGracefulShutdown runs the built binary: the healthcheck command
// passes while it runs; SIGTERM lets an in-flight request finish (a 2 s
// activate?wait=ready), then the process exits 0 and the healthcheck fails.
func TestBinaryGracefulShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := hermesBinary(t)
	vars := baseVars(t)
	vars["HERMES_API_KEYS"] = "an-admin-key-for-tests=admin"
	cmd := exec.Command(bin, "serve")
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	logs := newLogLines()
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			logs.Write(append(sc.Bytes(), '\n'))
		}
	}()
	addr := logs.wait(t, "hermes started", 20*time.Second)["addr"].(string)
	port := addr[strings.LastIndex(addr, ":")+1:]
	c := client{t: t, base: "http://127.0.0.1:" + port, key: "an-admin-key-for-tests"}

	hc := func() error {
		return run(context.Background(), []string{"healthcheck"}, env(map[string]string{"PORT": port}), io.Discard, io.Discard)
	}
	if err := hc(); err != nil {
		t.Fatalf("healthcheck of a running hermes: %v", err)
	}

	type result struct {
		code int
		body map[string]any
	}
	inflight := make(chan result, 1)
	go func() {
		code, body, _ := c.call("POST", "/api/sessions/activate?wait=ready&timeout=2s", `{"clientId":"amelia","userId":"scott","instruction":"slow one"}`)
		inflight <- result{code, body}
	}()
	logs.wait(t, "session created", 5*time.Second)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	logs.wait(t, "shutting down", 5*time.Second)
	if err := hc(); err == nil {
		t.Error("healthcheck passed while shutting down")
	}
	select {
	case r := <-inflight:
		if r.code != 201 {
			t.Errorf("in-flight request during shutdown: %d %v", r.code, r.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("in-flight request never finished")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("hermes exited with %v", err)
	}
	logs.wait(t, "stopped", time.Second)
	if err := hc(); err == nil {
		t.Error("healthcheck passed after exit")
	}
}

// TestServeHealth: serve's GET /health checks the store, the queues and
// the runner (here: the worker binary), and is 503 without a worker to
// start, while /health/ready, which load balancers use, stays 200.
func TestServeHealth(t *testing.T) {
	get := func(base, path string) (int, map[string]any) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var h map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&h)
		return resp.StatusCode, h
	}
	status := func(h map[string]any, name string) any {
		checks, _ := h["checks"].(map[string]any)
		c, _ := checks[name].(map[string]any)
		return c["status"]
	}
	vars := baseVars(t) // HERMES_WORKER_BIN names no file
	base, _, stop := startServe(t, vars)
	code, h := get(base, "/health")
	if code != http.StatusServiceUnavailable || status(h, "runner") != "fail" || status(h, "queues") != "ok" || status(h, "store") != "ok" {
		t.Errorf("/health without a worker binary: %d %v", code, h)
	}
	if code, h := get(base, "/health/ready"); code != http.StatusOK {
		t.Errorf("/health/ready: %d %v", code, h)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	withWorkers(t, vars)
	base, _, _ = startServe(t, vars)
	if code, h := get(base, "/health"); code != http.StatusOK || status(h, "runner") != "ok" {
		t.Errorf("/health with workers: %d %v", code, h)
	}
}
