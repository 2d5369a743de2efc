package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/webordinary/hermes"
)

// RegisterDeadLetters registers the dead-letter metrics and returns the
// counter of dead jobs answered (relay.Dead's Answered):
//
//   - hermes_dlq_depth{container_id}: the messages on each container's
//     dead-letter queue, read from the queues at scrape time (so it is right
//     with several replicas); containers are few, one per user and project;
//   - hermes_dlq_depth_total: their sum, the one to alarm on (> 0);
//   - hermes_dead_jobs_answered_total: dead jobs whose user this instance
//     told that the request could not be applied.
func (m *Metrics) RegisterDeadLetters(store hermes.Containers, queues hermes.Queues, log *slog.Logger) prometheus.Counter {
	answered := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hermes_dead_jobs_answered_total",
		Help: "Dead jobs (failed repeatedly, on a dead-letter queue) whose user was told the request could not be applied.",
	})
	m.Registry.MustRegister(answered, &deadLetters{
		store: store, queues: queues, log: log,
		depth: prometheus.NewDesc("hermes_dlq_depth",
			"Messages on a container's dead-letter queue (jobs that failed repeatedly), at scrape time.", []string{"container_id"}, nil),
		total: prometheus.NewDesc("hermes_dlq_depth_total",
			"Messages on all dead-letter queues, at scrape time; alarm when above 0.", nil, nil),
	})
	return answered
}

// deadLetters reads the dead-letter queues' depths at scrape time.
type deadLetters struct {
	store        hermes.Containers
	queues       hermes.Queues
	log          *slog.Logger
	depth, total *prometheus.Desc
}

func (d *deadLetters) Describe(ch chan<- *prometheus.Desc) {
	ch <- d.depth
	ch <- d.total
}

func (d *deadLetters) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cs, err := d.store.ListContainers(ctx)
	if err != nil {
		d.log.Warn("metrics: listing containers failed", "err", err)
		ch <- prometheus.NewInvalidMetric(d.total, err)
		return
	}
	total := 0
	for _, c := range cs {
		if c.Queues.DLQ == "" {
			continue // no queue set (cleaned up)
		}
		st, err := d.queues.Stats(ctx, c.Queues.DLQ)
		if hermes.IsKind(err, hermes.NotFound) {
			continue
		}
		if err != nil {
			d.log.Warn("metrics: reading a dead-letter queue's depth failed; left out", "queue", c.Queues.DLQ, "err", err)
			continue
		}
		n := st.Visible + st.InFlight
		total += n
		ch <- prometheus.MustNewConstMetric(d.depth, prometheus.GaugeValue, float64(n), c.ID)
	}
	ch <- prometheus.MustNewConstMetric(d.total, prometheus.GaugeValue, float64(total))
}
