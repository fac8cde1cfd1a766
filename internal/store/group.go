package store

import (
	"context"
	"sync"
)

// A group commit: callers hand in a request and wait; a committer takes every
// request waiting at that moment and commits them in one transaction, so that
// many concurrent callers pay for one commit (and, with multi-row statements,
// a few round trips) instead of one each. Every caller is still answered only
// after its own writes are committed or have failed.
//
// Submissions, dispatch claims and completions each have a group.

type groupReq[Q, A any] struct {
	q   Q
	res chan A
}

type group[Q, A any] struct {
	once sync.Once
	reqs chan groupReq[Q, A]
}

// do runs q through g's committers, starting them on first use. commit must
// answer every request of a batch, in order; committers is how many batches may
// commit at once, max how large one may grow.
func (g *group[Q, A]) do(ctx context.Context, s *SQL, q Q, committers, max int, commit func([]Q) []A) (A, error) {
	g.once.Do(func() {
		g.reqs = make(chan groupReq[Q, A])
		for range committers {
			s.batchers.Add(1)
			go g.run(s, max, commit)
		}
	})
	r := groupReq[Q, A]{q: q, res: make(chan A, 1)}
	var zero A
	select {
	case g.reqs <- r:
	case <-s.closing:
		return zero, ErrClosed
	case <-ctx.Done():
		return zero, ctx.Err()
	}
	return <-r.res, nil
}

func (g *group[Q, A]) run(s *SQL, max int, commit func([]Q) []A) {
	defer s.batchers.Done()
	for {
		var first groupReq[Q, A]
		select {
		case first = <-g.reqs:
		case <-s.closing:
			return
		}
		batch := []groupReq[Q, A]{first}
	drain:
		for len(batch) < max {
			select {
			case r := <-g.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		qs := make([]Q, len(batch))
		for i, r := range batch {
			qs[i] = r.q
		}
		for i, a := range commit(qs) {
			batch[i].res <- a
		}
	}
}
