package durable

import (
	"context"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
)

// Lister finds queued jobs of a backend that have waited at least a while.
type Lister interface {
	ListQueued(ctx context.Context, backend job.Backend, olderThan time.Time, limit int) ([]job.Job, error)
}

// Redispatch is the reconciler's durable pass: every queued durable job that
// has waited longer than grace is enqueued again. Enqueueing is idempotent per
// dispatch (the task id), so a job whose task is still in Redis is untouched,
// and one whose task was lost — Redis flushed, or down when it was submitted —
// gets it back.
func Redispatch(st Lister, d *Dispatcher, grace time.Duration, now func() time.Time) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		jobs, err := st.ListQueued(ctx, job.BackendDurable, now().Add(-grace), 5000)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			if err := d.Dispatch(ctx, j); err != nil {
				return err // Redis is down; the next tick tries again
			}
		}
		return nil
	}
}
