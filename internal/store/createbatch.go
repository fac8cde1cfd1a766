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

// createAll inserts the batch's jobs and their first events; a request whose
// idempotency key is taken (by an earlier job or an earlier request of the
// batch) gets that job, or job.ErrIdempotencyMismatch when its body differs.
// ex is a transaction, in which the jobs and the events are one statement
// each, or with a writable CTE the pool: one statement then inserts both and
// announces the events, and commits by itself.
func (s *SQL) createAll(ctx context.Context, ex execer, batch []NewJob, results []createRes) error {
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
	first := job.Event{Seq: 1, Type: job.EventStatus, Status: job.StatusQueued, Stage: "queued", Message: "accepted", CreatedAt: now}
	tx, inTx := ex.(*Tx)
	insert := q.String()
	if !inTx {
		insert = `WITH ins AS (` + insert + `),
			ev AS (INSERT INTO job_events (job_id, seq, type, status, progress, stage, message, data, created_at)
				SELECT id, ?, ?, ?, ?, ?, ?, ?, ? FROM ins RETURNING job_id),
			announced AS (SELECT ` + s.rb.d.Notify("job_id") + ` FROM ev)
			SELECT ins.* FROM ins CROSS JOIN (SELECT COUNT(*) FROM announced) AS n`
		args = append(args, eventArgs(first)[1:]...)
	}
	rows, err := ex.QueryContext(ctx, s.Q(insert), args...)
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
			e := first
			e.JobID = j.ID
			evs = append(evs, e)
		} else {
			taken = append(taken, nj.IdempotencyKey)
		}
	}
	if len(taken) > 0 {
		// A key that conflicted is another job's, committed (PostgreSQL waits
		// for an insert in flight): reading it after the statement finds it.
		existing, readErr := s.jobsByKey(ctx, ex, taken)
		for i, nj := range batch {
			if _, ok := inserted[ids[i]]; ok {
				continue
			}
			if j, ok := existing[nj.IdempotencyKey]; ok && readErr == nil {
				j, created, err := s.sameRequest(j, nj)
				results[i] = createRes{j, created, err}
				continue
			}
			err := readErr
			if err == nil {
				err = fmt.Errorf("job of idempotency key %q neither inserted nor found", nj.IdempotencyKey)
			}
			if inTx {
				return err // the batch is retried request by request
			}
			// The statement has committed the others' jobs: a retry would
			// insert those without a key twice. Only this request fails.
			results[i] = createRes{err: err}
		}
	}
	switch {
	case !inTx:
		return nil
	case len(evs) == 1:
		return s.appendEvent(ctx, tx, evs[0])
	}
	return s.appendEvents(ctx, tx, evs)
}

// jobsByKey reads the jobs of the given idempotency keys.
func (s *SQL) jobsByKey(ctx context.Context, ex execer, keys []any) (map[string]job.Job, error) {
	rows, err := ex.QueryContext(ctx, s.Q(`SELECT `+jobColumns+` FROM jobs WHERE idempotency_key IN (?`+
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
