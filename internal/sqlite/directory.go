package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/webordinary/hermes"
)

var _ hermes.Store = (*DB)(nil)

// getJSON reads the data column of one row into v; NotFound when no row.
func getJSON(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, v any, notFound string, query string, args ...any) error {
	var data []byte
	if err := q.QueryRowContext(ctx, query, args...).Scan(&data); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return hermes.Errorf(hermes.NotFound, "%s", notFound)
		}
		return err
	}
	return json.Unmarshal(data, v)
}

// listJSON reads the data column of every row, decoding each into a new T.
func listJSON[T any](ctx context.Context, db conn, query string, args ...any) ([]*T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*T{}
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		v := new(T)
		if err := json.Unmarshal(data, v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func exists(ctx context.Context, tx *txn, query string, args ...any) (bool, error) {
	var n int
	err := tx.QueryRowContext(ctx, query, args...).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func requireClient(ctx context.Context, tx *txn, id string) error {
	ok, err := exists(ctx, tx, "SELECT 1 FROM clients WHERE id = ?", id)
	if err == nil && !ok {
		err = hermes.Errorf(hermes.NotFound, "client %q not found", id)
	}
	return err
}

// noLiveSessions fails with Conflict when a live session matches where.
func noLiveSessions(ctx context.Context, tx *txn, what, where string, args ...any) error {
	live, err := exists(ctx, tx, "SELECT 1 FROM sessions WHERE status <> 'expired' AND "+where+" LIMIT 1", args...)
	if err == nil && live {
		err = hermes.Errorf(hermes.Conflict, "%s has live sessions; deactivate them first", what)
	}
	return err
}

func mustAffect(res sql.Result, notFound string) error {
	n, err := res.RowsAffected()
	if err == nil && n == 0 {
		err = hermes.Errorf(hermes.NotFound, "%s", notFound)
	}
	return err
}

// --- clients ---

func (d *DB) CreateClient(ctx context.Context, c *hermes.Client, now time.Time) error {
	c.CreatedAt, c.UpdatedAt = norm(now), norm(now)
	data, err := json.Marshal(c)
	if err != nil {
		return wrap("sqlite.CreateClient", err)
	}
	err = d.tx(ctx, func(tx *txn) error {
		if ok, err := exists(ctx, tx, "SELECT 1 FROM clients WHERE id = ?", c.ID); err != nil || ok {
			if ok {
				err = hermes.Errorf(hermes.Conflict, "client %q already exists", c.ID)
			}
			return err
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO clients (id, data) VALUES (?, ?)", c.ID, string(data))
		return err
	})
	return wrap("sqlite.CreateClient", err)
}

func (d *DB) GetClient(ctx context.Context, id string) (*hermes.Client, error) {
	c := new(hermes.Client)
	if err := getJSON(ctx, d.db, c, "client "+quote(id)+" not found", "SELECT data FROM clients WHERE id = ?", id); err != nil {
		return nil, wrap("sqlite.GetClient", err)
	}
	return c, nil
}

func (d *DB) ListClients(ctx context.Context) ([]*hermes.Client, error) {
	cs, err := listJSON[hermes.Client](ctx, d.db, "SELECT data FROM clients ORDER BY id")
	return cs, wrap("sqlite.ListClients", err)
}

func (d *DB) UpdateClient(ctx context.Context, c *hermes.Client, now time.Time) error {
	err := d.tx(ctx, func(tx *txn) error {
		var old hermes.Client
		if err := getJSON(ctx, tx, &old, "client "+quote(c.ID)+" not found", "SELECT data FROM clients WHERE id = ?", c.ID); err != nil {
			return err
		}
		c.CreatedAt, c.UpdatedAt = old.CreatedAt, norm(now)
		data, err := json.Marshal(c)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "UPDATE clients SET data = ? WHERE id = ?", string(data), c.ID)
		return err
	})
	return wrap("sqlite.UpdateClient", err)
}

func (d *DB) DeleteClient(ctx context.Context, id string) error {
	err := d.tx(ctx, func(tx *txn) error {
		if err := requireClient(ctx, tx, id); err != nil {
			return err
		}
		if err := noLiveSessions(ctx, tx, "client "+quote(id), "client_id = ?", id); err != nil {
			return err
		}
		// A deleted tenant leaves nothing behind: its ended sessions, their
		// history and its threads go too.
		for _, q := range []string{
			"DELETE FROM history WHERE session_id IN (SELECT id FROM sessions WHERE client_id = ?)",
			"DELETE FROM sessions WHERE client_id = ?",
			"DELETE FROM threads WHERE client_id = ?",
			"DELETE FROM clients WHERE id = ?",
		} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return err
			}
		}
		return nil
	})
	return wrap("sqlite.DeleteClient", err)
}

// --- projects ---

func (d *DB) CreateProject(ctx context.Context, p *hermes.Project, now time.Time) error {
	p.CreatedAt, p.UpdatedAt = norm(now), norm(now)
	err := d.tx(ctx, func(tx *txn) error {
		if err := requireClient(ctx, tx, p.ClientID); err != nil {
			return err
		}
		if ok, err := exists(ctx, tx, "SELECT 1 FROM projects WHERE client_id = ? AND id = ?", p.ClientID, p.ID); err != nil || ok {
			if ok {
				err = hermes.Errorf(hermes.Conflict, "project %q of client %q already exists", p.ID, p.ClientID)
			}
			return err
		}
		data, err := json.Marshal(p)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO projects (client_id, id, data) VALUES (?, ?, ?)", p.ClientID, p.ID, string(data)); err != nil {
			return err
		}
		return putAddresses(ctx, tx, p)
	})
	return wrap("sqlite.CreateProject", err)
}

