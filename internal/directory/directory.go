// Package directory manages clients with their projects and users as one
// tree: the shape of the projects file (HERMES_PROJECTS_FILE) and of
// POST /api/clients.
package directory

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/webordinary/hermes"
)

// ClientTree is a client that may nest its projects and users.
type ClientTree struct {
	hermes.Client
	Projects []*hermes.Project `json:"projects,omitempty"`
	Users    []*hermes.User    `json:"users,omitempty"`
}

// File is the projects file: {"clients": [CLIENT…]}.
type File struct {
	Clients []*ClientTree `json:"clients"`
}

// Normalize fills defaults and the client id of nested projects and users
// (keeping a different one, which Validate reports).
func (t *ClientTree) Normalize() {
	for _, p := range t.Projects {
		if p != nil {
			if p.ClientID == "" {
				p.ClientID = t.ID
			}
			p.Normalize()
		}
	}
	for _, u := range t.Users {
		if u != nil {
			if u.ClientID == "" {
				u.ClientID = t.ID
			}
			u.Normalize()
		}
	}
}

// Validate checks the whole tree, adding failures under prefix.
func (t *ClientTree) Validate(v *hermes.ValidationError, prefix string) {
	t.Client.Validate(v, prefix)
	seen := map[string]bool{}
	for i, p := range t.Projects {
		at := fmt.Sprintf("%sprojects[%d].", prefix, i)
		if p == nil {
			v.Add(at[:len(at)-1], "must be an object")
			continue
		}
		if p.ClientID != t.ID {
			v.Add(at+"clientId", "must be the client's id %q or absent", t.ID)
		}
		if seen[p.ID] {
			v.Add(at+"id", "project %q is listed twice", p.ID)
		}
		seen[p.ID] = true
		p.Validate(v, at)
	}
	seen = map[string]bool{}
	for i, u := range t.Users {
		at := fmt.Sprintf("%susers[%d].", prefix, i)
		if u == nil {
			v.Add(at[:len(at)-1], "must be an object")
			continue
		}
		if u.ClientID != t.ID {
			v.Add(at+"clientId", "must be the client's id %q or absent", t.ID)
		}
		if seen[u.ID] {
			v.Add(at+"id", "user %q is listed twice", u.ID)
		}
		seen[u.ID] = true
		u.Validate(v, at)
	}
}

// Create stores a new client with its projects and users. If any part
// fails (Conflict on an id or an address), the client is removed again, so
// nothing is left half made.
func Create(ctx context.Context, store hermes.Directory, t *ClientTree, now time.Time) error {
	if err := store.CreateClient(ctx, &t.Client, now); err != nil {
		return err
	}
	err := func() error {
		for _, p := range t.Projects {
			if err := store.CreateProject(ctx, p, now); err != nil {
				return err
			}
		}
		for _, u := range t.Users {
			if err := store.CreateUser(ctx, u, now); err != nil {
				return err
			}
		}
		return nil
	}()
	if err != nil {
		if derr := store.DeleteClient(context.WithoutCancel(ctx), t.ID); derr != nil {
			return errors.Join(err, fmt.Errorf("removing partly created client %s: %w", t.ID, derr))
		}
	}
	return err
}

// Upsert creates or replaces the client and each of its projects and users.
// Projects and users not in the tree are left alone.
func Upsert(ctx context.Context, store hermes.Directory, t *ClientTree, now time.Time) error {
	err := store.CreateClient(ctx, &t.Client, now)
	if hermes.IsKind(err, hermes.Conflict) {
		err = store.UpdateClient(ctx, &t.Client, now)
	}
	if err != nil {
		return err
	}
	for _, p := range t.Projects {
		err := store.CreateProject(ctx, p, now)
		if hermes.IsKind(err, hermes.Conflict) {
			if _, gerr := store.GetProject(ctx, p.ClientID, p.ID); gerr == nil {
				err = store.UpdateProject(ctx, p, now)
			}
		}
		if err != nil {
			return fmt.Errorf("project %s/%s: %w", p.ClientID, p.ID, err)
		}
	}
	for _, u := range t.Users {
		err := store.CreateUser(ctx, u, now)
		if hermes.IsKind(err, hermes.Conflict) {
			if _, gerr := store.GetUser(ctx, u.ClientID, u.ID); gerr == nil {
				err = store.UpdateUser(ctx, u, now)
			}
		}
		if err != nil {
			return fmt.Errorf("user %s/%s: %w", u.ClientID, u.ID, err)
		}
	}
	return nil
}

// ParseFile reads and validates a projects file. Errors name the file and
// the JSON path of each bad field.
func ParseFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("projects file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			line := 1 + bytes.Count(b[:syn.Offset], []byte("\n"))
			return nil, fmt.Errorf("projects file %s: line %d: %w", path, line, err)
		}
		return nil, fmt.Errorf("projects file %s: %w", path, err)
	}
	var v hermes.ValidationError
	ids := map[string]bool{}
	for i, c := range f.Clients {
		at := fmt.Sprintf("clients[%d]", i)
		if c == nil {
			v.Add(at, "must be an object")
			continue
		}
		if ids[c.ID] {
			v.Add(at+".id", "client %q is listed twice", c.ID)
		}
		ids[c.ID] = true
		c.Normalize()
		c.Validate(&v, at+".")
	}
	if err := v.Err(); err != nil {
		msgs := ""
		for _, f := range v.Fields {
			msgs += "\n  " + f.Field + ": " + f.Message
		}
		return nil, fmt.Errorf("projects file %s is invalid:%s", path, msgs)
	}
	return &f, nil
}

// LoadFile upserts every client of the projects file at path into store.
func LoadFile(ctx context.Context, store hermes.Directory, path string, now time.Time) (clients int, err error) {
	f, err := ParseFile(path)
	if err != nil {
		return 0, err
	}
	for _, c := range f.Clients {
		if err := Upsert(ctx, store, c, now); err != nil {
			return 0, fmt.Errorf("projects file %s: client %s: %w", path, c.ID, err)
		}
	}
	return len(f.Clients), nil
}
