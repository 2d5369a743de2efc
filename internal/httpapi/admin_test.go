package httpapi_test

import (
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/webordinary/hermes"
)

// clientTree is the response body of the client routes.
type clientTree struct {
	hermes.Client
	Projects []*hermes.Project `json:"projects"`
	Users    []*hermes.User    `json:"users"`
}

func TestCreateClientTree(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	body := map[string]any{
		"id": "acme", "name": "Acme Theatre",
		"projects": []map[string]any{
			{"id": "web", "repoUrl": "https://github.com/acme/web.git", "emailAddresses": []string{"Edit@Acme.Example.COM"},
				"smsNumbers": []string{"+15550100009"}, "slackChannels": []string{"C0999"}},
			{"id": "shop", "repoUrl": "file:///srv/shop.git", "defaultBranch": "trunk", "busyPolicy": "queue", "acknowledge": false,
				"agent":              map[string]any{"kind": "command", "command": []string{"./agent.sh", "--fast"}},
				"build":              map[string]any{"command": []string{"npm", "run", "build"}, "outputDir": "dist"},
				"previewUrlTemplate": "https://{user}.acme.example.com/{thread}/"},
		},
		"users": []map[string]any{
			{"id": "bob", "name": "Bob", "emails": []string{"Bob@Example.COM"}, "phones": []string{"+15550100010"}, "chatIds": []string{"U0999"}},
			{"id": "eve"},
		},
	}
	r := a.do(t, request{Method: "POST", Path: "/api/clients", Key: adminKey, Body: body}).want(t, http.StatusCreated)
	if loc := r.Header.Get("Location"); loc != "/api/clients/acme" {
		t.Errorf("Location %q", loc)
	}
	var got clientTree
	r.JSON(t, &got)
	if got.ID != "acme" || got.Name != "Acme Theatre" || !got.CreatedAt.Equal(testStart) {
		t.Errorf("client %+v", got.Client)
	}
	if len(got.Projects) != 2 || len(got.Users) != 2 {
		t.Fatalf("tree has %d projects and %d users, want 2 and 2: %s", len(got.Projects), len(got.Users), r.Body)
	}
	byID := map[string]*hermes.Project{}
	for _, p := range got.Projects {
		byID[p.ID] = p
		if p.ClientID != "acme" {
			t.Errorf("project %s clientId %q", p.ID, p.ClientID)
		}
	}
	web, shop := byID["web"], byID["shop"]
	if web == nil || shop == nil {
		t.Fatalf("projects %s", r.Body)
	}
	if web.DefaultBranch != "main" || web.BusyPolicy != "interrupt" || web.Acknowledge == nil || !*web.Acknowledge ||
		web.Agent.Kind != "claude" || web.Build != nil {
		t.Errorf("web defaults: %+v (agent %+v)", web, web.Agent)
	}
	if !slices.Equal(web.EmailAddresses, []string{"edit@acme.example.com"}) || !slices.Equal(web.SMSNumbers, []string{"+15550100009"}) ||
		!slices.Equal(web.SlackChannels, []string{"C0999"}) {
		t.Errorf("web addresses %v %v %v", web.EmailAddresses, web.SMSNumbers, web.SlackChannels)
	}
	if shop.DefaultBranch != "trunk" || shop.BusyPolicy != "queue" || shop.Acknowledge == nil || *shop.Acknowledge ||
		shop.Agent.Kind != "command" || !slices.Equal(shop.Agent.Command, []string{"./agent.sh", "--fast"}) ||
		shop.Build == nil || shop.Build.OutputDir != "dist" || shop.PreviewURLTemplate != "https://{user}.acme.example.com/{thread}/" {
		t.Errorf("shop: %+v", shop)
	}
	if shop.EmailAddresses == nil || len(shop.EmailAddresses) != 0 {
		t.Errorf("shop emailAddresses %#v, want []", shop.EmailAddresses)
	}
	bob := got.Users[0]
	if bob.ID != "bob" || bob.ClientID != "acme" || !slices.Equal(bob.Emails, []string{"bob@example.com"}) ||
		!slices.Equal(bob.Phones, []string{"+15550100010"}) || !slices.Equal(bob.ChatIDs, []string{"U0999"}) {
		t.Errorf("bob %+v", bob)
	}
	if eve := got.Users[1]; eve.ID != "eve" || eve.Emails == nil || eve.Phones == nil || eve.ChatIDs == nil {
		t.Errorf("eve %+v: lists must be [] not null", eve)
	}

	// GET returns the same tree.
	var again clientTree
	a.do(t, request{Method: "GET", Path: "/api/clients/acme", Key: adminKey}).want(t, http.StatusOK).JSON(t, &again)
	if !reflect.DeepEqual(again, got) {
		t.Errorf("GET differs from the POST answer:\n%+v\n%+v", again, got)
	}
	// The stored addresses route to the project, in lowercase.
	p, err := a.Store.ProjectByAddress(t.Context(), hermes.AddressEmail, "edit@acme.example.com")
	if err != nil || p.ID != "web" {
		t.Errorf("ProjectByAddress: %v %v", p, err)
	}
	// The new tree can be used at once.
	a.do(t, request{Method: "POST", Path: activatePath, Key: adminKey,
		Body: map[string]string{"clientId": "acme", "projectId": "shop", "userId": "eve", "instruction": "x"}}).want(t, http.StatusCreated)
}

