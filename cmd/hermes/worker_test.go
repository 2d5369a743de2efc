package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/webordinary/hermes/internal/worker/workertest"
)

func TestWorkerNeedsContainerID(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, id, want string
	}{
		{"missing", "", "HERMES_CONTAINER_ID is required"},
		{"invalid", "Amelia/site", `HERMES_CONTAINER_ID="Amelia/site" is not a container id`},
		{"too long", strings.Repeat("a", 57), "is not a container id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]string{"HERMES_DATA_DIR": dir}
			if tc.id != "" {
				vars["HERMES_CONTAINER_ID"] = tc.id
			}
			err := run(t.Context(), []string{"worker"}, env(vars), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) || exitCode(err) != 2 {
				t.Fatalf("err %v (exit %d), want one containing %q with exit 2", err, exitCode(err), tc.want)
			}
		})
	}
}

func TestWorkerUnknownContainer(t *testing.T) {
	vars := map[string]string{"HERMES_DATA_DIR": t.TempDir(), "HERMES_CONTAINER_ID": "amelia_site_scott"}
	err := run(t.Context(), []string{"worker"}, env(vars), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "container amelia_site_scott") {
		t.Fatalf("err %v, want one naming the unknown container", err)
	}
}

// TestWorkerClaudePreview: a message on the API channel becomes a job, a
// hand-started worker applies it with the claude agent (the fake CLI from
// workertest, set by HERMES_CLAUDE_BIN), publishes the checkout as the
// thread's preview under the data directory, and serve serves it at the
// result's preview link.
func TestWorkerClaudePreview(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("SKIPPING: git is not installed")
	}
	claude := workertest.FakeClaude(t)
	dir := t.TempDir()
	origin := filepath.Join(dir, "origin")
	gitRun(t, "", "init", "-q", "-b", "main", origin)
	os.WriteFile(filepath.Join(origin, "index.html"), []byte("<html><title>Old title</title></html>\n"), 0o644)
	gitRun(t, origin, "add", ".")
	gitRun(t, origin, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "init")
	projects := filepath.Join(dir, "projects.json")
	os.WriteFile(projects, []byte(fmt.Sprintf(`{"clients":[{"id":"amelia","name":"Amelia Stamps","projects":[{"id":"site","repoUrl":%q,
		"agent":{"kind":"claude","model":"claude-sonnet-4-5"}}],
		"users":[{"id":"scott","emails":["scott@example.com"]}]}]}`, origin)), 0o600)

	vars := baseVars(t)
	vars["HERMES_PROJECTS_FILE"] = projects
	vars["HERMES_API_KEYS"] = "an-admin-key-for-tests=admin"
	vars["HERMES_PUBLIC_URL"] = "http://hermes.test"
	base, _, stop := startServe(t, vars)
	defer stop()
	c := client{t: t, base: base, key: "an-admin-key-for-tests"}
	code, msg, _ := c.call("POST", "/api/messages", `{"clientId":"amelia","projectId":"site","userId":"scott","text":"Change the title to Stamps"}`)
	if code != 202 {
		t.Fatalf("POST /api/messages: %d %v", code, msg)
	}
	thread, session := msg["threadId"].(string), msg["sessionId"].(string)
	waitFor(t, "the job", func() bool { return c.inputDepth() == 1 })

	wvars := maps.Clone(vars)
	wvars["HERMES_CONTAINER_ID"] = "amelia_site_scott"
	wvars["HERMES_IDLE_TIMEOUT"] = "2s"
	wvars["HERMES_CLAUDE_BIN"] = claude
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := run(ctx, []string{"worker"}, env(wvars), io.Discard, io.Discard); err != nil {
		t.Fatalf("worker: %v", err)
	}

	var last map[string]any
	waitFor(t, "the result", func() bool {
		_, st, _ := c.call("GET", "/api/sessions/"+session+"/status", "")
		last, _ = st["lastResult"].(map[string]any)
		return last != nil
	})
	preview := "http://hermes.test/preview/amelia/site/" + thread + "/"
	if last["success"] != true || last["summary"] != `Set the page title to "Stamps".` || last["previewUrl"] != preview || last["commit"] == "" {
		t.Fatalf("lastResult %v", last)
	}
	resp, err := http.Get(base + "/preview/amelia/site/" + thread + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "<title>Stamps</title>") {
		t.Fatalf("preview: %d %s", resp.StatusCode, page)
	}
	calls, err := workertest.FakeClaudeCalls(claude)
	if err != nil || len(calls) != 1 {
		t.Fatalf("claude calls %+v %v", calls, err)
	}
	if want := []string{"-p", "--output-format", "json", "--model", "claude-sonnet-4-5", "--permission-mode", "acceptEdits"}; !slices.Equal(calls[0].Args, want) ||
		calls[0].Stdin != "Change the title to Stamps" {
		t.Errorf("claude ran with %q and stdin %q", calls[0].Args, calls[0].Stdin)
	}
}
