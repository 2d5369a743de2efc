package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webordinary/hermes/internal/ecs/ecstest"
)

// TestECSRunnerEndToEnd: with HERMES_RUNNER=ecs, an email wakes the
// user's container with one RunTask on the fake ECS, which runs the real
// `hermes worker` (this test binary, TestMain) as the task with the
// environment overrides Hermes sent; the worker does the job and the
// result reply is relayed. The tasks share the SQLite store through the
// data directory the fake's task definition sets (on AWS: DynamoDB).
func TestECSRunnerEndToEnd(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_SESSION_TOKEN", "")
	agent := testAgent(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	taskLogs := newLogLines()
	srv := ecstest.New(t, ecstest.Config{
		Cluster: "webordinary-edit-cluster", TaskDefinition: "webordinary-edit-worker", ContainerName: "worker",
		Command: []string{exe, "worker"},
		// The task definition's own environment: the image's plumbing and
		// where the worker keeps its data.
		Env:    []string{"HERMES_DATA_DIR=" + dataDir, "PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")},
		Output: taskLogs,
	})
	c, smtpAddr, logs, _ := editServe(t, fmt.Sprintf(`{"kind":"command","command":[%q,"multi"]}`, agent), map[string]string{
		"HERMES_DATA_DIR": dataDir, "HERMES_RUNNER": "ecs", "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_ECS": srv.URL,
		"ECS_TASK_DEFINITION": "webordinary-edit-worker", "ECS_SUBNETS": "subnet-0123456789abcdef0",
		"ECS_SECURITY_GROUPS": "sg-0123456789abcdef0", "ECS_CAPACITY_PROVIDER": "FARGATE_SPOT",
	})
	mail(t, smtpAddr, "<ecs1@example.com>", "Blue", "title Blue Header\n", nil)
	waitLong(t, "the acknowledgement", func() bool { _, ok := c.find("ack", "<ecs1@example.com>"); return ok })
	var result outboxItem
	func() {
		defer func() {
			if t.Failed() {
				t.Logf("serve:\n%s\ntasks:\n%s", logs, taskLogs)
			}
		}()
		waitLong(t, "the result reply", func() (ok bool) { result, ok = c.find("result", "<ecs1@example.com>"); return })
	}()
	if !strings.Contains(result.Text, `Set the page title to "Header"`) || !strings.Contains(result.Text, "index.html") {
		t.Errorf("result reply %q", result.Text)
	}
	runs := srv.RunRequests()
	if len(runs) != 1 {
		t.Fatalf("%d RunTask calls, want 1", len(runs))
	}
	var req struct {
		Cluster, TaskDefinition string
		Overrides               struct {
			ContainerOverrides []struct {
				Name        string
				Environment []struct{ Name, Value string }
			}
		}
		Tags []struct{ Key, Value string }
	}
	if err := json.Unmarshal(runs[0], &req); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range req.Overrides.ContainerOverrides[0].Environment {
		env[kv.Name] = kv.Value
	}
	if req.Cluster != "webordinary-edit-cluster" || env["HERMES_CONTAINER_ID"] != "amelia_site_scott" || env["HERMES_LOG_LEVEL"] != "debug" {
		t.Errorf("RunTask request %s", runs[0])
	}
	for _, secret := range []string{"HERMES_API_KEYS", "HERMES_DATA_DIR", "AWS_SECRET_ACCESS_KEY"} {
		if _, ok := env[secret]; ok {
			t.Errorf("%s passed to the task", secret)
		}
	}
	if st, _ := c.containerState(); st != "running" {
		t.Errorf("container %s", st)
	}
	if tasks := srv.Running(); len(tasks) != 1 {
		t.Errorf("running tasks %v", tasks)
	}
}
