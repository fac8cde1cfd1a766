// Package reconciler makes invariant 1 true in practice: it expires the leases
// of runners that died without letting go, so that their jobs run again, and it
// re-dispatches queued jobs whose transport was lost.
package reconciler

import (
	"context"
	"log/slog"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/loop"
)

// Store is what the reconciler needs of the database.
type Store interface {
	ExpireLeases(ctx context.Context) ([]job.Job, error)
}

// Dispatcher hands a requeued job to its backend.
type Dispatcher interface {
	Dispatch(ctx context.Context, j job.Job)
}

// Pass is an extra duty run on every tick (the durable side adds its own).
type Pass func(ctx context.Context) error

// Reconciler runs its passes every interval.
type Reconciler struct {
	store    Store
	dispatch Dispatcher
	interval time.Duration
	passes   []Pass
	log      *slog.Logger

	loop loop.Loop
}

// New builds a reconciler.
func New(st Store, d Dispatcher, interval time.Duration, log *slog.Logger, passes ...Pass) *Reconciler {
	return &Reconciler{store: st, dispatch: d, interval: interval, passes: passes, log: log.With("component", "reconciler")}
}

// Start runs the reconciler until Stop.
func (r *Reconciler) Start(ctx context.Context) error {
	r.loop.Start(ctx, r.interval, true, r.Tick)
	return nil
}

// Stop stops the reconciler.
func (r *Reconciler) Stop(context.Context) error {
	r.loop.Stop()
	return nil
}

// Tick runs every duty once.
func (r *Reconciler) Tick(ctx context.Context) {
	expired, err := r.store.ExpireLeases(ctx)
	if err != nil && ctx.Err() == nil {
		r.log.Warn("Lease expiry failed", "err", err)
	}
	for _, j := range expired {
		r.log.Warn("Lease expired", "job_id", j.ID, "epoch", j.DispatchEpoch, "backend", j.Backend, "status", j.Status)
		if j.Status == job.StatusQueued {
			r.dispatch.Dispatch(ctx, j)
		}
	}
	for _, pass := range r.passes {
		if err := pass(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("Reconcile pass failed", "err", err)
		}
	}
}