// putAddresses records the project's addresses, failing with Conflict when
// another project holds one of them.
func putAddresses(ctx context.Context, tx *txn, p *hermes.Project) error {
	for kind, addrs := range p.Addresses() {
		for _, a := range addrs {
			var client, project string
			err := tx.QueryRowContext(ctx, "SELECT client_id, project_id FROM project_addresses WHERE kind = ? AND address = ?", kind, a).Scan(&client, &project)
			switch {
			case err == nil && (client != p.ClientID || project != p.ID):
				return hermes.Errorf(hermes.Conflict, "%s address %q already belongs to project %s/%s", kind, a, client, project)
			case err == nil:
				continue
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO project_addresses (kind, address, client_id, project_id) VALUES (?, ?, ?, ?)",
				kind, a, p.ClientID, p.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *DB) GetProject(ctx context.Context, clientID, projectID string) (*hermes.Project, error) {
	p := new(hermes.Project)
	err := getJSON(ctx, d.db, p, "project "+quote(projectID)+" of client "+quote(clientID)+" not found",
		"SELECT data FROM projects WHERE client_id = ? AND id = ?", clientID, projectID)
	if err != nil {
		return nil, wrap("sqlite.GetProject", err)
	}
	return p, nil
}

func (d *DB) ListProjects(ctx context.Context, clientID string) ([]*hermes.Project, error) {
	ps, err := listJSON[hermes.Project](ctx, d.db, "SELECT data FROM projects WHERE client_id = ? ORDER BY id", clientID)
	return ps, wrap("sqlite.ListProjects", err)
}

func (d *DB) UpdateProject(ctx context.Context, p *hermes.Project, now time.Time) error {
	err := d.tx(ctx, func(tx *txn) error {
		var old hermes.Project
		if err := getJSON(ctx, tx, &old, "project "+quote(p.ID)+" of client "+quote(p.ClientID)+" not found",
			"SELECT data FROM projects WHERE client_id = ? AND id = ?", p.ClientID, p.ID); err != nil {
			return err
		}
		p.CreatedAt, p.UpdatedAt = old.CreatedAt, norm(now)
		data, err := json.Marshal(p)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE projects SET data = ? WHERE client_id = ? AND id = ?", string(data), p.ClientID, p.ID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM project_addresses WHERE client_id = ? AND project_id = ?", p.ClientID, p.ID); err != nil {
			return err
		}
		return putAddresses(ctx, tx, p)
	})
	return wrap("sqlite.UpdateProject", err)
}

func (d *DB) DeleteProject(ctx context.Context, clientID, projectID string) error {
	what := "project " + quote(projectID) + " of client " + quote(clientID)
	err := d.tx(ctx, func(tx *txn) error {
		if err := noLiveSessions(ctx, tx, what, "client_id = ? AND project_id = ?", clientID, projectID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM projects WHERE client_id = ? AND id = ?", clientID, projectID)
		if err != nil {
			return err
		}
		return mustAffect(res, what+" not found")
	})
	return wrap("sqlite.DeleteProject", err)
}

func (d *DB) ProjectByAddress(ctx context.Context, kind, address string) (*hermes.Project, error) {
	if kind == hermes.AddressEmail {
		address = lower(address)
	}
	p := new(hermes.Project)
	err := getJSON(ctx, d.db, p, "no project has "+kind+" address "+quote(address),
		`SELECT p.data FROM project_addresses a JOIN projects p ON p.client_id = a.client_id AND p.id = a.project_id
		 WHERE a.kind = ? AND a.address = ?`, kind, address)
	if err != nil {
		return nil, wrap("sqlite.ProjectByAddress", err)
	}
	return p, nil
}

// --- users ---

func (d *DB) CreateUser(ctx context.Context, u *hermes.User, now time.Time) error {
	u.CreatedAt, u.UpdatedAt = norm(now), norm(now)
	err := d.tx(ctx, func(tx *txn) error {
		if err := requireClient(ctx, tx, u.ClientID); err != nil {
			return err
		}
		if ok, err := exists(ctx, tx, "SELECT 1 FROM users WHERE client_id = ? AND id = ?", u.ClientID, u.ID); err != nil || ok {
			if ok {
				err = hermes.Errorf(hermes.Conflict, "user %q of client %q already exists", u.ID, u.ClientID)
			}
			return err
		}
		data, err := json.Marshal(u)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO users (client_id, id, data) VALUES (?, ?, ?)", u.ClientID, u.ID, string(data)); err != nil {
			return err
		}
		return putIdentities(ctx, tx, u)
	})
	return wrap("sqlite.CreateUser", err)
}

// putIdentities records the user's identities, failing with Conflict when
// another user of the client holds one of them.
func putIdentities(ctx context.Context, tx *txn, u *hermes.User) error {
	for kind, ids := range u.Identities() {
		for _, id := range ids {
			var owner string
			err := tx.QueryRowContext(ctx, "SELECT user_id FROM user_identities WHERE client_id = ? AND kind = ? AND identity = ?",
				u.ClientID, kind, id).Scan(&owner)
			switch {
			case err == nil && owner != u.ID:
				return hermes.Errorf(hermes.Conflict, "%s identity %q already belongs to user %q", kind, id, owner)
			case err == nil:
				continue
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO user_identities (client_id, kind, identity, user_id) VALUES (?, ?, ?, ?)",
				u.ClientID, kind, id, u.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *DB) GetUser(ctx context.Context, clientID, userID string) (*hermes.User, error) {
	u := new(hermes.User)
	err := getJSON(ctx, d.db, u, "user "+quote(userID)+" of client "+quote(clientID)+" not found",
		"SELECT data FROM users WHERE client_id = ? AND id = ?", clientID, userID)
	if err != nil {
		return nil, wrap("sqlite.GetUser", err)
	}
	return u, nil
}

func (d *DB) ListUsers(ctx context.Context, clientID string) ([]*hermes.User, error) {
	us, err := listJSON[hermes.User](ctx, d.db, "SELECT data FROM users WHERE client_id = ? ORDER BY id", clientID)
	return us, wrap("sqlite.ListUsers", err)
}

func (d *DB) UpdateUser(ctx context.Context, u *hermes.User, now time.Time) error {
	err := d.tx(ctx, func(tx *txn) error {
		var old hermes.User
		if err := getJSON(ctx, tx, &old, "user "+quote(u.ID)+" of client "+quote(u.ClientID)+" not found",
			"SELECT data FROM users WHERE client_id = ? AND id = ?", u.ClientID, u.ID); err != nil {
			return err
		}
		u.CreatedAt, u.UpdatedAt = old.CreatedAt, norm(now)
		data, err := json.Marshal(u)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE users SET data = ? WHERE client_id = ? AND id = ?", string(data), u.ClientID, u.ID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM user_identities WHERE client_id = ? AND user_id = ?", u.ClientID, u.ID); err != nil {
			return err
		}
		return putIdentities(ctx, tx, u)
	})
	return wrap("sqlite.UpdateUser", err)
}

func (d *DB) DeleteUser(ctx context.Context, clientID, userID string) error {
	what := "user " + quote(userID) + " of client " + quote(clientID)
	err := d.tx(ctx, func(tx *txn) error {
		if err := noLiveSessions(ctx, tx, what, "client_id = ? AND user_id = ?", clientID, userID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM users WHERE client_id = ? AND id = ?", clientID, userID)
		if err != nil {
			return err
		}
		return mustAffect(res, what+" not found")
	})
	return wrap("sqlite.DeleteUser", err)
}

func (d *DB) UserByIdentity(ctx context.Context, clientID, kind, identity string) (*hermes.User, error) {
	if kind == hermes.AddressEmail {
		identity = lower(identity)
	}
	u := new(hermes.User)
	err := getJSON(ctx, d.db, u, "no user of client "+quote(clientID)+" has "+kind+" identity "+quote(identity),
		`SELECT u.data FROM user_identities i JOIN users u ON u.client_id = i.client_id AND u.id = i.user_id
		 WHERE i.client_id = ? AND i.kind = ? AND i.identity = ?`, clientID, kind, identity)
	if err != nil {
		return nil, wrap("sqlite.UserByIdentity", err)
	}
	return u, nil
}
