package durable

import (
	"context"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
)

// Lister finds queued jobs of a backend that have waited at least a while.
type Lister interface {
	ListQueued(ctx context.Context, backend job.Backend, olderThan time.Time, limit int) ([]job.Job, error)
	BumpEpoch(ctx context.Context, d job.Dispatch) (job.Job, error)
}

// Redispatch is the reconciler's durable pass: every queued durable job that
// has waited longer than grace is enqueued again. Enqueueing is idempotent per
// dispatch (the task id), so a job whose task is still in Redis is untouched,
// and one whose task was lost — Redis flushed, or down when it was submitted —
// gets it back.
//
// A job still queued after stuckAfter whose task is active — taken by a worker
// that died before it claimed the row — gets a new epoch and a new task: the
// old one is stale from then on, and dropped if asynq ever hands it out again.
func Redispatch(st Lister, d *Dispatcher, insp *Inspector, grace, stuckAfter time.Duration, now func() time.Time) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		jobs, err := st.ListQueued(ctx, job.BackendDurable, now().Add(-grace), 5000)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			if err := d.Dispatch(ctx, j); err != nil {
				return err // Redis is down; the next tick tries again
			}
			if now().Sub(j.UpdatedAt) < stuckAfter || !insp.Active(QueueFor(j.Kind), TaskID(job.Dispatch{JobID: j.ID, Epoch: j.DispatchEpoch})) {
				continue
			}
			fresh, err := st.BumpEpoch(ctx, job.Dispatch{JobID: j.ID, Epoch: j.DispatchEpoch})
			if err != nil {
				continue // it was claimed or moved meanwhile
			}
			if err := d.Dispatch(ctx, fresh); err != nil {
				return err
			}
		}
		return nil
	}
}
