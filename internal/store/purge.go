package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
)

// finishedStatuses are the statuses of jobs that are done (a failed one leaves
// its status only by an operator's retry): only their jobs are purged.
var finishedStatuses = []job.Status{job.StatusSucceeded, job.StatusFailed, job.StatusCancelled}

// PurgeCursor is where a run of purges has got to: per finished status, the
// last job id a batch chose. The next batch starts after it rather than at the
// first entry of the status's index, which after a large purge is a long run
// of entries for rows already deleted (dead until a vacuum), walked again by
// every batch. A job of an older id that finishes later is left to the next
// run. The zero value starts at the beginning.
type PurgeCursor map[job.Status]string

// PurgeFinished deletes, in one transaction, at most limit jobs that finished
// before cutoff, with their events, checkpointed script and migration
// failures. Episodes and documents are the writers' work and stay; so does
// everything of a job that has not finished. It returns how many jobs it
// chose: fewer than limit means nothing older is left.
//
// Each status is walked along its (status, id) index from the oldest id, so a
// batch costs the same with ten thousand jobs or ten million: job ids grow
// with time, and the first ids of a status are the ones that finished first.
// A batch that meets a job finished after cutoff stops there for that status.
// A non-nil from is read and moved past the jobs chosen (PurgeCursor).
func (s *SQL) PurgeFinished(ctx context.Context, cutoff time.Time, limit int, from PurgeCursor) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	var ids []string
	for _, st := range finishedStatuses {
		more, err := s.oldestFinished(ctx, st, from[st], micros(cutoff), limit-len(ids))
		if err != nil {
			return 0, err
		}
		if len(more) > 0 && from != nil {
			from[st] = more[len(more)-1]
		}
		ids = append(ids, more...)
		if len(ids) >= limit {
			break
		}
	}
	if len(ids) == 0 {
		return 0, nil
	}
	in := "(?" + strings.Repeat(", ?", len(ids)-1) + ")"
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	var deleted []any
	err := s.inTx(ctx, func(tx *Tx) error {
		// The status is checked again as the job is deleted: one retried since
		// it was chosen is no longer finished, and keeps its events.
		statusArgs := append(append([]any{}, args...), string(job.StatusSucceeded), string(job.StatusFailed), string(job.StatusCancelled))
		rows, err := tx.QueryContext(ctx, s.Q(`DELETE FROM jobs WHERE id IN `+in+` AND status IN (?, ?, ?) RETURNING id`), statusArgs...)
		if err != nil {
			return fmt.Errorf("purge jobs: %w", err)
		}
		deleted = deleted[:0]
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			deleted = append(deleted, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(deleted) == 0 {
			return err
		}
		gone := "(?" + strings.Repeat(", ?", len(deleted)-1) + ")"
		for _, table := range []string{"job_events", "job_script_parts", "migration_failed"} {
			if _, err := tx.ExecContext(ctx, s.Q(`DELETE FROM `+table+` WHERE job_id IN `+gone), deleted...); err != nil {
				return fmt.Errorf("purge %s: %w", table, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return len(ids), nil
}

// oldestFinished returns up to limit ids of jobs of a finished status after
// the id after ("" for none) that finished before cutoff (micros), oldest id
// first, stopping at the first younger one.
func (s *SQL) oldestFinished(ctx context.Context, st job.Status, after string, cutoff int64, limit int) ([]string, error) {
	rows, err := s.query(ctx, `SELECT id, finished_at FROM jobs WHERE status = ? AND id > ? ORDER BY id LIMIT ?`, string(st), after, limit)
	if err != nil {
		return nil, fmt.Errorf("purge: list %s jobs: %w", st, err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		var finished int64
		if err := rows.Scan(&id, &finished); err != nil {
			return nil, err
		}
		if finished >= cutoff {
			break
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
