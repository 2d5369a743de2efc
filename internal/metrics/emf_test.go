package metrics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webordinary/hermes/internal/metrics"
	"github.com/webordinary/hermes/internal/sqlite"
)

// emfUnits are the units CloudWatch accepts (the EMF specification's
// MetricDefinition.Unit).
var emfUnits = map[string]bool{}

func init() {
	for _, u := range strings.Split("Seconds Microseconds Milliseconds Bytes Kilobytes Megabytes Gigabytes Terabytes Bits Kilobits Megabits Gigabits Terabits Percent Count Bytes/Second Kilobytes/Second Megabytes/Second Gigabytes/Second Terabytes/Second Bits/Second Kilobits/Second Megabits/Second Gigabits/Second Terabits/Second Count/Second None", " ") {
		emfUnits[u] = true
	}
}

// validateEMF checks one log line against the Embedded Metric Format
// specification (CloudWatch, "Specification: Embedded metric format"):
//
//   - the line is a JSON object with an _aws member (the metadata);
//   - _aws.Timestamp is an integer, milliseconds since the epoch;
//   - _aws.CloudWatchMetrics is a non-empty array of directives;
//   - a directive has a Namespace (1–1024 characters, not AWS/…), a
//     Dimensions array of dimension sets (arrays of 0–30 distinct member
//     names) and a Metrics array of at most 100 MetricDefinitions;
//   - a MetricDefinition has a Name (1–1024 characters), an optional Unit
//     from the CloudWatch list, an optional StorageResolution of 1 or 60;
//   - every dimension name is a top-level member whose value is a string
//     (1–1024 characters); every metric name is a top-level member whose
//     value is a number or an array of at most 100 numbers.
func validateEMF(line []byte) (map[string]any, error) {
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil || doc == nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	if bytes.Contains(bytes.TrimSpace(line), []byte("\n")) {
		return nil, fmt.Errorf("not one line")
	}
	aws, ok := doc["_aws"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("no _aws object")
	}
	ts, ok := aws["Timestamp"].(json.Number)
	if !ok {
		return nil, fmt.Errorf("_aws.Timestamp is not a number")
	}
	ms, err := ts.Int64()
	if err != nil || ms < time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli() || ms > time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli() {
		return nil, fmt.Errorf("_aws.Timestamp %s is not epoch milliseconds", ts)
	}
	dirs, ok := aws["CloudWatchMetrics"].([]any)
	if !ok || len(dirs) == 0 {
		return nil, fmt.Errorf("_aws.CloudWatchMetrics is not a non-empty array")
	}
	for i, d := range dirs {
		dir, ok := d.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("directive %d is not an object", i)
		}
		ns, ok := dir["Namespace"].(string)
		if !ok || ns == "" || len(ns) > 1024 || strings.HasPrefix(ns, "AWS/") {
			return nil, fmt.Errorf("directive %d: bad Namespace %v", i, dir["Namespace"])
		}
		sets, ok := dir["Dimensions"].([]any)
		if !ok {
			return nil, fmt.Errorf("directive %d: Dimensions is not an array", i)
		}
		for j, s := range sets {
			set, ok := s.([]any)
			if !ok || len(set) > 30 {
				return nil, fmt.Errorf("directive %d: dimension set %d is not an array of at most 30 names", i, j)
			}
			seen := map[string]bool{}
			for _, n := range set {
				name, ok := n.(string)
				if !ok || name == "" || seen[name] {
					return nil, fmt.Errorf("directive %d: dimension set %d: bad or repeated name %v", i, j, n)
				}
				seen[name] = true
				v, ok := doc[name].(string)
				if !ok || v == "" || len(v) > 1024 {
					return nil, fmt.Errorf("dimension %s has no string value at the top level", name)
				}
			}
		}
		defs, ok := dir["Metrics"].([]any)
		if !ok || len(defs) > 100 {
			return nil, fmt.Errorf("directive %d: Metrics is not an array of at most 100 definitions", i)
		}
		for _, m := range defs {
			def, ok := m.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("directive %d: a metric definition is not an object", i)
			}
			name, ok := def["Name"].(string)
			if !ok || name == "" || len(name) > 1024 {
				return nil, fmt.Errorf("directive %d: bad metric Name %v", i, def["Name"])
			}
			if u, has := def["Unit"]; has {
				if s, ok := u.(string); !ok || !emfUnits[s] {
					return nil, fmt.Errorf("metric %s: unit %v is not a CloudWatch unit", name, u)
				}
			}
			if r, has := def["StorageResolution"]; has {
				if n, ok := r.(json.Number); !ok || (n.String() != "1" && n.String() != "60") {
					return nil, fmt.Errorf("metric %s: StorageResolution %v", name, r)
				}
			}
			switch v := doc[name].(type) {
			case json.Number:
				if _, err := v.Float64(); err != nil {
					return nil, fmt.Errorf("metric %s: value %v", name, v)
				}
			case []any:
				if len(v) == 0 || len(v) > 100 {
					return nil, fmt.Errorf("metric %s: %d values", name, len(v))
				}
				for _, x := range v {
					if _, ok := x.(json.Number); !ok {
						return nil, fmt.Errorf("metric %s: value %v is not a number", name, x)
					}
				}
			default:
				return nil, fmt.Errorf("metric %s has no numeric value at the top level (%T)", name, doc[name])
			}
		}
	}
	return doc, nil
}

