package runner

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/tracing"
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
	ctx, span := tracing.Start(ctx, j.ID, tracing.SpanDispatch, trace.WithAttributes(
		tracing.AttrBackend.String(string(j.Backend)), tracing.AttrEpoch.Int64(j.DispatchEpoch)))
	defer span.End()
	if err := r.Dispatch(ctx, j); err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "dispatch failed")
		a.log.Warn("Dispatch failed; the reconciler will retry", append([]any{"job_id", j.ID, "epoch", j.DispatchEpoch, "backend", j.Backend, "err", err}, tracing.LogAttrs(j.ID)...)...)
	}
}
