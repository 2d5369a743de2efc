//go:build unix

package worker

import (
	"os/exec"
	"syscall"
)

// setProcessGroup makes cmd the leader of its own process group, so that
// cancelling sends SIGTERM to the agent and everything it started, and
// returns a function that sends SIGKILL to the group.
func setProcessGroup(cmd *exec.Cmd) (killGroup func()) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
	return func() {
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}
}