func TestValidatorRejects(t *testing.T) {
	good := `{"_aws":{"Timestamp":1735689600000,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["Environment"]],"Metrics":[{"Name":"M","Unit":"Count"}]}]},"Environment":"test","M":1}`
	if _, err := validateEMF([]byte(good)); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{
		"no _aws":            `{"M":1}`,
		"seconds":            strings.Replace(good, "1735689600000", "1735689600", 1),
		"no metric value":    strings.Replace(good, `,"M":1`, ``, 1),
		"a string value":     strings.Replace(good, `"M":1`, `"M":"1"`, 1),
		"no dimension value": strings.Replace(good, `"Environment":"test",`, ``, 1),
		"a bad unit":         strings.Replace(good, `"Count"`, `"Things"`, 1),
		"an AWS namespace":   strings.Replace(good, `"N"`, `"AWS/EC2"`, 1),
		"no directives":      `{"_aws":{"Timestamp":1735689600000,"CloudWatchMetrics":[]}}`,
		"too many metrics":   strings.Replace(good, `{"Name":"M","Unit":"Count"}`, strings.Repeat(`{"Name":"M","Unit":"Count"},`, 100)+`{"Name":"M"}`, 1),
	} {
		if _, err := validateEMF([]byte(bad)); err == nil {
			t.Errorf("%s: accepted %s", name, bad)
		}
	}
}

func TestEMF(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hermes.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := metrics.New(db, log)
	m.RegisterDeadLetters(db, db, log)
	m.MessagesRouted.WithLabelValues("email").Add(2)
	m.MessagesRouted.WithLabelValues("sms").Inc()
	m.RepliesSent.WithLabelValues("email").Add(2)
	m.RepliesFailed.WithLabelValues("sms").Inc()
	m.WakeSeconds.Observe(0.040)
	m.WakeSeconds.Observe(0.060)

	var out bytes.Buffer
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	e := &metrics.EMF{Gatherer: m.Registry, Out: &out, Environment: "production", Now: func() time.Time { return at }, Log: log}
	if err := e.Write(); err != nil {
		t.Fatal(err)
	}
	doc := check(t, out.Bytes())
	want := map[string]float64{
		"ActiveSessionCount": 0, "DLQDepth": 0, "WakeLatency": 50, "Wakes": 2, "MessagesRouted": 3,
		"MessagesDropped": 0, "RepliesSent": 2, "RepliesFailed": 1, "SessionsCreated": 0,
	}
	values(t, doc, want)
	aws := doc["_aws"].(map[string]any)
	if ts, _ := aws["Timestamp"].(json.Number).Int64(); ts != at.UnixMilli() {
		t.Errorf("timestamp %d", ts)
	}
	dir := aws["CloudWatchMetrics"].([]any)[0].(map[string]any)
	if dir["Namespace"] != "Webordinary/EditSessions" || doc["Environment"] != "production" {
		t.Errorf("namespace %v, environment %v", dir["Namespace"], doc["Environment"])
	}
	units := map[string]string{}
	for _, d := range dir["Metrics"].([]any) {
		units[d.(map[string]any)["Name"].(string)] = d.(map[string]any)["Unit"].(string)
	}
	if units["ActiveSessionCount"] != "Count" || units["WakeLatency"] != "Milliseconds" {
		t.Errorf("units %v", units)
	}

	// The next line counts what happened since: nothing, then one message.
	out.Reset()
	m.MessagesRouted.WithLabelValues("chat").Inc()
	if err := e.Write(); err != nil {
		t.Fatal(err)
	}
	doc = check(t, out.Bytes())
	delete(want, "WakeLatency") // no wake since: left out
	want["Wakes"], want["MessagesRouted"], want["RepliesSent"], want["RepliesFailed"] = 0, 1, 0, 0
	values(t, doc, want)
	if _, ok := doc["WakeLatency"]; ok {
		t.Error("WakeLatency without a wake")
	}
}

func check(t *testing.T, out []byte) map[string]any {
	t.Helper()
	if !bytes.HasSuffix(out, []byte("\n")) || bytes.Count(out, []byte("\n")) != 1 {
		t.Fatalf("not one line: %q", out)
	}
	doc, err := validateEMF(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return doc
}

func values(t *testing.T, doc map[string]any, want map[string]float64) {
	t.Helper()
	for name, w := range want {
		n, ok := doc[name].(json.Number)
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if f, _ := n.Float64(); math.Abs(f-w) > 1e-6 {
			t.Errorf("%s = %v, want %v", name, f, w)
		}
	}
}

func TestEMFRun(t *testing.T) {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hermes.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := metrics.New(db, log)
	var out syncBuffer
	e := &metrics.EMF{Gatherer: m.Registry, Out: &out, Interval: 20 * time.Millisecond, Log: log}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	time.Sleep(70 * time.Millisecond)
	cancel()
	<-done
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 3 { // two or three ticks and the last line at shutdown
		t.Fatalf("%d lines", len(lines))
	}
	for _, l := range lines {
		if _, err := validateEMF([]byte(l)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCircuitState(t *testing.T) {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hermes.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m := metrics.New(db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for state, want := range map[string]float64{"open": 2, "half-open": 1, "closed": 0} {
		m.BreakerState("ses", state)
		var got float64
		fs, _ := m.Registry.Gather()
		for _, f := range fs {
			if f.GetName() == "hermes_circuit_state" {
				got = f.GetMetric()[0].GetGauge().GetValue()
			}
		}
		if got != want {
			t.Errorf("%s: %v, want %v", state, got, want)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
