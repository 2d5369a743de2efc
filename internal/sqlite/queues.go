package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/webordinary/hermes"
)

var _ hermes.Queues = (*DB)(nil)

// Queue defaults (those of SQS).
const (
	defaultVisibility = 30 * time.Second
	maxVisibility     = 12 * time.Hour
	defaultRetention  = 4 * 24 * time.Hour
	maxRetention      = 14 * 24 * time.Hour
	// crossProcessPoll is how often a long-polling receiver looks for
	// messages sent by other processes (edit containers' workers and
	// Hermes); sends in this process wake it at once. A look is one indexed
	// read without the write lock.
	crossProcessPoll = 25 * time.Millisecond
)

// wakeups lets senders wake the long-polling receivers of a queue in this
// process: each queue has a channel that is closed (and replaced) on send.
type wakeups struct {
	mu sync.Mutex
	ch map[string]chan struct{}
}

func (w *wakeups) wait(queue string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = map[string]chan struct{}{}
	}
	c, ok := w.ch[queue]
	if !ok {
		c = make(chan struct{})
		w.ch[queue] = c
	}
	return c
}

func (w *wakeups) wake(queue string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c, ok := w.ch[queue]; ok {
		close(c)
		delete(w.ch, queue)
	}
}

func (d *DB) now() time.Time { return time.Now() }

func (o *queueOptions) normalize() error {
	switch {
	case o.VisibilityTimeout < 0 || o.VisibilityTimeout > maxVisibility:
		return hermes.Errorf(hermes.Invalid, "visibility timeout must be between 0 and %s", maxVisibility)
	case o.Retention != 0 && (o.Retention < time.Minute || o.Retention > maxRetention):
		return hermes.Errorf(hermes.Invalid, "retention must be between 1m and %s", maxRetention)
	case o.MaxReceives < 0 || o.MaxReceives > 1000:
		return hermes.Errorf(hermes.Invalid, "max receives must be between 1 and 1000")
	case o.DeadLetter != "" && !hermes.ValidQueueName(o.DeadLetter):
		return hermes.Errorf(hermes.Invalid, "dead-letter queue name %q is invalid", o.DeadLetter)
	}
	if o.VisibilityTimeout == 0 {
		o.VisibilityTimeout = defaultVisibility
	}
	if o.Retention == 0 {
		o.Retention = defaultRetention
	}
	if o.DeadLetter != "" && o.MaxReceives == 0 {
		o.MaxReceives = hermes.DefaultMaxReceive
	}
	return nil
}

// queueOptions is hermes.QueueOptions as stored.
type queueOptions hermes.QueueOptions

func checkQueueName(name string) error {
	if !hermes.ValidQueueName(name) {
		return hermes.Errorf(hermes.Invalid, "queue name %q must be 1-%d letters, digits, hyphens or underscores", name, hermes.MaxQueueNameLen)
	}
	return nil
}

