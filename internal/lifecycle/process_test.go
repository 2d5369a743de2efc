package lifecycle_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/lifecycle"
	"github.com/webordinary/hermes/internal/sqlite"
)

// reapChildEnv names the database a child process reaps; set only in the
// children that TestReapTwoProcesses starts.
const reapChildEnv = "HERMES_TEST_REAP_CHILD_DB"

var reapBase = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// TestReapTwoProcesses runs the reaper in two separate processes on one
// SQLite file: every due session is expired exactly once in total.
func TestReapTwoProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	const sessions = 60
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "hermes.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range sessions {
		th := &hermes.Thread{ID: hermes.NewToken(), ClientID: "c", ProjectID: "p", UserID: "u", Channel: "api", CreatedAt: reapBase}
		if err := db.CreateThread(ctx, th); err != nil {
			t.Fatal(err)
		}
		s := &hermes.Session{ID: hermes.NewToken(), ThreadID: th.ID, ClientID: "c", ProjectID: "p", UserID: "u",
			Status: hermes.SessionActive, CreatedAt: reapBase, LastActivity: reapBase,
			ExpiresAt: reapBase.Add(time.Duration(i) * time.Second)}
		if err := db.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
	}

	var wg sync.WaitGroup
	counts := make([]int, 2)
	errs := make([]error, 2)
	for i := range counts {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestReapChildProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), reapChildEnv+"="+path)
			out, err := cmd.CombinedOutput()
			if err != nil {
				errs[i] = fmt.Errorf("child %d: %v\n%s", i, err, out)
				return
			}
			for _, line := range strings.Split(string(out), "\n") {
				if n, ok := strings.CutPrefix(line, "REAPED "); ok {
					counts[i], errs[i] = strconv.Atoi(strings.TrimSpace(n))
					return
				}
			}
			errs[i] = fmt.Errorf("child %d printed no count:\n%s", i, out)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if counts[0]+counts[1] != sessions {
		t.Fatalf("the two processes expired %d + %d sessions, want %d in total", counts[0], counts[1], sessions)
	}
	if n, _ := db.CountSessions(ctx, hermes.SessionExpired); n != sessions {
		t.Fatalf("%d sessions expired in the store, want %d", n, sessions)
	}
	t.Logf("process shares: %v", counts)
}

// TestReapChildProcess is the child side of TestReapTwoProcesses; it does
// nothing in a normal run.
func TestReapChildProcess(t *testing.T) {
	path := os.Getenv(reapChildEnv)
	if path == "" {
		t.Skip("only runs as a child of TestReapTwoProcesses")
	}
	ctx := context.Background()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := &lifecycle.Sessions{Store: db, Clock: func() time.Time { return reapBase.Add(time.Hour) }, TTL: time.Minute}
	// Several reapers in this process too, racing the other process.
	var mu sync.Mutex
	total := 0
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			n, err := s.Reap(ctx)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	fmt.Printf("REAPED %d\n", total)
}
