package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/webordinary/hermes"
)

func (d *DB) EnqueueOutbox(ctx context.Context, items ...*hermes.OutboxItem) error {
	err := d.tx(ctx, func(tx *txn) error {
		for _, it := range items {
			it.Status = hermes.OutboxPending
			it.CreatedAt, it.NextAttemptAt = norm(it.CreatedAt), norm(it.NextAttemptAt)
			data, err := json.Marshal(it)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (id, status, next_attempt_at, created_at, data, raw)
				VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
				it.ID, string(it.Status), ms(it.NextAttemptAt), ms(it.CreatedAt), string(data), it.Raw); err != nil {
				return err
			}
		}
		return nil
	})
	return wrap("sqlite.EnqueueOutbox", err)
}

func scanOutbox(scan func(...any) error) (*hermes.OutboxItem, error) {
	var data string
	var raw []byte
	if err := scan(&data, &raw); err != nil {
		return nil, err
	}
	it := new(hermes.OutboxItem)
	if err := json.Unmarshal([]byte(data), it); err != nil {
		return nil, err
	}
	it.Raw = raw
	return it, nil
}

func (d *DB) GetOutbox(ctx context.Context, id string) (*hermes.OutboxItem, error) {
	it, err := scanOutbox(d.db.QueryRowContext(ctx, "SELECT data, raw FROM outbox WHERE id = ?", id).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		err = hermes.Errorf(hermes.NotFound, "outbox item %q not found", id)
	}
	if err != nil {
		return nil, wrap("sqlite.GetOutbox", err)
	}
	return it, nil
}

func (d *DB) ListOutbox(ctx context.Context, status hermes.OutboxStatus, limit int, after string) ([]*hermes.OutboxItem, string, error) {
	q := strings.Builder{}
	q.WriteString("SELECT data, raw, created_at, id FROM outbox WHERE 1 = 1")
	var args []any
	if status != "" {
		q.WriteString(" AND status = ?")
		args = append(args, string(status))
	}
	return keysetPage(ctx, d, "sqlite.ListOutbox", &q, args, limit, after, func(rows *sql.Rows, created *int64, id *string) (*hermes.OutboxItem, error) {
		return scanOutbox(func(dst ...any) error { return rows.Scan(append(dst, created, id)...) })
	})
}

