// Command hermesbench measures Hermes against the goals of its rewrite:
// cold start, resident memory, and session-status throughput and latency
// relative to a bare net/http handler, then runs the package benchmarks
// (go test -bench) and writes everything as one Markdown report.
//
//	go run ./cmd/hermesbench [-out docs/BENCHMARKS.md] [-duration 5s]
//
// It builds the hermes binary, and this program again for the bare
// net/http server (the hidden subcommand `hermesbench baseline-server
// -addr 127.0.0.1:0`, which prints its address), into a temp dir as the
// Dockerfile builds Hermes, and runs both as separate processes on
// 127.0.0.1 only. Every wait has a deadline, and every child process is
// ended when the driver exits or is interrupted (and, on Linux, killed by
// the kernel if the driver dies).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var selfPID = os.Getpid()

// buildFlags are those of the Dockerfile and `make build` (with
// CGO_ENABLED=0), but for the version stamp.
var buildFlags = []string{"build", "-trimpath", "-ldflags", "-s -w"}

type options struct {
	out         string
	duration    time.Duration
	warmup      time.Duration
	concurrency int
	starts      int
	poll        time.Duration
	rounds      int
	quiet       time.Duration
	goTest      bool
	senders     int
	edits       int
	benchtime   string
	timeout     time.Duration
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "baseline-server" {
		if err := baselineServer(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "hermesbench baseline-server:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	fs := flag.NewFlagSet("hermesbench", flag.ExitOnError)
	fs.StringVar(&o.out, "out", "", "also write the Markdown report to this file")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "measured duration of each throughput run")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unrecorded warm-up before each throughput run")
	fs.IntVar(&o.concurrency, "c", 64, "concurrent keep-alive connections of the throughput runs")
	fs.IntVar(&o.senders, "senders", 8, "concurrent senders (conversations) of the routing run")
	fs.IntVar(&o.edits, "edits", 10, "samples of each kind in the edit-container run (wake, end to end); 0 skips it")
	fs.IntVar(&o.starts, "starts", 20, "cold starts per target")
	fs.DurationVar(&o.poll, "poll", 2*time.Millisecond, "interval of the /health polls during start-up")
	fs.IntVar(&o.rounds, "rounds", 3, "throughput rounds (each: baseline, hermes status, hermes status at warn, hermes /health/live); the median round of each target is reported")
	fs.DurationVar(&o.quiet, "quiet", time.Minute, "before measuring, wait up to this long for other processes to leave the CPUs idle (and up to a quarter of it before each throughput run, a tenth before each cold start)")
	fs.BoolVar(&o.goTest, "gotest", true, "also run the go test benchmarks of internal/sqlite and internal/httpapi and include their output")
	fs.StringVar(&o.benchtime, "benchtime", "", "passed to go test -benchtime (default: go test's own, 1s)")
	fs.DurationVar(&o.timeout, "timeout", 20*time.Minute, "give up (and end every child process) after this long")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./cmd/hermesbench [flags]\n\nRun it from inside the hermes module. Flags:\n")
		fs.PrintDefaults()
	}
	_ = fs.Parse(os.Args[1:])
	if fs.NArg() > 0 || o.concurrency < 1 || o.starts < 1 || o.rounds < 1 || o.duration <= 0 || o.warmup < 0 || o.poll <= 0 {
		fs.Usage()
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	code := 0
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "hermesbench:", err)
		code = 1
	}
	cancel()
	stop()
	killAll()
	os.Exit(code)
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "hermesbench: "+format+"\n", args...)
}

