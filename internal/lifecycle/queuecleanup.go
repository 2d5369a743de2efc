package lifecycle

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/logctx"
)

// Queue clean-up defaults.
const (
	DefaultQueueCleanupAfter    = 7 * 24 * time.Hour
	DefaultQueueCleanupInterval = 10 * time.Minute
	// DefaultQueueCleanupGrace is how long a queue set stays marked
	// retiring before it is deleted: longer than any routing of a message
	// takes (a route holds its message's claim for 2 minutes), so that a
	// router that read the container before the mark has sent its job —
	// which the clean-up then sees — before the set is deleted.
	DefaultQueueCleanupGrace = 5 * time.Minute
	// queueDeleteBudget is how long a clean-up may go on deleting a set it
	// marked deleting; the router takes the container back after
	// hermes.QueuesDeletingTimeout, so the clean-up stops well before.
	queueDeleteBudget = hermes.QueuesDeletingTimeout / 2
)

// errLeave aborts a compare-and-set update that finds the container
// changed: the clean-up leaves it alone.
var errLeave = errors.New("leave the container")

// QueueCleanup deletes the queue sets of containers that have been stopped
// for longer than After and whose three queues are empty (nothing waiting
// or in flight on the input queue, no result on the output queue, no dead
// job on the DLQ), so that idle queues do not pile up. It only ever
// deletes the queues named in a container's own record, and records each
// step on the record (hermes.Container.QueuesState) so that the router
// makes the set again for the container's next message:
//
//  1. a stopped, idle container with empty queues is marked retiring;
//  2. a pass at least Grace later moves a container still retiring —
//     stopped, idle, queues still empty, and no message arrived (the
//     router clears the mark) — to deleting with a compare-and-set, checks
//     the queues once more, deletes them, and marks the container deleted
//     with no queue names.
//
// Every step is a compare-and-set on the container, so several replicas may
// run the clean-up at once. The router refuses a message (Unavailable,
// retried by its channel) while a set is deleting, for the milliseconds it
// takes, and takes back a set a crashed clean-up left deleting for longer
// than hermes.QueuesDeletingTimeout (a later pass of the clean-up may
// also resume it).
type QueueCleanup struct {
	Store  hermes.Containers
	Queues hermes.Queues
	Clock  hermes.Clock
	Log    *slog.Logger
	// After is how long a container must have been stopped
	// (HERMES_QUEUE_CLEANUP_AFTER); 0 disables the clean-up.
	After    time.Duration
	Grace    time.Duration // DefaultQueueCleanupGrace when 0
	Interval time.Duration // between passes; DefaultQueueCleanupInterval when 0
}

