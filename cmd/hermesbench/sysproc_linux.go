package main

import (
	"os/exec"
	"syscall"
)

// sysProcAttr makes the kernel kill a server child when the driver dies,
// even by SIGKILL, so that no server outlives an interrupted run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// ownGroup puts a go command (and the compilers and test binaries it
// starts) in a process group of its own, which is killed as a whole when
// ctx ends.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
