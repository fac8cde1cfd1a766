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
// has waited longer than grace and whose task is gone from Redis — flushed, or
// Redis down when it was submitted — is enqueued again. One pipelined look
// finds the tasks' states, so a long queue of waiting jobs costs one round
// trip, not an enqueue each; enqueueing is idempotent per dispatch (the task
// id) anyway.
//
// Two kinds of task hold their id without ever running the job, which then
// gets a new epoch and a new task (the old one is stale from then on, and
// dropped if asynq ever hands it out again):
//   - a task asynq archived: its retries ran out, each a claim that failed
//     (the database down for a minute), or a worker died holding it each
//     time. Its dead-letter entry goes once the job has its new epoch.
//   - a task active in two passes in a row while its job, queued for
//     stuckAfter, was not claimed: taken by a worker that died before it
//     claimed the row. (A live worker claims within milliseconds of taking a
//     task; one pass alone could catch it in between, and with a backlog older
//     than stuckAfter it would send the job to the back of the queue.)
//
// The passes of one Redispatch must run one at a time, as a reconciler's do.
func Redispatch(st Lister, d *Dispatcher, insp *Inspector, grace, stuckAfter time.Duration, now func() time.Time) func(ctx context.Context) error {
	var activeBefore map[job.Dispatch]bool
	return func(ctx context.Context) error {
		jobs, err := st.ListQueued(ctx, job.BackendDurable, now().Add(-grace), 5000)
		if err != nil || len(jobs) == 0 {
			return err
		}
		states, err := insp.TaskStates(ctx, jobs)
		if err != nil {
			return err // Redis is down; the next tick tries again
		}
		seen := activeBefore
		activeBefore = map[job.Dispatch]bool{}
		for n, j := range jobs {
			cur := j.Dispatch()
			switch states[n] {
			case TaskGone:
				if err := d.Dispatch(ctx, j); err != nil {
					return err
				}
				continue
			case TaskArchived, TaskCompleted:
			case TaskActive:
				if now().Sub(j.UpdatedAt) < stuckAfter || !seen[cur] {
					activeBefore[cur] = true
					continue
				}
			default: // waiting its turn
				continue
			}
			fresh, err := st.BumpEpoch(ctx, cur)
			if err != nil {
				continue // it was claimed or moved meanwhile
			}
			if states[n] != TaskActive {
				// Stale from the bump on; only the dead-letter list would
				// still show it. Should this fail, the list shows one stale
				// entry, which an operator may delete.
				_ = insp.DeleteTask(QueueFor(j.Kind), TaskID(cur))
			}
			if err := d.Dispatch(ctx, fresh); err != nil {
				return err
			}
		}
		return nil
	}
}
