package main

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// report is everything one run measured.
type report struct {
	Command    string
	Date       time.Time
	Machine    machine
	Opts       options
	BinarySize int64

	QuietLoad   float64       // CPUs other processes used just before the measurements
	QuietWaited time.Duration // how long the driver waited for them to calm down

	ColdHermes, WarmHermes, ColdBaseline, VersionHermes startStats
	Inits                                               initStats

	// One run per round; the report shows the median round by req/s.
	LoadBaseline, LoadHermes, LoadHermesWarn, LoadHermesLive []serverRun

	Route      routeResult
	RouteAlone routeResult // one sender: what routing adds to a message
	Edit       editResult

	GoTestCmd string
	GoTestOut string
	GoTestOK  bool
}

// Goals of the rewrite.
const (
	goalStart      = 50 * time.Millisecond
	goalIdleMemory = 30_000_000 // bytes (30 MB)
	goalRatio      = 0.50
	goalRouteRate  = 1000 // messages per second
	goalRouteP99   = 10 * time.Millisecond
	goalWake       = 150 * time.Millisecond // sleeping local container, p50
	goalRouteAdds  = 5 * time.Millisecond
	goalE2E        = time.Second // p50
)

func (r *report) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	m := r.Machine
	o := r.Opts
	runs := r.runs()
	base, hInfo, hWarn, hLive := runs[0].r, runs[1].r, runs[2].r, runs[3].r

	_, coldMed, coldP90, _, _ := r.ColdHermes.summary()
	hIdle := hInfo.Idle.RSS
	ratio := hInfo.Load.RPS / base.Load.RPS
	ratioWarn := hWarn.Load.RPS / base.Load.RPS

	p("# Hermes benchmarks")
	p("")
	p("Generated %s by `%s`, which builds Hermes, runs every measurement below and writes this whole file; "+
		"run it again rather than editing the file.", r.Date.Format("2006-01-02 15:04 UTC"), r.Command)
	p("")
	p("## Machine")
	p("")
	p("| | |")
	p("|---|---|")
	p("| CPU | %s, %d logical CPUs (`runtime.NumCPU`) |", m.CPUModel, m.CPUs)
	p("| Memory | %.1f GiB |", float64(m.MemTotal)/(1<<30))
	p("| OS/arch | %s (kernel %s) |", m.OSArch, m.Kernel)
	p("| Go | %s |", m.GoVersion)
	p("| hermes binary | %.1f MB (`CGO_ENABLED=0 go %s`, as the Dockerfile builds it) |", float64(r.BinarySize)/1e6, strings.Join(buildFlagsQuoted(), " "))
	p("")
	p("The load driver and the servers it measures run on the same machine and share its %d CPUs: during the "+
		"throughput runs the driver's own client uses a large part of them (the driver CPU column below), so "+
		"absolute requests per second are well below what a separate client machine would see. The **ratios** to "+
		"the bare net/http server, measured with the same client, concurrency and duration, are the numbers to "+
		"compare across machines.", m.CPUs)
	p("")
	quiet := fmt.Sprintf("Other processes on the machine used %.2f CPUs just before the measurements", r.QuietLoad)
	if r.QuietWaited > 1500*time.Millisecond {
		quiet += fmt.Sprintf(" (after the driver waited %s for them to calm down)", r.QuietWaited.Round(time.Second))
	}
	p("%s, %.2f on average during the cold starts, and the \"other CPUs\" column below during each throughput run "+
		"(busy time in `/proc/stat` minus the server's and the driver's own). Anything well above zero means another "+
		"workload competed for the CPUs and the numbers of that part are pessimistic.", quiet, r.ColdHermes.otherLoad())
	p("")

	p("## Goals")
	p("")
	p("| goal | target | measured | |")
	p("|---|---|---|---|")
	p("| start-up (exec to first 200 from `/health`, fresh data dir) | < %s | median %s, p90 %s | %s |",
		ms(goalStart), ms(coldMed), ms(coldP90), met(coldMed < goalStart))
	p("| idle memory (VmRSS 200 ms after the first 200) | < %d MB | %s (private %s, file-backed %s) | %s |",
		goalIdleMemory/1_000_000, mb(hIdle), mb(hInfo.Idle.Anon), mb(hInfo.Idle.File), met(hIdle < goalIdleMemory))
	p("| session status throughput vs a bare net/http handler | ≥ %.0f %% | %.0f %% (%s vs %s req/s); %.0f %% with `HERMES_LOG_LEVEL=warn` | %s |",
		goalRatio*100, ratio*100, rps(hInfo.Load.RPS), rps(base.Load.RPS), ratioWarn*100, met(ratio >= goalRatio))
	rr := r.Route
	p("| inbound message → job durably on the input queue (router on SQLite) | ≥ %d msg/s, p99 < %s | %.0f msg/s, p99 %s (raw commits of the same file: %.0f/s) | %s |",
		goalRouteRate, ms(goalRouteP99), rr.MsgsPerSec(), ms(rr.P99), rr.CommitsPerSec(),
		met(rr.MsgsPerSec() >= goalRouteRate && rr.P99 < goalRouteP99))
	if e := r.Edit; len(e.WakeSleeping) > 0 {
		ws, _ := editSummary(e.WakeSleeping)
		es, _ := editSummary(e.E2ERunning)
		p("| wake of a sleeping local container (job queued → worker started on it) | p50 < %s | p50 %s | %s |",
			ms(goalWake), ms(ws), met(ws < goalWake))
		ra := r.RouteAlone
		p("| routing adds (inbound message → job on the queue and acknowledged, one sender, p50; p99) | < %s | %s; %s | %s |",
			ms(goalRouteAdds), ms(ra.P50), ms(ra.P99), met(ra.P50 < goalRouteAdds))
		p("| end to end (SMTP DATA accepted → result reply in the outbox, running container, trivial agent) | p50 < %s | p50 %s | %s |",
			ms(goalE2E), ms(es), met(es < goalE2E))
	}
	p("")
	p("For context, the NestJS service Hermes replaces, as measured on the reference machines (not this one): about "+
		"0.6 s to start, about 150 MB resident, and about 11k health requests/s where a bare Go handler served "+
		"about 84k on the same machines, about 13 %% of the bare handler. Hermes here: %s to start, %s idle, "+
		"%.0f %% of the bare handler on its health route (`/health/live`) and %.0f %% on the session status route, "+
		"which authenticates and reads SQLite on every request.",
		ms(coldMed), mb(hIdle), 100*hLive.Load.RPS/base.Load.RPS, ratio*100)
	p("")

	p("## (a) Cold start")
	p("")
	p("Each start execs the server with a free port on 127.0.0.1, polls `GET /health` every %s until it answers 200, "+
		"and records the time from just before exec to that 200; the server then gets SIGTERM and is waited for "+
		"(the stop column). %d starts of each, the targets in turn. Hermes runs `serve` on embedded defaults; a "+
		"fresh data dir means creating the SQLite file, running the migrations and generating the admin key, and "+
		"a restart reuses a data dir that has them. `hermes version` (exec to exit) is the same binary doing "+
		"nothing but start the Go runtime and initialise its packages. The bare net/http server (this driver's "+
		"`baseline-server` subcommand) is the floor: a Go process that only listens and answers.", o.poll, o.starts)
	p("")
	p("| target | runs | min | median | p90 | max | median stop |")
	p("|---|---:|---:|---:|---:|---:|---:|")
	for _, row := range []struct {
		name string
		s    *startStats
	}{
		{"hermes, fresh data dir", &r.ColdHermes},
		{"hermes, restart on its data dir", &r.WarmHermes},
		{"`hermes version`, exec to exit", &r.VersionHermes},
		{"bare net/http server", &r.ColdBaseline},
	} {
		lo, med, p90, hi, stop := row.s.summary()
		stopS := ms(stop)
		if row.s == &r.VersionHermes {
			stopS = "–"
		}
		p("| %s | %d | %s | %s | %s | %s | %s |", row.name, len(row.s.Samples), ms(lo), ms(med), ms(p90), ms(hi), stopS)
	}
	p("")
	if in := r.Inits; in.Runs > 0 {
		var top []string
		for _, x := range in.Top {
			top = append(top, fmt.Sprintf("%s %s", strings.TrimPrefix(x.Name, "github.com/"), ms(x.Clock)))
		}
		p("Package initialisation (`GODEBUG=inittrace=1 hermes version`, median of %d): the init functions run for "+
			"%s in all and the last one ends %s after the process starts; the rest is the runtime's own start and "+
			"the gaps between init functions, probably first touches of the pages of a %.0f MB binary. "+
			"The costliest: %s.",
			in.Runs, ms(in.Clock), ms(in.End), float64(r.BinarySize)/1e6, strings.Join(top, ", "))
		p("")
	}

	p("## (b) Resident memory")
	p("")
	p("VmRSS from `/proc/PID/status`: idle is 200 ms after the first 200 from `/health` (Hermes with its projects " +
		"file loaded); after load is right after the throughput run below (warm-up included; far more than 10,000 " +
		"status requests), and the peak is VmHWM. From the median round. Idle RSS splits into private memory " +
		"(RssAnon: heap, stacks) and file-backed pages (RssFile: mostly the touched pages of the binary itself, " +
		"shared by every process of it and reclaimable by the kernel); a larger binary raises the second.")
	p("")
	p("| target | idle | idle private | idle file-backed | after load | peak | requests served |")
	p("|---|---:|---:|---:|---:|---:|---:|")
	for _, row := range runs {
		p("| %s | %s | %s | %s | %s | %s | %d |", row.name, mb(row.r.Idle.RSS), mb(row.r.Idle.Anon), mb(row.r.Idle.File),
			mb(row.r.After.RSS), mb(row.r.After.HWM), row.r.Load.Total)
	}
	p("")

	p("## (c) Throughput and latency")
	p("")
	p("`GET /api/sessions/{id}/status` (Hermes: API-key authentication, a SQLite read, JSON) from %d concurrent "+
		"keep-alive connections (one `http.Transport`, MaxConnsPerHost = MaxIdleConnsPerHost = %d) in a closed "+
		"loop: each connection sends its next request when it has read the previous answer. %s of warm-up, then "+
		"%s measured; latency runs from sending a request to having read its body, and every one is recorded. "+
		"Every answer must be a 200 with a body, or the run fails. The bare net/http server gets the same request "+
		"from the same client and answers a fixed JSON body of similar size (%d bytes; Hermes's is %d). Hermes "+
		"runs in its default configuration, which writes one JSON access-log line per request to standard output "+
		"(read and discarded by the driver), and with `HERMES_LOG_LEVEL=warn`. A fourth run sends Hermes "+
		"`GET /health/live` instead (the whole middleware chain, no credentials, no store, and no access-log line: "+
		"health routes log at debug), which is the closest to the reference's health benchmark and separates the "+
		"cost of the HTTP layer from that of the route. %d round(s), the targets in turn in each; the table shows "+
		"each target's median round by req/s, with the range over all rounds.",
		o.concurrency, o.concurrency, o.warmup, o.duration, base.Load.ServerBytes, hInfo.Load.ServerBytes, o.rounds)
	p("")
	p("| target | requests | req/s | req/s range | p50 | p90 | p99 | max | server CPU/req | driver CPU/req | other CPUs |")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, row := range runs {
		l := row.r.Load
		p("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %.2f |", row.name, l.Requests, rps(l.RPS), row.spread,
			ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max), us(perReq(l.ServerCPU, l.Requests)), us(perReq(l.DriverCPU, l.Requests)),
			l.OtherCPU.Seconds()/l.Elapsed.Seconds())
	}
	p("")
	p("| ratio to the bare server | req/s | p50 | p99 | server CPU/req |")
	p("|---|---:|---:|---:|---:|")
	for _, row := range runs[1:] {
		l := row.r.Load
		p("| %s | %.2f | %.2f× | %.2f× | %.2f× |", row.name, l.RPS/base.Load.RPS,
			ratioOf(l.P50, base.Load.P50), ratioOf(l.P99, base.Load.P99),
			ratioOf(perReq(l.ServerCPU, l.Requests), perReq(base.Load.ServerCPU, base.Load.Requests)))
	}
	p("")
	p("Every round, as req/s (other CPUs):")
	p("")
	for i, all := range [][]serverRun{r.LoadBaseline, r.LoadHermes, r.LoadHermesWarn, r.LoadHermesLive} {
		var xs []string
		for _, x := range all {
			xs = append(xs, fmt.Sprintf("%s (%.2f)", rps(x.Load.RPS), x.Load.OtherCPU.Seconds()/x.Load.Elapsed.Seconds()))
		}
		p("- %s: %s", runs[i].name, strings.Join(xs, ", "))
	}
	p("")
	cpuBase := perReq(base.Load.ServerCPU, base.Load.Requests)
	cpuInfo := perReq(hInfo.Load.ServerCPU, hInfo.Load.Requests)
	cpuLive := perReq(hLive.Load.ServerCPU, hLive.Load.Requests)
	if n := hInfo.Load.Total; n > 0 && cpuInfo > 0 {
		p("CPU per request is user + system time from `/proc/PID/stat` (10 ms resolution) over the measured window "+
			"divided by the requests in it. It is the number least disturbed by the shared machine, and it says what "+
			"a dedicated client would see: a server given all the cores is CPU-bound, so its throughput ratio would "+
			"approach the inverse of the CPU ratio, about %.0f %% of the bare server for the status route and %.0f %% "+
			"for `/health/live`. Here the driver's own cost per request (similar for every target) is added to both "+
			"sides of the ratio, which narrows it. Of Hermes's %s per status request, the HTTP layer and middleware "+
			"(`/health/live`) account for %s, the bare server's net/http for %s of those. In its default "+
			"configuration Hermes wrote %.0f bytes of access log per status request (%.1f MB in the run).",
			100*float64(cpuBase)/float64(cpuInfo), 100*float64(cpuBase)/float64(max(cpuLive, 1)),
			us(cpuInfo), us(cpuLive), us(cpuBase),
			float64(hInfo.LogBytes)/float64(n), float64(hInfo.LogBytes)/1e6)
		p("")
	}

	p("## (d) Routing")
	p("")
	p("Email-shaped messages go through `router.Route` in process, as every channel hands them over: %d senders, "+
		"each keeping one conversation going for %s (its first message opens a thread and a session, each next one "+
		"replies to the previous), so every message is deduplicated, its project and sender resolved, its thread "+
		"found by its References, its session renewed, its job written to the container's input queue and its "+
		"acknowledgement composed as a threaded email into the outbox — all on one SQLite file. The baseline is the "+
		"same number of goroutines committing a one-row INSERT each in its own IMMEDIATE transaction in that file: "+
		"the physical limit of durable writes here. Routing one message takes several such commits (claim, thread "+
		"touch, session renewal, job, history, outbox, completion), so its rate is a fraction of the commit rate.",
		rr.Concurrency, o.duration)
	p("")
	p("| | count | per second | p50 | p99 | max |")
	p("|---|---:|---:|---:|---:|---:|")
	p("| messages routed | %d | %.0f | %s | %s | %s |", rr.Messages, rr.MsgsPerSec(), ms(rr.P50), ms(rr.P99), ms(rr.Max))
	p("| raw single-row commits | %d | %.0f | %s | %s | |", rr.Commits, rr.CommitsPerSec(), ms(rr.CommitP50), ms(rr.CommitP99))
	p("")
	p("Jobs found on the input queues afterwards: %d (every routed message, none lost); routing errors: %d; "+
		"ratio of routed messages to raw commits: %.2f.", rr.JobsOnQueues, rr.RouteErrors, rr.MsgsPerSec()/max(rr.CommitsPerSec(), 1))
	p("")
	p("Where the time goes (a CPU profile of `BenchmarkRoute` in `internal/router`, `go test -bench Route "+
		"-cpuprofile`): about half in the store's write transactions — a routed message makes seven durable "+
		"commits (intake claim, thread references and recency, session lease, job, outbox, history, "+
		"completion), and each commit's WAL writes and lock system calls cost far more in this VM than the "+
		"raw one-integer commit of the baseline — and most of the rest in reads (project, sender, thread, "+
		"session, container, queue depth) and composing the threaded acknowledgement. The latency is that of a "+
		"closed loop: with %d senders a message also waits for the others' commits on the one writer "+
		"connection; `-senders 1` shows the latency of a message alone.", rr.Concurrency)
	p("")

	if e := r.Edit; len(e.WakeSleeping) > 0 {
		p("## (e) Edit containers")
		p("")
		p("The built binary serves the README's quick tour: the example site (a local git repository) and the example "+
			"command agent, `HERMES_IDLE_TIMEOUT=1s` so that the container falls asleep between samples. **Wake**: a "+
			"follow-up instruction on a session through the API, with the session's event stream open; the time from "+
			"the router's `queued` event to the worker's `started` notice (both stamped on this machine's clock). "+
			"Asleep, that is the local runner starting `hermes worker` (exec, opening the store, the first heartbeat "+
			"and receive; its `git fetch` runs meanwhile, and the job waits for it before the agent runs); running, it "+
			"is the worker's next receive (SQLite queues see another process's sends within 25 ms). **End to end**: an email through the SMTP server; the time "+
			"from `DATA` accepted to the result reply in the outbox (polled every 2 ms): routing, the "+
			"acknowledgement, the wake, the agent, the commit, the preview, the result and its relay. The **floor** "+
			"is the work itself, done directly in a plain clone: the same agent, then `git add` and `git commit`. "+
			"%d samples of each.", len(e.WakeSleeping))
		p("")
		p("| | p50 | p99 (max) | vs the floor (p50) |")
		p("|---|---:|---:|---:|")
		fl, fl99 := editSummary(e.Floor)
		row := func(name string, d []time.Duration) {
			a, z := editSummary(d)
			p("| %s | %s | %s | %.1f× |", name, ms(a), ms(z), float64(a)/float64(max(fl, 1)))
		}
		row("wake: sleeping container", e.WakeSleeping)
		row("wake: running container", e.WakeRunning)
		row("end to end: sleeping container", e.E2ESleeping)
		row("end to end: running container", e.E2ERunning)
		p("| floor: the agent and a commit in a plain clone | %s | %s | 1.0× |", ms(fl), ms(fl99))
		vs := r.VersionHermes
		if len(vs.Samples) > 0 {
			_, vmed, _, _, _ := vs.summary()
			p("")
			p("For the wake of a sleeping container, the floor is starting a process of the same binary: `hermes version`, exec to exit, took %s (median of section a).", ms(vmed))
		}
		p("")
	}

	if r.GoTestCmd != "" {
		p("## Package benchmarks")
		p("")
		p("`%s`, run by the same command after the measurements above. Each benchmark has a baseline doing the "+
			"least work of its kind: `BaselineSingleRowCommit` (a bare one-integer INSERT committed in its own "+
			"IMMEDIATE transaction, in the same database file, pool and pragmas) for `UpdateSession` and "+
			"`CreateSession`; `BaselineSingleRowRead` for `GetSession`; and `BaselineHandler` (a bare "+
			"`http.HandlerFunc` writing the same bytes) for `Status`, which runs the whole handler chain in process "+
			"with `httptest.NewRecorder`, no network. The -N suffix of each name is GOMAXPROCS.", r.GoTestCmd)
		if !r.GoTestOK {
			p("")
			p("**The command failed**; its output follows.")
		}
		p("")
		p("```")
		p("%s", strings.TrimRight(r.GoTestOut, "\n"))
		p("```")
	}
	return b.String()
}

