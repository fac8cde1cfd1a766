package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/scriptgen/scriptgen/internal/job"
)

// Submissions are group-committed (group.go): fifty concurrent submitters pay
// for one commit instead of fifty. Each request is still answered only after
// its row is committed (invariant 1).

const maxCreateBatch = 256

type createReq struct {
	// id is given by the first try of the request's batch, in batch order (a
	// claimer looks after the last id it took), and kept: a batch tried again
	// after its commit — whose answer was lost — finds its own rows instead of
	// adding them again.
	id string
	NewJob
}

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
	r, err := s.creates.do(s, createReq{NewJob: nj})
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
// batch) gets that job, or job.ErrIdempotencyMismatch when its body differs,
// and one whose id is taken was committed by an earlier try of the batch.
// ex is a transaction, in which the jobs and the events are one statement
// each, or with a writable CTE the pool: one statement then inserts both and
// announces the events, and commits by itself.
func (s *SQL) createAll(ctx context.Context, ex execer, batch []createReq, results []createRes) error {
	if err := giveIDs(batch); err != nil {
		return err
	}
	now := s.Clock.Now()
	first := job.Event{
		Seq:       1,
		Type:      job.EventStatus,
		Status:    job.StatusQueued,
		Stage:     "queued",
		Message:   "accepted",
		CreatedAt: now,
	}
	// In a transaction the first events follow in a statement of their own;
	// on the pool the insert adds them.
	tx, inTx := ex.(*Tx)
	inserted, err := s.insertJobs(ctx, ex, batch, now, first, !inTx)
	if err != nil {
		return err
	}
	evs := answerInserted(batch, inserted, first, results)
	if err := s.answerConflicts(ctx, ex, batch, inserted, results); err != nil {
		return err
	}
	switch {
	case !inTx:
		return nil
	case len(evs) == 1:
		return s.appendEvent(ctx, tx, evs[0])
	}
	return s.appendEvents(ctx, tx, evs)
}

// giveIDs gives each request of the batch that has none its job's id, in
// batch order.
func giveIDs(batch []createReq) error {
	for i := range batch {
		if batch[i].id != "" {
			continue
		}
		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		batch[i].id = id.String()
	}
	return nil
}

// insertJobs inserts the batch's jobs as queued at now, skipping those whose
// id or idempotency key is taken, and returns those it inserted by id. With
// withEvents (ex is then the pool), the same statement gives each inserted
// job its first event and announces it.
func (s *SQL) insertJobs(ctx context.Context, ex execer, batch []createReq, now time.Time, first job.Event,
	withEvents bool) (map[string]job.Job, error) {
	var q strings.Builder
	q.WriteString(`INSERT INTO jobs (id, kind, project_id, payload, idempotency_key, request_hash,
		status, backend, dispatch_epoch, attempt, max_attempts, lease_owner, lease_expires_at, progress, stage,
		result, error, created_at, updated_at, started_at, finished_at, event_seq) `)
	var args []any
	if s.rb.d.ArrayParams {
		args = arrayRows(&q, batch, now)
	} else {
		args = valueRows(&q, batch, now)
	}
	q.WriteString(` ON CONFLICT DO NOTHING RETURNING ` + jobColumns)
	insert := q.String()
	if withEvents {
		insert = `WITH ins AS (` + insert + `), ` + s.announcing("ins", `?, ?, ?, ?, ?, ?, ?, ?`, "")
		args = append(args, eventArgs(first)[1:]...)
	}
	rows, err := ex.QueryContext(ctx, s.Q(insert), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	inserted := make(map[string]job.Job, len(batch))
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		inserted[j.ID] = j
	}
	return inserted, rows.Err()
}

