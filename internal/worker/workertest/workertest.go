// Package workertest gives other packages' tests the worker's test doubles:
// a fake Claude Code CLI (package fakeclaude beside this one) that edits a
// checkout the way the worker expects the real CLI to, and the record of
// the calls it received.
package workertest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// FakeClaudePackage is the import path of the fake CLI's main package; it
// builds with `go build -o DIR/claude` + this path from anywhere in the module.
const FakeClaudePackage = "github.com/webordinary/hermes/internal/worker/workertest/fakeclaude"

// BuildFakeClaude builds the fake CLI into dir/claude and returns its path.
// The fake keeps its sessions and calls.jsonl in dir.
func BuildFakeClaude(dir string) (string, error) {
	bin := filepath.Join(dir, "claude")
	out, err := exec.Command("go", "build", "-o", bin, FakeClaudePackage).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building the fake claude: %v\n%s", err, out)
	}
	return bin, nil
}

// FakeClaude builds the fake CLI into a temporary directory of t (the go
// build cache makes repeated builds quick) and returns its path: set it as
// HERMES_CLAUDE_BIN, or as worker.Workspace.ClaudeBin.
func FakeClaude(t testing.TB) string {
	t.Helper()
	bin, err := BuildFakeClaude(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// FakeCall is one run of the fake CLI.
type FakeCall struct {
	Args  []string          `json:"args"`  // its arguments
	Stdin string            `json:"stdin"` // what it read on standard input
	Dir   string            `json:"dir"`   // its working directory
	Env   map[string]string `json:"env"`   // its environment
}

// FakeClaudeCalls returns the runs of the fake CLI at bin, oldest first.
func FakeClaudeCalls(bin string) ([]FakeCall, error) {
	f, err := os.Open(filepath.Join(filepath.Dir(bin), "calls.jsonl"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var calls []FakeCall
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var c FakeCall
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return nil, err
		}
		calls = append(calls, c)
	}
	return calls, sc.Err()
}
