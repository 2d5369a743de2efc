package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"github.com/webordinary/hermes"
)

func (d *DB) ThreadByToken(ctx context.Context, token string) (*hermes.Thread, error) {
	t := new(hermes.Thread)
	if err := getJSON(ctx, d.db, t, "no thread has token "+quote(token), "SELECT data FROM threads WHERE token = ?", token); err != nil {
		return nil, wrap("sqlite.ThreadByToken", err)
	}
	return t, nil
}

func (d *DB) AddThreadRefs(ctx context.Context, threadID string, refs ...string) error {
	err := d.tx(ctx, func(tx *txn) error {
		ok, err := exists(ctx, tx, "SELECT 1 FROM threads WHERE id = ?", threadID)
		if err == nil && !ok {
			err = hermes.Errorf(hermes.NotFound, "thread %q not found", threadID)
		}
		if err != nil {
			return err
		}
		for _, r := range refs {
			if r == "" {
				continue
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO thread_refs (ref, thread_id) VALUES (?, ?) ON CONFLICT (ref) DO NOTHING", r, threadID); err != nil {
				return err
			}
		}
		return nil
	})
	return wrap("sqlite.AddThreadRefs", err)
}

func (d *DB) ThreadByRef(ctx context.Context, ref string) (*hermes.Thread, error) {
	t := new(hermes.Thread)
	err := getJSON(ctx, d.db, t, "no thread has reference "+quote(ref),
		"SELECT t.data FROM thread_refs r JOIN threads t ON t.id = r.thread_id WHERE r.ref = ?", ref)
	if err != nil {
		return nil, wrap("sqlite.ThreadByRef", err)
	}
	return t, nil
}

func (d *DB) LatestThread(ctx context.Context, clientID, projectID, userID string) (*hermes.Thread, error) {
	t := new(hermes.Thread)
	err := getJSON(ctx, d.db, t, "user "+quote(userID)+" has no thread on "+clientID+"/"+projectID,
		`SELECT data FROM threads WHERE client_id = ? AND project_id = ? AND user_id = ?
		 ORDER BY updated_at DESC, id DESC LIMIT 1`, clientID, projectID, userID)
	if err != nil {
		return nil, wrap("sqlite.LatestThread", err)
	}
	return t, nil
}

func (d *DB) TouchThread(ctx context.Context, id string, now time.Time) error {
	err := d.tx(ctx, func(tx *txn) error {
		t := new(hermes.Thread)
		if err := getJSON(ctx, tx, t, "thread "+quote(id)+" not found", "SELECT data FROM threads WHERE id = ?", id); err != nil {
			return err
		}
		t.UpdatedAt = norm(now)
		data, err := json.Marshal(t)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "UPDATE threads SET data = ?, updated_at = ? WHERE id = ?", string(data), ms(t.UpdatedAt), id)
		return err
	})
	return wrap("sqlite.TouchThread", err)
}

// --- intake ---

func (d *DB) ClaimMessage(ctx context.Context, channel, id string, now time.Time, lease time.Duration) (hermes.DedupState, error) {
	var state hermes.DedupState
	err := d.tx(ctx, func(tx *txn) error {
		var done int
		var until int64
		err := tx.QueryRowContext(ctx, "SELECT done, lease_until FROM intake_messages WHERE channel = ? AND id = ?", channel, id).Scan(&done, &until)
		switch {
		case err == sql.ErrNoRows:
			state = hermes.DedupNew
			_, err = tx.ExecContext(ctx, "INSERT INTO intake_messages (channel, id, lease_until, updated_at) VALUES (?, ?, ?, ?)",
				channel, id, ms(now.Add(lease)), ms(now))
			return err
		case err != nil:
			return err
		case done == 1:
			state = hermes.DedupDone
			return nil
		case until > ms(now):
			state = hermes.DedupInProgress
			return nil
		}
		state = hermes.DedupNew
		_, err = tx.ExecContext(ctx, "UPDATE intake_messages SET lease_until = ?, updated_at = ? WHERE channel = ? AND id = ?",
			ms(now.Add(lease)), ms(now), channel, id)
		return err
	})
	return state, wrap("sqlite.ClaimMessage", err)
}

func (d *DB) CompleteMessage(ctx context.Context, channel, id string, now time.Time) error {
	_, err := d.w.ExecContext(ctx, `INSERT INTO intake_messages (channel, id, done, lease_until, updated_at) VALUES (?, ?, 1, 0, ?)
		ON CONFLICT (channel, id) DO UPDATE SET done = 1, updated_at = excluded.updated_at`, channel, id, ms(now))
	return wrap("sqlite.CompleteMessage", err)
}

func (d *DB) ReleaseMessage(ctx context.Context, channel, id string) error {
	_, err := d.w.ExecContext(ctx, "DELETE FROM intake_messages WHERE channel = ? AND id = ? AND done = 0", channel, id)
	return wrap("sqlite.ReleaseMessage", err)
}
