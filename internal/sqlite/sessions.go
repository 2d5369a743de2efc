package sqlite

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/webordinary/hermes"
)

// --- threads ---

func (d *DB) CreateThread(ctx context.Context, t *hermes.Thread) error {
	t.CreatedAt, t.UpdatedAt = norm(t.CreatedAt), norm(t.UpdatedAt)
	data, err := json.Marshal(t)
	if err != nil {
		return wrap("sqlite.CreateThread", err)
	}
	var token any
	if t.Token != "" {
		token = t.Token
	}
	_, err = d.w.ExecContext(ctx, "INSERT INTO threads (id, client_id, project_id, user_id, data, token, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
		t.ID, t.ClientID, t.ProjectID, t.UserID, string(data), token, ms(t.UpdatedAt))
	if hermes.IsKind(wrap("", err), hermes.Conflict) {
		return &hermes.Error{Op: "sqlite.CreateThread", Kind: hermes.Conflict, Message: "thread " + quote(t.ID) + " or its token already exists", Err: err}
	}
	return wrap("sqlite.CreateThread", err)
}

func (d *DB) GetThread(ctx context.Context, id string) (*hermes.Thread, error) {
	t := new(hermes.Thread)
	if err := getJSON(ctx, d.db, t, "thread "+quote(id)+" not found", "SELECT data FROM threads WHERE id = ?", id); err != nil {
		return nil, wrap("sqlite.GetThread", err)
	}
	return t, nil
}

// --- sessions ---

func (d *DB) CreateSession(ctx context.Context, s *hermes.Session, history ...*hermes.HistoryEntry) error {
	s.Version = 1
	normSession(s)
	data, err := json.Marshal(s)
	if err != nil {
		return wrap("sqlite.CreateSession", err)
	}
	err = d.tx(ctx, func(tx *txn) error {
		if ok, err := exists(ctx, tx, "SELECT 1 FROM threads WHERE id = ?", s.ThreadID); err != nil || !ok {
			if err == nil {
				err = hermes.Errorf(hermes.NotFound, "thread %q not found", s.ThreadID)
			}
			return err
		}
		if ok, err := exists(ctx, tx, "SELECT 1 FROM sessions WHERE id = ?", s.ID); err != nil || ok {
			if ok {
				err = hermes.Errorf(hermes.Conflict, "session %q already exists", s.ID)
			}
			return err
		}
		if s.Status.Live() {
			if ok, err := exists(ctx, tx, "SELECT 1 FROM sessions WHERE thread_id = ? AND status <> 'expired'", s.ThreadID); err != nil || ok {
				if ok {
					err = hermes.Errorf(hermes.Conflict, "thread %q already has a live session", s.ThreadID)
				}
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO sessions (id, thread_id, client_id, project_id, user_id, status, created_at, expires_at, version, data)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			s.ID, s.ThreadID, s.ClientID, s.ProjectID, s.UserID, string(s.Status), ms(s.CreatedAt), ms(s.ExpiresAt), s.Version, string(data))
		if err != nil {
			return err
		}
		return appendHistory(ctx, tx, history)
	})
	if err != nil {
		s.Version = 0
	}
	return wrap("sqlite.CreateSession", err)
}

func (d *DB) GetSession(ctx context.Context, id string) (*hermes.Session, error) {
	s, err := getSession(ctx, d.db, "SELECT data, version FROM sessions WHERE id = ?", id)
	if err != nil {
		return nil, wrap("sqlite.GetSession", err)
	}
	return s, nil
}

func (d *DB) LiveSessionForThread(ctx context.Context, threadID string) (*hermes.Session, error) {
	s, err := getSession(ctx, d.db, "SELECT data, version FROM sessions WHERE thread_id = ? AND status <> 'expired'", threadID)
	if hermes.IsKind(err, hermes.NotFound) {
		err = hermes.Errorf(hermes.NotFound, "thread %q has no live session", threadID)
	}
	if err != nil {
		return nil, wrap("sqlite.LiveSessionForThread", err)
	}
	return s, nil
}

type queryRower interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

func getSession(ctx context.Context, q queryRower, query string, arg string) (*hermes.Session, error) {
	var data []byte
	var version int64
	if err := q.QueryRowContext(ctx, query, arg).Scan(&data, &version); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, hermes.Errorf(hermes.NotFound, "session %q not found", arg)
		}
		return nil, err
	}
	s := new(hermes.Session)
	if err := json.Unmarshal(data, s); err != nil {
		return nil, err
	}
	s.Version = version
	return s, nil
}