func run(ctx context.Context, o options) (err error) {
	defer killAll()
	env, err := goEnv(ctx)
	if err != nil {
		return err
	}
	root := filepath.Dir(env.GOMOD)
	tmp, err := os.MkdirTemp("", "hermesbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	rep := &report{
		Command:  "go run ./cmd/hermesbench " + strings.Join(os.Args[1:], " "),
		Date:     time.Now().UTC(),
		Machine:  describeMachine(env.GOVERSION),
		Opts:     o,
		GoTestOK: true,
	}

	// Both servers are built as the Dockerfile and `make build` build
	// Hermes: static, trimmed, stripped. The baseline server is this
	// program's hidden subcommand, built the same way so that the floor
	// pays the same exec and loading costs.
	bin := filepath.Join(tmp, "hermes")
	self := filepath.Join(tmp, "hermesbench")
	for _, b := range []struct{ out, pkg string }{{bin, "./cmd/hermes"}, {self, "./cmd/hermesbench"}} {
		progress("go build %s", b.pkg)
		build := exec.CommandContext(ctx, "go", append(buildFlags, "-o", b.out, b.pkg)...)
		build.Dir = root
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		ownGroup(build)
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", b.pkg, err, out)
		}
	}
	if fi, err := os.Stat(bin); err == nil {
		rep.BinarySize = fi.Size()
	}

	hermes := hermesTarget{bin: bin, tmp: tmp}
	baseline := baselineTarget{self: self}

	progress("waiting up to %s for the machine to be quiet", o.quiet)
	rep.QuietLoad, rep.QuietWaited = waitQuiet(ctx, o.quiet)

	// (a) Cold starts, the targets in turn so that all see the same machine
	// conditions.
	progress("cold starts: %d of each", o.starts)
	warmDir := filepath.Join(tmp, "warm")
	for i := range o.starts {
		waitQuiet(ctx, o.quiet/10)
		d, err := os.MkdirTemp(tmp, "cold-")
		if err != nil {
			return err
		}
		s, err := coldStart(ctx, hermes.start(d, nil), o.poll)
		if err != nil {
			return fmt.Errorf("hermes cold start %d: %w", i+1, err)
		}
		rep.ColdHermes.add(s)
		_ = os.RemoveAll(d)

		s, err = coldStart(ctx, baseline.start(), o.poll)
		if err != nil {
			return fmt.Errorf("baseline cold start %d: %w", i+1, err)
		}
		rep.ColdBaseline.add(s)

		if i == 0 { // make the data dir the restarts reuse
			if _, err := coldStart(ctx, hermes.start(warmDir, nil), o.poll); err != nil {
				return fmt.Errorf("hermes start on %s: %w", warmDir, err)
			}
		}
		s, err = coldStart(ctx, hermes.start(warmDir, nil), o.poll)
		if err != nil {
			return fmt.Errorf("hermes restart %d: %w", i+1, err)
		}
		rep.WarmHermes.add(s)

		s, err = execToExit(ctx, bin, "version")
		if err != nil {
			return fmt.Errorf("hermes version: %w", err)
		}
		rep.VersionHermes.add(s)
	}
	if rep.Inits, err = initTrace(ctx, bin, 5); err != nil {
		return fmt.Errorf("hermes version with GODEBUG=inittrace=1: %w", err)
	}

	// (b) and (c): memory, throughput and latency, the targets in turn in
	// each round.
	cfg := loadConfig{Concurrency: o.concurrency, Warmup: o.warmup, Duration: o.duration}
	for round := 1; round <= o.rounds; round++ {
		progress("throughput round %d of %d: bare net/http server, %d connections, %s + %s warm-up", round, o.rounds, o.concurrency, o.duration, o.warmup)
		waitQuiet(ctx, o.quiet/4)
		r, err := loadRun(ctx, "baseline", baseline.start(), nil, cfg, o.poll)
		if err != nil {
			return fmt.Errorf("baseline throughput run: %w", err)
		}
		rep.LoadBaseline = append(rep.LoadBaseline, r)
		progress("throughput round %d of %d: hermes, default configuration (info access log)", round, o.rounds)
		waitQuiet(ctx, o.quiet/4)
		if r, err = loadRun(ctx, "hermes", hermes.startLoad("info"), hermes.session, cfg, o.poll); err != nil {
			return fmt.Errorf("hermes throughput run: %w", err)
		}
		rep.LoadHermes = append(rep.LoadHermes, r)
		progress("throughput round %d of %d: hermes, HERMES_LOG_LEVEL=warn", round, o.rounds)
		waitQuiet(ctx, o.quiet/4)
		if r, err = loadRun(ctx, "hermes", hermes.startLoad("warn"), hermes.session, cfg, o.poll); err != nil {
			return fmt.Errorf("hermes (warn) throughput run: %w", err)
		}
		rep.LoadHermesWarn = append(rep.LoadHermesWarn, r)
		progress("throughput round %d of %d: hermes, GET /health/live", round, o.rounds)
		waitQuiet(ctx, o.quiet/4)
		live := func(context.Context, *child, string) (string, http.Header, error) { return "", nil, nil }
		if r, err = loadRun(ctx, "hermes", hermes.startLoad("info"), live, cfg, o.poll); err != nil {
			return fmt.Errorf("hermes /health/live throughput run: %w", err)
		}
		rep.LoadHermesLive = append(rep.LoadHermesLive, r)
	}

	// (d) Routing: messages in process through the real router on SQLite,
	// beside the raw commit rate of the same file.
	progress("routing: %d senders for %s, then raw commits for as long", o.senders, o.duration)
	waitQuiet(ctx, o.quiet/4)
	if rep.Route, err = routeBench(ctx, tmp, max(o.senders, 1), o.duration); err != nil {
		return fmt.Errorf("routing run: %w", err)
	}

	// (e) Edit containers: wake times and end to end, on the example site.
	if o.edits > 0 {
		progress("edit containers: %d samples of each kind", o.edits)
		waitQuiet(ctx, o.quiet/4)
		if rep.Edit, err = editBenchRun(ctx, root, tmp, hermes, o.edits); err != nil {
			return fmt.Errorf("edit-container run: %w", err)
		}
		// What routing adds to one message: the routing run with a single
		// sender, so that no message waits for another's commits.
		progress("routing: 1 sender for %s", o.duration)
		alone, err := os.MkdirTemp(tmp, "route1-")
		if err != nil {
			return err
		}
		if rep.RouteAlone, err = routeBench(ctx, alone, 1, o.duration); err != nil {
			return fmt.Errorf("routing run with one sender: %w", err)
		}
	}

	if o.goTest {
		args := []string{"test", "-run", "^$", "-bench", ".", "-benchmem"}
		if o.benchtime != "" {
			args = append(args, "-benchtime", o.benchtime)
		}
		args = append(args, "./internal/sqlite/", "./internal/httpapi/", "./internal/router/", "./internal/relay/")
		rep.GoTestCmd = "go " + strings.Join(args, " ")
		progress("%s", rep.GoTestCmd)
		tctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		cmd := exec.CommandContext(tctx, "go", args...)
		cmd.Dir = root
		ownGroup(cmd)
		out, err := cmd.CombinedOutput()
		cancel()
		rep.GoTestOut = string(out)
		if err != nil {
			rep.GoTestOK = false
			defer func() {
				if err == nil {
					err = fmt.Errorf("%s failed; its output is in the report", rep.GoTestCmd)
				}
			}()
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}

	md := rep.markdown()
	fmt.Print(md)
	if o.out != "" {
		if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
			return err
		}
		progress("wrote %s", o.out)
	}
	return nil
}