// arrayRows writes the batch's rows as one array per column: the same
// statement text, and 10 parameters, whatever the batch's size. It returns
// the parameters.
func arrayRows(q *strings.Builder, batch []createReq, now time.Time) []any {
	n := len(batch)
	ids, kinds, projects := make([]string, n), make([]string, n), make([]string, n)
	payloads, hashes, backends := make([]string, n), make([]string, n), make([]string, n)
	keys, attempts := make([]*string, n), make([]int64, n)
	for i, nj := range batch {
		ids[i], kinds[i], projects[i] = nj.id, string(nj.Kind), nj.ProjectID
		payloads[i], hashes[i], backends[i] = string(nj.Payload), nj.RequestHash, string(nj.Backend)
		if nj.IdempotencyKey != "" {
			keys[i] = &batch[i].IdempotencyKey
		}
		attempts[i] = int64(nj.MaxAttempts)
	}
	q.WriteString(`SELECT id, kind, project_id, payload, key, hash, 'queued', backend, 1, 0, attempts, '', 0, 0, 'queued',
			'', '', ?, ?, 0, 0, 1
			FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::bigint[])
				WITH ORDINALITY AS b(id, kind, project_id, payload, key, hash, backend, attempts, ord)
			ORDER BY ord`)
	return []any{micros(now), micros(now), ids, kinds, projects, payloads, keys, hashes, backends, attempts}
}

// valueRows writes the batch's rows as a VALUES list and returns its
// parameters, ten a row.
func valueRows(q *strings.Builder, batch []createReq, now time.Time) []any {
	q.WriteString(`VALUES `)
	args := make([]any, 0, 10*len(batch))
	for i, nj := range batch {
		var key any
		if nj.IdempotencyKey != "" {
			key = nj.IdempotencyKey
		}
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString(`(?, ?, ?, ?, ?, ?, 'queued', ?, 1, 0, ?, '', 0, 0, 'queued', '', '', ?, ?, 0, 0, 1)`)
		args = append(args, nj.id, nj.Kind, nj.ProjectID, string(nj.Payload), key, nj.RequestHash, nj.Backend,
			nj.MaxAttempts, micros(now), micros(now))
	}
	return args
}

// answerInserted answers the requests whose job was inserted, and returns
// those jobs' first events.
func answerInserted(batch []createReq, inserted map[string]job.Job, first job.Event, results []createRes) []job.Event {
	var evs []job.Event
	for i, r := range batch {
		j, ok := inserted[r.id]
		if !ok {
			continue
		}
		results[i] = createRes{j: j, created: true}
		e := first
		e.JobID = j.ID
		evs = append(evs, e)
	}
	return evs
}

// answerConflicts answers the requests whose job was not inserted: its id was
// committed by an earlier try of the batch, or its idempotency key is taken.
func (s *SQL) answerConflicts(ctx context.Context, ex execer, batch []createReq, inserted map[string]job.Job, results []createRes) error {
	var others []createReq
	for _, r := range batch {
		if _, ok := inserted[r.id]; !ok {
			others = append(others, r)
		}
	}
	if len(others) == 0 {
		return nil
	}
	// What conflicted is committed (PostgreSQL waits for an insert in
	// flight), so reading it after the statement finds it.
	byID, byKey, err := s.existingJobs(ctx, ex, others)
	if err != nil {
		return err // retried request by request; the ids make that safe
	}
	for i, r := range batch {
		if _, ok := inserted[r.id]; ok {
			continue
		}
		if j, ok := byID[r.id]; ok { // an earlier try of this batch committed it
			results[i] = createRes{j: j, created: true}
			continue
		}
		j, ok := byKey[r.IdempotencyKey]
		if !ok {
			return fmt.Errorf("job of idempotency key %q neither inserted nor found", r.IdempotencyKey)
		}
		j, created, err := s.sameRequest(j, r.NewJob)
		results[i] = createRes{j, created, err}
	}
	return nil
}

// existingJobs reads the jobs of the requests' ids and idempotency keys.
func (s *SQL) existingJobs(ctx context.Context, ex execer, reqs []createReq) (byID, byKey map[string]job.Job, err error) {
	var ids, keys []any
	for _, r := range reqs {
		ids = append(ids, r.id)
		if r.IdempotencyKey != "" {
			keys = append(keys, r.IdempotencyKey)
		}
	}
	q := `SELECT ` + jobColumns + ` FROM jobs WHERE id IN (?` + strings.Repeat(", ?", len(ids)-1) + `)`
	if len(keys) > 0 {
		q += ` OR idempotency_key IN (?` + strings.Repeat(", ?", len(keys)-1) + `)`
	}
	rows, err := ex.QueryContext(ctx, s.Q(q), append(ids, keys...)...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	byID, byKey = map[string]job.Job{}, map[string]job.Job{}
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, nil, err
		}
		byID[j.ID] = j
		if j.IdempotencyKey != "" {
			byKey[j.IdempotencyKey] = j
		}
	}
	return byID, byKey, rows.Err()
}
