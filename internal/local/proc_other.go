//go:build !linux

package local

import (
	"os"
	"os/exec"
	"runtime"
	"syscall"
)

// detach: outside Linux the worker stays in Hermes's process group and is
// not signalled when Hermes dies.
func detach(*exec.Cmd) {}

func terminate(cmd *exec.Cmd) error {
	if runtime.GOOS == "windows" {
		return cmd.Process.Signal(os.Kill)
	}
	return cmd.Process.Signal(syscall.SIGTERM)
}