type goEnvOut struct{ GOMOD, GOVERSION string }

// goEnv finds the module the driver runs in, and the toolchain.
func goEnv(ctx context.Context) (goEnvOut, error) {
	var e goEnvOut
	out, err := exec.CommandContext(ctx, "go", "env", "-json", "GOMOD", "GOVERSION").Output()
	if err != nil {
		return e, fmt.Errorf("go env: %w", err)
	}
	if err := json.Unmarshal(out, &e); err != nil {
		return e, fmt.Errorf("go env: %w", err)
	}
	if e.GOMOD == "" || e.GOMOD == os.DevNull {
		return e, errors.New("run hermesbench from inside the hermes module (go env GOMOD is empty)")
	}
	return e, nil
}

// baseEnv is the little of the driver's environment that children get;
// everything that configures Hermes is set explicitly.
func baseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// launcher starts a server and says where it answers.
type launcher func() (c *child, base string, err error)

// hermesTarget starts the built hermes binary.
type hermesTarget struct {
	bin, tmp string
}

// start runs `hermes serve` on dataDir with a free port; extra adds to its
// environment.
func (h hermesTarget) start(dataDir string, extra []string) launcher {
	return func() (*child, string, error) {
		port, err1 := freePort()
		smtp, err2 := freePort()
		if err := errors.Join(err1, err2); err != nil {
			return nil, "", err
		}
		env := append(baseEnv(),
			"HERMES_DATA_DIR="+dataDir,
			"PORT="+strconv.Itoa(port),
			"HERMES_HOST=127.0.0.1",                          // never listen beyond loopback
			"HERMES_SMTP_ADDR=127.0.0.1:"+strconv.Itoa(smtp), // a free port, not the default 2525
		)
		env = append(env, extra...)
		c, err := startChild("hermes", h.bin, []string{"serve"}, env)
		return c, "http://127.0.0.1:" + strconv.Itoa(port), err
	}
}

