package main

import (
	"os"
	"runtime"
	"strconv"
	"strings"
)

// machine describes where the numbers were taken.
type machine struct {
	CPUs      int    // runtime.NumCPU
	CPUModel  string // /proc/cpuinfo "model name"
	OSArch    string // GOOS/GOARCH
	MemTotal  int64  // bytes, /proc/meminfo
	GoVersion string // the toolchain that built Hermes
	Kernel    string // /proc/sys/kernel/osrelease
}

func describeMachine(goVersion string) machine {
	m := machine{
		CPUs:      runtime.NumCPU(),
		OSArch:    runtime.GOOS + "/" + runtime.GOARCH,
		GoVersion: goVersion,
		CPUModel:  "unknown",
	}
	if m.GoVersion == "" {
		m.GoVersion = runtime.Version()
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				f := strings.Fields(v)
				if len(f) == 2 && f[1] == "kB" {
					n, _ := strconv.ParseInt(f[0], 10, 64)
					m.MemTotal = n << 10
				}
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}
