package server

import (
	"context"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/metrics"
	"github.com/scriptgen/scriptgen/internal/store"
)

// MetricsSnapshot reads what /metrics shows at scrape time (metrics.Source).
// Only unfinished jobs are counted per kind, status and backend: they are few
// and found through the (backend, status) index, while terminal statuses grow
// without bound and are counted as runs finish instead
// (scriptgen_jobs_finished_total).
func (s *Server) MetricsSnapshot(ctx context.Context) metrics.Snapshot {
	st := s.flag.State()
	bt := s.BackgroundTasks(ctx) // the same figures as /api/admin/stats
	snap := metrics.Snapshot{
		RollbackActive:      !st.Setting.Enabled && st.DurableAvailable,
		WorkerSystemEnabled: st.Enabled,
		RolloutPercent:      st.RolloutPercent,
		BackgroundActive:    bt.Active,
		BackgroundQueued:    bt.Queued,
		BackgroundMax:       bt.Max,
		RedisConfigured:     s.insp != nil,
	}
	for _, kind := range []job.Kind{job.KindGeneration, job.KindRAGDocument} {
		for _, status := range []job.Status{job.StatusQueued, job.StatusRunning} {
			for _, backend := range []job.Backend{job.BackendBackgroundTasks, job.BackendDurable} {
				n, err := s.store.CountJobs(ctx, store.JobFilter{Kind: kind, Status: status, Backend: backend})
				if err != nil {
					s.log.Warn("Could not count jobs for /metrics", "err", err)
					continue
				}
				snap.Jobs = append(snap.Jobs, metrics.JobCount{
					Kind:    string(kind),
					Status:  string(status),
					Backend: string(backend),
					N:       n,
				})
			}
		}
	}
	if s.controller != nil {
		for _, t := range s.controller.Triggers() {
			snap.Triggers = append(snap.Triggers, metrics.TriggerState{Name: t.Name, State: t.State})
		}
	}
	if s.insp != nil {
		c := s.census(ctx)
		snap.WorkersUp, snap.WorkerCrashes = c.Up, c.Crashed
		if snap.RedisUp = s.RedisUp(ctx); snap.RedisUp {
			if qs, err := s.insp.Stats(ctx); err == nil {
				snap.QueueDepth, snap.QueueLatency = qs.Depth, qs.Latency
			} else {
				s.log.Warn("Could not read the durable queues for /metrics", "err", err)
			}
		}
	}
	return snap
}