// startLoad runs hermes on a fresh data dir with a projects file of one
// client, project and user, at the given log level ("info" is the
// default and is left unset).
func (h hermesTarget) startLoad(level string) launcher {
	return func() (*child, string, error) {
		dir, err := os.MkdirTemp(h.tmp, "load-")
		if err != nil {
			return nil, "", err
		}
		projects := filepath.Join(dir, "projects.json")
		const file = `{"clients": [{"id": "amelia", "name": "Amelia Stamps",
  "projects": [{"id": "site", "repoUrl": "/srv/amelia.git", "emailAddresses": ["edit@amelia.example.com"]}],
  "users": [{"id": "scott", "name": "Scott", "emails": ["scott@example.com"]}]}]}
`
		if err := os.WriteFile(projects, []byte(file), 0o600); err != nil {
			return nil, "", err
		}
		extra := []string{"HERMES_PROJECTS_FILE=" + projects}
		if level != "info" {
			extra = append(extra, "HERMES_LOG_LEVEL="+level)
		}
		return h.start(filepath.Join(dir, "data"), extra)()
	}
}

// session activates a session with the generated admin key and returns
// the status URL and the headers to fetch it with.
func (h hermesTarget) session(ctx context.Context, c *child, base string) (string, http.Header, error) {
	var dataDir string
	for _, kv := range c.cmd.Env {
		if v, ok := strings.CutPrefix(kv, "HERMES_DATA_DIR="); ok {
			dataDir = v
		}
	}
	key, err := os.ReadFile(filepath.Join(dataDir, "admin-api-key"))
	if err != nil {
		return "", nil, fmt.Errorf("reading the generated admin key: %w", err)
	}
	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer "+strings.TrimSpace(string(key)))
	body := `{"clientId":"amelia","userId":"scott","instruction":"make the header blue"}`
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, base+"/api/sessions/activate", strings.NewReader(body))
	if err != nil {
		return "", nil, err
	}
	req.Header = hdr.Clone()
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("activate: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		return "", nil, fmt.Errorf("activate: %s: %s", resp.Status, b)
	}
	var out struct{ SessionID string }
	if err := json.Unmarshal(b, &out); err != nil || out.SessionID == "" {
		return "", nil, fmt.Errorf("activate: unexpected body %s", b)
	}
	// Check the route answers before timing it.
	sreq, _ := http.NewRequestWithContext(rctx, http.MethodGet, base+"/api/sessions/"+out.SessionID+"/status", nil)
	sreq.Header = hdr.Clone()
	sresp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(sreq)
	if err != nil {
		return "", nil, fmt.Errorf("status: %w", err)
	}
	sb, _ := io.ReadAll(io.LimitReader(sresp.Body, 1<<20))
	sresp.Body.Close()
	if sresp.StatusCode != http.StatusOK || !bytes.Contains(sb, []byte(out.SessionID)) {
		return "", nil, fmt.Errorf("status: %s: %s", sresp.Status, sb)
	}
	return base + "/api/sessions/" + out.SessionID + "/status", hdr, nil
}

// baselineTarget starts this program's bare net/http server.
type baselineTarget struct{ self string }

