package sqlite

import (
	"context"
	"time"
)

// AcquireLease implements hermes.Leases with one conditional upsert.
func (d *DB) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	var got string
	err := d.tx(ctx, func(tx *txn) error {
		got = ""
		if _, err := tx.ExecContext(ctx, `INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
			WHERE leases.holder = excluded.holder OR leases.expires_at <= ?`,
			name, holder, ms(now.Add(ttl)), ms(now)); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, "SELECT holder FROM leases WHERE name = ?", name).Scan(&got)
	})
	if err != nil {
		return false, wrap("sqlite.AcquireLease", err)
	}
	return got == holder, nil
}

// ReleaseLease implements hermes.Leases.
func (d *DB) ReleaseLease(ctx context.Context, name, holder string) error {
	err := d.tx(ctx, func(tx *txn) error {
		_, err := tx.ExecContext(ctx, "DELETE FROM leases WHERE name = ? AND holder = ?", name, holder)
		return err
	})
	return wrap("sqlite.ReleaseLease", err)
}
