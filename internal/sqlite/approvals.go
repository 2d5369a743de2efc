package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/webordinary/hermes"
)

const approvalColumns = "data, token_hash, version FROM approvals"

func scanApproval(scan func(...any) error) (*hermes.Approval, error) {
	var data, hash string
	var version int64
	if err := scan(&data, &hash, &version); err != nil {
		return nil, err
	}
	a := new(hermes.Approval)
	if err := json.Unmarshal([]byte(data), a); err != nil {
		return nil, err
	}
	a.TokenHash, a.Version = hash, version
	return a, nil
}

func getApproval(ctx context.Context, q queryRower, where string, arg string) (*hermes.Approval, error) {
	a, err := scanApproval(q.QueryRowContext(ctx, "SELECT "+approvalColumns+" WHERE "+where, arg).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, hermes.Errorf(hermes.NotFound, "approval not found")
	}
	return a, err
}

func normApproval(a *hermes.Approval) {
	a.CreatedAt, a.ExpiresAt = norm(a.CreatedAt), norm(a.ExpiresAt)
	for _, t := range []**time.Time{&a.DecidedAt, &a.DoneAt} {
		if *t != nil {
			v := norm(**t)
			*t = &v
		}
	}
}

// writeApproval stores a (insert when version is 1, else a compare-and-set
// on the previous version).
func writeApproval(ctx context.Context, tx *txn, a *hermes.Approval) error {
	normApproval(a)
	data, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if a.Version == 1 {
		_, err = tx.ExecContext(ctx, `INSERT INTO approvals (id, token_hash, thread_id, status, created_at, version, data)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, a.ID, a.TokenHash, a.ThreadID, string(a.Status), ms(a.CreatedAt), a.Version, string(data))
		return err
	}
	res, err := tx.ExecContext(ctx, `UPDATE approvals SET token_hash = ?, status = ?, version = ?, data = ?
		WHERE id = ? AND version = ?`, a.TokenHash, string(a.Status), a.Version, string(data), a.ID, a.Version-1)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return errors.New("approval changed during update")
	}
	return nil
}

func (d *DB) PutApproval(ctx context.Context, a *hermes.Approval) (*hermes.Approval, error) {
	var out *hermes.Approval
	err := d.tx(ctx, func(tx *txn) error {
		old, err := getApproval(ctx, tx, "id = ?", a.ID)
		switch {
		case hermes.IsKind(err, hermes.NotFound):
			if ok, err := exists(ctx, tx, "SELECT 1 FROM threads WHERE id = ?", a.ThreadID); err != nil || !ok {
				if err == nil {
					err = hermes.Errorf(hermes.NotFound, "thread %q not found", a.ThreadID)
				}
				return err
			}
			x := *a
			x.Status, x.Version, x.DecidedAt, x.DecidedVia, x.DoneAt = hermes.ApprovalPending, 1, nil, "", nil
			out = &x
		case err != nil:
			return err
		case old.Status != hermes.ApprovalPending:
			return hermes.Errorf(hermes.Conflict, "approval %s is %s already", a.ID, old.Status)
		default:
			old.TokenHash, old.Plan, old.ExpiresAt = a.TokenHash, a.Plan, a.ExpiresAt
			old.Version++
			out = old
		}
		return writeApproval(ctx, tx, out)
	})
	if err != nil {
		return nil, wrap("sqlite.PutApproval", err)
	}
	x := *out
	return &x, nil
}

func (d *DB) GetApproval(ctx context.Context, id string) (*hermes.Approval, error) {
	a, err := getApproval(ctx, d.db, "id = ?", id)
	if err != nil {
		return nil, wrap("sqlite.GetApproval", err)
	}
	return a, nil
}

func (d *DB) ApprovalByTokenHash(ctx context.Context, hash string) (*hermes.Approval, error) {
	a, err := getApproval(ctx, d.db, "token_hash = ?", hash)
	if err != nil {
		return nil, wrap("sqlite.ApprovalByTokenHash", err)
	}
	return a, nil
}

func (d *DB) LatestApproval(ctx context.Context, threadID string) (*hermes.Approval, error) {
	a, err := getApproval(ctx, d.db, "thread_id = ? ORDER BY created_at DESC, id DESC LIMIT 1", threadID)
	if err != nil {
		return nil, wrap("sqlite.LatestApproval", err)
	}
	return a, nil
}

func (d *DB) DecideApproval(ctx context.Context, id string, status hermes.ApprovalStatus, via string, now time.Time) (*hermes.Approval, error) {
	now = norm(now)
	var out *hermes.Approval
	err := d.tx(ctx, func(tx *txn) error {
		a, err := getApproval(ctx, tx, "id = ?", id)
		if err != nil {
			return err
		}
		if err := decide(a, status, via, now); err != nil {
			return err
		}
		a.Version++
		out = a
		return writeApproval(ctx, tx, a)
	})
	if err != nil {
		return nil, wrap("sqlite.DecideApproval", err)
	}
	return out, nil
}

// decide applies the rules of Approvals.DecideApproval to a.
func decide(a *hermes.Approval, status hermes.ApprovalStatus, via string, now time.Time) error {
	switch status {
	case hermes.ApprovalApproved, hermes.ApprovalRejected, hermes.ApprovalExpired:
	default:
		return hermes.Errorf(hermes.Invalid, "an approval cannot be decided as %q", status)
	}
	if a.Status != hermes.ApprovalPending {
		return hermes.Errorf(hermes.Conflict, "the approval is %s already", a.Status)
	}
	expired := !now.Before(a.ExpiresAt)
	if status == hermes.ApprovalExpired && !expired {
		return hermes.Errorf(hermes.Invalid, "the approval has not expired yet")
	}
	if status != hermes.ApprovalExpired && expired {
		return hermes.Errorf(hermes.Conflict, "the approval has expired")
	}
	a.Status, a.DecidedAt, a.DecidedVia = status, &now, via
	return nil
}

func (d *DB) CompleteApproval(ctx context.Context, id string, now time.Time) error {
	now = norm(now)
	err := d.tx(ctx, func(tx *txn) error {
		a, err := getApproval(ctx, tx, "id = ?", id)
		if err != nil {
			return err
		}
		if !a.Decided() {
			return hermes.Errorf(hermes.Conflict, "the approval is %s, not decided", a.Status)
		}
		if a.DoneAt != nil {
			return nil
		}
		a.DoneAt = &now
		a.Version++
		return writeApproval(ctx, tx, a)
	})
	return wrap("sqlite.CompleteApproval", err)
}