// Run cleans up until ctx ends; it returns at once when After is 0.
func (q *QueueCleanup) Run(ctx context.Context) {
	if q.After <= 0 {
		return
	}
	interval := q.Interval
	if interval <= 0 {
		interval = DefaultQueueCleanupInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := q.Pass(ctx); err != nil && ctx.Err() == nil {
			q.log().WarnContext(ctx, "queue clean-up: listing containers failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Pass makes one pass over the containers and returns how many queue sets
// it deleted.
func (q *QueueCleanup) Pass(ctx context.Context) (int, error) {
	if q.After <= 0 {
		return 0, nil
	}
	cs, err := q.Store.ListContainers(ctx)
	if err != nil {
		return 0, err
	}
	deleted := 0
	for _, c := range cs {
		if ctx.Err() != nil {
			break
		}
		cctx := logctx.With(ctx, slog.String("container_id", c.ID))
		var err error
		switch c.QueuesState {
		case "":
			err = q.retire(cctx, c)
		case hermes.QueuesRetiring, hermes.QueuesDeleting:
			var ok bool
			if ok, err = q.delete(cctx, c); ok {
				deleted++
			}
		}
		if err != nil && !errors.Is(err, errLeave) && ctx.Err() == nil {
			q.log().WarnContext(cctx, "queue clean-up: a container was skipped", "err", err)
		}
	}
	return deleted, nil
}

// idle reports whether c has been stopped for longer than After at now
// (since its last change or heartbeat).
func (q *QueueCleanup) idle(c *hermes.Container, now time.Time) bool {
	if c.Status != hermes.ContainerStopped {
		return false
	}
	since := c.UpdatedAt
	if c.CreatedAt.After(since) {
		since = c.CreatedAt
	}
	if c.LastHeartbeat != nil && c.LastHeartbeat.After(since) {
		since = *c.LastHeartbeat
	}
	return now.Sub(since) >= q.After
}

// empty reports whether every queue of the set is empty; a queue that
// does not exist is empty.
func (q *QueueCleanup) empty(ctx context.Context, set hermes.QueueSet) (bool, error) {
	for _, name := range []string{set.Input, set.Output, set.DLQ} {
		if name == "" {
			continue
		}
		st, err := q.Queues.Stats(ctx, name)
		if hermes.IsKind(err, hermes.NotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		if st.Visible+st.InFlight > 0 {
			return false, nil
		}
	}
	return true, nil
}

// retire marks an idle container with empty queues retiring.
func (q *QueueCleanup) retire(ctx context.Context, c *hermes.Container) error {
	now := q.Clock.Now()
	if c.Queues == (hermes.QueueSet{}) || !q.idle(c, now) {
		return nil
	}
	if ok, err := q.empty(ctx, c.Queues); !ok || err != nil {
		return err
	}
	_, err := q.Store.UpdateContainer(ctx, c.ID, func(x *hermes.Container) error {
		if x.QueuesState != "" || x.Queues != c.Queues || !q.idle(x, now) {
			return errLeave
		}
		x.QueuesState, x.QueuesStateAt = hermes.QueuesRetiring, &now
		return nil
	})
	if err == nil {
		q.log().InfoContext(ctx, "queue clean-up: idle queue set marked for deletion", "queues", c.Queues.Input)
	}
	return err
}

// delete deletes the queue set of a container retiring for longer than
// the grace period (or one a clean-up left deleting), and reports whether
// it did.
func (q *QueueCleanup) delete(ctx context.Context, c *hermes.Container) (bool, error) {
	now := q.Clock.Now()
	grace := q.Grace
	if grace <= 0 {
		grace = DefaultQueueCleanupGrace
	}
	at := c.QueuesStateAt
	switch {
	case at == nil:
	case c.QueuesState == hermes.QueuesRetiring && now.Sub(*at) < grace:
		return false, nil
	case c.QueuesState == hermes.QueuesDeleting && now.Sub(*at) < hermes.QueuesDeletingTimeout:
		return false, nil // another clean-up is at it
	}
	set := c.Queues
	empty, err := q.empty(ctx, set)
	if err != nil {
		return false, err
	}
	same := func(x *hermes.Container) bool {
		return x.QueuesState == c.QueuesState && x.Queues == set && (x.QueuesStateAt == nil) == (at == nil) && (at == nil || x.QueuesStateAt.Equal(*at))
	}
	if !empty || !q.idle(c, now) || set == (hermes.QueueSet{}) {
		// In use again (a late job, a wake): the set stays.
		return false, q.keep(ctx, c.ID, same)
	}
	_, err = q.Store.UpdateContainer(ctx, c.ID, func(x *hermes.Container) error {
		if !same(x) || !q.idle(x, now) {
			return errLeave
		}
		x.QueuesState, x.QueuesStateAt = hermes.QueuesDeleting, &now
		return nil
	})
	if err != nil {
		return false, err
	}
	// From here the router refuses messages for this container, so what
	// the queues hold now is all they will hold. A job sent before the
	// mark (by a router slower than the grace period) is seen here.
	began := time.Now()
	deleting := func(x *hermes.Container) bool {
		return x.QueuesState == hermes.QueuesDeleting && x.QueuesStateAt != nil && x.QueuesStateAt.Equal(now)
	}
	if empty, err := q.empty(ctx, set); err != nil || !empty {
		if kerr := q.keep(ctx, c.ID, deleting); kerr != nil {
			return false, kerr
		}
		return false, err
	}
	for _, name := range []string{set.Input, set.Output, set.DLQ} { // the DLQ last: the input queue names it
		if time.Since(began) > queueDeleteBudget {
			return false, errors.New("deleting took too long; the router takes the container back, or a later pass resumes")
		}
		if err := q.Queues.DeleteQueue(ctx, name); err != nil && !hermes.IsKind(err, hermes.NotFound) {
			return false, err // left deleting: resumed by a later pass, or taken back by the router
		}
	}
	_, err = q.Store.UpdateContainer(ctx, c.ID, func(x *hermes.Container) error {
		if !deleting(x) {
			return errLeave
		}
		x.Queues, x.QueuesState, x.QueuesStateAt = hermes.QueueSet{}, hermes.QueuesDeleted, &now
		return nil
	})
	if err != nil {
		return false, err
	}
	q.log().InfoContext(ctx, "queue clean-up: idle queue set deleted", "input", set.Input, "output", set.Output, "dlq", set.DLQ)
	return true, nil
}

// keep takes the clean-up's mark off a container whose set is in use
// again, if the mark is still the one seen (match).
func (q *QueueCleanup) keep(ctx context.Context, id string, match func(*hermes.Container) bool) error {
	_, err := q.Store.UpdateContainer(ctx, id, func(x *hermes.Container) error {
		if !match(x) {
			return errLeave
		}
		x.QueuesState, x.QueuesStateAt = "", nil
		return nil
	})
	if err == nil {
		q.log().InfoContext(ctx, "queue clean-up: the queue set is in use again; kept")
	}
	return err
}

func (q *QueueCleanup) log() *slog.Logger {
	if q.Log == nil {
		return slog.Default()
	}
	return q.Log
}
