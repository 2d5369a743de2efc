//go:build !unix

package worker

import "os/exec"

// setProcessGroup: without process groups, cancelling kills the agent only.
func setProcessGroup(cmd *exec.Cmd) (killGroup func()) { return func() {} }
