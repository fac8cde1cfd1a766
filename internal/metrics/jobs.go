package metrics

import (
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
}
