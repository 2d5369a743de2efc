package relay_test

import (
	"context"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/relay"
	"github.com/webordinary/hermes/internal/sqlite"
)

const scottContainer = "amelia_site_scott"

// relayBound is how long a test waits for a result to be relayed: generous
// for a loaded CI machine. The typical latency is measured by
// BenchmarkResultLatency.
const relayBound = 2 * time.Second

// other opens a second handle on the env's database: a worker's process,
// whose sends do not wake this process's receivers (they find them on
// their periodic look).
func (e *resultsEnv) other() *sqlite.DB {
	e.t.Helper()
	db, err := sqlite.Open(e.ctx, e.path)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { db.Close() })
	return db
}

// setStatus sets the status of scott's container.
func (e *resultsEnv) setStatus(s hermes.ContainerStatus) {
	e.t.Helper()
	if _, err := e.db.UpdateContainer(e.ctx, scottContainer, func(c *hermes.Container) error {
		c.Status = s
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
}

// relayed makes the relay report each relayed result on the channel.
func (e *resultsEnv) relayed(r *relay.Results) <-chan string {
	ch := make(chan string, 1000)
	r.Relayed = func(kind string) { ch <- kind }
	return ch
}

// runResults runs r until the test ends, or until the returned stop is
// called; stop fails the test when Run does not return soon after.
func runResults(t testing.TB, r *relay.Results) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Errorf("Run did not return after its context ended; watching %v", r.Watching())
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventually fails the test unless cond holds within relayBound.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(relayBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", relayBound, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// drained waits for scott's output queue to be empty: a result is deleted
// just after it is relayed.
func (e *resultsEnv) drained() {
	e.t.Helper()
	eventually(e.t, "the output queue empty", func() bool {
		st, err := e.db.Stats(e.ctx, scottOutput)
		return err == nil && st.Visible+st.InFlight == 0
	})
}

// pollers counts the goroutines of Results pollers and Runs in this
// process.
func pollers() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	c := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "relay.(*Results).poll(") || strings.Contains(g, "relay.(*Results).Run(") {
			c++
		}
	}
	return c
}

func watching(r *relay.Results, ids ...string) func() bool {
	return func() bool { return slices.Equal(r.Watching(), ids) }
}

// waitRelayed waits for a relayed result and returns how long it took
// since from.
func waitRelayed(t testing.TB, ch <-chan string, from time.Time) time.Duration {
	t.Helper()
	select {
	case <-ch:
		return time.Since(from)
	case <-time.After(relayBound):
		t.Fatalf("result not relayed within %s", relayBound)
		return 0
	}
}

// newResult is a done result of j under a fresh job id, so that each one
// is a new reply.
func newResult(t testing.TB, j hermes.Job) string {
	m := resultFor(j, hermes.ResultDone)
	m.JobID = hermes.NewToken()
	return string(mustJSON(t, m))
}

// A result sent by another process to the output queue of a running
// container is relayed by its poller, not by a pass (the next pass is an
// hour away).
func TestResultsPollerRelaysPromptly(t *testing.T) {
	e := newResultsEnv(t)
	job := e.route(emailIn("p1@mail.example.com", "Header", "Make the header blue"))
	e.setStatus(hermes.ContainerRunning)
	relayed := e.relayed(e.results)
	e.results.Interval = time.Hour
	runResults(t, e.results)
	eventually(t, "a poller for the running container", watching(e.results, scottContainer))

	worker := e.other()
	var lat []time.Duration
	for range 5 {
		time.Sleep(rand.N(50 * time.Millisecond))
		start := time.Now()
		if _, err := worker.Send(e.ctx, scottOutput, newResult(t, job), nil); err != nil {
			t.Fatal(err)
		}
		lat = append(lat, waitRelayed(t, relayed, start))
	}
	t.Logf("send → relayed: %v", lat)
	if n := len(e.outbox(hermes.KindResult)); n != 5 {
		t.Errorf("%d replies, want 5", n)
	}
	e.drained()
}

