package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEditEndToEnd: an email becomes a job, a worker started by hand
// (nothing starts workers yet) applies it with a command agent on the
// thread's branch, and its result comes back as a threaded reply in the
// outbox: the loop of SPEC §2 without the runner.
func TestEditEndToEnd(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("SKIPPING: git is not installed")
	}
	dir := t.TempDir()
	origin := filepath.Join(dir, "origin")
	gitRun(t, "", "init", "-q", "-b", "main", origin)
	os.WriteFile(filepath.Join(origin, "index.html"), []byte("<title>Old title</title>\n"), 0o644)
	gitRun(t, origin, "add", ".")
	gitRun(t, origin, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "init")
	agent := filepath.Join(dir, "agent.sh")
	os.WriteFile(agent, []byte("#!/bin/sh\nread -r line\nprintf '<title>%s</title>\\n' \"$line\" > index.html\necho \"Set the title to: $line\"\n"), 0o755)
	projects := filepath.Join(dir, "projects.json")
	os.WriteFile(projects, []byte(fmt.Sprintf(`{"clients":[{"id":"amelia","name":"Amelia Stamps","projects":[{"id":"site","repoUrl":%q,
		"emailAddresses":["edit@amelia.example.com"],"agent":{"kind":"command","command":[%q]}}],
		"users":[{"id":"scott","emails":["scott@example.com"]}]}]}`, origin, agent)), 0o600)

	vars := baseVars(t)
	vars["HERMES_PROJECTS_FILE"] = projects
	vars["HERMES_SMTP_ADDR"] = "127.0.0.1:0"
	vars["HERMES_API_KEYS"] = "an-admin-key-for-tests=admin"
	base, logs, stop := startServe(t, vars)
	defer stop()
	smtpAddr := logs.wait(t, "smtp server listening", 5*time.Second)["addr"].(string)
	c := client{t: t, base: base, key: "an-admin-key-for-tests"}

	if err := sendMail(t, smtpAddr, "scott@example.com", "edit@amelia.example.com",
		map[string]string{"Subject": "New title", "Message-ID": "<edit-1@example.com>"}, "Welcome to Amelia's stamps\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the job", func() bool { return c.inputDepth() == 1 })

	wvars := map[string]string{}
	for k, v := range vars {
		wvars[k] = v
	}
	wvars["HERMES_CONTAINER_ID"] = "amelia_site_scott"
	wvars["HERMES_IDLE_TIMEOUT"] = "2s"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := run(ctx, []string{"worker"}, env(wvars), io.Discard, io.Discard); err != nil {
		t.Fatalf("worker: %v", err)
	}

	var result outboxItem
	waitFor(t, "the result reply", func() bool {
		for _, it := range c.outbox() {
			if it.Kind == "result" {
				result = it
				return true
			}
		}
		return false
	})
	if !strings.Contains(result.Text, "Set the title to: Welcome to Amelia's stamps") || result.Headers["In-Reply-To"] != "<edit-1@example.com>" ||
		!strings.Contains(result.Subject, "[ref:") || !strings.Contains(result.Headers["Message-ID"], result.ThreadID) {
		t.Fatalf("result reply %+v", result)
	}
	ws := filepath.Join(vars["HERMES_DATA_DIR"], "workspaces", "amelia_site_scott")
	out, err := exec.Command("git", "-C", ws, "show", "thread-"+result.ThreadID+":index.html").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "<title>Welcome to Amelia's stamps</title>") {
		t.Fatalf("thread branch index.html: %s %v", out, err)
	}
	if c.inputDepth() != 0 {
		t.Errorf("the job is still queued")
	}
}

func gitRun(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}
