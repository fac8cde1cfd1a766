package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// snapshotCollector turns one Snapshot per scrape into gauges.
type snapshotCollector struct {
	src Source
}

var (
	descRollbackActive = prometheus.NewDesc("system_rollback_active",
		"System is in rollback mode: the worker system was turned off while a durable side exists.", nil, nil)
	descBackgroundActive = prometheus.NewDesc("background_tasks_active",
		"background_tasks jobs running in this process.", nil, nil)
	descBackgroundQueued = prometheus.NewDesc("background_tasks_queued",
		"Jobs queued for background_tasks.", nil, nil)
	descBackgroundMax = prometheus.NewDesc("background_tasks_max",
		"background_tasks workers in this process.", nil, nil)
	descJobs = prometheus.NewDesc("scriptgen_jobs",
		"Jobs not yet finished, by kind, status and backend.", []string{"kind", "status", "backend"}, nil)
	descQueueDepth = prometheus.NewDesc("scriptgen_durable_queue_depth",
		"Durable tasks waiting in Redis (pending, scheduled, retrying); absent while Redis is unconfigured or down.", nil, nil)
	descQueueLatency = prometheus.NewDesc("scriptgen_durable_queue_latency_seconds",
		"Age of the oldest pending durable task; absent while Redis is unconfigured or down.", nil, nil)
	descWorkersUp = prometheus.NewDesc("scriptgen_workers_up",
		"Durable worker processes heartbeating now.", nil, nil)
	descWorkerCrashes = prometheus.NewDesc("scriptgen_worker_crashes",
		"Durable worker processes silent without a clean stop in the last 10 minutes.", nil, nil)
	descRedisUp = prometheus.NewDesc("scriptgen_redis_up",
		"Redis of the durable side answers (1) or not (0); absent without REDIS_URL.", nil, nil)
	descEnabled = prometheus.NewDesc("scriptgen_worker_system_enabled",
		"New jobs may go to the durable worker (1) or all run as background_tasks (0).", nil, nil)
	descTrigger = prometheus.NewDesc("scriptgen_rollback_trigger_state",
		"The rollback controller's triggers on the leading replica: 1 for the state each is in (ok, pending, firing, inconclusive: its measurement failed, which never counts toward a rollback).",
		[]string{"trigger", "state"}, nil)
	descRollout = prometheus.NewDesc("scriptgen_worker_system_rollout_percent",
		"Share of projects whose new jobs go to the durable worker while it is enabled.", nil, nil)
)

func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRollbackActive, descBackgroundActive, descBackgroundQueued,
		descBackgroundMax, descJobs, descQueueDepth, descQueueLatency, descWorkersUp, descWorkerCrashes,
		descRedisUp, descEnabled, descRollout, descTrigger} {
		ch <- d
	}
}

func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), snapshotTimeout)
	defer cancel()
	s := c.src.MetricsSnapshot(ctx)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descRollbackActive, boolean(s.RollbackActive))
	gauge(descEnabled, boolean(s.WorkerSystemEnabled))
	gauge(descRollout, float64(s.RolloutPercent))
	gauge(descBackgroundActive, float64(s.BackgroundActive))
	gauge(descBackgroundQueued, float64(s.BackgroundQueued))
	gauge(descBackgroundMax, float64(s.BackgroundMax))
	gauge(descWorkersUp, float64(s.WorkersUp))
	gauge(descWorkerCrashes, float64(s.WorkerCrashes))
	if s.RedisConfigured {
		gauge(descRedisUp, boolean(s.RedisUp))
		if s.RedisUp {
			gauge(descQueueDepth, float64(s.QueueDepth))
			gauge(descQueueLatency, s.QueueLatency.Seconds())
		}
	}
	for _, t := range s.Triggers {
		for _, state := range TriggerStates {
			gauge(descTrigger, boolean(t.State == state), t.Name, state)
		}
	}
	seen := map[[3]string]bool{}
	for _, j := range s.Jobs {
		k := [3]string{j.Kind, j.Status, j.Backend}
		if seen[k] { // a duplicate series would fail the whole scrape
			continue
		}
		seen[k] = true
		gauge(descJobs, float64(j.N), j.Kind, j.Status, j.Backend)
	}
}

func boolean(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
