package metrics

import "github.com/prometheus/client_golang/prometheus"

// Circuit breaker states as hermes_circuit_state reports them.
const (
	CircuitClosed   = 0
	CircuitHalfOpen = 1
	CircuitOpen     = 2
)

func newCircuitState() *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "hermes_circuit_state",
		Help: "State of the circuit breaker of an outside service: 0 closed, 1 half-open, 2 open (calls fail fast).",
	}, []string{"service"})
}

// BreakerState records a breaker's state change; it is the OnState of
// awsx.BreakerOptions ("closed", "half-open", "open").
func (m *Metrics) BreakerState(service, state string) {
	v := CircuitClosed
	switch state {
	case "half-open":
		v = CircuitHalfOpen
	case "open":
		v = CircuitOpen
	}
	m.CircuitState.WithLabelValues(service).Set(float64(v))
}
