package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/directory"
	"github.com/webordinary/hermes/internal/lifecycle"
	"github.com/webordinary/hermes/internal/relay"
	"github.com/webordinary/hermes/internal/router"
	"github.com/webordinary/hermes/internal/sqlite"
)

// routeResult is section (d): inbound messages through the real router on
// SQLite, against the raw commit rate of the same database file.
type routeResult struct {
	Concurrency   int
	Messages      int
	Elapsed       time.Duration
	P50, P99, Max time.Duration
	Commits       int
	CommitElapsed time.Duration
	CommitP50     time.Duration
	CommitP99     time.Duration
	JobsOnQueues  int
	RouteErrors   int
}

func (r routeResult) MsgsPerSec() float64    { return float64(r.Messages) / r.Elapsed.Seconds() }
func (r routeResult) CommitsPerSec() float64 { return float64(r.Commits) / r.CommitElapsed.Seconds() }

// routeBench routes email-shaped messages in process: each of conc
// senders keeps one conversation going (the first message opens a thread
// and a session, the rest reply to the previous one), so every message is
// deduplicated, resolved, threaded, queued as a job and acknowledged with a
// composed, threaded email in the outbox. The baseline is the same number
// of goroutines committing one-row INSERTs, each in its own IMMEDIATE
// transaction, in the same database file.
func routeBench(ctx context.Context, dir string, conc int, d time.Duration) (routeResult, error) {
	res := routeResult{Concurrency: conc}
	path := filepath.Join(dir, "route.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		return res, err
	}
	defer db.Close()
	now := time.Now()
	tree := &directory.ClientTree{Client: hermes.Client{ID: "bench", Name: "Bench"}}
	for i := range conc {
		tree.Projects = append(tree.Projects, &hermes.Project{ID: fmt.Sprintf("site%d", i), RepoURL: "/srv/site.git",
			EmailAddresses: []string{fmt.Sprintf("edit%d@bench.example.com", i)}})
		tree.Users = append(tree.Users, &hermes.User{ID: fmt.Sprintf("user%d", i), Emails: []string{fmt.Sprintf("user%d@example.com", i)}})
	}
	tree.Normalize()
	if err := directory.Create(ctx, db, tree, now); err != nil {
		return res, err
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	sessions := &lifecycle.Sessions{Store: db, Clock: time.Now, TTL: 30 * time.Minute, PublicBase: "http://localhost:3000", Log: log}
	rt := &router.Router{Store: db, Queues: db, Sessions: sessions, Clock: time.Now, Log: log,
		Acknowledger: &relay.Acks{FromEmail: "hermes@localhost"}, WakeEstimate: func() time.Duration { return 30 * time.Second }}

	lat := make([][]time.Duration, conc)
	var errs atomic.Int64
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			prev := ""
			var refs []string
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				id := fmt.Sprintf("m%d.%d@example.com", w, i)
				m := &hermes.Message{Channel: hermes.ChannelEmail, ChannelID: "email:" + id,
					From: fmt.Sprintf("user%d@example.com", w), To: fmt.Sprintf("edit%d@bench.example.com", w),
					Subject: "Change the title", Text: fmt.Sprintf("Change the title to Version %d", i),
					Thread: hermes.ThreadHints{MessageID: id, References: refs}}
				if prev != "" {
					m.Thread.InReplyTo = []string{prev}
				}
				t0 := time.Now()
				_, err := rt.Route(ctx, m)
				lat[w] = append(lat[w], time.Since(t0))
				if err != nil {
					errs.Add(1)
				}
				prev, refs = id, append(refs, id)
				if len(refs) > 20 {
					refs = append(refs[:1], refs[len(refs)-19:]...)
				}
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	all := flatten(lat)
	res.Messages, res.RouteErrors = len(all), int(errs.Load())
	res.P50, res.P99, res.Max = pct(all, 0.50), pct(all, 0.99), all[len(all)-1]
	for i := range conc {
		st, err := db.Stats(ctx, fmt.Sprintf("webordinary-input-bench_site%d_user%d", i, i))
		if err != nil {
			return res, err
		}
		res.JobsOnQueues += st.Visible
	}

	// Baseline: raw commits on the same file, same concurrency.
	raw, err := sql.Open("sqlite", sqlite.DSN(path))
	if err != nil {
		return res, err
	}
	defer raw.Close()
	raw.SetMaxOpenConns(8)
	if _, err := raw.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS bench_commit (n INTEGER NOT NULL)"); err != nil {
		return res, err
	}
	clat := make([][]time.Duration, conc)
	deadline = time.Now().Add(d)
	start = time.Now()
	for w := range conc {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				t0 := time.Now()
				tx, err := raw.BeginTx(ctx, nil)
				if err == nil {
					_, err = tx.ExecContext(ctx, "INSERT INTO bench_commit (n) VALUES (?)", i)
					if err == nil {
						err = tx.Commit()
					} else {
						_ = tx.Rollback()
					}
				}
				if err != nil {
					errs.Add(1)
					continue
				}
				clat[w] = append(clat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	res.CommitElapsed = time.Since(start)
	call := flatten(clat)
	res.Commits, res.CommitP50, res.CommitP99 = len(call), pct(call, 0.50), pct(call, 0.99)
	return res, ctx.Err()
}

func flatten(xs [][]time.Duration) []time.Duration {
	var all []time.Duration
	for _, x := range xs {
		all = append(all, x...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) == 0 {
		all = []time.Duration{0}
	}
	return all
}

func pct(sorted []time.Duration, p float64) time.Duration {
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}
