// Package relay sends what Hermes says back to users: acknowledgements now,
// results as containers report them. Every reply goes through the durable
// outbox (hermes.Outbox); Deliverer claims due items and hands each to the
// sender of its channel, with retries and backoff, so a reply is sent once
// even across crashes and several replicas.
package relay

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/logctx"
)

// Deliverer defaults.
const (
	DefaultInterval    = time.Second
	DefaultMaxAttempts = 8
	claimLease         = time.Minute
	batch              = 16
	// heldRetry is when an item of a channel without a transport is looked
	// at again (a transport may have been configured by then).
	heldRetry = time.Hour
)

// Deliverer sends outbox items.
type Deliverer struct {
	Store       hermes.Outbox
	Senders     map[string]hermes.Sender // by channel; a channel without one keeps its replies in the outbox
	Clock       hermes.Clock
	Log         *slog.Logger
	Interval    time.Duration
	MaxAttempts int
	// Sent and Failed count outcomes by channel, for metrics; nil skips.
	Sent, Failed func(channel string)

	kickOnce sync.Once
	kick     chan struct{}
}

// Kick asks the deliverer to look at the outbox now (an item was queued).
func (d *Deliverer) Kick() {
	d.kickOnce.Do(func() { d.kick = make(chan struct{}, 1) })
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends.
func (d *Deliverer) Run(ctx context.Context) {
	d.kickOnce.Do(func() { d.kick = make(chan struct{}, 1) })
	interval := d.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for {
			n, err := d.DeliverDue(ctx)
			if err != nil && ctx.Err() == nil {
				d.log().WarnContext(ctx, "relay: claiming outbox items failed", "err", err)
			}
			if n < batch || ctx.Err() != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.kick:
		}
	}
}

// DeliverDue claims the due items and attempts each once; it returns how
// many it attempted.
func (d *Deliverer) DeliverDue(ctx context.Context) (int, error) {
	now := d.Clock.Now()
	items, err := d.Store.ClaimOutbox(ctx, now, claimLease, batch)
	if err != nil {
		return 0, err
	}
	for _, it := range items {
		d.deliver(ctx, it, now)
	}
	return len(items), nil
}

func (d *Deliverer) deliver(ctx context.Context, it *hermes.OutboxItem, now time.Time) {
	ctx = logctx.With(ctx, slog.String("outbox_id", it.ID), slog.String("thread_id", it.ThreadID), slog.String("channel", it.Channel))
	s, ok := d.Senders[it.Channel]
	if !ok {
		if it.Attempts == 0 {
			d.log().InfoContext(ctx, "reply kept in the outbox: no transport is configured for its channel", "kind", it.Kind, "to", it.To, "text", hermes.RedactApprovalTokens(it.Text)) // approval tokens are secrets
		}
		d.finish(ctx, it, hermes.OutboxPending, now, now.Add(heldRetry), "no transport configured for channel "+it.Channel)
		return
	}
	sendCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := s.Send(sendCtx, it)
	cancel()
	max := d.MaxAttempts
	if max <= 0 {
		max = DefaultMaxAttempts
	}
	switch {
	case err == nil:
		d.finish(ctx, it, hermes.OutboxSent, now, now, "")
		d.log().InfoContext(ctx, "reply sent", "kind", it.Kind, "attempt", it.Attempts+1)
		if d.Sent != nil {
			d.Sent(it.Channel)
		}
	case hermes.IsKind(err, hermes.Invalid) || it.Attempts+1 >= max:
		d.finish(ctx, it, hermes.OutboxFailed, now, now, err.Error())
		d.log().ErrorContext(ctx, "reply failed for good", "kind", it.Kind, "attempts", it.Attempts+1, "err", err)
		if d.Failed != nil {
			d.Failed(it.Channel)
		}
	default:
		retry := now.Add(Backoff(it.Attempts + 1))
		d.finish(ctx, it, hermes.OutboxPending, now, retry, err.Error())
		d.log().WarnContext(ctx, "reply not sent; will retry", "kind", it.Kind, "attempt", it.Attempts+1, "retry_at", retry, "err", err)
	}
}

func (d *Deliverer) finish(ctx context.Context, it *hermes.OutboxItem, st hermes.OutboxStatus, now, retry time.Time, lastErr string) {
	if err := d.Store.FinishOutbox(context.WithoutCancel(ctx), it.ID, st, now, retry, lastErr); err != nil {
		// The claim lapses and the item is tried again: at worst a reply is
		// repeated after a store failure, never lost.
		d.log().ErrorContext(ctx, "relay: recording a delivery attempt failed", "err", err)
	}
}

// Backoff is the wait before attempt n+1 after n failed attempts:
// exponential from 5 s, capped at 10 minutes, with ±20 % jitter.
func Backoff(n int) time.Duration {
	d := 5 * time.Second << min(n-1, 10)
	d = min(d, 10*time.Minute)
	jitter := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * jitter)
}

func (d *Deliverer) log() *slog.Logger {
	if d.Log == nil {
		return slog.Default()
	}
	return d.Log
}
