package httpapi_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webordinary/hermes"
)

// killJob lets every job on the container's input queue fail
// DefaultMaxReceive times, so that the queue moves them to its DLQ, and
// returns how many the DLQ then holds.
func killJob(t *testing.T, a *testAPI, containerID string) int {
	t.Helper()
	ctx := context.Background()
	input, dlq := "webordinary-input-"+containerID, "webordinary-dlq-"+containerID
	for range hermes.DefaultMaxReceive {
		ds, err := a.Store.Receive(ctx, input, 10, 0, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if err := a.Store.ChangeVisibility(ctx, input, d.Receipt, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := a.Store.Receive(ctx, input, 10, 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	st, err := a.Store.Stats(ctx, dlq)
	if err != nil {
		t.Fatal(err)
	}
	return st.Visible
}

// wakes records Runner calls.
type wakes struct {
	mu  sync.Mutex
	ids []string
}

func (w *wakes) Wake(_ context.Context, c *hermes.Container) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ids = append(w.ids, c.ID)
	return nil
}

func (w *wakes) Stop(context.Context, *hermes.Container) error { return nil }

type deadJob struct {
	ContainerID, MessageID, JobID, SessionID, ThreadID, Type, Instruction string
	ReceiveCount                                                          int
	SentAt                                                                time.Time
	Malformed                                                             bool
}

// instruct sends an instruction of amelia/site/{user} and returns its job id.
func (a *testAPI) instruct(t *testing.T, user, text string) (jobID string) {
	t.Helper()
	return a.message(t, adminKey, map[string]any{"clientId": "amelia", "projectId": "site", "userId": user, "text": text}).JobID
}

func (a *testAPI) dlqStats(t *testing.T, containerID string) hermes.QueueStats {
	t.Helper()
	st, err := a.Store.Stats(context.Background(), "webordinary-dlq-"+containerID)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestDeadJobsListRedrivePurge(t *testing.T) {
	a := newTestAPI(t)
	runner := &wakes{}
	a.Server.Runner = runner
	a.Metrics.RegisterDeadLetters(a.Store, a.Store, slog.New(slog.DiscardHandler))
	j1 := a.instruct(t, "scott", "Make the header blue")
	long := strings.Repeat("Add the March show to the calendar. ", 20)
	j2 := a.instruct(t, "scott", long)
	j3 := a.instruct(t, "jo", "Fix the footer")
	if n := killJob(t, a, "amelia_site_scott"); n != 2 {
		t.Fatalf("%d dead for scott", n)
	}
	if n := killJob(t, a, "amelia_site_jo"); n != 1 {
		t.Fatalf("%d dead for jo", n)
	}

	list := func(query string) []deadJob {
		t.Helper()
		var out []deadJob
		a.do(t, request{Method: "GET", Path: "/api/dead-jobs" + query, Key: adminKey}).want(t, http.StatusOK).JSON(t, &out)
		return out
	}
	var all []deadJob
	for range 2 { // listing consumes nothing
		all = list("")
		if st := a.dlqStats(t, "amelia_site_scott"); st.Visible != 2 || st.InFlight != 0 {
			t.Fatalf("scott's DLQ after listing: %+v", st)
		}
	}
	if len(all) != 3 {
		t.Fatalf("listed %d: %+v", len(all), all)
	}
	byJob := map[string]deadJob{}
	for _, d := range all {
		byJob[d.JobID] = d
	}
	if d := byJob[j1]; d.ContainerID != "amelia_site_scott" || d.Instruction != "Make the header blue" || d.Type != hermes.JobInstruction ||
		d.SessionID == "" || d.ThreadID == "" || d.MessageID == "" || d.SentAt.IsZero() || d.Malformed {
		t.Errorf("dead job 1: %+v", d)
	}
	if d := byJob[j2]; len([]rune(d.Instruction)) > 200 || len([]rune(d.Instruction)) < 190 || !strings.HasSuffix(d.Instruction, "…") {
		t.Errorf("long instruction not cut: %q", d.Instruction)
	}
	if d := byJob[j3]; d.ContainerID != "amelia_site_jo" {
		t.Errorf("dead job 3: %+v", d)
	}
	for i := 1; i < len(all); i++ {
		if all[i].SentAt.Before(all[i-1].SentAt) {
			t.Errorf("not oldest first: %+v", all)
		}
	}
	if got := list("?containerId=amelia_site_jo"); len(got) != 1 || got[0].JobID != j3 {
		t.Errorf("one container: %+v", got)
	}
	if got := list("?limit=1"); len(got) != 1 {
		t.Errorf("limit 1: %d", len(got))
	}

	// The depth metric.
	m := string(a.do(t, request{Method: "GET", Path: "/metrics"}).want(t, http.StatusOK).Body)
	for _, w := range []string{`hermes_dlq_depth{container_id="amelia_site_scott"} 2`, `hermes_dlq_depth{container_id="amelia_site_jo"} 1`, "hermes_dlq_depth_total 3"} {
		if !strings.Contains(m, w) {
			t.Errorf("metrics lack %q", w)
		}
	}

	// Redrive: back on the input queue with fresh receive counts, the
	// container woken.
	var rd struct {
		ContainerID string
		Redriven    int
		Woken       bool
	}
	a.do(t, request{Method: "POST", Path: "/api/containers/amelia_site_scott/dead-jobs/redrive", Key: adminKey}).want(t, http.StatusOK).JSON(t, &rd)
	if rd.ContainerID != "amelia_site_scott" || rd.Redriven != 2 || !rd.Woken {
		t.Errorf("redrive: %+v", rd)
	}
	if len(runner.ids) != 1 || runner.ids[0] != "amelia_site_scott" {
		t.Errorf("wakes: %v", runner.ids)
	}
	if st := a.dlqStats(t, "amelia_site_scott"); st.Visible+st.InFlight != 0 {
		t.Errorf("DLQ after redrive: %+v", st)
	}
	ds, err := a.Store.Receive(context.Background(), "webordinary-input-amelia_site_scott", 10, 0, time.Minute)
	if err != nil || len(ds) != 2 || ds[0].ReceiveCount != 1 {
		t.Fatalf("input queue after redrive: %+v %v", ds, err)
	}
	a.do(t, request{Method: "POST", Path: "/api/containers/amelia_site_scott/dead-jobs/redrive", Key: adminKey}).want(t, http.StatusOK).JSON(t, &rd)
	if rd.Redriven != 0 || rd.Woken || len(runner.ids) != 1 {
		t.Errorf("empty redrive: %+v, wakes %v", rd, runner.ids)
	}

	// Purge.
	var pg struct {
		ContainerID string
		Purged      int
	}
	a.do(t, request{Method: "DELETE", Path: "/api/containers/amelia_site_jo/dead-jobs", Key: adminKey}).want(t, http.StatusOK).JSON(t, &pg)
	if pg.ContainerID != "amelia_site_jo" || pg.Purged != 1 {
		t.Errorf("purge: %+v", pg)
	}
	if st := a.dlqStats(t, "amelia_site_jo"); st.Visible+st.InFlight != 0 {
		t.Errorf("DLQ after purge: %+v", st)
	}
	a.do(t, request{Method: "DELETE", Path: "/api/containers/amelia_site_jo/dead-jobs", Key: adminKey}).want(t, http.StatusOK).JSON(t, &pg)
	if pg.Purged != 0 {
		t.Errorf("second purge: %+v", pg)
	}
	if got := list(""); len(got) != 0 {
		t.Errorf("left: %+v", got)
	}
}

func TestDeadJobsErrors(t *testing.T) {
	a := newTestAPI(t)
	a.instruct(t, "scott", "Make the header blue")
	cases := []struct {
		method, path, key string
		status            int
	}{
		{"GET", "/api/dead-jobs", ameliaKey, http.StatusForbidden},
		{"GET", "/api/dead-jobs", "", http.StatusUnauthorized},
		{"GET", "/api/dead-jobs?containerId=Bad!", adminKey, http.StatusBadRequest},
		{"GET", "/api/dead-jobs?containerId=", adminKey, http.StatusBadRequest},
		{"GET", "/api/dead-jobs?containerId=" + strings.Repeat("a", 57), adminKey, http.StatusBadRequest},
		{"GET", "/api/dead-jobs?containerId=nosuch_site_x", adminKey, http.StatusNotFound},
		{"GET", "/api/dead-jobs?limit=0", adminKey, http.StatusBadRequest},
		{"GET", "/api/dead-jobs?limit=1001", adminKey, http.StatusBadRequest},
		{"GET", "/api/dead-jobs?limit=x", adminKey, http.StatusBadRequest},
		{"POST", "/api/containers/amelia_site_scott/dead-jobs/redrive", ameliaKey, http.StatusForbidden},
		{"POST", "/api/containers/-bad/dead-jobs/redrive", adminKey, http.StatusBadRequest},
		{"POST", "/api/containers/nosuch_site_x/dead-jobs/redrive", adminKey, http.StatusNotFound},
		{"DELETE", "/api/containers/amelia_site_scott/dead-jobs", otherKey, http.StatusForbidden},
		{"DELETE", "/api/containers/amelia_site_scott_/dead-jobs", adminKey, http.StatusNotFound},
		{"DELETE", "/api/containers/AMELIA/dead-jobs", adminKey, http.StatusBadRequest},
		{"GET", "/api/containers/amelia_site_scott/dead-jobs", adminKey, http.StatusMethodNotAllowed},
	}
	for _, c := range cases {
		r := a.do(t, request{Method: c.method, Path: c.path, Key: c.key}).want(t, c.status)
		r.Problem(t)
	}
	// Nothing was touched.
	st, err := a.Store.Stats(context.Background(), "webordinary-input-amelia_site_scott")
	if err != nil || st.Visible != 1 {
		t.Errorf("input queue: %+v %v", st, err)
	}
}

// The JSON field names of a dead job are those documented.
func TestDeadJobFields(t *testing.T) {
	a := newTestAPI(t)
	a.instruct(t, "scott", "Make the header blue")
	killJob(t, a, "amelia_site_scott")
	r := a.do(t, request{Method: "GET", Path: "/api/dead-jobs", Key: adminKey}).want(t, http.StatusOK)
	var raw []map[string]any
	if err := json.Unmarshal(r.Body, &raw); err != nil || len(raw) != 1 {
		t.Fatalf("%s %v", r.Body, err)
	}
	for _, k := range []string{"containerId", "messageId", "jobId", "sessionId", "threadId", "type", "instruction", "receiveCount", "sentAt"} {
		if _, ok := raw[0][k]; !ok {
			t.Errorf("no %s in %v", k, raw[0])
		}
	}
}
