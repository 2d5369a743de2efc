package sqlite

import (
	"context"
	"database/sql"
	"sync"
)

// Statements are parsed once per connection and kept: parsing SQL was a
// fifth of the CPU time of a routed message. database/sql prepares a
// cached *sql.Stmt again on each connection that first uses it.
type stmts struct {
	db *sql.DB
	m  sync.Map // query → *sql.Stmt
}

func (s *stmts) get(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := s.m.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.m.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// lookup returns the cached statement of query, if there is one.
func (s *stmts) lookup(query string) (*sql.Stmt, bool) {
	st, ok := s.m.Load(query)
	if !ok {
		return nil, false
	}
	return st.(*sql.Stmt), true
}

func (s *stmts) close() {
	s.m.Range(func(_, v any) bool {
		v.(*sql.Stmt).Close()
		return true
	})
}

// conn runs statements on one pool (the readers, or the writer) through
// the statement cache.
type conn struct{ s *stmts }

func (c conn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := c.s.get(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (c conn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := c.s.get(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// QueryRowContext reports a preparation failure through the row's Scan.
func (c conn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := c.s.get(ctx, query)
	if err != nil {
		return c.s.db.QueryRowContext(ctx, query, args...) // fails again, with the error in Scan
	}
	return st.QueryRowContext(ctx, args...)
}

// txn is a transaction on the writer whose statements come from the cache.
// The writer has a single connection, which the transaction holds: a
// statement not cached yet runs unprepared, and is prepared after the
// transaction ends (preparing now would wait for the connection for ever).
type txn struct {
	tx    *sql.Tx
	s     *stmts
	later []string
}

func (t *txn) stmt(ctx context.Context, query string) *sql.Stmt {
	st, ok := t.s.lookup(query)
	if !ok {
		t.later = append(t.later, query)
		return nil
	}
	return t.tx.StmtContext(ctx, st)
}

func (t *txn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

func (t *txn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, query, args...)
}

func (t *txn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}

// prepareLater caches the statements the transaction ran unprepared.
func (t *txn) prepareLater(ctx context.Context) {
	for _, q := range t.later {
		_, _ = t.s.get(ctx, q) // a failure only means the next use parses again
	}
}