type namedRun struct {
	name   string
	r      *serverRun
	spread string // req/s range over the rounds
}

// runs returns the median round of each target.
func (r *report) runs() []namedRun {
	pick := func(name string, all []serverRun) namedRun {
		if len(all) == 0 {
			return namedRun{name: name, r: &serverRun{}}
		}
		sorted := slices.Clone(all)
		slices.SortFunc(sorted, func(a, b serverRun) int { return cmp.Compare(a.Load.RPS, b.Load.RPS) })
		return namedRun{name, &sorted[(len(sorted)-1)/2],
			rps(sorted[0].Load.RPS) + "–" + rps(sorted[len(sorted)-1].Load.RPS)}
	}
	return []namedRun{
		pick("bare net/http server", r.LoadBaseline),
		pick("hermes, default (info access log)", r.LoadHermes),
		pick("hermes, `HERMES_LOG_LEVEL=warn`", r.LoadHermesWarn),
		pick("hermes, `GET /health/live`", r.LoadHermesLive),
	}
}

func met(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**not met**"
}

func ms(d time.Duration) string {
	switch {
	case d >= 100*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2f ms", float64(d)/1e6)
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/1e3) }

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

func rps(x float64) string {
	if x >= 1000 {
		return fmt.Sprintf("%.1fk", x/1000)
	}
	return fmt.Sprintf("%.0f", x)
}

func perReq(d time.Duration, n int) time.Duration {
	if n == 0 {
		return 0
	}
	return d / time.Duration(n)
}

func ratioOf(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// buildFlagsQuoted is buildFlags as a shell would need them.
func buildFlagsQuoted() []string {
	out := make([]string, len(buildFlags))
	for i, f := range buildFlags {
		if strings.ContainsRune(f, ' ') {
			f = `"` + f + `"`
		}
		out[i] = f
	}
	return out
}
