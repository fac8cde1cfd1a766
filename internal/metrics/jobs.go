package metrics

import (
	"maps"
	"sync"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/runner"
	"github.com/scriptgen/scriptgen/internal/store"
)

var _ runner.Observer = (*Metrics)(nil)

// JobFinished counts a finished run and its duration (runner.Observer).
func (m *Metrics) JobFinished(j job.Job, outcome runner.Outcome, took time.Duration) {
	kind, backend := string(j.Kind), string(j.Backend)
	m.jobsFinished.WithLabelValues(kind, string(outcome), backend).Inc()
	m.jobDuration.WithLabelValues(kind, backend).Observe(took.Seconds())
	m.runs.JobFinished(j, outcome, took)
}

// FinishedRuns is a copy of the runs this process finished so far, by
// outcome: what its heartbeats report.
func (m *Metrics) FinishedRuns() store.RunCounts { return m.runs.Counts() }

var _ runner.Observer = (*RunCounter)(nil)

// RunCounter counts finished runs by outcome (a runner.Observer) for the
// process's heartbeats, whose counts the operator page's jobs/s differences
// over the cluster. Metrics counts with one; a `scriptgen worker`, which has
// no Prometheus registry, observes its runs with one alone. The outcomes are
// the executor's few, so the map stays small. The zero value is ready.
type RunCounter struct {
	mu sync.Mutex
	n  store.RunCounts
}

// JobFinished counts a finished run (runner.Observer).
func (c *RunCounter) JobFinished(_ job.Job, outcome runner.Outcome, _ time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = store.RunCounts{}
	}
	c.n[string(outcome)]++
}

// Counts is a copy of the runs counted so far, by outcome.
func (c *RunCounter) Counts() store.RunCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}
