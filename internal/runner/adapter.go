package runner

import (
	"context"
	"log/slog"

	"github.com/scriptgen/scriptgen/internal/job"
)

// Router says which backend a new job of a project goes to (the worker-system flag).
type Router interface {
	BackendFor(projectID string) job.Backend
}

// Adapter routes new jobs to backends and dispatches them.
type Adapter struct {
	router  Router
	runners map[job.Backend]Runner
	log     *slog.Logger
}

// NewAdapter builds an adapter over the runners this process has.
func NewAdapter(router Router, log *slog.Logger, runners ...Runner) *Adapter {
	m := map[job.Backend]Runner{}
	for _, r := range runners {
		m[r.Backend()] = r
	}
	return &Adapter{router: router, runners: m, log: log}
}

// BackendFor picks the backend of a new job.
func (a *Adapter) BackendFor(projectID string) job.Backend {
	b := a.router.BackendFor(projectID)
	if _, ok := a.runners[b]; !ok {
		return job.BackendBackgroundTasks
	}
	return b
}

// Dispatch hands a committed job to its backend. A failure is logged and
// otherwise ignored: the row is committed and the reconciler dispatches it
// again (invariant 4).
func (a *Adapter) Dispatch(ctx context.Context, j job.Job) {
	r, ok := a.runners[j.Backend]
	if !ok {
		return
	}
	if err := r.Dispatch(ctx, j); err != nil {
		a.log.Warn("Dispatch failed; the reconciler will retry", "job_id", j.ID, "epoch", j.DispatchEpoch, "backend", j.Backend, "err", err)
	}
}
