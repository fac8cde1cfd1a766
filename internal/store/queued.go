package store

import (
	"context"
	"fmt"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
)

// ListQueued lists queued jobs of a backend last changed before olderThan.
func (s *SQL) ListQueued(ctx context.Context, backend job.Backend, olderThan time.Time, limit int) ([]job.Job, error) {
	rows, err := s.R.QueryContext(ctx, s.Q(`SELECT `+jobColumns+` FROM jobs
		WHERE status = 'queued' AND backend = ? AND updated_at < ? ORDER BY id LIMIT ?`), backend, micros(olderThan), limit)
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
