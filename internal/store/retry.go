package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/scriptgen/scriptgen/internal/job"
)

// ErrNotFailed is a retry of a job that has not failed for good.
var ErrNotFailed = errors.New("job has not failed")

// RetryJob queues a failed job again, as an operator's retry: its attempts
// start over (it gets its max_attempts again), its epoch moves on, it may be
// claimed at once (no backoff), and its event log says so. A job that is not failed is refused with ErrNotFailed.
func (s *SQL) RetryJob(ctx context.Context, id string) (job.Job, error) {
	now := s.Clock.Now()
	var j job.Job
	err := s.inTx(ctx, func(tx *Tx) error {
		var err error
		j, err = s.transition(ctx, tx, `UPDATE jobs SET status = 'queued', stage = 'retried', attempt = 0, error = '', retry_at = 0,
			dispatch_epoch = dispatch_epoch + 1, lease_owner = '', lease_expires_at = 0, finished_at = 0, updated_at = ?,
			event_seq = event_seq + 1 WHERE id = ? AND status = 'failed'`,
			[]any{micros(now), id}, statusEvent("retried by an operator"))
		return err
	})
	if errors.Is(err, job.ErrStaleLease) {
		if _, gerr := s.GetJob(ctx, id); gerr != nil {
			return job.Job{}, gerr
		}
		return job.Job{}, ErrNotFailed
	}
	if err != nil {
		return j, fmt.Errorf("retry job %s: %w", id, err)
	}
	return j, nil
}
