package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// loadConfig is one closed-loop load run: Concurrency workers, each with
// its own keep-alive connection, send requests back to back for Warmup
// (not recorded) and then for Duration (recorded).
type loadConfig struct {
	Concurrency      int
	Warmup, Duration time.Duration
}

// loadResult is what a load run measured. Latencies are from the moment a
// request is sent to the moment its body has been read in full.
type loadResult struct {
	Requests    int           // recorded requests (started inside the measured window)
	Total       int           // all requests, warm-up included
	Errors      int           // transport errors and non-200 answers, warm-up included
	FirstError  string        // the first of them
	Elapsed     time.Duration // from the window's start to the last recorded request's end
	RPS         float64
	P50, P90    time.Duration
	P99, Max    time.Duration
	Mean        time.Duration
	ServerCPU   time.Duration // CPU time the server used in the measured window
	DriverCPU   time.Duration // CPU time the driver used in the measured window
	OtherCPU    time.Duration // CPU time anything else on the machine used then
	ServerBytes int64         // response body bytes of one request
}

// runLoad drives GET url (with the given headers) from cfg.Concurrency
// workers sharing one transport of as many connections. pid is the
// server's process, for its CPU time.
func runLoad(ctx context.Context, url string, header http.Header, pid int, cfg loadConfig) (loadResult, error) {
	tr := &http.Transport{
		Proxy:               nil, // 127.0.0.1 only, whatever the environment says
		MaxIdleConns:        cfg.Concurrency,
		MaxIdleConnsPerHost: cfg.Concurrency,
		MaxConnsPerHost:     cfg.Concurrency,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	start := time.Now()
	measureFrom := start.Add(cfg.Warmup)
	end := measureFrom.Add(cfg.Duration)
	// A request still unanswered this long after the end fails the run.
	rctx, cancel := context.WithDeadline(ctx, end.Add(30*time.Second))
	defer cancel()

	// Room for 200k requests/s in total, far beyond two cores, so the
	// workers do not allocate while measuring.
	perWorker := int(cfg.Duration.Seconds()*200_000)/cfg.Concurrency + 1024

	var (
		errs      atomic.Int64
		firstErr  atomic.Pointer[string]
		bodyBytes atomic.Int64
		wg        sync.WaitGroup
		lats      = make([][]time.Duration, cfg.Concurrency)
		totals    = make([]int, cfg.Concurrency)
		lastEnds  = make([]time.Time, cfg.Concurrency)
	)
	fail := func(msg string) {
		errs.Add(1)
		firstErr.CompareAndSwap(nil, &msg)
	}
	var cpu0Server, cpu0Driver, cpu0Machine time.Duration
	var windowOnce sync.Once
	markWindow := func() {
		windowOnce.Do(func() {
			cpu0Server, _ = cpuTime(pid)
			cpu0Driver, _ = cpuTime(selfPID)
			cpu0Machine, _ = machineCPU()
		})
	}
	go func() { // take the CPU reading when the window opens
		select {
		case <-time.After(time.Until(measureFrom)):
			markWindow()
		case <-rctx.Done():
		}
	}()

	for w := range cfg.Concurrency {
		lats[w] = make([]time.Duration, 0, perWorker)
		wg.Go(func() {
			req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
			if err != nil {
				fail(err.Error())
				return
			}
			req.Header = header.Clone()
			for {
				t0 := time.Now()
				if !t0.Before(end) || rctx.Err() != nil {
					return
				}
				resp, err := client.Do(req)
				if err != nil {
					fail(err.Error())
					time.Sleep(time.Millisecond) // no hot loop on a dead server
					continue
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				t1 := time.Now()
				totals[w]++
				switch {
				case err != nil:
					fail("reading the body: " + err.Error())
					continue
				case resp.StatusCode != http.StatusOK:
					fail(fmt.Sprintf("status %s", resp.Status))
					continue
				case n == 0:
					fail("empty body")
					continue
				}
				bodyBytes.Store(n)
				if !t0.Before(measureFrom) {
					lats[w] = append(lats[w], t1.Sub(t0))
					lastEnds[w] = t1
				}
			}
		})
	}
	wg.Wait()
	markWindow() // in case the window never opened (a failed run)
	cpu1Server, serr := cpuTime(pid)
	cpu1Driver, _ := cpuTime(selfPID)
	cpu1Machine, _ := machineCPU()

	var r loadResult
	r.Errors = int(errs.Load())
	if p := firstErr.Load(); p != nil {
		r.FirstError = *p
	}
	if err := ctx.Err(); err != nil {
		return r, err
	}
	if serr != nil {
		return r, fmt.Errorf("reading the server's CPU time: %w", serr)
	}
	r.ServerCPU, r.DriverCPU = cpu1Server-cpu0Server, cpu1Driver-cpu0Driver
	r.OtherCPU = max(0, cpu1Machine-cpu0Machine-r.ServerCPU-r.DriverCPU)
	r.ServerBytes = bodyBytes.Load()
	var last time.Time
	all := make([]time.Duration, 0, perWorker*cfg.Concurrency/4)
	for w := range lats {
		all = append(all, lats[w]...)
		r.Total += totals[w]
		if lastEnds[w].After(last) {
			last = lastEnds[w]
		}
	}
	r.Requests = len(all)
	if r.Requests == 0 {
		return r, fmt.Errorf("no request completed in the measured window (%d errors; first: %s)", r.Errors, r.FirstError)
	}
	slices.Sort(all)
	r.Elapsed = last.Sub(measureFrom)
	r.RPS = float64(r.Requests) / r.Elapsed.Seconds()
	r.P50, r.P90, r.P99 = percentile(all, 0.50), percentile(all, 0.90), percentile(all, 0.99)
	r.Max = all[len(all)-1]
	var sum time.Duration
	for _, d := range all {
		sum += d
	}
	r.Mean = sum / time.Duration(len(all))
	return r, nil
}

// percentile of sorted values by the nearest-rank method.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