// Pollers follow the container's status: awake containers get one,
// sleeping containers lose theirs once their queue is empty.
func TestResultsPollersFollowStatus(t *testing.T) {
	e := newResultsEnv(t)
	job := e.route(emailIn("s1@mail.example.com", "Header", "Make the header blue"))
	relayed := e.relayed(e.results)
	e.results.Interval, e.results.LongPoll = 10*time.Millisecond, 50*time.Millisecond
	runResults(t, e.results)
	time.Sleep(50 * time.Millisecond)
	if w := e.results.Watching(); len(w) != 0 {
		t.Fatalf("a stopped container is polled: %v", w)
	}
	for _, st := range []struct {
		status hermes.ContainerStatus
		awake  bool
	}{
		{hermes.ContainerStarting, true},
		{hermes.ContainerStopped, false},
		{hermes.ContainerRunning, true},
		{hermes.ContainerStopping, true},
		{hermes.ContainerError, false},
		{hermes.ContainerMissing, true},
		{hermes.ContainerStopped, false},
	} {
		e.setStatus(st.status)
		if st.awake {
			eventually(t, "a poller for a "+string(st.status)+" container", watching(e.results, scottContainer))
		} else {
			eventually(t, "no poller for a "+string(st.status)+" container", watching(e.results))
		}
	}

	// A poller keeps relaying while results come, even once its container
	// is asleep: a stopping worker's last results are not left behind.
	e.setStatus(hermes.ContainerRunning)
	eventually(t, "a poller", watching(e.results, scottContainer))
	worker := e.other()
	for range 3 {
		if _, err := worker.Send(e.ctx, scottOutput, newResult(t, job), nil); err != nil {
			t.Fatal(err)
		}
	}
	e.setStatus(hermes.ContainerStopped)
	for range 3 {
		waitRelayed(t, relayed, time.Now())
	}
	eventually(t, "the poller stopped", watching(e.results))
	e.drained()
}

// The output queues of sleeping containers are swept by every pass:
// results left by a worker that exited, or sent by Hermes itself.
func TestResultsSweepSleeping(t *testing.T) {
	e := newResultsEnv(t)
	job := e.route(emailIn("w1@mail.example.com", "Header", "Make the header blue"))
	e.setStatus(hermes.ContainerError)
	relayed := e.relayed(e.results)
	e.results.Interval, e.results.LongPoll = 20*time.Millisecond, 100*time.Millisecond
	runResults(t, e.results)

	for _, q := range []*sqlite.DB{e.other(), e.db} { // another process, this one
		time.Sleep(30 * time.Millisecond)
		if _, err := q.Send(e.ctx, scottOutput, newResult(t, job), nil); err != nil {
			t.Fatal(err)
		}
		waitRelayed(t, relayed, time.Now())
	}
	e.drained()
	if n := len(e.outbox(hermes.KindResult)); n != 2 {
		t.Errorf("%d replies, want 2", n)
	}
	// A container that had results is polled for a while, then no more.
	eventually(t, "no poller for the sleeping container", watching(e.results))
}

