package metrics

import (
	"slices"
	"sync"
	"time"
)

// wakeWindow is how many recent wake times WakeTimes keeps.
const wakeWindow = 64

// WakeTimes keeps the most recent container wake times (wake requested →
// the worker's first heartbeat) so that acknowledgements quote a measured
// wait rather than a guess. Safe for concurrent use.
type WakeTimes struct {
	mu   sync.Mutex
	ring []time.Duration
	next int
}

// Observe records one wake time.
func (w *WakeTimes) Observe(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.ring) < wakeWindow {
		w.ring = append(w.ring, d)
		return
	}
	w.ring[w.next] = d
	w.next = (w.next + 1) % wakeWindow
}

// Estimate returns the median of the recent wake times, and false when
// none has been measured yet.
func (w *WakeTimes) Estimate() (time.Duration, bool) {
	w.mu.Lock()
	s := slices.Clone(w.ring)
	w.mu.Unlock()
	if len(s) == 0 {
		return 0, false
	}
	slices.Sort(s)
	return s[len(s)/2], true
}
