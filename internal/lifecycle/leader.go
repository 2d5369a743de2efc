package lifecycle

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/webordinary/hermes"
)

// DefaultLeaseTTL is how long a replica holds the background lease without
// renewing it; it renews every third of it.
const DefaultLeaseTTL = 15 * time.Second

// Leader runs loops that must not run on two replicas at once (the
// reaper, the container reconcile, the queue clean-up, the dead-job scan)
// while this replica holds the named lease, and stands by otherwise: a
// replica that loses the lease (it could not renew in time) stops its
// loops before another can take over; one that shuts down releases it so
// that another takes over at once.
type Leader struct {
	Leases hermes.Leases
	Name   string // the lease, e.g. "background"
	Holder string // this replica, unique
	TTL    time.Duration
	Clock  hermes.Clock
	Log    *slog.Logger
	// OnChange, when set, learns when this replica starts (true) or stops
	// (false) leading.
	OnChange func(leading bool)
}

// Run holds the lease when it can and runs loops (each until its context
// ends) while it holds it, until ctx ends.
func (l *Leader) Run(ctx context.Context, loops ...func(context.Context)) {
	ttl := l.TTL
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	log := l.Log
	if log == nil {
		log = slog.Default()
	}
	tick := time.NewTicker(ttl / 3)
	defer tick.Stop()
	var (
		stop    context.CancelFunc
		running sync.WaitGroup
		renewed time.Time
	)
	end := func() {
		if stop == nil {
			return
		}
		stop()
		running.Wait()
		stop = nil
		if l.OnChange != nil {
			l.OnChange(false)
		}
	}
	defer func() {
		end()
		c, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := l.Leases.ReleaseLease(c, l.Name, l.Holder); err != nil {
			log.Warn("releasing the background lease", "lease", l.Name, "err", err)
		}
	}()
	for {
		now := l.Clock.Now()
		ok, err := l.Leases.AcquireLease(ctx, l.Name, l.Holder, now, ttl)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("renewing the background lease failed", "lease", l.Name, "err", err)
			// Held until its expiry: stop in time for another replica.
			if stop != nil && l.Clock.Now().Sub(renewed) > ttl*2/3 {
				log.Warn("background loops stopped: the lease may lapse", "lease", l.Name)
				end()
			}
		case ok && stop == nil:
			renewed = now
			lead, cancel := context.WithCancel(ctx)
			stop = cancel
			log.Info("this replica runs the background loops", "lease", l.Name, "holder", l.Holder)
			if l.OnChange != nil {
				l.OnChange(true)
			}
			for _, loop := range loops {
				running.Go(func() { loop(lead) })
			}
		case ok:
			renewed = now
		case stop != nil:
			log.Warn("the background lease went to another replica; loops stopped", "lease", l.Name)
			end()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
