package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/webordinary/hermes"
)

// fakeRunner stands in for the container runner (a process boundary: the
// real local runner and its workers are covered by cmd/hermes's e2e tests).
// It records its calls and, like a real runner, records the status a wake
// or a stop leaves the container in; err, when set, fails the calls
// instead.
type fakeRunner struct {
	store hermes.Store

	mu    sync.Mutex
	calls []string // "wake amelia_site_scott"
	err   error
}

func (f *fakeRunner) Wake(ctx context.Context, c *hermes.Container) error {
	return f.call(ctx, "wake", c, hermes.ContainerStarting)
}

func (f *fakeRunner) Stop(ctx context.Context, c *hermes.Container) error {
	return f.call(ctx, "stop", c, hermes.ContainerStopped)
}

func (f *fakeRunner) call(ctx context.Context, verb string, c *hermes.Container, to hermes.ContainerStatus) error {
	f.mu.Lock()
	f.calls = append(f.calls, verb+" "+c.ID)
	err := f.err
	f.mu.Unlock()
	if err != nil {
		return err
	}
	_, err = f.store.UpdateContainer(ctx, c.ID, func(x *hermes.Container) error {
		x.Status, x.Detail = to, ""
		return nil
	})
	return err
}

func (f *fakeRunner) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// takeCalls returns the calls so far and forgets them.
func (f *fakeRunner) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	calls := f.calls
	f.calls = nil
	return calls
}

// newContainerAPI starts the API with a fake runner (installed before any
// request) and a container for amelia/site/scott and one for other/one/ann,
// both stopped.
func newContainerAPI(t *testing.T, opts ...apiOption) (*testAPI, *fakeRunner) {
	t.Helper()
	a := newTestAPI(t, opts...)
	runner := &fakeRunner{store: a.Store}
	a.Server.Runner = runner
	a.instruct(t, "scott", "Make the header blue")
	a.message(t, adminKey, map[string]any{"clientId": "other", "projectId": "one", "userId": "ann", "text": "Fix the footer"})
	if calls := runner.takeCalls(); len(calls) != 0 {
		t.Fatalf("the runner was called by messages: %v", calls) // the test router has no runner
	}
	return a, runner
}

type containerAction struct {
	ContainerID string
	Status      hermes.ContainerStatus
}

func (a *testAPI) containerAction(t *testing.T, verb, id, key string, status int) *response {
	t.Helper()
	return a.do(t, request{Method: "POST", Path: "/api/containers/" + id + "/" + verb, Key: key}).want(t, status)
}

