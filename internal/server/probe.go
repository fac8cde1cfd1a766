package server

import (
	"context"
	"time"

	"github.com/scriptgen/scriptgen/internal/durable"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/sysmem"
)

// The rollback controller's probe: what its triggers watch.

// RedisUp reports whether the durable side's Redis answers.
func (s *Server) RedisUp(ctx context.Context) bool { return s.insp != nil && s.insp.Ping(ctx) == nil }

// WorkerCrashes counts durable workers silent without a clean stop in the window.
func (s *Server) WorkerCrashes(ctx context.Context, window time.Duration) (int, error) {
	now := time.Now()
	ws, err := s.store.ListWorkers(ctx, durable.RoleWorker, now.Add(-window))
	if err != nil {
		return 0, err
	}
	return durable.Count(ws, now).Crashed, nil
}

// WorkersUp counts the durable worker processes that beat in the last
// three heartbeats.
func (s *Server) WorkersUp(ctx context.Context) (int, error) {
	return durable.WorkersUp(ctx, s.store, time.Now())
}

// QueueDelay is how long the queued durable job that has waited longest has
// waited.
func (s *Server) QueueDelay(ctx context.Context) (time.Duration, error) {
	oldest, err := s.store.OldestQueuedAt(ctx, job.BackendDurable)
	if err != nil || oldest.IsZero() {
		return 0, err
	}
	return time.Since(oldest), nil
}

// MemoryPercent is this process's share of the memory it may have: its RSS
// against its cgroup's limit (the machine's memory without one), or its
// cgroup's use against that limit when higher (sysmem.Usage.Percent). Other
// processes on the host do not count: a load generator that eats the host's
// memory must not roll this service back.
func (s *Server) MemoryPercent() (float64, error) {
	u, err := sysmem.ProcessUsage()
	if err != nil {
		return 0, err
	}
	return u.Percent(), nil
}

// DurableEnabled reports whether new jobs go to the durable worker now.
func (s *Server) DurableEnabled() bool { return s.flag.State().Enabled }

// sweepWhileOff is the reconciler's pass in rollback mode: queued durable
// jobs move to background_tasks, so none waits for a worker that is gone.
func (s *Server) sweepWhileOff(ctx context.Context) error {
	if s.flag.State().Enabled {
		return nil
	}
	n, err := s.rollback.Sweep(ctx, redispatchGrace)
	if n > 0 {
		s.pool.Dispatch(ctx, job.Job{})
	}
	return err
}

func (s *Server) responseTimes() (avg, p99 time.Duration) {
	if s.ResponseTimes == nil {
		return 0, 0
	}
	return s.ResponseTimes()
}