func (b baselineTarget) start() launcher {
	return func() (*child, string, error) {
		port, err := freePort()
		if err != nil {
			return nil, "", err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		c, err := startChild("baseline server", b.self, []string{"baseline-server", "-addr", addr}, baseEnv())
		return c, "http://" + addr, err
	}
}

// startSample is one start: exec to first 200 from /health, and SIGTERM to
// exit. Wall is the whole sample, start to exit, during which other
// processes on the machine used Other CPU time.
type startSample struct{ Ready, Stop, Wall, Other time.Duration }

func coldStart(ctx context.Context, start launcher, poll time.Duration) (startSample, error) {
	m0, _ := machineCPU()
	d0, _ := cpuTime(selfPID)
	c, base, err := start()
	if err != nil {
		return startSample{}, err
	}
	ready, err := waitHealthy(ctx, c, base+"/health", poll, 10*time.Second)
	if err != nil {
		_, _ = c.stop(5 * time.Second)
		return startSample{}, err
	}
	s := startSample{Ready: ready.Sub(c.started)}
	if s.Stop, err = c.stop(10 * time.Second); err != nil {
		return s, err
	}
	s.Wall = time.Since(c.started)
	m1, _ := machineCPU()
	d1, _ := cpuTime(selfPID)
	s.Other = max(0, m1-m0-(d1-d0)-childCPU(c.cmd))
	return s, nil
}

// execToExit times one run of a command that exits by itself.
func execToExit(ctx context.Context, bin string, args ...string) (startSample, error) {
	m0, _ := machineCPU()
	d0, _ := cpuTime(selfPID)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = baseEnv()
	cmd.SysProcAttr = sysProcAttr()
	t0 := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return startSample{}, fmt.Errorf("%w: %s", err, out)
	}
	s := startSample{Ready: time.Since(t0)}
	s.Wall = s.Ready
	m1, _ := machineCPU()
	d1, _ := cpuTime(selfPID)
	s.Other = max(0, m1-m0-(d1-d0)-childCPU(cmd))
	return s, nil
}