func TestCreateClientConflicts(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	cases := []struct {
		name string
		body any
		gone string // a client that must not exist afterwards
	}{
		{name: "existing client id", body: map[string]any{"id": "amelia", "name": "Another Amelia"}},
		{name: "email of another client's project", gone: "dup",
			body: map[string]any{"id": "dup", "name": "Dup", "projects": []map[string]any{
				{"id": "a", "repoUrl": "/srv/a.git", "emailAddresses": []string{"fresh@dup.example.com"}},
				{"id": "b", "repoUrl": "/srv/b.git", "emailAddresses": []string{"EDIT@amelia.example.com"}},
			}, "users": []map[string]any{{"id": "u", "emails": []string{"u@dup.example.com"}}}}},
		{name: "user identity listed twice across users", gone: "dup2",
			body: map[string]any{"id": "dup2", "name": "Dup", "projects": []map[string]any{
				{"id": "a", "repoUrl": "/srv/a.git", "emailAddresses": []string{"fresh@dup.example.com"}},
			}, "users": []map[string]any{{"id": "u", "emails": []string{"same@dup.example.com"}}, {"id": "v", "emails": []string{"same@dup.example.com"}}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sessions, clients := a.countSessions(t), a.countClients(t)
			a.do(t, request{Method: "POST", Path: "/api/clients", Key: adminKey, Body: tc.body}).want(t, http.StatusConflict).Problem(t)
			if n := a.countClients(t); n != clients {
				t.Errorf("%d clients, want %d", n, clients)
			}
			if n := a.countSessions(t); n != sessions {
				t.Errorf("%d sessions, want %d", n, sessions)
			}
			if tc.gone != "" {
				a.do(t, request{Method: "GET", Path: "/api/clients/" + tc.gone, Key: adminKey}).want(t, http.StatusNotFound).Problem(t)
				a.do(t, request{Method: "GET", Path: "/api/clients/" + tc.gone + "/projects/a", Key: adminKey}).want(t, http.StatusNotFound)
			}
		})
	}
	// The rolled-back tree left no addresses behind: they can be used now.
	a.do(t, request{Method: "POST", Path: "/api/clients", Key: adminKey, Body: map[string]any{
		"id": "fresh", "name": "Fresh", "projects": []map[string]any{{"id": "a", "repoUrl": "/srv/a.git", "emailAddresses": []string{"fresh@dup.example.com"}}},
	}}).want(t, http.StatusCreated)
	// The existing client is unchanged.
	var amelia clientTree
	a.do(t, request{Method: "GET", Path: "/api/clients/amelia", Key: adminKey}).want(t, http.StatusOK).JSON(t, &amelia)
	if amelia.Name != "Amelia Stamps" || len(amelia.Projects) != 1 || len(amelia.Users) != 2 {
		t.Errorf("amelia changed: %+v", amelia)
	}
}

func TestDirectoryCRUD(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.Clock.Advance(time.Hour)
	later := a.Clock.Now()

	steps := []struct {
		name   string
		method string
		path   string
		body   any
		status int
		check  func(t *testing.T, r *response)
	}{
		// clients
		{name: "list clients", method: "GET", path: "/api/clients", status: http.StatusOK, check: func(t *testing.T, r *response) {
			var cs []hermes.Client
			r.JSON(t, &cs)
			if len(cs) != 2 || cs[0].ID != "amelia" || cs[1].ID != "other" {
				t.Errorf("clients %+v", cs)
			}
		}},
		{name: "get client", method: "GET", path: "/api/clients/amelia", status: http.StatusOK, check: func(t *testing.T, r *response) {
			var c clientTree
			r.JSON(t, &c)
			if c.ID != "amelia" || len(c.Projects) != 1 || c.Projects[0].ID != "site" || len(c.Users) != 2 {
				t.Errorf("amelia %+v", c)
			}
		}},
		{name: "get unknown client", method: "GET", path: "/api/clients/nobody", status: http.StatusNotFound},
		{name: "put client", method: "PUT", path: "/api/clients/amelia", body: map[string]any{"id": "amelia", "name": "Amelia S."},
			status: http.StatusOK, check: func(t *testing.T, r *response) {
				var c clientTree
				r.JSON(t, &c)
				if c.Name != "Amelia S." || !c.CreatedAt.Equal(testStart) || !c.UpdatedAt.Equal(later) || len(c.Projects) != 1 {
					t.Errorf("updated client %+v", c)
				}
			}},
		{name: "put client without id takes the path's", method: "PUT", path: "/api/clients/amelia", body: map[string]any{"name": "Amelia Stamps"},
			status: http.StatusOK},
		{name: "put client with mismatched id", method: "PUT", path: "/api/clients/amelia", body: map[string]any{"id": "other", "name": "x"},
			status: http.StatusBadRequest},
		{name: "put unknown client", method: "PUT", path: "/api/clients/nobody", body: map[string]any{"name": "x"}, status: http.StatusNotFound},

		// projects
		{name: "list projects", method: "GET", path: "/api/clients/other/projects", status: http.StatusOK, check: func(t *testing.T, r *response) {
			var ps []hermes.Project
			r.JSON(t, &ps)
			if len(ps) != 2 || ps[0].ID != "one" || ps[1].ID != "two" {
				t.Errorf("projects %+v", ps)
			}
		}},
		{name: "list projects of unknown client", method: "GET", path: "/api/clients/nobody/projects", status: http.StatusNotFound},
		{name: "get project", method: "GET", path: "/api/clients/amelia/projects/site", status: http.StatusOK, check: func(t *testing.T, r *response) {
			var p hermes.Project
			r.JSON(t, &p)
			if p.ID != "site" || p.ClientID != "amelia" || p.RepoURL != "/srv/amelia.git" {
				t.Errorf("site %+v", p)
			}
		}},
		{name: "get unknown project", method: "GET", path: "/api/clients/amelia/projects/blog", status: http.StatusNotFound},
		{name: "create project", method: "POST", path: "/api/clients/amelia/projects",
			body:   map[string]any{"id": "blog", "repoUrl": "/srv/blog.git", "emailAddresses": []string{"Blog@Amelia.example.com"}},
			status: http.StatusCreated, check: func(t *testing.T, r *response) {
				var p hermes.Project
				r.JSON(t, &p)
				if p.ClientID != "amelia" || p.DefaultBranch != "main" || p.Agent.Kind != "claude" ||
					!slices.Equal(p.EmailAddresses, []string{"blog@amelia.example.com"}) || r.Header.Get("Location") != "/api/clients/amelia/projects/blog" {
					t.Errorf("created project %+v, Location %q", p, r.Header.Get("Location"))
				}
			}},
		{name: "create existing project", method: "POST", path: "/api/clients/amelia/projects",
			body: map[string]any{"id": "blog", "repoUrl": "/srv/blog2.git"}, status: http.StatusConflict},
		{name: "create project with a taken address", method: "POST", path: "/api/clients/other/projects",
			body: map[string]any{"id": "three", "repoUrl": "/srv/x.git", "emailAddresses": []string{"blog@amelia.example.com"}}, status: http.StatusConflict},
		{name: "create project of unknown client", method: "POST", path: "/api/clients/nobody/projects",
			body: map[string]any{"id": "x", "repoUrl": "/srv/x.git"}, status: http.StatusNotFound},
		{name: "create project with mismatched client", method: "POST", path: "/api/clients/amelia/projects",
			body: map[string]any{"id": "x", "clientId": "other", "repoUrl": "/srv/x.git"}, status: http.StatusBadRequest},
		{name: "put project", method: "PUT", path: "/api/clients/amelia/projects/blog",
			body: map[string]any{"repoUrl": "/srv/blog-v2.git", "busyPolicy": "queue"}, status: http.StatusOK, check: func(t *testing.T, r *response) {
				var p hermes.Project
				r.JSON(t, &p)
				if p.ID != "blog" || p.RepoURL != "/srv/blog-v2.git" || p.BusyPolicy != "queue" || len(p.EmailAddresses) != 0 {
					t.Errorf("updated project %+v", p)
				}
			}},
		{name: "put project with mismatched id", method: "PUT", path: "/api/clients/amelia/projects/blog",
			body: map[string]any{"id": "site", "repoUrl": "/srv/x.git"}, status: http.StatusBadRequest},
		{name: "put unknown project", method: "PUT", path: "/api/clients/amelia/projects/nope",
			body: map[string]any{"repoUrl": "/srv/x.git"}, status: http.StatusNotFound},
		{name: "the old address is free again", method: "POST", path: "/api/clients/other/projects",
			body: map[string]any{"id": "three", "repoUrl": "/srv/x.git", "emailAddresses": []string{"blog@amelia.example.com"}}, status: http.StatusCreated},
		{name: "delete project", method: "DELETE", path: "/api/clients/amelia/projects/blog", status: http.StatusNoContent},
		{name: "get deleted project", method: "GET", path: "/api/clients/amelia/projects/blog", status: http.StatusNotFound},
		{name: "delete deleted project", method: "DELETE", path: "/api/clients/amelia/projects/blog", status: http.StatusNotFound},

		// users
		{name: "list users", method: "GET", path: "/api/clients/amelia/users", status: http.StatusOK, check: func(t *testing.T, r *response) {
			var us []hermes.User
			r.JSON(t, &us)
			if len(us) != 2 || us[0].ID != "jo" || us[1].ID != "scott" {
				t.Errorf("users %+v", us)
			}
		}},
		{name: "get user", method: "GET", path: "/api/clients/amelia/users/scott", status: http.StatusOK, check: func(t *testing.T, r *response) {
			var u hermes.User
			r.JSON(t, &u)
			if u.ID != "scott" || !slices.Equal(u.Emails, []string{"scott@example.com"}) || !slices.Equal(u.Phones, []string{"+15550100002"}) {
				t.Errorf("scott %+v", u)
			}
		}},
		{name: "get user of another client", method: "GET", path: "/api/clients/other/users/scott", status: http.StatusNotFound},
		{name: "create user", method: "POST", path: "/api/clients/amelia/users",
			body: map[string]any{"id": "kim", "name": "Kim", "emails": []string{"KIM@example.com"}}, status: http.StatusCreated,
			check: func(t *testing.T, r *response) {
				var u hermes.User
				r.JSON(t, &u)
				if u.ClientID != "amelia" || !slices.Equal(u.Emails, []string{"kim@example.com"}) || u.Phones == nil {
					t.Errorf("created user %+v", u)
				}
			}},
		{name: "create existing user", method: "POST", path: "/api/clients/amelia/users", body: map[string]any{"id": "kim"}, status: http.StatusConflict},
		{name: "create user with another user's email", method: "POST", path: "/api/clients/amelia/users",
			body: map[string]any{"id": "kim2", "emails": []string{"scott@example.com"}}, status: http.StatusConflict},
		{name: "same email in another client is fine", method: "POST", path: "/api/clients/other/users",
			body: map[string]any{"id": "scott", "emails": []string{"scott@example.com"}}, status: http.StatusCreated},
		{name: "put user", method: "PUT", path: "/api/clients/amelia/users/kim",
			body: map[string]any{"name": "Kim K", "phones": []string{"+15550100077"}}, status: http.StatusOK, check: func(t *testing.T, r *response) {
				var u hermes.User
				r.JSON(t, &u)
				if u.ID != "kim" || u.Name != "Kim K" || len(u.Emails) != 0 || !slices.Equal(u.Phones, []string{"+15550100077"}) {
					t.Errorf("updated user %+v", u)
				}
			}},
		{name: "put user with mismatched id", method: "PUT", path: "/api/clients/amelia/users/kim", body: map[string]any{"id": "jo"}, status: http.StatusBadRequest},
		{name: "put unknown user", method: "PUT", path: "/api/clients/amelia/users/nobody", body: map[string]any{"name": "x"}, status: http.StatusNotFound},
		{name: "delete user", method: "DELETE", path: "/api/clients/amelia/users/kim", status: http.StatusNoContent},
		{name: "get deleted user", method: "GET", path: "/api/clients/amelia/users/kim", status: http.StatusNotFound},
		{name: "delete deleted user", method: "DELETE", path: "/api/clients/amelia/users/kim", status: http.StatusNotFound},

		// deleting a client removes its tree
		{name: "delete client", method: "DELETE", path: "/api/clients/other", status: http.StatusNoContent},
		{name: "get deleted client", method: "GET", path: "/api/clients/other", status: http.StatusNotFound},
		{name: "its projects are gone", method: "GET", path: "/api/clients/other/projects/one", status: http.StatusNotFound},
		{name: "its users are gone", method: "GET", path: "/api/clients/other/users/ann", status: http.StatusNotFound},
		{name: "delete deleted client", method: "DELETE", path: "/api/clients/other", status: http.StatusNotFound},
		{name: "the deleted project's address is free", method: "POST", path: "/api/clients/amelia/projects",
			body: map[string]any{"id": "blog", "repoUrl": "/srv/blog.git", "emailAddresses": []string{"blog@amelia.example.com"}}, status: http.StatusCreated},
	}
	for _, s := range steps {
		ok := t.Run(s.name, func(t *testing.T) {
			r := a.do(t, request{Method: s.method, Path: s.path, Key: adminKey, Body: s.body}).want(t, s.status)
			switch {
			case s.status >= 400:
				r.Problem(t)
			case s.status == http.StatusNoContent:
				if len(r.Body) != 0 {
					t.Errorf("204 with body %q", r.Body)
				}
			}
			if s.check != nil {
				s.check(t, r)
			}
		})
		if !ok {
			t.FailNow() // later steps depend on earlier ones
		}
	}
}

func TestDeleteWithLiveSession(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	id := a.activate(t, ameliaKey)

	live := []struct{ name, path string }{
		{"user", "/api/clients/amelia/users/scott"},
		{"project", "/api/clients/amelia/projects/site"},
		{"client", "/api/clients/amelia"},
	}
	for _, tc := range live {
		t.Run(tc.name+" with a live session", func(t *testing.T) {
			p := a.do(t, request{Method: "DELETE", Path: tc.path, Key: adminKey}).want(t, http.StatusConflict).Problem(t)
			if !strings.Contains(p.Detail, "live session") {
				t.Errorf("detail %q does not explain the conflict", p.Detail)
			}
			a.do(t, request{Method: "GET", Path: tc.path, Key: adminKey}).want(t, http.StatusOK)
		})
	}
	// A user without sessions can go while another user's session is live.
	a.do(t, request{Method: "DELETE", Path: "/api/clients/amelia/users/jo", Key: adminKey}).want(t, http.StatusNoContent)

	// A draining session still holds its user, project and client.
	a.do(t, request{Method: "POST", Path: "/api/sessions/" + id + "/deactivate", Key: ameliaKey}).want(t, http.StatusAccepted)
	a.do(t, request{Method: "DELETE", Path: "/api/clients/amelia", Key: adminKey}).want(t, http.StatusConflict)
	if n := a.reap(t); n != 1 {
		t.Fatalf("reaped %d, want 1", n)
	}
	for _, tc := range live {
		t.Run(tc.name+" after the session expired", func(t *testing.T) {
			a.do(t, request{Method: "DELETE", Path: tc.path, Key: adminKey}).want(t, http.StatusNoContent)
			a.do(t, request{Method: "GET", Path: tc.path, Key: adminKey}).want(t, http.StatusNotFound)
		})
	}
}

func TestDirectoryValidation(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	project := func(over map[string]any) map[string]any {
		p := map[string]any{"id": "web", "repoUrl": "/srv/web.git"}
		for k, v := range over {
			p[k] = v
		}
		return p
	}
	client := func(projects []map[string]any, users []map[string]any) map[string]any {
		c := map[string]any{"id": "acme", "name": "Acme"}
		if projects != nil {
			c["projects"] = projects
		}
		if users != nil {
			c["users"] = users
		}
		return c
	}
	cases := []struct {
		name   string
		method string
		path   string
		body   any
		fields []string // every field the problem must list
	}{
		{"bad client slug", "POST", "/api/clients", map[string]any{"id": "Acme_Co", "name": "Acme"}, []string{"id"}},
		{"client slug too long", "POST", "/api/clients", map[string]any{"id": strings.Repeat("a", 41), "name": "Acme"}, []string{"id"}},
		{"client without id and name", "POST", "/api/clients", map[string]any{}, []string{"id", "name"}},
		{"bad project email", "POST", "/api/clients", client([]map[string]any{project(map[string]any{"emailAddresses": []string{"edit@", "ok@acme.example.com", "Name <x@y.example>"}})}, nil),
			[]string{"projects[0].emailAddresses[0]", "projects[0].emailAddresses[2]"}},
		{"bad project sms number", "POST", "/api/clients", client([]map[string]any{project(map[string]any{"smsNumbers": []string{"5550100001"}})}, nil),
			[]string{"projects[0].smsNumbers[0]"}},
		{"unknown agent kind", "POST", "/api/clients", client([]map[string]any{project(map[string]any{"agent": map[string]any{"kind": "gpt"}})}, nil),
			[]string{"projects[0].agent.kind"}},
		{"command agent without command", "POST", "/api/clients", client([]map[string]any{project(map[string]any{"agent": map[string]any{"kind": "command"}})}, nil),
			[]string{"projects[0].agent.command"}},
		{"output dir outside the repository", "POST", "/api/clients",
			client([]map[string]any{project(map[string]any{"build": map[string]any{"command": []string{"make"}, "outputDir": "../x"}})}, nil),
			[]string{"projects[0].build.outputDir"}},
		{"absolute output dir", "POST", "/api/clients",
			client([]map[string]any{project(map[string]any{"build": map[string]any{"command": []string{"make"}, "outputDir": "/etc"}})}, nil),
			[]string{"projects[0].build.outputDir"}},
		{"preview template with an unknown placeholder", "POST", "/api/clients",
			client([]map[string]any{project(map[string]any{"previewUrlTemplate": "https://x.example.com/{branch}/"})}, nil),
			[]string{"projects[0].previewUrlTemplate"}},
		{"bad default branch", "POST", "/api/clients", client([]map[string]any{project(map[string]any{"defaultBranch": "a..b"})}, nil),
			[]string{"projects[0].defaultBranch"}},
		{"bad busy policy", "POST", "/api/clients", client([]map[string]any{project(map[string]any{"busyPolicy": "ignore"})}, nil),
			[]string{"projects[0].busyPolicy"}},
		{"missing repo url", "POST", "/api/clients", client([]map[string]any{{"id": "web"}}, nil), []string{"projects[0].repoUrl"}},
		{"nested project of another client", "POST", "/api/clients", client([]map[string]any{project(map[string]any{"clientId": "other"})}, nil),
			[]string{"projects[0].clientId"}},
		{"project listed twice", "POST", "/api/clients", client([]map[string]any{project(nil), project(nil)}, nil), []string{"projects[1].id"}},
		{"bad user email and phone", "POST", "/api/clients", client(nil, []map[string]any{{"id": "bob", "emails": []string{"bob"}, "phones": []string{"+0123"}}}),
			[]string{"users[0].emails[0]", "users[0].phones[0]"}},
		{"bad user slug", "POST", "/api/clients", client(nil, []map[string]any{{"id": "-bob"}}), []string{"users[0].id"}},
		{"every problem at once", "POST", "/api/clients", map[string]any{
			"id": "Bad Slug", "name": "Acme",
			"projects": []map[string]any{
				project(map[string]any{"emailAddresses": []string{"nope"}, "smsNumbers": []string{"555"}, "agent": map[string]any{"kind": "robot"},
					"build": map[string]any{"command": []string{"make"}, "outputDir": "../x"}, "previewUrlTemplate": "https://x.example.com/{nope}/"}),
				{"id": "cmd", "repoUrl": "/srv/cmd.git", "agent": map[string]any{"kind": "command"}},
			},
			"users": []map[string]any{{"id": "bob", "emails": []string{"bob@"}, "phones": []string{"12"}}},
		}, []string{"id", "projects[0].emailAddresses[0]", "projects[0].smsNumbers[0]", "projects[0].agent.kind", "projects[0].build.outputDir",
			"projects[0].previewUrlTemplate", "projects[1].agent.command", "users[0].emails[0]", "users[0].phones[0]"}},

		{"project route: bad fields", "POST", "/api/clients/amelia/projects",
			project(map[string]any{"id": "Web!", "emailAddresses": []string{"x"}, "agent": map[string]any{"kind": "command", "command": []string{""}}}),
			[]string{"id", "emailAddresses[0]", "agent.command"}},
		{"project route: PUT bad fields", "PUT", "/api/clients/amelia/projects/site",
			map[string]any{"repoUrl": "/srv/amelia.git", "previewUrlTemplate": "ftp://x.example.com/{thread}"}, []string{"previewUrlTemplate"}},
		{"user route: bad fields", "POST", "/api/clients/amelia/users",
			map[string]any{"id": "kim", "emails": []string{"a@b.example", "a@b.example"}, "phones": []string{"+1 555"}, "chatIds": []string{"has space"}},
			[]string{"emails", "phones[0]", "chatIds[0]"}},
		{"user route: PUT bad fields", "PUT", "/api/clients/amelia/users/scott", map[string]any{"emails": []string{"scott"}}, []string{"emails[0]"}},
		{"client route: PUT bad name", "PUT", "/api/clients/amelia", map[string]any{"name": ""}, []string{"name"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clients := a.countClients(t)
			before := a.do(t, request{Method: "GET", Path: "/api/clients/amelia", Key: adminKey}).want(t, http.StatusOK).Body
			p := a.do(t, request{Method: tc.method, Path: tc.path, Key: adminKey, Body: tc.body}).want(t, http.StatusBadRequest).Problem(t)
			listed := map[string]bool{}
			for _, e := range p.Errors {
				listed[e.Field] = true
				if e.Message == "" {
					t.Errorf("field %s without a message", e.Field)
				}
			}
			for _, f := range tc.fields {
				if !listed[f] {
					t.Errorf("errors do not list %s: %+v", f, p.Errors)
				}
			}
			if p.Detail == "" {
				t.Error("empty detail")
			}
			if n := a.countClients(t); n != clients {
				t.Errorf("%d clients after a refused request, want %d", n, clients)
			}
			after := a.do(t, request{Method: "GET", Path: "/api/clients/amelia", Key: adminKey}).want(t, http.StatusOK).Body
			if string(after) != string(before) {
				t.Errorf("amelia changed by a refused request:\n%s\n%s", before, after)
			}
		})
	}
}

// adminRoutes lists every admin route with a plausible body.
var adminRoutes = []struct{ method, path string }{
	{"POST", "/api/clients"},
	{"GET", "/api/clients"},
	{"GET", "/api/clients/amelia"},
	{"PUT", "/api/clients/amelia"},
	{"DELETE", "/api/clients/amelia"},
	{"POST", "/api/clients/amelia/projects"},
	{"GET", "/api/clients/amelia/projects"},
	{"GET", "/api/clients/amelia/projects/site"},
	{"PUT", "/api/clients/amelia/projects/site"},
	{"DELETE", "/api/clients/amelia/projects/site"},
	{"POST", "/api/clients/amelia/users"},
	{"GET", "/api/clients/amelia/users"},
	{"GET", "/api/clients/amelia/users/scott"},
	{"PUT", "/api/clients/amelia/users/scott"},
	{"DELETE", "/api/clients/amelia/users/scott"},
}

func TestAdminRoutesNeedAdmin(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	for _, rt := range adminRoutes {
		var body any
		if rt.method == "POST" || rt.method == "PUT" {
			body = map[string]any{"id": "amelia", "name": "Taken Over"}
		}
		for _, c := range []struct {
			name   string
			key    string
			status int
		}{
			{"own client key", ameliaKey, http.StatusForbidden},
			{"other client key", otherKey, http.StatusForbidden},
			{"no key", "", http.StatusUnauthorized},
			{"unknown key", "not-a-key-0123456789", http.StatusUnauthorized},
		} {
			t.Run(rt.method+" "+rt.path+" "+c.name, func(t *testing.T) {
				r := a.do(t, request{Method: rt.method, Path: rt.path, Key: c.key, Body: body}).want(t, c.status)
				r.Problem(t)
				www := r.Header.Get("WWW-Authenticate")
				if c.status == http.StatusUnauthorized && !strings.HasPrefix(www, "Bearer") {
					t.Errorf("401 with WWW-Authenticate %q", www)
				}
				if c.status == http.StatusForbidden && www != "" {
					t.Errorf("403 with WWW-Authenticate %q", www)
				}
			})
		}
	}
	// Nothing was changed.
	var c clientTree
	a.do(t, request{Method: "GET", Path: "/api/clients/amelia", Key: adminKey}).want(t, http.StatusOK).JSON(t, &c)
	if c.Name != "Amelia Stamps" || len(c.Projects) != 1 || len(c.Users) != 2 {
		t.Errorf("amelia changed by refused requests: %+v", c)
	}
}
