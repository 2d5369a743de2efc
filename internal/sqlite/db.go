// Package sqlite is the embedded store of Hermes: hermes.Store on SQLite
// through the pure-Go modernc.org/sqlite driver (no cgo, so the binary stays
// static). The database runs in WAL mode, so several processes can share one
// file; every transaction begins IMMEDIATE, so read-then-write transactions
// from two processes serialise instead of failing with SQLITE_BUSY.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/webordinary/hermes"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is an open SQLite database with Hermes's schema.
type DB struct {
	pool *sql.DB // readers: several connections, concurrent in WAL mode
	wdb  *sql.DB // the writer: one connection, so writers of this process queue in order
	db   conn    // pool, through the statement cache
	w    conn    // wdb, through the statement cache
	rs   stmts
	ws   stmts
	path string
	wake wakeups // long-polling receivers in this process

}

// Open opens (creating when needed) the database file at path and brings its
// schema up to date. Several DBs, in one process or several, may open the
// same file.
func Open(ctx context.Context, path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, hermes.E("sqlite.Open", hermes.Unavailable, err)
	}
	// SQLite allows one writer at a time. Writers of this process share one
	// connection and wait their turn in database/sql's queue; only writers
	// of other processes meet the busy handler, whose sleeps would
	// otherwise give in-process contention long tails.
	w, err := sql.Open("sqlite", DSN(path))
	if err != nil {
		return nil, hermes.E("sqlite.Open", hermes.Internal, err)
	}
	w.SetMaxOpenConns(1)
	db, err := sql.Open("sqlite", DSN(path))
	if err != nil {
		w.Close()
		return nil, hermes.E("sqlite.Open", hermes.Internal, err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(5 * time.Minute)
	d := &DB{pool: db, wdb: w, path: path}
	d.rs.db, d.ws.db = db, w
	d.db, d.w = conn{&d.rs}, conn{&d.ws}
	if err := d.migrateRetrying(ctx); err != nil {
		d.closeAll()
		return nil, err
	}
	return d, nil
}

// migrateBusyFor is how long Open keeps trying migrations that find the
// database busy.
const migrateBusyFor = 10 * time.Second

// migrateRetrying runs migrate until it is not refused as busy, for up to
// migrateBusyFor. When several handles open a fresh database at once
// (replicas, workers starting beside serve, all turning it into WAL mode),
// SQLite may refuse one's BEGIN with SQLITE_BUSY well before the busy
// timeout (seen under load in TestMigrationsConcurrentOpen); trying again
// once the others' transaction is done works.
func (d *DB) migrateRetrying(ctx context.Context) error {
	deadline := time.Now().Add(migrateBusyFor)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		err := d.migrate(ctx)
		if err == nil || !busy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return hermes.E("sqlite.migrate", hermes.Unavailable, ctx.Err())
		case <-time.After(wait + time.Duration(rand.Int64N(int64(wait)))):
		}
	}
}

// busy reports whether err is SQLite's SQLITE_BUSY or SQLITE_LOCKED.
func busy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	code := se.Code() & 0xff
	return code == sqlite3.SQLITE_BUSY || code == sqlite3.SQLITE_LOCKED
}

// DSN is the data source name Hermes opens path with: WAL, NORMAL
// synchronisation, foreign keys, a 10 s busy timeout and IMMEDIATE
// transactions. Benchmarks use it to measure the raw database beside Hermes.
func DSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// Path returns the database file's path.
func (d *DB) Path() string { return d.path }

// Close closes the database.
func (d *DB) Close() error { return d.closeAll() }

func (d *DB) closeAll() error {
	d.rs.close()
	d.ws.close()
	return errors.Join(d.pool.Close(), d.wdb.Close())
}

// Ping checks that the database answers a query.
func (d *DB) Ping(ctx context.Context) error {
	var one int
	if err := d.db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return hermes.E("sqlite.Ping", hermes.Unavailable, err)
	}
	return nil
}

// migrate applies the embedded migrations that the database has not seen,
// each in its own transaction, in version order. Two processes migrating at
// once serialise on the IMMEDIATE transaction; the second finds the work done.
func (d *DB) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return hermes.E("sqlite.migrate", hermes.Internal, err)
	}
	sort.Strings(names)
	// One IMMEDIATE transaction for all pending migrations: a fresh database
	// is ready after one commit, and two processes migrating at once
	// serialise, the second finding the work done. Migrations run outside
	// the statement cache: each runs once.
	tx, err := d.wdb.BeginTx(ctx, nil)
	if err != nil {
		return hermes.E("sqlite.migrate", hermes.Unavailable, fmt.Errorf("begin: %w", err))
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`); err != nil {
		return hermes.E("sqlite.migrate", hermes.Unavailable, fmt.Errorf("schema_migrations: %w", err))
	}
	applied := map[int]bool{}
	rows, err := tx.QueryContext(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return hermes.E("sqlite.migrate", hermes.Unavailable, err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return hermes.E("sqlite.migrate", hermes.Unavailable, err)
		}
		applied[v] = true
	}
	rows.Close()
	for _, name := range names {
		base := filepath.Base(name)
		version, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return hermes.E("sqlite.migrate", hermes.Internal, fmt.Errorf("migration %s: name must start with a number", base))
		}
		if applied[version] {
			continue
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return hermes.E("sqlite.migrate", hermes.Internal, err)
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			return hermes.E("sqlite.migrate", hermes.Internal, fmt.Errorf("migration %s: %w", base, err))
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
			version, base, time.Now().UnixMilli()); err != nil {
			return hermes.E("sqlite.migrate", hermes.Unavailable, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return hermes.E("sqlite.migrate", hermes.Unavailable, fmt.Errorf("commit: %w", err))
	}
	return nil
}

// tx runs fn in a transaction (IMMEDIATE, from the DSN), committing when fn
// returns nil.
func (d *DB) tx(ctx context.Context, fn func(*txn) error) error {
	tx, err := d.wdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	t := &txn{tx: tx, s: &d.ws}
	defer t.prepareLater(context.WithoutCancel(ctx))
	if err := fn(t); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// wrap gives a database error its kind: unique-key violations are
// Conflict, a busy or locked database or a cancelled context Unavailable.
// Errors that are already *hermes.Error keep their kind and gain the op.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var he *hermes.Error
	if errors.As(err, &he) {
		return &hermes.Error{Op: op, Kind: he.Kind, Err: err}
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch code := se.Code(); {
		case code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return &hermes.Error{Op: op, Kind: hermes.Conflict, Message: "conflicts with existing data", Err: err}
		case busy(err):
			return hermes.E(op, hermes.Unavailable, err)
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return hermes.E(op, hermes.Unavailable, err)
	}
	return hermes.E(op, hermes.Internal, err)
}

func ms(t time.Time) int64 { return t.UnixMilli() }
