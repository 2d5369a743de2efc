package directory_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/directory"
	"github.com/webordinary/hermes/internal/sqlite"
)

var now = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func openStore(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hermes.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "projects.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The example in the repository is a valid projects file.
func TestExampleProjectsFile(t *testing.T) {
	f, err := directory.ParseFile("../../examples/projects.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Clients) != 1 || len(f.Clients[0].Projects) != 1 || len(f.Clients[0].Users) != 1 {
		t.Fatalf("unexpected example contents: %+v", f)
	}
}

func TestParseFileErrors(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"syntax", "{\n  \"clients\": [\n  {,\n", "line 3"},
		{"unknown field", `{"clients":[{"id":"a","name":"A","colour":"red"}]}`, `unknown field "colour"`},
		{"bad slug", `{"clients":[{"id":"A B","name":"A"}]}`, "clients[0].id"},
		{"missing name", `{"clients":[{"id":"a"}]}`, "clients[0].name: is required"},
		{"duplicate client", `{"clients":[{"id":"a","name":"A"},{"id":"a","name":"B"}]}`, "clients[1].id"},
		{"bad email", `{"clients":[{"id":"a","name":"A","users":[{"id":"u","emails":["Scott <s@x.com>"]}]}]}`, "clients[0].users[0].emails[0]"},
		{"bad phone", `{"clients":[{"id":"a","name":"A","users":[{"id":"u","phones":["5550100"]}]}]}`, "clients[0].users[0].phones[0]"},
		{"other client id", `{"clients":[{"id":"a","name":"A","projects":[{"id":"p","clientId":"b","repoUrl":"/r"}]}]}`, "clients[0].projects[0].clientId"},
		{"command agent", `{"clients":[{"id":"a","name":"A","projects":[{"id":"p","repoUrl":"/r","agent":{"kind":"command"}}]}]}`, "agent.command"},
		{"outputDir escape", `{"clients":[{"id":"a","name":"A","projects":[{"id":"p","repoUrl":"/r","build":{"command":["make"],"outputDir":"../etc"}}]}]}`, "build.outputDir"},
		{"duplicate address in project", `{"clients":[{"id":"a","name":"A","projects":[{"id":"p","repoUrl":"/r","emailAddresses":["e@a.com","E@a.com"]}]}]}`, "emailAddresses"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := directory.ParseFile(writeFile(t, tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// Loading a file twice upserts: changed fields are replaced, nothing is
// duplicated, and records not in the file are left alone.
func TestLoadFileUpserts(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	first := writeFile(t, `{"clients":[{"id":"a","name":"A","projects":[{"id":"p","repoUrl":"/r","emailAddresses":["e@a.com"]}],
		"users":[{"id":"u","emails":["u@a.com"]}]}]}`)
	if n, err := directory.LoadFile(ctx, db, first, now); err != nil || n != 1 {
		t.Fatalf("first load: %d %v", n, err)
	}
	if err := db.CreateUser(ctx, &hermes.User{ClientID: "a", ID: "extra"}, now); err != nil {
		t.Fatal(err)
	}
	second := writeFile(t, `{"clients":[{"id":"a","name":"A renamed","projects":[{"id":"p","repoUrl":"/r2","emailAddresses":["new@a.com"]}],
		"users":[{"id":"u","emails":["u@a.com","u2@a.com"]}]}]}`)
	if _, err := directory.LoadFile(ctx, db, second, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	c, _ := db.GetClient(ctx, "a")
	p, _ := db.GetProject(ctx, "a", "p")
	us, _ := db.ListUsers(ctx, "a")
	if c.Name != "A renamed" || !c.CreatedAt.Equal(now) || p.RepoURL != "/r2" || len(us) != 2 {
		t.Fatalf("after reload: client %+v project %+v users %d", c, p, len(us))
	}
	if _, err := db.ProjectByAddress(ctx, hermes.AddressEmail, "e@a.com"); !hermes.IsKind(err, hermes.NotFound) {
		t.Errorf("old address still routes: %v", err)
	}
	if got, err := db.ProjectByAddress(ctx, hermes.AddressEmail, "NEW@a.com"); err != nil || got.ID != "p" {
		t.Errorf("new address: %v %v", got, err)
	}
}

// Create is all or nothing: a conflict in a nested project removes the
// client again.
func TestCreateRollsBack(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	owner := &directory.ClientTree{Client: hermes.Client{ID: "owner", Name: "O"},
		Projects: []*hermes.Project{{ID: "p", RepoURL: "/r", EmailAddresses: []string{"taken@x.com"}}}}
	owner.Normalize()
	if err := directory.Create(ctx, db, owner, now); err != nil {
		t.Fatal(err)
	}
	tr := &directory.ClientTree{Client: hermes.Client{ID: "late", Name: "L"},
		Projects: []*hermes.Project{{ID: "p", RepoURL: "/r", EmailAddresses: []string{"taken@x.com"}}},
		Users:    []*hermes.User{{ID: "u"}}}
	tr.Normalize()
	if err := directory.Create(ctx, db, tr, now); !hermes.IsKind(err, hermes.Conflict) {
		t.Fatalf("err = %v, want Conflict", err)
	}
	if _, err := db.GetClient(ctx, "late"); !hermes.IsKind(err, hermes.NotFound) {
		t.Errorf("half-created client left behind: %v", err)
	}
}
