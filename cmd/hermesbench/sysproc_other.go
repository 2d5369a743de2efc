//go:build !linux

package main

import (
	"os/exec"
	"syscall"
)

// sysProcAttr: elsewhere server children are ended by the driver's own
// clean-up only (the measurements need Linux's /proc anyway).
func sysProcAttr() *syscall.SysProcAttr { return nil }

// ownGroup: elsewhere exec.CommandContext's default kill is used.
func ownGroup(cmd *exec.Cmd) {}
