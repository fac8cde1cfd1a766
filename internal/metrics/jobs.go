package metrics

import (
	"maps"
	"sync"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/runner"
)

var _ runner.Observer = (*Metrics)(nil)

// JobFinished counts a finished run and its duration (runner.Observer).
func (m *Metrics) JobFinished(j job.Job, outcome runner.Outcome, took time.Duration) {
	kind, backend := string(j.Kind), string(j.Backend)
	m.jobsFinished.WithLabelValues(kind, string(outcome), backend).Inc()
	m.jobDuration.WithLabelValues(kind, backend).Observe(took.Seconds())
	m.runs.mu.Lock()
	m.runs.n[outcome]++
	m.runs.mu.Unlock()
}

// runCounts counts finished runs by outcome for History's rates; the
// outcomes are the executor's few, so the map stays small.
type runCounts struct {
	mu sync.Mutex
	n  map[runner.Outcome]uint64
}

// finishedRuns is a copy of the runs finished so far, by outcome.
func (m *Metrics) finishedRuns() map[runner.Outcome]uint64 {
	m.runs.mu.Lock()
	defer m.runs.mu.Unlock()
	return maps.Clone(m.runs.n)
}