// UpdateSession runs read, fn and write in one IMMEDIATE transaction, which
// SQLite serialises across connections and processes; the version condition
// on the UPDATE keeps the compare-and-set explicit all the same.
func (d *DB) UpdateSession(ctx context.Context, id string, fn func(*hermes.Session) error) (*hermes.Session, error) {
	var out *hermes.Session
	var fnErr error
	err := d.tx(ctx, func(tx *txn) error {
		s, err := getSession(ctx, tx, "SELECT data, version FROM sessions WHERE id = ?", id)
		if err != nil {
			return err
		}
		old := s.Version
		if err := fn(s); err != nil {
			fnErr = err
			return err
		}
		s.ID, s.Version = id, old+1
		normSession(s)
		data, err := json.Marshal(s)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE sessions SET status = ?, expires_at = ?, version = ?, data = ? WHERE id = ? AND version = ?`,
			string(s.Status), ms(s.ExpiresAt), s.Version, string(data), id, old)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("session %s changed during update (rows %d): %v", id, n, err)
		}
		out = s
		return nil
	})
	if fnErr != nil {
		return nil, fnErr
	}
	if err != nil {
		return nil, wrap("sqlite.UpdateSession", err)
	}
	return out, nil
}

// cursor is the position after the last row of a page of a list ordered
// newest first (created_at, then id, descending).
type cursor struct {
	CreatedAt int64  `json:"c"`
	ID        string `json:"i"`
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c) // two plain fields: cannot fail
	return base64.RawURLEncoding.EncodeToString(b)
}

// keysetAfter adds to q the condition that selects the rows after the
// cursor s ("" selects from the start).
func keysetAfter(q *strings.Builder, args *[]any, s string) error {
	if s == "" {
		return nil
	}
	c, err := decodeCursor(s)
	if err != nil {
		return err
	}
	q.WriteString(" AND (created_at < ? OR (created_at = ? AND id < ?))")
	*args = append(*args, c.CreatedAt, c.CreatedAt, c.ID)
	return nil
}

func (d *DB) ListSessions(ctx context.Context, clientID string, statuses []hermes.SessionStatus, limit int, after string) ([]*hermes.Session, string, error) {
	q := strings.Builder{}
	q.WriteString("SELECT data, version, created_at, id FROM sessions WHERE client_id = ?")
	args := []any{clientID}
	if len(statuses) > 0 {
		q.WriteString(" AND status IN (?" + strings.Repeat(", ?", len(statuses)-1) + ")")
		for _, s := range statuses {
			args = append(args, string(s))
		}
	}
	return keysetPage(ctx, d, "sqlite.ListSessions", &q, args, limit, after, func(rows *sql.Rows, created *int64, id *string) (*hermes.Session, error) {
		var data []byte
		var version int64
		if err := rows.Scan(&data, &version, created, id); err != nil {
			return nil, err
		}
		s := new(hermes.Session)
		if err := json.Unmarshal(data, s); err != nil {
			return nil, err
		}
		s.Version = version
		return s, nil
	})
}

// keysetPage finishes a newest-first list query whose selected columns end
// with created_at and id: it checks the limit, continues after the cursor,
// orders and limits, and scans one row more than the page to know whether
// another page follows.
func keysetPage[T any](ctx context.Context, d *DB, op string, q *strings.Builder, args []any, limit int, after string,
	scan func(rows *sql.Rows, created *int64, id *string) (T, error)) ([]T, string, error) {
	if limit < 1 || limit > 1000 {
		return nil, "", &hermes.Error{Op: op, Kind: hermes.Invalid, Message: "limit must be between 1 and 1000"}
	}
	if err := keysetAfter(q, &args, after); err != nil {
		return nil, "", &hermes.Error{Op: op, Kind: hermes.Invalid, Message: "invalid cursor", Err: err}
	}
	q.WriteString(" ORDER BY created_at DESC, id DESC LIMIT ?")
	args = append(args, limit+1)
	rows, err := d.db.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, "", wrap(op, err)
	}
	defer rows.Close()
	page := []T{}
	var last cursor
	for rows.Next() {
		var c cursor
		v, err := scan(rows, &c.CreatedAt, &c.ID)
		if err != nil {
			return nil, "", wrap(op, err)
		}
		if len(page) == limit {
			return page, last.encode(), nil
		}
		page, last = append(page, v), c
	}
	return page, "", wrap(op, rows.Err())
}

func decodeCursor(s string) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return c, err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, err
	}
	if !hermes.ValidTokenID(c.ID) {
		return c, errors.New("bad id in cursor")
	}
	return c, nil
}

func (d *DB) ListLeaseExpired(ctx context.Context, now time.Time, limit int) ([]*hermes.Session, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT data, version FROM sessions
		WHERE status <> 'expired' AND expires_at <= ? ORDER BY expires_at, id LIMIT ?`, ms(now), limit)
	if err != nil {
		return nil, wrap("sqlite.ListLeaseExpired", err)
	}
	defer rows.Close()
	out := []*hermes.Session{}
	for rows.Next() {
		var data []byte
		var version int64
		if err := rows.Scan(&data, &version); err != nil {
			return nil, wrap("sqlite.ListLeaseExpired", err)
		}
		s := new(hermes.Session)
		if err := json.Unmarshal(data, s); err != nil {
			return nil, wrap("sqlite.ListLeaseExpired", err)
		}
		s.Version = version
		out = append(out, s)
	}
	return out, wrap("sqlite.ListLeaseExpired", rows.Err())
}

func (d *DB) CountSessions(ctx context.Context, statuses ...hermes.SessionStatus) (int, error) {
	if len(statuses) == 0 {
		return 0, nil
	}
	args := make([]any, len(statuses))
	for i, s := range statuses {
		args[i] = string(s)
	}
	var n int
	err := d.db.QueryRowContext(ctx, "SELECT count(*) FROM sessions WHERE status IN (?"+strings.Repeat(", ?", len(statuses)-1)+")", args...).Scan(&n)
	return n, wrap("sqlite.CountSessions", err)
}

// --- history ---

func (d *DB) AppendHistory(ctx context.Context, entries ...*hermes.HistoryEntry) error {
	err := d.tx(ctx, func(tx *txn) error { return appendHistory(ctx, tx, entries) })
	return wrap("sqlite.AppendHistory", err)
}

func appendHistory(ctx context.Context, tx *txn, entries []*hermes.HistoryEntry) error {
	for _, e := range entries {
		e.CreatedAt = norm(e.CreatedAt)
		if ok, err := exists(ctx, tx, "SELECT 1 FROM sessions WHERE id = ?", e.SessionID); err != nil || !ok {
			if err == nil {
				err = hermes.Errorf(hermes.NotFound, "session %q not found", e.SessionID)
			}
			return err
		}
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO history (session_id, id, created_at, data) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
			e.SessionID, e.ID, ms(e.CreatedAt), string(data)); err != nil {
			return err
		}
	}
	return nil
}

func (d *DB) ListHistory(ctx context.Context, sessionID string) ([]*hermes.HistoryEntry, error) {
	hs, err := listJSON[hermes.HistoryEntry](ctx, d.db, "SELECT data FROM history WHERE session_id = ? ORDER BY created_at, id", sessionID)
	return hs, wrap("sqlite.ListHistory", err)
}
