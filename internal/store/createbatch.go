package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/scriptgen/scriptgen/internal/job"
)

// Submissions are group-committed (group.go): fifty concurrent submitters pay
// for one commit instead of fifty. Each request is still answered only after
// its row is committed (invariant 1).

const maxCreateBatch = 256

type createRes struct {
	j       job.Job
	created bool
	err     error
}

// ErrClosed is returned by a store that was closed.
var ErrClosed = errors.New("store is closed")

// CreateJob commits a queued job with its first event, or returns the job of
// the same idempotency key and request hash (created is then false).
func (s *SQL) CreateJob(ctx context.Context, nj NewJob) (job.Job, bool, error) {
	if nj.MaxAttempts <= 0 {
		nj.MaxAttempts = job.DefaultMaxAttempts
	}
	r, err := s.creates.do(s, nj)
	if err == nil {
		err = r.err
	}
	if err != nil && !errors.Is(err, job.ErrIdempotencyMismatch) {
		return job.Job{}, false, fmt.Errorf("create job: %w", err)
	}
	return r.j, r.created, err
}

// createAll inserts the batch's jobs with one statement and their first events
// with another; a request whose idempotency key is taken (by an earlier job or
// an earlier request of the batch) gets that job, or
// job.ErrIdempotencyMismatch when its body differs.
func (s *SQL) createAll(ctx context.Context, tx *Tx, batch []NewJob, results []createRes) error {
	now := s.Clock.Now()
	ids := make([]string, len(batch))
	var q strings.Builder
	q.WriteString(`INSERT INTO jobs (id, kind, project_id, payload, idempotency_key, request_hash,
		status, backend, dispatch_epoch, attempt, max_attempts, lease_owner, lease_expires_at, progress, stage,
		result, error, created_at, updated_at, started_at, finished_at, event_seq) VALUES `)
	args := make([]any, 0, 10*len(batch))
	for i, nj := range batch {
		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		ids[i] = id.String()
		var key any
		if nj.IdempotencyKey != "" {
			key = nj.IdempotencyKey
		}
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString(`(?, ?, ?, ?, ?, ?, 'queued', ?, 1, 0, ?, '', 0, 0, 'queued', '', '', ?, ?, 0, 0, 1)`)
		args = append(args, ids[i], nj.Kind, nj.ProjectID, string(nj.Payload), key, nj.RequestHash, nj.Backend,
			nj.MaxAttempts, micros(now), micros(now))
	}
	q.WriteString(` ON CONFLICT (idempotency_key) DO NOTHING RETURNING ` + jobColumns)
	rows, err := tx.QueryContext(ctx, s.Q(q.String()), args...)
	if err != nil {
		return err
	}
	inserted := make(map[string]job.Job, len(batch))
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			rows.Close()
			return err
		}
		inserted[j.ID] = j
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}

	var evs []job.Event
	var taken []any
	for i, nj := range batch {
		if j, ok := inserted[ids[i]]; ok {
			results[i] = createRes{j: j, created: true}
			evs = append(evs, job.Event{JobID: j.ID, Seq: 1, Type: job.EventStatus, Status: job.StatusQueued,
				Stage: "queued", Message: "accepted", CreatedAt: now})
		} else {
			taken = append(taken, nj.IdempotencyKey)
		}
	}
	if len(taken) > 0 {
		existing, err := s.jobsByKey(ctx, tx, taken)
		if err != nil {
			return err
		}
		for i, nj := range batch {
			if _, ok := inserted[ids[i]]; ok {
				continue
			}
			j, ok := existing[nj.IdempotencyKey]
			if !ok {
				return fmt.Errorf("job of idempotency key %q neither inserted nor found", nj.IdempotencyKey)
			}
			j, created, err := s.sameRequest(j, nj)
			results[i] = createRes{j, created, err}
		}
	}
	if len(evs) == 1 {
		return s.appendEvent(ctx, tx, evs[0])
	}
	return s.appendEvents(ctx, tx, evs)
}

// jobsByKey reads the jobs of the given idempotency keys.
func (s *SQL) jobsByKey(ctx context.Context, tx *Tx, keys []any) (map[string]job.Job, error) {
	rows, err := tx.QueryContext(ctx, s.Q(`SELECT `+jobColumns+` FROM jobs WHERE idempotency_key IN (?`+
		strings.Repeat(", ?", len(keys)-1)+`)`), keys...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := make(map[string]job.Job, len(keys))
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		found[j.IdempotencyKey] = j
	}
	return found, rows.Err()
}
