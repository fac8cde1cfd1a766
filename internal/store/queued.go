package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
)

// ListQueued lists queued jobs of a backend last changed before olderThan.
func (s *SQL) ListQueued(ctx context.Context, backend job.Backend, olderThan time.Time, limit int) ([]job.Job, error) {
	rows, err := s.query(ctx, `SELECT `+jobColumns+` FROM jobs
		WHERE status = 'queued' AND backend = ? AND updated_at < ? ORDER BY id LIMIT ?`, backend, micros(olderThan), limit)
	if err != nil {
		return nil, fmt.Errorf("list queued %s jobs: %w", backend, err)
	}
	defer rows.Close()
	var out []job.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// OldestQueuedAt is when the queued job of a backend that has waited longest
// was queued, or the zero time when none waits. It is not the job with the
// smallest id: a job queued again (retried, released, its lease expired) waits
// from then on, behind younger ids. A job waiting for its retry backoff is
// not waiting for a runner: it counts from when its backoff ends, and not at
// all before.
func (s *SQL) OldestQueuedAt(ctx context.Context, backend job.Backend) (time.Time, error) {
	var oldest sql.NullInt64
	if err := s.queryRow(ctx, `SELECT MIN(CASE WHEN retry_at > updated_at THEN retry_at ELSE updated_at END) FROM jobs
		WHERE status = 'queued' AND backend = ? AND retry_at <= ?`, backend, micros(s.Clock.Now())).Scan(&oldest); err != nil {
		return time.Time{}, fmt.Errorf("oldest queued %s job: %w", backend, err)
	}
	if !oldest.Valid {
		return time.Time{}, nil
	}
	return fromMicros(oldest.Int64), nil
}

// BumpEpoch gives a queued job a new dispatch epoch, so that a copy stuck in
// the transport (held by a dead worker) is stale and a new one can be sent.
// The job's updated_at stays: it still waits from when it was queued, which
// is what the queue_delay trigger reads (OldestQueuedAt), however often its
// transport is replaced.
func (s *SQL) BumpEpoch(ctx context.Context, d job.Dispatch) (job.Job, error) {
	j, err := scanJob(s.W.QueryRowContext(ctx, s.Q(`UPDATE jobs SET dispatch_epoch = dispatch_epoch + 1
		WHERE id = ? AND dispatch_epoch = ? AND status = 'queued' RETURNING `+jobColumns), d.JobID, d.Epoch))
	if errors.Is(err, job.ErrNotFound) {
		return j, job.ErrStaleLease
	}
	if err != nil {
		return j, fmt.Errorf("bump epoch of job %s: %w", d.JobID, err)
	}
	return j, nil
}
