package server

import (
	"context"
	"time"

	"github.com/scriptgen/scriptgen/internal/api"
	"github.com/scriptgen/scriptgen/internal/durable"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// WorkerSystem reports the effective worker-system flag of this replica.
func (s *Server) WorkerSystem(ctx context.Context) api.WorkerSystem {
	st := s.flag.State()
	ws := api.WorkerSystem{
		Enabled:        st.Enabled,
		Type:           string(st.Type()),
		RolloutPercent: st.RolloutPercent,
		Reason:         st.Setting.Reason,
		KillSwitch:     st.KillSwitchOff,
		Redis:          s.redisStatus(ctx),
		Setting: &api.WorkerSetting{
			Enabled:        st.Setting.Enabled,
			RolloutPercent: st.Setting.RolloutPercent,
			Reason:         st.Setting.Reason,
			UpdatedBy:      st.Setting.UpdatedBy,
			UpdatedAt:      st.Setting.UpdatedAt,
			Revision:       st.Setting.Revision,
		},
	}
	if s.insp != nil {
		c := s.census(ctx)
		ws.WorkersUp, ws.WorkersCrashed = c.Up, c.Crashed
	}
	return ws
}

// census counts the durable worker processes of the last ten minutes.
func (s *Server) census(ctx context.Context) durable.Census {
	now := time.Now()
	ws, err := s.store.ListWorkers(ctx, durable.RoleWorker, now.Add(-10*time.Minute))
	if err != nil {
		s.log.Warn("Could not read the worker registry", "err", err)
	}
	return durable.Count(ws, now)
}

func (s *Server) redisStatus(ctx context.Context) string {
	if s.insp == nil {
		return "unconfigured"
	}
	if s.insp.Ping(ctx) != nil {
		return "down"
	}
	return "up"
}

// BackgroundTasks reports the in-process pool.
func (s *Server) BackgroundTasks(ctx context.Context) api.BackgroundTasks {
	queued, _ := s.store.CountJobs(ctx, store.JobFilter{Backend: job.BackendBackgroundTasks, Status: job.StatusQueued})
	return api.BackgroundTasks{Active: s.exec.Active(), Queued: queued, Max: s.pool.Max()}
}

// SetWorkerSystem saves an operator's change of the flag and applies it here at
// once; the other replicas follow on their next refresh.
func (s *Server) SetWorkerSystem(ctx context.Context, change api.WorkerSystemChange, by string) error {
	cur, err := s.store.GetWorkerSetting(ctx)
	if err != nil {
		return err
	}
	next := store.WorkerSetting{
		Enabled:        *change.Enabled,
		RolloutPercent: cur.RolloutPercent,
		Reason:         change.Reason,
		UpdatedBy:      by,
	}
	switch {
	case change.RolloutPercent != nil:
		next.RolloutPercent = *change.RolloutPercent
	case next.Enabled && next.RolloutPercent == 0:
		// Enabling without a percent after a rollback (which leaves 0 %)
		// means the durable worker for every project, not enabled for none.
		next.RolloutPercent = 100
	}
	if _, err := s.store.PutWorkerSetting(ctx, next); err != nil {
		return err
	}
	return s.flag.Refresh(ctx)
}