func (a *testAPI) setContainerStatus(t *testing.T, id string, st hermes.ContainerStatus, detail string) {
	t.Helper()
	if _, err := a.Store.UpdateContainer(context.Background(), id, func(c *hermes.Container) error {
		c.Status, c.Detail = st, detail
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestContainerWakeAndStop(t *testing.T) {
	a, runner := newContainerAPI(t)
	const id = "amelia_site_scott"

	var out containerAction
	a.containerAction(t, "wake", id, adminKey, http.StatusAccepted).JSON(t, &out)
	if out != (containerAction{id, hermes.ContainerStarting}) {
		t.Errorf("wake answered %+v, want %s starting", out, id)
	}
	if calls := runner.takeCalls(); !reflect.DeepEqual(calls, []string{"wake " + id}) {
		t.Errorf("runner calls after a wake: %v", calls)
	}

	a.containerAction(t, "stop", id, adminKey, http.StatusAccepted).JSON(t, &out)
	if out != (containerAction{id, hermes.ContainerStopped}) {
		t.Errorf("stop answered %+v, want %s stopped", out, id)
	}
	if calls := runner.takeCalls(); !reflect.DeepEqual(calls, []string{"stop " + id}) {
		t.Errorf("runner calls after a stop: %v", calls)
	}

	// A container the runner gave up on is woken again on an operator's
	// request: a new attempt.
	a.setContainerStatus(t, id, hermes.ContainerError, "the worker crashed 5 times in a row")
	a.containerAction(t, "wake", id, adminKey, http.StatusAccepted).JSON(t, &out)
	if out.Status != hermes.ContainerStarting {
		t.Errorf("wake of a container in error answered %+v", out)
	}
	if calls := runner.takeCalls(); !reflect.DeepEqual(calls, []string{"wake " + id}) {
		t.Errorf("runner calls after waking a container in error: %v", calls)
	}
}

func TestContainerWakeAndStopRefused(t *testing.T) {
	a, runner := newContainerAPI(t)
	for _, verb := range []string{"wake", "stop"} {
		cases := []struct {
			name, id, key string
			status        int
			detail        string
		}{
			{"unknown", "nosuch_nosuch_nosuch", adminKey, http.StatusNotFound, `container "nosuch_nosuch_nosuch" not found`},
			{"malformed", "Amelia_Site", adminKey, http.StatusBadRequest, `containerId "Amelia_Site" is malformed`},
			{"too long", strings.Repeat("a", hermes.MaxContainerIDLen+1), adminKey, http.StatusBadRequest, "is malformed"},
			{"client scope, own client", "amelia_site_scott", ameliaKey, http.StatusForbidden, "admin scope"},
			{"client scope, other client", "other_one_ann", ameliaKey, http.StatusForbidden, "admin scope"},
			{"no credentials", "amelia_site_scott", "", http.StatusUnauthorized, ""},
		}
		for _, c := range cases {
			p := a.containerAction(t, verb, c.id, c.key, c.status).Problem(t)
			if !strings.Contains(p.Detail, c.detail) {
				t.Errorf("%s %s: detail %q, want it to contain %q", verb, c.name, p.Detail, c.detail)
			}
		}
	}
	if calls := runner.takeCalls(); len(calls) != 0 {
		t.Errorf("refused requests called the runner: %v", calls)
	}

	// A container whose queues the idle clean-up deleted has nothing to
	// be woken for (its next message makes the queues again); it can be
	// stopped all the same.
	if _, err := a.Store.UpdateContainer(context.Background(), "other_one_ann", func(c *hermes.Container) error {
		c.Queues, c.QueuesState = hermes.QueueSet{}, hermes.QueuesDeleted
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if p := a.containerAction(t, "wake", "other_one_ann", adminKey, http.StatusConflict).Problem(t); !strings.Contains(p.Detail, "has no queues") {
		t.Errorf("wake without queues: detail %q", p.Detail)
	}
	a.containerAction(t, "stop", "other_one_ann", adminKey, http.StatusAccepted)
	if calls := runner.takeCalls(); !reflect.DeepEqual(calls, []string{"stop other_one_ann"}) {
		t.Errorf("runner calls: %v", calls)
	}
}

func TestContainerWakeAndStopRunnerUnavailable(t *testing.T) {
	a, runner := newContainerAPI(t)
	for _, verb := range []string{"wake", "stop"} {
		runner.fail(hermes.Errorf(hermes.Unavailable, "local runner: shutting down"))
		r := a.containerAction(t, verb, "amelia_site_scott", adminKey, http.StatusServiceUnavailable)
		p := r.Problem(t)
		want := fmt.Sprintf(`the container runner could not %s container "amelia_site_scott" (local runner: shutting down); try again later`, verb)
		if p.Detail != want {
			t.Errorf("%s: detail %q, want %q", verb, p.Detail, want)
		}
		if r.Header.Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", verb)
		}
		if calls := runner.takeCalls(); !reflect.DeepEqual(calls, []string{verb + " amelia_site_scott"}) {
			t.Errorf("%s: runner calls %v", verb, calls)
		}

		// Any other failure is an internal error, its cause logged, not shown.
		runner.fail(errors.New("exec: hermes: permission denied"))
		p = a.containerAction(t, verb, "amelia_site_scott", adminKey, http.StatusInternalServerError).Problem(t)
		if strings.Contains(p.Detail, "permission") {
			t.Errorf("%s: the cause reached the caller: %q", verb, p.Detail)
		}
		runner.takeCalls()
	}

	// No runner at all: 503, and a 404 still comes first.
	b := newTestAPI(t)
	b.instruct(t, "scott", "Make the header blue")
	for _, verb := range []string{"wake", "stop"} {
		p := b.containerAction(t, verb, "amelia_site_scott", adminKey, http.StatusServiceUnavailable).Problem(t)
		if want := "this Hermes has no container runner: it cannot " + verb + " containers"; p.Detail != want {
			t.Errorf("%s without a runner: detail %q, want %q", verb, p.Detail, want)
		}
		b.containerAction(t, verb, "nosuch_nosuch_nosuch", adminKey, http.StatusNotFound)
	}
}

func TestGetContainer(t *testing.T) {
	a, runner := newContainerAPI(t)
	const id = "amelia_site_scott"
	a.setContainerStatus(t, id, hermes.ContainerRunning, "busy")

	get := func(id, key string, status int) *response {
		t.Helper()
		return a.do(t, request{Method: "GET", Path: "/api/containers/" + id, Key: key}).want(t, status)
	}
	var list []map[string]any
	a.do(t, request{Method: "GET", Path: "/api/containers", Key: adminKey}).want(t, http.StatusOK).JSON(t, &list)
	for _, key := range []string{adminKey, ameliaKey} {
		var one map[string]any
		get(id, key, http.StatusOK).JSON(t, &one)
		var listed map[string]any
		for _, c := range list {
			if c["containerId"] == id {
				listed = c
			}
		}
		if !reflect.DeepEqual(one, listed) {
			t.Errorf("GET /api/containers/%s = %v, but the list has %v", id, one, listed)
		}
		if one["status"] != "running" || one["detail"] != "busy" {
			t.Errorf("status/detail: %v %v", one["status"], one["detail"])
		}
		input, _ := one["queues"].(map[string]any)["input"].(map[string]any)
		if input["name"] != "webordinary-input-"+id || input["depth"] != float64(1) {
			t.Errorf("input queue: %v, want the queued instruction", input)
		}
	}

	// Another client's container is not there for a client scope, exactly
	// like an unknown one.
	hidden := get("other_one_ann", ameliaKey, http.StatusNotFound).Problem(t)
	unknown := get("nosuch_nosuch_nosuch", ameliaKey, http.StatusNotFound).Problem(t)
	if hidden.Detail != `container "other_one_ann" not found` || unknown.Detail != `container "nosuch_nosuch_nosuch" not found` {
		t.Errorf("404 details: %q, %q", hidden.Detail, unknown.Detail)
	}
	get("other_one_ann", otherKey, http.StatusOK)
	get("other_one_ann", adminKey, http.StatusOK)
	get("Not_An_Id", adminKey, http.StatusBadRequest).Problem(t)
	get(id, "", http.StatusUnauthorized).Problem(t)
	if calls := runner.takeCalls(); len(calls) != 0 {
		t.Errorf("GET called the runner: %v", calls)
	}
}

// exerciseContainerRoutes sends a valid request to each of the
// container routes (for TestOpenAPIEveryOperation's coverage), on an API
// of its own whose runner is installed before its first request.
func exerciseContainerRoutes(t *testing.T) {
	t.Helper()
	a, _ := newContainerAPI(t, withBasePath("/hermes"))
	a.validatedDo(t, request{Method: "GET", Path: "/api/containers/amelia_site_scott", Key: ameliaKey}).want(t, http.StatusOK)
	a.validatedDo(t, request{Method: "POST", Path: "/api/containers/amelia_site_scott/wake", Key: adminKey}).want(t, http.StatusAccepted)
	a.validatedDo(t, request{Method: "POST", Path: "/api/containers/amelia_site_scott/stop", Key: adminKey}).want(t, http.StatusAccepted)
}