func childCPU(cmd *exec.Cmd) time.Duration {
	if cmd.ProcessState == nil {
		return 0
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// initStats summarises GODEBUG=inittrace=1 output: the package init
// functions' own clock time, when the last one ended after the runtime
// started, and the costliest packages.
type initStats struct {
	Runs       int
	Clock, End time.Duration // medians
	Top        []initPkg     // by clock time, of the median run
}

type initPkg struct {
	Name  string
	Clock time.Duration
}

// initTrace runs `hermes version` n times with GODEBUG=inittrace=1.
func initTrace(ctx context.Context, bin string, n int) (initStats, error) {
	type run struct {
		clock, end time.Duration
		pkgs       []initPkg
	}
	var runs []run
	for range n {
		cmd := exec.CommandContext(ctx, bin, "version")
		cmd.Env = append(baseEnv(), "GODEBUG=inittrace=1")
		cmd.SysProcAttr = sysProcAttr()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return initStats{}, fmt.Errorf("%w: %s", err, stderr.Bytes())
		}
		var r run
		// init PKG @START ms, CLOCK ms clock, BYTES bytes, ALLOCS allocs
		for line := range strings.SplitSeq(stderr.String(), "\n") {
			f := strings.Fields(line)
			if len(f) < 6 || f[0] != "init" || !strings.HasPrefix(f[2], "@") {
				continue
			}
			at, err1 := strconv.ParseFloat(strings.TrimPrefix(f[2], "@"), 64)
			clock, err2 := strconv.ParseFloat(f[4], 64)
			if err1 != nil || err2 != nil {
				continue
			}
			d := time.Duration(clock * float64(time.Millisecond))
			r.clock += d
			r.end = max(r.end, time.Duration(at*float64(time.Millisecond))+d)
			r.pkgs = append(r.pkgs, initPkg{f[1], d})
		}
		runs = append(runs, r)
	}
	slices.SortFunc(runs, func(a, b run) int { return int(a.end - b.end) })
	mid := runs[len(runs)/2]
	slices.SortFunc(mid.pkgs, func(a, b initPkg) int { return int(b.Clock - a.Clock) })
	clocks := make([]time.Duration, len(runs))
	for i, r := range runs {
		clocks[i] = r.clock
	}
	slices.Sort(clocks)
	return initStats{Runs: n, Clock: median(clocks), End: mid.end, Top: mid.pkgs[:min(6, len(mid.pkgs))]}, nil
}

// quietSample is how long waitQuiet watches the CPUs at a time.
const quietSample = 250 * time.Millisecond

// waitQuiet waits up to limit for the machine's CPUs to be nearly idle
// (other processes using under a quarter of a CPU over quietSample) and
// returns the last load it measured, in CPUs, and how long it waited.
func waitQuiet(ctx context.Context, limit time.Duration) (load float64, waited time.Duration) {
	t0 := time.Now()
	for {
		m0, err := machineCPU()
		if err != nil {
			return -1, 0
		}
		d0, _ := cpuTime(selfPID)
		select {
		case <-ctx.Done():
			return load, time.Since(t0)
		case <-time.After(quietSample):
		}
		m1, _ := machineCPU()
		d1, _ := cpuTime(selfPID)
		load = (m1 - m0 - (d1 - d0)).Seconds() / quietSample.Seconds()
		if load < 0.25 || time.Since(t0) >= limit {
			return load, time.Since(t0)
		}
	}
}

// serverRun is one throughput run with the memory readings around it.
type serverRun struct {
	Idle, After procMem
	Load        loadResult
	LogBytes    int64 // standard output written during the run
}

// sessionFunc prepares the request a load run sends; an empty url means
// GET /health/live.
type sessionFunc func(ctx context.Context, c *child, base string) (url string, hdr http.Header, err error)

// loadRun starts a server, reads its idle memory 200 ms after its first
// 200, drives the status request at it, reads its memory again and stops
// it. Any failed request fails the run.
func loadRun(ctx context.Context, name string, start launcher, session sessionFunc, cfg loadConfig, poll time.Duration) (serverRun, error) {
	var r serverRun
	c, base, err := start()
	if err != nil {
		return r, err
	}
	defer c.stop(10 * time.Second)
	if _, err := waitHealthy(ctx, c, base+"/health", poll, 10*time.Second); err != nil {
		return r, err
	}
	select {
	case <-time.After(200 * time.Millisecond):
	case <-ctx.Done():
		return r, ctx.Err()
	}
	if r.Idle, err = readMem(c.pid()); err != nil {
		return r, err
	}
	url, hdr := base+"/api/sessions/zawwmmjvbssnblyi4znyq4lfcu/status", http.Header{}
	hdr.Set("Authorization", "Bearer hk_not-checked-by-the-baseline-but-sent-all-the-same")
	if session != nil {
		if url, hdr, err = session(ctx, c, base); err != nil {
			return r, err
		}
		if url == "" { // the liveness probe: no session, no credentials
			url, hdr = base+"/health/live", http.Header{}
		}
	}
	logBefore := c.stdout.n.Load()
	r.Load, err = runLoad(ctx, url, hdr, c.pid(), cfg)
	r.LogBytes = c.stdout.n.Load() - logBefore
	if err != nil {
		return r, err
	}
	if c.exited() {
		return r, c.failure()
	}
	if r.After, err = readMem(c.pid()); err != nil {
		return r, err
	}
	if r.Load.Errors > 0 {
		return r, fmt.Errorf("%s: %d of %d requests failed; the first: %s", name, r.Load.Errors, r.Load.Total, r.Load.FirstError)
	}
	if _, err := c.stop(10 * time.Second); err != nil {
		return r, err
	}
	return r, nil
}

// startStats collects start samples.
type startStats struct{ Samples []startSample }

func (s *startStats) add(x startSample) { s.Samples = append(s.Samples, x) }

// otherLoad is the average CPU use of other processes during the samples,
// in CPUs.
func (s *startStats) otherLoad() float64 {
	var other, wall time.Duration
	for _, x := range s.Samples {
		other += x.Other
		wall += x.Wall
	}
	if wall == 0 {
		return 0
	}
	return other.Seconds() / wall.Seconds()
}

// summary returns min, median, p90 and max of the ready times, and the
// median stop time.
func (s *startStats) summary() (lo, med, p90, hi, stop time.Duration) {
	if len(s.Samples) == 0 {
		return
	}
	ready := make([]time.Duration, len(s.Samples))
	stops := make([]time.Duration, len(s.Samples))
	for i, x := range s.Samples {
		ready[i], stops[i] = x.Ready, x.Stop
	}
	slices.Sort(ready)
	slices.Sort(stops)
	return ready[0], median(ready), percentile(ready, 0.90), ready[len(ready)-1], median(stops)
}

func median(sorted []time.Duration) time.Duration {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}