// Watch starts a poller at once, without waiting for the pass.
func TestResultsWatch(t *testing.T) {
	e := newResultsEnv(t)
	job := e.route(emailIn("a1@mail.example.com", "Header", "Make the header blue"))
	e.results.Watch(scottContainer) // not running: nothing
	if w := e.results.Watching(); w != nil {
		t.Fatalf("watching %v before Run", w)
	}
	relayed := e.relayed(e.results)
	e.results.Interval = time.Hour
	runResults(t, e.results)
	time.Sleep(20 * time.Millisecond) // the first pass: the container is stopped
	if w := e.results.Watching(); len(w) != 0 {
		t.Fatalf("watching %v", w)
	}

	e.setStatus(hermes.ContainerRunning) // the runner woke it; no pass will see it
	e.results.Watch(scottContainer)
	e.results.Watch(scottContainer) // once is enough
	if w := e.results.Watching(); !slices.Equal(w, []string{scottContainer}) {
		t.Fatalf("watching %v", w)
	}
	start := time.Now()
	if _, err := e.other().Send(e.ctx, scottOutput, newResult(t, job), nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("send → relayed: %v", waitRelayed(t, relayed, start))

	// An unknown container: its poller ends at once.
	e.results.Watch("nobody_nothing_none")
	eventually(t, "the unknown container's poller ended", watching(e.results, scottContainer))
}

// Run returns soon after its context ends, even while its pollers wait in
// 20-second long polls, and leaves no goroutine behind.
func TestResultsRunStopsEveryPoller(t *testing.T) {
	e := newResultsEnv(t)
	job := e.route(emailIn("l1@mail.example.com", "Header", "Make the header blue"))
	e.setStatus(hermes.ContainerRunning)
	if n := pollers(); n != 0 {
		t.Fatalf("%d poller goroutines before Run", n)
	}
	before := runtime.NumGoroutine()

	r := e.results
	r.Interval = 10 * time.Millisecond // LongPoll: the default 20 s
	stop := runResults(t, r)
	r.Watch("nobody_nothing_none")
	eventually(t, "a poller", watching(r, scottContainer))
	time.Sleep(50 * time.Millisecond) // a few passes
	if n := pollers(); n != 2 {
		t.Fatalf("%d goroutines of Run and pollers, want 2", n)
	}
	began := time.Now()
	stop()
	if d := time.Since(began); d > time.Second {
		t.Errorf("Run took %v to return", d)
	}
	if w := r.Watching(); w != nil {
		t.Errorf("watching %v after Run", w)
	}
	r.Watch(scottContainer) // after Run: nothing
	if n := pollers(); n != 0 {
		t.Errorf("%d goroutines of Run and pollers left", n)
	}
	eventually(t, "no more goroutines than before", func() bool { return runtime.NumGoroutine() <= before })

	// Run again on the same Results: it works as new.
	relayed := e.relayed(r)
	runResults(t, r)
	eventually(t, "a poller", watching(r, scottContainer))
	e.send(resultFor(job, hermes.ResultDone))
	waitRelayed(t, relayed, time.Now())
}

// Two replicas relaying the same queues (each its own handle on the
// database, as two processes) relay each result once, even when a worker
// sends one twice.
func TestResultsTwoReplicas(t *testing.T) {
	e := newResultsEnv(t)
	job := e.route(emailIn("r1@mail.example.com", "Header", "Make the header blue"))
	e.setStatus(hermes.ContainerRunning)
	second := e.other()
	var mu sync.Mutex
	byReplica := map[string]int{}
	var total atomic.Int32
	count := func(name string) func(string) {
		return func(string) {
			mu.Lock()
			byReplica[name]++
			mu.Unlock()
			total.Add(1)
		}
	}
	replicas := []*relay.Results{e.results,
		{Store: second, Queues: second, Clock: e.clock.Now, Log: e.results.Log, FromEmail: "hermes@localhost"}}
	for i, r := range replicas {
		r.Interval, r.Relayed = 10*time.Millisecond, count([]string{"a", "b"}[i])
		runResults(t, r)
	}
	eventually(t, "pollers in both replicas", func() bool {
		return slices.Equal(replicas[0].Watching(), []string{scottContainer}) && slices.Equal(replicas[1].Watching(), []string{scottContainer})
	})

	worker := e.other()
	const n = 20
	for i := range n {
		body := newResult(t, job)
		for range 1 + i%2 { // every other one twice
			if _, err := worker.Send(e.ctx, scottOutput, body, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, "every result received", func() bool { return total.Load() >= n+n/2 })
	time.Sleep(200 * time.Millisecond) // nothing more comes
	if got := total.Load(); got != n+n/2 {
		t.Errorf("%d handled, want %d (each message once)", got, n+n/2)
	}
	if got := len(e.outbox(hermes.KindResult)); got != n {
		t.Errorf("%d replies, want %d", got, n)
	}
	if _, _, results := e.history(job.SessionID); len(results) != n {
		t.Errorf("%d history results, want %d", len(results), n)
	}
	e.drained()
	t.Logf("handled by replica: %v", byReplica)
}

// BenchmarkResultLatency measures the time from a worker's send (from
// another handle on the database file, as another process; or from this
// process) to the result relayed (its reply in the outbox), against the
// raw queue latency (send → a long-polling Receive returns) on the same
// file. Run it with -benchtime=200x: each op is one result, and p50/p99
// are reported in milliseconds.
func BenchmarkResultLatency(b *testing.B) {
	b.Run("queue/other-process", func(b *testing.B) {
		e := newResultsEnv(b)
		e.route(emailIn("b0@mail.example.com", "Header", "Make the header blue"))
		got := make(chan struct{})
		ctx, cancel := context.WithCancel(e.ctx)
		var wg sync.WaitGroup
		defer func() { cancel(); wg.Wait() }()
		wg.Go(func() {
			for ctx.Err() == nil {
				ds, _ := e.db.Receive(ctx, scottOutput, hermes.MaxReceiveBatch, hermes.MaxReceiveWait, time.Minute)
				for _, d := range ds {
					got <- struct{}{}
					_ = e.db.Delete(ctx, scottOutput, d.Receipt)
				}
			}
		})
		worker := e.other()
		latencies(b, func() {
			if _, err := worker.Send(e.ctx, scottOutput, `{}`, nil); err != nil {
				b.Fatal(err)
			}
			<-got
		})
	})
	for _, from := range []string{"other-process", "same-process"} {
		b.Run("relay/"+from, func(b *testing.B) {
			e := newResultsEnv(b)
			job := e.route(emailIn("b1@mail.example.com", "Header", "Make the header blue"))
			e.setStatus(hermes.ContainerRunning)
			relayed := e.relayed(e.results)
			e.results.Interval = time.Hour
			runResults(b, e.results)
			eventually(b, "a poller", watching(e.results, scottContainer))
			worker := e.db
			if from == "other-process" {
				worker = e.other()
			}
			latencies(b, func() {
				if _, err := worker.Send(e.ctx, scottOutput, newResult(b, job), nil); err != nil {
					b.Fatal(err)
				}
				<-relayed
			})
		})
	}
}

// latencies times b.N calls of op, each after a random pause that spreads
// them over the SQLite receivers' periodic looks for other processes'
// sends, and reports p50 and p99.
func latencies(b *testing.B, op func()) {
	ds := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		time.Sleep(rand.N(100 * time.Millisecond))
		b.StartTimer()
		start := time.Now()
		op()
		ds = append(ds, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(ds)
	ms := func(q float64) float64 {
		return float64(ds[min(len(ds)-1, int(q*float64(len(ds))))].Microseconds()) / 1000
	}
	b.ReportMetric(ms(0.50), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
}
