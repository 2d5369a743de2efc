package metrics

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// EMFNamespace is the CloudWatch namespace of Hermes's metrics, the
// reference's.
const EMFNamespace = "Webordinary/EditSessions"

// emfMetric maps a Prometheus metric family to a CloudWatch metric.
type emfMetric struct {
	name, unit, family string
	kind               int
}

const (
	emfGauge     = iota // the value now
	emfCounter          // the increase since the last line (summed over labels)
	emfHistogram        // the mean of the observations since the last line, in milliseconds
)

// emfMetrics are the CloudWatch metrics written, the reference's
// ActiveSessionCount among them. At most 100 (one EMF directive).
var emfMetrics = []emfMetric{
	{"ActiveSessionCount", "Count", "hermes_active_sessions", emfGauge},
	{"DLQDepth", "Count", "hermes_dlq_depth_total", emfGauge},
	{"WakeLatency", "Milliseconds", "hermes_container_wake_seconds", emfHistogram},
	{"Wakes", "Count", "hermes_container_wake_seconds", emfCounter},
	{"MessagesRouted", "Count", "hermes_messages_routed_total", emfCounter},
	{"MessagesDropped", "Count", "hermes_messages_dropped_total", emfCounter},
	{"RepliesSent", "Count", "hermes_replies_sent_total", emfCounter},
	{"RepliesFailed", "Count", "hermes_replies_failed_total", emfCounter},
	{"SessionsCreated", "Count", "hermes_sessions_created_total", emfCounter},
}

// EMF writes Hermes's metrics as CloudWatch Embedded Metric Format lines
// (one JSON object per line, for CloudWatch Logs to turn into metrics):
// namespace Webordinary/EditSessions, dimension Environment, the metrics
// of emfMetrics read from the Prometheus registry. Gauges are the value
// at the time of the line; counters are the increase since the previous
// line (CloudWatch sums them); WakeLatency is the mean wake time of the
// wakes since the previous line, left out when there was none.
type EMF struct {
	Gatherer    prometheus.Gatherer
	Out         io.Writer // standard output on ECS (the awslogs driver)
	Environment string    // the Environment dimension: development, production, test
	Interval    time.Duration
	Now         func() time.Time
	Log         *slog.Logger

	mu   sync.Mutex
	last map[string]float64 // counter totals (and histogram sums) at the previous line
}

// Run writes a line every Interval (default a minute) until ctx ends, and
// a last one then, so that no count is lost at shutdown.
func (e *EMF) Run(ctx context.Context) {
	interval := e.Interval
	if interval <= 0 {
		interval = time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			e.write(context.WithoutCancel(ctx))
			return
		case <-t.C:
			e.write(ctx)
		}
	}
}

func (e *EMF) write(ctx context.Context) {
	if err := e.Write(); err != nil {
		e.log().WarnContext(ctx, "metrics: writing the EMF line failed", "err", err)
	}
}

// Write writes one EMF line now.
func (e *EMF) Write() error {
	line, err := e.Line()
	if err != nil {
		return err
	}
	_, err = e.Out.Write(append(line, '\n')) // one write: lines never interleave with logs
	return err
}

// Line returns the EMF document of the metrics now (without a newline),
// and advances the counters' baseline.
func (e *EMF) Line() ([]byte, error) {
	families, err := e.Gatherer.Gather()
	if err != nil {
		// Some collector failed (the store, a queue): write what was gathered.
		e.log().Warn("metrics: gathering for EMF was incomplete", "err", err)
	}
	byName := make(map[string]*dto.MetricFamily, len(families))
	for _, f := range families {
		byName[f.GetName()] = f
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.last == nil {
		e.last = map[string]float64{}
	}
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	env := e.Environment
	if env == "" {
		env = "development"
	}
	doc := map[string]any{"Environment": env}
	type metricDef struct {
		Name string `json:"Name"`
		Unit string `json:"Unit"`
	}
	var defs []metricDef
	for _, m := range emfMetrics {
		f, ok := byName[m.family]
		if !ok && m.kind != emfCounter {
			continue // not gathered (its collector failed): no value
		}
		var v float64
		switch m.kind {
		case emfGauge:
			if len(f.GetMetric()) == 0 {
				continue
			}
			for _, x := range f.GetMetric() {
				v += x.GetGauge().GetValue()
			}
		case emfCounter:
			var total float64 // a vector without series yet counts 0
			for _, x := range f.GetMetric() {
				if h := x.GetHistogram(); h != nil {
					total += float64(h.GetSampleCount())
				} else {
					total += x.GetCounter().GetValue()
				}
			}
			key := m.name
			v = max(total-e.last[key], 0)
			e.last[key] = total
		case emfHistogram:
			var sum, count float64
			for _, x := range f.GetMetric() {
				sum += x.GetHistogram().GetSampleSum()
				count += float64(x.GetHistogram().GetSampleCount())
			}
			dSum, dCount := sum-e.last[m.name+".sum"], count-e.last[m.name+".count"]
			e.last[m.name+".sum"], e.last[m.name+".count"] = sum, count
			if dCount <= 0 {
				continue // no observation: no value (a value of 0 would be a lie)
			}
			v = dSum / dCount * 1000
		}
		doc[m.name] = v
		defs = append(defs, metricDef{Name: m.name, Unit: m.unit})
	}
	doc["_aws"] = map[string]any{
		"Timestamp": now().UnixMilli(),
		"CloudWatchMetrics": []any{map[string]any{
			"Namespace":  EMFNamespace,
			"Dimensions": [][]string{{"Environment"}},
			"Metrics":    defs,
		}},
	}
	return json.Marshal(doc)
}

func (e *EMF) log() *slog.Logger {
	if e.Log == nil {
		return slog.Default()
	}
	return e.Log
}
