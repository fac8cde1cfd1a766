package store

import (
	"context"
	"errors"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
)

// Submissions are committed in groups: one goroutine takes every submission
// waiting at that moment and commits them in one transaction, so that fifty
// concurrent submitters pay for one commit instead of fifty. Each request is
// still answered only after its row is committed (invariant 1).

const maxCreateBatch = 256

type createReq struct {
	nj  NewJob
	res chan createRes
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
	s.batchOnce.Do(func() {
		s.creates = make(chan *createReq)
		for range s.rb.d.Committers {
			s.batchers.Add(1)
			go s.runCreates()
		}
	})
	req := &createReq{nj: nj, res: make(chan createRes, 1)}
	select {
	case s.creates <- req:
	case <-s.closing:
		return job.Job{}, false, ErrClosed
	case <-ctx.Done():
		return job.Job{}, false, ctx.Err()
	}
	r := <-req.res
	return r.j, r.created, r.err
}

func (s *SQL) runCreates() {
	defer s.batchers.Done()
	for {
		var first *createReq
		select {
		case first = <-s.creates:
		case <-s.closing:
			return
		}
		batch := []*createReq{first}
	drain:
		for len(batch) < maxCreateBatch {
			select {
			case r := <-s.creates:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		s.commitCreates(batch)
	}
}

// commitCreates commits a batch in one transaction. If the transaction fails
// (a key committed meanwhile by another replica, a busy database), every
// request is retried in a transaction of its own, so one request's failure is
// never another's.
func (s *SQL) commitCreates(batch []*createReq) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	results := make([]createRes, len(batch))
	err := s.inTx(ctx, func(tx *Tx) error {
		for i, r := range batch {
			j, created, err := s.createInTx(ctx, tx, r.nj)
			if err != nil && !errors.Is(err, job.ErrIdempotencyMismatch) {
				return err
			}
			results[i] = createRes{j, created, err}
		}
		return nil
	})
	if err != nil {
		for i, r := range batch {
			j, created, err := s.createOne(ctx, r.nj)
			results[i] = createRes{j, created, err}
		}
	}
	for i, r := range batch {
		r.res <- results[i]
	}
}