func (d *DB) CreateQueue(ctx context.Context, name string, o hermes.QueueOptions) error {
	const op = "sqlite.CreateQueue"
	if err := checkQueueName(name); err != nil {
		return err
	}
	opts := queueOptions(o)
	if err := opts.normalize(); err != nil {
		return err
	}
	data, err := json.Marshal(opts)
	if err != nil {
		return wrap(op, err)
	}
	err = d.tx(ctx, func(tx *txn) error {
		if opts.DeadLetter != "" && opts.DeadLetter != name {
			ok, err := exists(ctx, tx, "SELECT 1 FROM queues WHERE name = ?", opts.DeadLetter)
			if err == nil && !ok {
				err = hermes.Errorf(hermes.NotFound, "dead-letter queue %q not found", opts.DeadLetter)
			}
			if err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO queues (name, options, created_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET options = excluded.options`, name, string(data), ms(d.now()))
		return err
	})
	return wrap(op, err)
}

func (d *DB) DeleteQueue(ctx context.Context, name string) error {
	res, err := d.w.ExecContext(ctx, "DELETE FROM queues WHERE name = ?", name)
	if err == nil {
		err = mustAffect(res, "queue "+quote(name)+" not found")
	}
	return wrap("sqlite.DeleteQueue", err)
}

func (d *DB) ListQueues(ctx context.Context, prefix string) ([]string, error) {
	rows, err := d.db.QueryContext(ctx, "SELECT name FROM queues WHERE substr(name, 1, length(?1)) = ?1 ORDER BY name", prefix)
	if err != nil {
		return nil, wrap("sqlite.ListQueues", err)
	}
	defer rows.Close()
	names := []string{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, wrap("sqlite.ListQueues", err)
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return names, wrap("sqlite.ListQueues", rows.Err())
}

// queueOpts reads a queue's options; NotFound when it does not exist.
func queueOpts(ctx context.Context, q queryRower, name string) (queueOptions, error) {
	var o queueOptions
	var data []byte
	err := q.QueryRowContext(ctx, "SELECT options FROM queues WHERE name = ?", name).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return o, hermes.Errorf(hermes.NotFound, "queue %q not found", name)
	}
	if err != nil {
		return o, err
	}
	return o, json.Unmarshal(data, &o)
}

func (d *DB) Send(ctx context.Context, queue, body string, attrs map[string]string) (string, error) {
	const op = "sqlite.Send"
	if len(body) > hermes.MaxMessageBytes {
		return "", hermes.Errorf(hermes.TooLarge, "message body is larger than %d bytes", hermes.MaxMessageBytes)
	}
	if attrs == nil {
		attrs = map[string]string{}
	}
	a, err := json.Marshal(attrs)
	if err != nil {
		return "", wrap(op, err)
	}
	now := d.now()
	id := hermes.NewSortableID(now)
	err = d.tx(ctx, func(tx *txn) error {
		if _, err := queueOpts(ctx, tx, queue); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO queue_messages (queue, id, body, attrs, sent_at, visible_at) VALUES (?, ?, ?, ?, ?, ?)`,
			queue, id, body, string(a), ms(now), ms(now))
		return err
	})
	if err != nil {
		return "", wrap(op, err)
	}
	d.wake.wake(queue)
	return id, nil
}

func (d *DB) Receive(ctx context.Context, queue string, max int, wait, visibility time.Duration) ([]hermes.Delivery, error) {
	const op = "sqlite.Receive"
	switch {
	case max < 1 || max > hermes.MaxReceiveBatch:
		return nil, hermes.Errorf(hermes.Invalid, "max must be between 1 and %d", hermes.MaxReceiveBatch)
	case wait < 0 || wait > hermes.MaxReceiveWait:
		return nil, hermes.Errorf(hermes.Invalid, "wait must be between 0 and %s", hermes.MaxReceiveWait)
	case visibility < 0 || visibility > maxVisibility:
		return nil, hermes.Errorf(hermes.Invalid, "visibility must be between 0 and %s", maxVisibility)
	}
	deadline := time.Now().Add(wait)
	var poll *time.Timer
	for {
		woken := d.wake.wait(queue) // before looking, so a send in between is not missed
		got, err := d.receiveOnce(ctx, queue, max, visibility)
		if err != nil || len(got) > 0 {
			return got, wrap(op, err)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return []hermes.Delivery{}, nil
		}
		if poll == nil {
			poll = time.NewTimer(min(left, crossProcessPoll))
			defer poll.Stop()
		} else {
			poll.Reset(min(left, crossProcessPoll))
		}
		select {
		case <-ctx.Done():
			return nil, hermes.E(op, hermes.Unavailable, ctx.Err())
		case <-woken:
		case <-poll.C:
		}
	}
}

// receiveOnce takes up to max visible messages in one transaction, moving
// those past the queue's MaxReceives to its dead-letter queue.
func (d *DB) receiveOnce(ctx context.Context, queue string, max int, visibility time.Duration) ([]hermes.Delivery, error) {
	now := d.now()
	// Most polls find nothing: look without taking the write lock first.
	var any int
	err := d.db.QueryRowContext(ctx, "SELECT count(*) FROM (SELECT 1 FROM queue_messages WHERE queue = ? AND visible_at <= ? LIMIT 1)", queue, ms(now)).Scan(&any)
	if err != nil {
		return nil, err
	}
	if any == 0 {
		if _, err := queueOpts(ctx, d.db, queue); err != nil {
			return nil, err
		}
		return nil, nil
	}
	var out []hermes.Delivery
	var movedTo string
	err = d.tx(ctx, func(tx *txn) error {
		out, movedTo = nil, ""
		o, err := queueOpts(ctx, tx, queue)
		if err != nil {
			return err
		}
		vis := visibility
		if vis == 0 {
			vis = o.VisibilityTimeout
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM queue_messages WHERE queue = ? AND sent_at < ?", queue, ms(now.Add(-o.Retention))); err != nil {
			return err
		}
		if o.DeadLetter != "" {
			// A dead-letter queue deleted after this queue named it: messages
			// stay here and are delivered, as SQS does when a redrive fails.
			if ok, err := exists(ctx, tx, "SELECT 1 FROM queues WHERE name = ?", o.DeadLetter); err != nil {
				return err
			} else if !ok {
				o.DeadLetter = ""
			}
		}
		for range 10 { // bounded: each round either fills the batch or moves messages away
			rows, err := tx.QueryContext(ctx, `SELECT id, body, attrs, sent_at, receive_count FROM queue_messages
				WHERE queue = ? AND visible_at <= ? ORDER BY visible_at, sent_at, id LIMIT ?`, queue, ms(now), max-len(out))
			if err != nil {
				return err
			}
			type row struct {
				id, body, attrs string
				sent            int64
				count           int
			}
			var batch []row
			for rows.Next() {
				var r row
				if err := rows.Scan(&r.id, &r.body, &r.attrs, &r.sent, &r.count); err != nil {
					rows.Close()
					return err
				}
				batch = append(batch, r)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			if len(batch) == 0 {
				return nil
			}
			moved := false
			for _, r := range batch {
				if o.DeadLetter != "" && o.MaxReceives > 0 && r.count >= o.MaxReceives {
					if err := moveMessage(ctx, tx, queue, o.DeadLetter, r.id, now); err != nil {
						return err
					}
					moved, movedTo = true, o.DeadLetter
					continue
				}
				receipt := hermes.NewToken() + hermes.NewToken()
				if _, err := tx.ExecContext(ctx, `UPDATE queue_messages SET receive_count = receive_count + 1, receipt = ?, visible_at = ?
					WHERE queue = ? AND id = ?`, receipt, ms(now.Add(vis)), queue, r.id); err != nil {
					return err
				}
				var attrs map[string]string
				if err := json.Unmarshal([]byte(r.attrs), &attrs); err != nil {
					return err
				}
				out = append(out, hermes.Delivery{ID: r.id, Body: r.body, Attributes: attrs, Receipt: receipt,
					ReceiveCount: r.count + 1, SentAt: time.UnixMilli(r.sent).UTC()})
			}
			if !moved || len(out) == max {
				return nil
			}
		}
		return nil
	})
	if movedTo != "" {
		d.wake.wake(movedTo)
	}
	return out, err
}

// moveMessage moves a message to another queue as a new arrival there
// (receive count 0, visible now), keeping its id, body, attributes and
// send time.
func moveMessage(ctx context.Context, tx *txn, from, to, id string, now time.Time) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO queue_messages (queue, id, body, attrs, sent_at, visible_at, receive_count)
		SELECT ?, id, body, attrs, sent_at, ?, 0 FROM queue_messages WHERE queue = ? AND id = ?
		ON CONFLICT (queue, id) DO NOTHING`, to, ms(now), from, id); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, "DELETE FROM queue_messages WHERE queue = ? AND id = ?", from, id)
	return err
}

func (d *DB) Delete(ctx context.Context, queue, receipt string) error {
	if receipt == "" {
		return hermes.Errorf(hermes.Invalid, "receipt is empty")
	}
	_, err := d.w.ExecContext(ctx, "DELETE FROM queue_messages WHERE queue = ? AND receipt = ?", queue, receipt)
	return wrap("sqlite.Delete", err)
}

// DeleteBatch deletes the messages held under the receipts with one
// statement, in the transaction that checks the queue: all or nothing.
func (d *DB) DeleteBatch(ctx context.Context, queue string, receipts []string) error {
	const op = "sqlite.DeleteBatch"
	if err := checkReceipts(receipts); err != nil || len(receipts) == 0 {
		return err
	}
	args := make([]any, 0, 1+len(receipts))
	args = append(args, queue)
	for _, r := range receipts {
		args = append(args, r)
	}
	// A list of placeholders rather than json_each: with it the planner
	// uses the receipt index (one statement per batch size, cached).
	query := "DELETE FROM queue_messages WHERE queue = ? AND receipt IN (?" + strings.Repeat(", ?", len(receipts)-1) + ")"
	err := d.tx(ctx, func(tx *txn) error {
		if _, err := queueOpts(ctx, tx, queue); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, query, args...)
		return err
	})
	return wrap(op, err)
}

// checkReceipts checks the receipts of a DeleteBatch.
func checkReceipts(receipts []string) error {
	if len(receipts) > hermes.MaxReceiveBatch {
		return hermes.Errorf(hermes.Invalid, "at most %d receipts can be deleted in one batch, not %d", hermes.MaxReceiveBatch, len(receipts))
	}
	if slices.Contains(receipts, "") {
		return hermes.Errorf(hermes.Invalid, "receipt is empty")
	}
	return nil
}

func (d *DB) ChangeVisibility(ctx context.Context, queue, receipt string, dur time.Duration) error {
	if dur < 0 || dur > maxVisibility {
		return hermes.Errorf(hermes.Invalid, "visibility must be between 0 and %s", maxVisibility)
	}
	res, err := d.w.ExecContext(ctx, "UPDATE queue_messages SET visible_at = ? WHERE queue = ? AND receipt = ?",
		ms(d.now().Add(dur)), queue, receipt)
	if err != nil {
		return wrap("sqlite.ChangeVisibility", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return &hermes.Error{Op: "sqlite.ChangeVisibility", Kind: hermes.Conflict, Message: "the message is no longer held under this receipt", Err: err}
	}
	if dur == 0 {
		d.wake.wake(queue)
	}
	return nil
}

func (d *DB) Stats(ctx context.Context, queue string) (hermes.QueueStats, error) {
	var s hermes.QueueStats
	if _, err := queueOpts(ctx, d.db, queue); err != nil {
		return s, wrap("sqlite.Stats", err)
	}
	now := ms(d.now())
	err := d.db.QueryRowContext(ctx, `SELECT
		coalesce(sum(visible_at <= ?), 0), coalesce(sum(visible_at > ?), 0)
		FROM queue_messages WHERE queue = ?`, now, now, queue).Scan(&s.Visible, &s.InFlight)
	return s, wrap("sqlite.Stats", err)
}

func (d *DB) Purge(ctx context.Context, queue string) error {
	err := d.tx(ctx, func(tx *txn) error {
		if _, err := queueOpts(ctx, tx, queue); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "DELETE FROM queue_messages WHERE queue = ?", queue)
		return err
	})
	return wrap("sqlite.Purge", err)
}

func (d *DB) Redrive(ctx context.Context, deadLetter, queue string, max int) (int, error) {
	if max < 1 {
		return 0, hermes.Errorf(hermes.Invalid, "max must be at least 1")
	}
	n := 0
	err := d.tx(ctx, func(tx *txn) error {
		n = 0
		for _, q := range []string{deadLetter, queue} {
			if _, err := queueOpts(ctx, tx, q); err != nil {
				return err
			}
		}
		rows, err := tx.QueryContext(ctx, "SELECT id FROM queue_messages WHERE queue = ? ORDER BY sent_at, id LIMIT ?", deadLetter, max)
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		now := d.now()
		for _, id := range ids {
			if err := moveMessage(ctx, tx, deadLetter, queue, id, now); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, wrap("sqlite.Redrive", err)
	}
	if n > 0 {
		d.wake.wake(queue)
	}
	return n, nil
}
