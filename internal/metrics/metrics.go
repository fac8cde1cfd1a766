// Package metrics owns scriptgen's Prometheus figures: docs/runbook.md's rollback
// gauges (system_rollback_active, rollback_performance_ratio,
// rollback_errors_total, background_tasks_active), jobs by kind, status and
// backend, job and HTTP durations, and the durable side's queue, workers and
// Redis. Figures that need I/O are read from a Source at scrape time, never
// cached between scrapes, so /metrics shows the state of the moment; event
// figures (finished runs, requests) are counted as they happen. Nothing here is
// global: each process builds its Metrics on its own registry.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Source reports the state the scrape-time gauges show. The serving process
// implements it; it must answer within the context's deadline.
type Source interface {
	MetricsSnapshot(ctx context.Context) Snapshot
}

// Snapshot is the state of one process and the system around it at one moment.
type Snapshot struct {
	// RollbackActive: the persisted setting was turned off while a durable
	// side exists, so new jobs run as background_tasks because of a rollback.
	RollbackActive      bool
	WorkerSystemEnabled bool
	RolloutPercent      int

	BackgroundActive int
	BackgroundQueued int
	BackgroundMax    int

	// QueueDepth and QueueLatency are the durable queues' waiting tasks and
	// the age of the oldest; exported only while Redis is configured and up.
	QueueDepth   int
	QueueLatency time.Duration

	WorkersUp     int
	WorkerCrashes int // silent without a clean stop in the last ten minutes

	RedisConfigured bool
	RedisUp         bool

	Jobs []JobCount

	// Triggers are the rollback controller's triggers as this replica
	// evaluates them: empty unless it leads.
	Triggers []TriggerState
}

// TriggerState is one trigger of the rollback controller and its state (ok,
// pending, firing or inconclusive).
type TriggerState struct {
	Name, State string
}

// TriggerStates are the states scriptgen_rollback_trigger_state has a
// series for, one of them 1 per trigger.
var TriggerStates = []string{"ok", "pending", "firing", "inconclusive"}

// JobCount is how many jobs of a kind are in a status on a backend.
type JobCount struct {
	Kind, Status, Backend string
	N                     int
}

// BaselineResponseTime is docs/runbook.md's pre-rollback average response time,
// against which rollback_performance_ratio compares the current one.
const BaselineResponseTime = 2 * time.Second

// snapshotTimeout bounds a scrape's reads of the Source.
const snapshotTimeout = 5 * time.Second

// Metrics holds the event figures and reads the rest from its Source.
type Metrics struct {
	rollbackErrors prometheus.Counter
	jobsFinished   *prometheus.CounterVec
	jobDuration    *prometheus.HistogramVec
	httpDuration   *prometheus.HistogramVec
	window         *window
	runs           RunCounter
}

// New registers scriptgen's metrics, the Go runtime's and the process's on
// reg. src may be nil in a process without the serving state (a worker): the
// scrape-time gauges are then left out.
func New(reg prometheus.Registerer, src Source) *Metrics {
	m := &Metrics{
		rollbackErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rollback_errors_total",
			Help: "Errors during rollback: steps of a rollback or migration that failed.",
		}),
		jobsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scriptgen_jobs_finished_total",
			Help: "Runs of jobs finished in this process, by kind, outcome and backend.",
		}, []string{"kind", "outcome", "backend"}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scriptgen_job_duration_seconds",
			Help:    "How long a run of a job took in this process, by kind and backend.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}, []string{"kind", "backend"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "scriptgen_http_request_duration_seconds",
			Help: "HTTP request duration by method, route pattern and status code (event streams excluded).",
			// Up to a minute, so a p99 above docs/runbook.md's 10 s limit is seen.
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"method", "route", "code"}),
		window: newWindow(windowSize, windowAge, time.Now),
	}
	reg.MustRegister(m.rollbackErrors, m.jobsFinished, m.jobDuration, m.httpDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rollback_performance_ratio",
		Help: "Performance against the pre-rollback baseline: 2.0 s / max(average response time, 0.1 s); above 1 is faster.",
	}, m.performanceRatio))
	if src != nil {
		reg.MustRegister(&snapshotCollector{src: src})
	}
	return m
}

// performanceRatio is docs/runbook.md's baseline / max(average, 0.1 s).
func (m *Metrics) performanceRatio() float64 {
	avg, _ := m.ResponseTimes()
	return BaselineResponseTime.Seconds() / max(avg.Seconds(), 0.1)
}

// RollbackError counts one error during a rollback.
func (m *Metrics) RollbackError() { m.rollbackErrors.Inc() }

// Handler serves the registry's metrics in Prometheus form (GET /metrics).
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
