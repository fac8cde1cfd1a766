package store

import (
	"context"
	"errors"
	"time"

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
	r, err := s.creates.do(ctx, s, nj, s.rb.d.Committers, maxCreateBatch, s.commitCreates)
	if err != nil {
		return job.Job{}, false, err
	}
	return r.j, r.created, r.err
}

// commitCreates commits a batch in one transaction. If the transaction fails
// (a key committed meanwhile by another replica, a busy database), every
// request is retried in a transaction of its own, so one request's failure is
// never another's.
func (s *SQL) commitCreates(batch []NewJob) []createRes {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	results := make([]createRes, len(batch))
	err := s.inTx(ctx, func(tx *Tx) error {
		for i, nj := range batch {
			j, created, err := s.createInTx(ctx, tx, nj)
			if err != nil && !errors.Is(err, job.ErrIdempotencyMismatch) {
				return err
			}
			results[i] = createRes{j, created, err}
		}
		return nil
	})
	if err != nil {
		for i, nj := range batch {
			j, created, err := s.createOne(ctx, nj)
			results[i] = createRes{j, created, err}
		}
	}
	return results
}
