package main

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServeEventsAndDeadJobs checks the wiring of serve: a session's event
// stream replays its queued job, the dead-job routes and metrics answer,
// and shutting down ends open streams at once rather than waiting for the
// shutdown timeout.
func TestServeEventsAndDeadJobs(t *testing.T) {
	vars := baseVars(t)
	const key = "test-admin-key-0123456789"
	vars["HERMES_API_KEYS"] = key + "=admin"
	base, logs, stop := startServe(t, vars)
	c := client{t: t, base: base, key: key}
	code, act, _ := c.call("POST", "/api/sessions/activate", `{"clientId":"amelia","userId":"scott","instruction":"make the header blue"}`)
	if code != 201 {
		t.Fatalf("activate: %d %v", code, act)
	}
	id := act["sessionId"].(string)

	req, _ := http.NewRequest("GET", base+"/api/sessions/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	waitLine := func(want string) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("stream ended before %q", want)
				}
				if l == want {
					return
				}
			case <-timeout:
				t.Fatalf("no %q within 10s", want)
			}
		}
	}
	waitLine("event: queued")

	if code, list, _ := c.call("GET", "/api/dead-jobs", ""); code != 200 || len(list["list"].([]any)) != 0 {
		t.Errorf("dead jobs: %d %v", code, list)
	}
	if code, out, _ := c.call("DELETE", "/api/containers/amelia_site_scott/dead-jobs", ""); code != 200 || out["purged"] != 0.0 {
		t.Errorf("purge: %d %v", code, out)
	}
	mreq, _ := http.NewRequest("GET", base+"/metrics", nil)
	mresp, err := http.DefaultClient.Do(mreq)
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, w := range []string{`hermes_dlq_depth{container_id="amelia_site_scott"} 0`, "hermes_dlq_depth_total 0", "hermes_dead_jobs_answered_total 0"} {
		if !strings.Contains(string(mb), w) {
			t.Errorf("metrics lack %q", w)
		}
	}

	start := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for range lines { // the stream ends
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("shutdown with an open event stream took %s", d)
	}
	if strings.Contains(logs.String(), "in-flight requests did not finish in time") {
		t.Error("the open event stream held up the shutdown")
	}
}