func (d *DB) ClaimOutbox(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*hermes.OutboxItem, error) {
	var out []*hermes.OutboxItem
	err := d.tx(ctx, func(tx *txn) error {
		out = nil
		rows, err := tx.QueryContext(ctx, `SELECT data, raw FROM outbox
			WHERE status = 'pending' AND next_attempt_at <= ? AND claimed_until <= ?
			ORDER BY next_attempt_at, created_at, id LIMIT ?`, ms(now), ms(now), limit)
		if err != nil {
			return err
		}
		for rows.Next() {
			it, err := scanOutbox(rows.Scan)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, it)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, it := range out {
			if _, err := tx.ExecContext(ctx, "UPDATE outbox SET claimed_until = ? WHERE id = ?", ms(now.Add(lease)), it.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrap("sqlite.ClaimOutbox", err)
	}
	if out == nil {
		out = []*hermes.OutboxItem{}
	}
	return out, nil
}

func (d *DB) FinishOutbox(ctx context.Context, id string, status hermes.OutboxStatus, now, retryAt time.Time, lastError string) error {
	err := d.tx(ctx, func(tx *txn) error {
		it, err := scanOutbox(tx.QueryRowContext(ctx, "SELECT data, raw FROM outbox WHERE id = ?", id).Scan)
		if errors.Is(err, sql.ErrNoRows) {
			return hermes.Errorf(hermes.NotFound, "outbox item %q not found", id)
		}
		if err != nil {
			return err
		}
		it.Status, it.Attempts, it.LastError = status, it.Attempts+1, lastError
		switch status {
		case hermes.OutboxSent:
			t := norm(now)
			it.SentAt = &t
		case hermes.OutboxPending:
			it.NextAttemptAt = norm(retryAt)
		case hermes.OutboxFailed:
		default:
			return hermes.Errorf(hermes.Invalid, "unknown outbox status %q", status)
		}
		data, err := json.Marshal(it)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "UPDATE outbox SET status = ?, next_attempt_at = ?, claimed_until = 0, data = ? WHERE id = ?",
			string(it.Status), ms(it.NextAttemptAt), string(data), id)
		return err
	})
	return wrap("sqlite.FinishOutbox", err)
}

// --- containers ---

func (d *DB) EnsureContainer(ctx context.Context, c *hermes.Container) (*hermes.Container, error) {
	normContainer(c)
	data, err := json.Marshal(c)
	if err != nil {
		return nil, wrap("sqlite.EnsureContainer", err)
	}
	if _, err := d.w.ExecContext(ctx, "INSERT INTO containers (id, version, data) VALUES (?, 1, ?) ON CONFLICT (id) DO NOTHING", c.ID, string(data)); err != nil {
		return nil, wrap("sqlite.EnsureContainer", err)
	}
	return d.GetContainer(ctx, c.ID)
}

func getContainer(ctx context.Context, q queryRower, id string) (*hermes.Container, error) {
	var data string
	var version int64
	err := q.QueryRowContext(ctx, "SELECT data, version FROM containers WHERE id = ?", id).Scan(&data, &version)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, hermes.Errorf(hermes.NotFound, "container %q not found", id)
	}
	if err != nil {
		return nil, err
	}
	c := new(hermes.Container)
	if err := json.Unmarshal([]byte(data), c); err != nil {
		return nil, err
	}
	c.Version = version
	return c, nil
}

func (d *DB) GetContainer(ctx context.Context, id string) (*hermes.Container, error) {
	c, err := getContainer(ctx, d.db, id)
	if err != nil {
		return nil, wrap("sqlite.GetContainer", err)
	}
	return c, nil
}

func (d *DB) ListContainers(ctx context.Context) ([]*hermes.Container, error) {
	rows, err := d.db.QueryContext(ctx, "SELECT data, version FROM containers ORDER BY id")
	if err != nil {
		return nil, wrap("sqlite.ListContainers", err)
	}
	defer rows.Close()
	out := []*hermes.Container{}
	for rows.Next() {
		var data string
		var version int64
		if err := rows.Scan(&data, &version); err != nil {
			return nil, wrap("sqlite.ListContainers", err)
		}
		c := new(hermes.Container)
		if err := json.Unmarshal([]byte(data), c); err != nil {
			return nil, wrap("sqlite.ListContainers", err)
		}
		c.Version = version
		out = append(out, c)
	}
	return out, wrap("sqlite.ListContainers", rows.Err())
}

func (d *DB) UpdateContainer(ctx context.Context, id string, fn func(*hermes.Container) error) (*hermes.Container, error) {
	var out *hermes.Container
	var fnErr error
	err := d.tx(ctx, func(tx *txn) error {
		c, err := getContainer(ctx, tx, id)
		if err != nil {
			return err
		}
		old := c.Version
		if err := fn(c); err != nil {
			fnErr = err
			return err
		}
		c.ID, c.Version = id, old+1
		normContainer(c)
		data, err := json.Marshal(c)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, "UPDATE containers SET version = ?, data = ? WHERE id = ? AND version = ?", c.Version, string(data), id, old)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return errors.New("container changed during update")
		}
		out = c
		return nil
	})
	if fnErr != nil {
		return nil, fnErr
	}
	if err != nil {
		return nil, wrap("sqlite.UpdateContainer", err)
	}
	return out, nil
}

func normContainer(c *hermes.Container) {
	c.CreatedAt, c.UpdatedAt = norm(c.CreatedAt), norm(c.UpdatedAt)
	if c.LastHeartbeat != nil {
		t := norm(*c.LastHeartbeat)
		c.LastHeartbeat = &t
	}
	if c.StartedAt != nil {
		t := norm(*c.StartedAt)
		c.StartedAt = &t
	}
}
