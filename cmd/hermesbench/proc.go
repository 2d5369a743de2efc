package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// child is a server process the driver started. Every child is in the
// registry from Start until it has been waited for, so killAll can end
// whatever is left when the driver stops early.
type child struct {
	name    string
	cmd     *exec.Cmd
	started time.Time     // just before exec
	done    chan struct{} // closed when the process has been waited for
	waitErr error         // valid after done

	stdout *countWriter // the process's standard output, counted and discarded
	stderr *tailBuffer  // the end of its standard error, for failure messages
}

var (
	childrenMu sync.Mutex
	children   = map[*child]bool{}
)

// startChild execs path with args and exactly env (nothing is inherited).
// Its standard output is counted and dropped.
func startChild(name, path string, args, env []string) (*child, error) {
	c := &child{name: name, done: make(chan struct{}), stdout: &countWriter{}, stderr: &tailBuffer{max: 16 << 10}}
	c.cmd = exec.Command(path, args...)
	c.cmd.Env = env
	c.cmd.Stdout = c.stdout // through a pipe that exec's goroutine reads
	c.cmd.Stderr = c.stderr
	c.cmd.SysProcAttr = sysProcAttr() // dies with the driver where the OS allows
	childrenMu.Lock()
	defer childrenMu.Unlock()
	c.started = time.Now()
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	children[c] = true
	go func() {
		c.waitErr = c.cmd.Wait()
		childrenMu.Lock()
		delete(children, c)
		childrenMu.Unlock()
		close(c.done)
	}()
	return c, nil
}

// exited reports whether the process has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// failure describes an unexpected end of the process.
func (c *child) failure() error {
	return fmt.Errorf("%s exited early (%v); its stderr ends with:\n%s", c.name, c.waitErr, c.stderr.String())
}

// stop sends SIGTERM and waits up to grace for the process to end, then
// kills it. It returns how long the process took to end after SIGTERM.
func (c *child) stop(grace time.Duration) (time.Duration, error) {
	if c.exited() {
		return 0, c.failure()
	}
	t0 := time.Now()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		d := time.Since(t0)
		if c.waitErr != nil {
			return d, fmt.Errorf("%s ended with %v after SIGTERM; stderr:\n%s", c.name, c.waitErr, c.stderr.String())
		}
		return d, nil
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.done
		return time.Since(t0), fmt.Errorf("%s did not stop within %s of SIGTERM; killed", c.name, grace)
	}
}

// killAll ends every child still running: SIGTERM, a short grace, SIGKILL.
func killAll() {
	childrenMu.Lock()
	left := make([]*child, 0, len(children))
	for c := range children {
		left = append(left, c)
	}
	childrenMu.Unlock()
	for _, c := range left {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.After(3 * time.Second)
	for _, c := range left {
		select {
		case <-c.done:
		case <-deadline:
		}
	}
	for _, c := range left {
		if !c.exited() {
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	}
}

// waitHealthy polls url every interval until it answers 200 and returns
// the moment it did. It fails when the process ends first, when ctx ends,
// or after limit.
func waitHealthy(ctx context.Context, c *child, url string, interval, limit time.Duration) (time.Time, error) {
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		Timeout:   time.Second,
	}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(limit)
	for {
		resp, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Now(), nil
			}
		}
		if c.exited() {
			return time.Time{}, c.failure()
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s: %s did not answer 200 within %s (last: %v)", c.name, url, limit, statusOrErr(resp, err))
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(interval):
		}
	}
}

func statusOrErr(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return resp.Status
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// procMem is a process's resident memory from /proc/PID/status.
type procMem struct {
	RSS, HWM int64 // VmRSS and VmHWM (peak), bytes
	// Anon and File split RSS: the process's private memory (heap,
	// stacks) and the pages of mapped files it touched (mostly its own
	// binary, shared with every process of it and reclaimable).
	Anon, File int64
}

func readMem(pid int) (procMem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procMem{}, err
	}
	var m procMem
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &m.RSS
		case "VmHWM":
			dst = &m.HWM
		case "RssAnon":
			dst = &m.Anon
		case "RssFile":
			dst = &m.File
		default:
			continue
		}
		f := strings.Fields(v) // "12345 kB"
		if len(f) != 2 || f[1] != "kB" {
			return m, fmt.Errorf("/proc/%d/status: unexpected %s line %q", pid, k, line)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return m, err
		}
		*dst = n << 10
	}
	if m.RSS == 0 {
		return m, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
	}
	return m, nil
}

// clockTick is USER_HZ, the unit of /proc/PID/stat times; 100 on every
// Linux architecture Go supports.
const clockTick = 100

// cpuTime is the user plus system CPU time used so far by all threads of
// the process (10 ms resolution).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces: fields count from
	// after its closing parenthesis, where field 3 (state) starts.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc/PID/stat format")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc/PID/stat format")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * time.Second / clockTick, nil
}

// countWriter counts and drops what it is given.
type countWriter struct{ n atomic.Int64 }

func (w *countWriter) Write(p []byte) (int, error) {
	w.n.Add(int64(len(p)))
	return len(p), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// machineCPU returns the busy CPU time of the whole machine so far
// (everything in /proc/stat's cpu line but idle and iowait).
func machineCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, errors.New("unexpected /proc/stat format")
	}
	var busy int64
	for i, s := range f[1:] {
		if i >= 8 { // guest times are already in user and nice
			break
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, err
		}
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / clockTick, nil
}
