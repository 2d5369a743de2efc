//go:build linux

package local

import (
	"os/exec"
	"syscall"
)

// detach puts the worker in its own process group (a terminal's Ctrl-C
// reaches Hermes, which stops its workers in order) and has the kernel
// send it SIGTERM should Hermes die without stopping it: the worker then
// checkpoints and leaves its job for redelivery.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

func terminate(cmd *exec.Cmd) error { return cmd.Process.Signal(syscall.SIGTERM) }
