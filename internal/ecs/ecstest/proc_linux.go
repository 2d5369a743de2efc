//go:build linux

package ecstest

import (
	"os/exec"
	"syscall"
)

// detach gives the task's process its own process group and has the
// kernel send it SIGTERM should the test process die first.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
