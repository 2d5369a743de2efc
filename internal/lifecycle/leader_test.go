package lifecycle_test

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webordinary/hermes/internal/lifecycle"
	"github.com/webordinary/hermes/internal/sqlite"
)

// Two replicas (two handles on one database) run the background loops one
// at a time; when the leader shuts down the other takes over at once.
func TestLeaderRunsLoopsOnOneReplica(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hermes.db")
	open := func() *sqlite.DB {
		db, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	var active, maxActive, starts atomic.Int32
	loop := func(ctx context.Context) {
		n := active.Add(1)
		starts.Add(1)
		for {
			if m := maxActive.Load(); n > m && !maxActive.CompareAndSwap(m, n) {
				continue
			}
			break
		}
		<-ctx.Done()
		active.Add(-1)
	}
	leading := map[string]*atomic.Bool{"a": {}, "b": {}}
	run := func(ctx context.Context, holder string, wg *sync.WaitGroup) {
		l := &lifecycle.Leader{Leases: open(), Name: "background", Holder: holder, TTL: 300 * time.Millisecond, Clock: time.Now,
			OnChange: func(on bool) { leading[holder].Store(on) }}
		wg.Go(func() { l.Run(ctx, loop, loop) })
	}
	ctxA, stopA := context.WithCancel(t.Context())
	ctxB, stopB := context.WithCancel(t.Context())
	defer stopB()
	var wgA, wgB sync.WaitGroup
	run(ctxA, "a", &wgA)
	deadline := time.Now().Add(5 * time.Second)
	for !leading["a"].Load() {
		if time.Now().After(deadline) {
			t.Fatal("a never led")
		}
		time.Sleep(5 * time.Millisecond)
	}
	run(ctxB, "b", &wgB)
	time.Sleep(time.Second) // b tries several times
	if leading["b"].Load() || active.Load() != 2 {
		t.Fatalf("b leads %v, %d loops active", leading["b"].Load(), active.Load())
	}
	stopA()
	wgA.Wait()
	t0 := time.Now()
	for !leading["b"].Load() {
		if time.Since(t0) > 2*time.Second {
			t.Fatal("b did not take over after a shut down")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if maxActive.Load() != 2 || starts.Load() != 4 {
		t.Fatalf("max %d loops at once (want 2: one replica's two), %d starts", maxActive.Load(), starts.Load())
	}
	stopB()
	wgB.Wait()
	if active.Load() != 0 {
		t.Fatalf("%d loops still running", active.Load())
	}
}
