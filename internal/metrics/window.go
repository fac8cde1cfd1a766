package metrics

import (
	"slices"
	"sync"
	"time"
)

// The response-time window: the last windowSize requests, none older than
// windowAge — recent enough for docs/runbook.md's "average response time" to say
// how the system does now, large enough for a p99.
const (
	windowSize = 1000
	windowAge  = 5 * time.Minute
)

type sample struct {
	at   time.Time
	took time.Duration
}

// window is a ring of the latest samples.
type window struct {
	now    func() time.Time
	maxAge time.Duration

	mu   sync.Mutex
	ring []sample
	next int
	full bool
}

func newWindow(size int, maxAge time.Duration, now func() time.Time) *window {
	return &window{now: now, maxAge: maxAge, ring: make([]sample, size)}
}

func (w *window) add(took time.Duration) {
	at := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ring[w.next] = sample{at: at, took: took}
	w.next = (w.next + 1) % len(w.ring)
	if w.next == 0 {
		w.full = true
	}
}

// stats is the average and the nearest-rank 99th percentile.
func (w *window) stats() (avg, p99 time.Duration) {
	since := w.now().Add(-w.maxAge)
	took := w.took(func(at time.Time) bool { return !at.Before(since) })
	if len(took) == 0 {
		return 0, 0
	}
	var sum time.Duration
	for _, t := range took {
		sum += t
	}
	return sum / time.Duration(len(took)), nearestP99(took)
}

// p99Since is the nearest-rank 99th percentile of the samples taken after
// since, of the last len(ring) at most; false without any.
func (w *window) p99Since(since time.Time) (time.Duration, bool) {
	took := w.took(since.Before)
	if len(took) == 0 {
		return 0, false
	}
	return nearestP99(took), true
}

// took is the durations of the samples kept whose time keep accepts.
func (w *window) took(keep func(at time.Time) bool) []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.next
	if w.full {
		n = len(w.ring)
	}
	took := make([]time.Duration, 0, n)
	for _, s := range w.ring[:n] {
		if keep(s.at) {
			took = append(took, s.took)
		}
	}
	return took
}

// nearestP99 sorts took and returns its nearest-rank 99th percentile.
func nearestP99(took []time.Duration) time.Duration {
	slices.Sort(took)
	return took[(99*len(took)+99)/100-1] // ceil(0.99·n)
}
