package store

import (
	"context"
	"sync"
	"time"
)

// A group commit: callers hand in a request and wait; a committer takes every
// request waiting at that moment and commits them in one transaction, so that
// many concurrent callers pay for one commit (and, with multi-row statements,
// a few round trips) instead of one each. Every caller is still answered only
// after its own writes are committed or have failed.
//
// Submissions, claims and completions each have a group. On PostgreSQL each
// group has committers of its own, so that their transactions overlap. SQLite
// has one writer: there one committer serves every group and puts whatever is
// waiting in all of them into one transaction, which writes each hot page of
// the log once per round instead of once per kind of request.

type groupReq[Q, A any] struct {
	q   Q
	res chan A
}

type group[Q, A any] struct {
	// apply runs a batch's statements in ex — a transaction, or the pool for a
	// group whose statements stand alone (autocommit) — and fills its answers.
	apply func(ctx context.Context, ex execer, qs []Q, as []A) error
	// failed is the answer of a request whose transaction failed with err.
	failed     func(err error) A
	max        int
	autocommit bool

	mu    sync.Mutex
	queue []groupReq[Q, A]
	wake  chan struct{}
}

// do hands q to g's committers and waits for its answer. The wait does not end
// with the caller's context: a request, once taken, commits or fails with its
// batch, and its caller must learn which.
func (g *group[Q, A]) do(s *SQL, q Q) (A, error) {
	var zero A
	s.startCommitters()
	r := groupReq[Q, A]{q: q, res: make(chan A, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, r)
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default: // a committer is already due to look
	}
	select {
	case a := <-r.res:
		return a, nil
	case <-s.closing:
		// A committer answers what it took before it stops.
		<-s.stopped
		select {
		case a := <-r.res:
			return a, nil
		default:
			return zero, ErrClosed
		}
	}
}

// take removes up to max waiting requests as a batch, or returns nil.
func (g *group[Q, A]) take() batch {
	g.mu.Lock()
	n := min(len(g.queue), g.max)
	if n == 0 {
		g.mu.Unlock()
		return nil
	}
	reqs := make([]groupReq[Q, A], n)
	copy(reqs, g.queue)
	g.queue = append(g.queue[:0], g.queue[n:]...)
	g.mu.Unlock()
	b := &groupBatch[Q, A]{g: g, reqs: reqs, qs: make([]Q, n), as: make([]A, n)}
	for i, r := range reqs {
		b.qs[i] = r.q
	}
	return b
}

type batch interface {
	apply(ctx context.Context, ex execer) error
	retry(ctx context.Context, s *SQL)
	answer()
	standalone() bool
}

type groupBatch[Q, A any] struct {
	g    *group[Q, A]
	reqs []groupReq[Q, A]
	qs   []Q
	as   []A
}

func (b *groupBatch[Q, A]) apply(ctx context.Context, ex execer) error {
	clear(b.as)
	return b.g.apply(ctx, ex, b.qs, b.as)
}

// retry commits each request of the batch as a batch of one, in a
// transaction of its own.
func (b *groupBatch[Q, A]) retry(ctx context.Context, s *SQL) {
	for i, q := range b.qs {
		a := make([]A, 1)
		if err := s.inTx(ctx, func(tx *Tx) error { return b.g.apply(ctx, tx, []Q{q}, a) }); err != nil {
			a[0] = b.g.failed(err)
		}
		b.as[i] = a[0]
	}
}

func (b *groupBatch[Q, A]) answer() {
	for i, r := range b.reqs {
		r.res <- b.as[i]
	}
}

func (b *groupBatch[Q, A]) standalone() bool { return b.g.autocommit }

type source interface {
	take() batch
	setWake(chan struct{})
}

// committer commits what its sources hold whenever it is woken.
func (s *SQL) committer(wake <-chan struct{}, sources []source) {
	defer s.batchers.Done()
	for {
		select {
		case <-wake:
		case <-s.closing:
			return
		}
		for {
			var bs []batch
			for _, src := range sources {
				if b := src.take(); b != nil {
					bs = append(bs, b)
				}
			}
			if len(bs) == 0 {
				break
			}
			s.commitRound(bs)
		}
	}
}

// commitRound commits batches in one transaction (a lone autocommit batch in
// none). If that fails — a key committed meanwhile by another replica, a
// deadlock, a busy database — every request is retried in a transaction of
// its own, so one request's failure is never another's.
func (s *SQL) commitRound(bs []batch) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	if len(bs) == 1 && bs[0].standalone() {
		err = bs[0].apply(ctx, s.W)
	} else {
		err = s.inTx(ctx, func(tx *Tx) error {
			for _, b := range bs {
				if err := b.apply(ctx, tx); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		// The retries get time of their own, whatever the round used up.
		retryCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, b := range bs {
			b.retry(retryCtx, s)
		}
	}
	for _, b := range bs {
		b.answer()
	}
}

// startCommitters starts the committers on first use.
func (s *SQL) startCommitters() {
	s.groupsOnce.Do(func() {
		s.initGroups()
		start := func(sources ...source) {
			wake := make(chan struct{}, 1)
			for _, src := range sources {
				src.setWake(wake)
			}
			s.batchers.Add(1)
			go s.committer(wake, sources)
		}
		if s.rb.d.SingleWriter {
			start(&s.creates, &s.picks, &s.claims, &s.completes, &s.checkpoints)
			return
		}
		// One committer per group, so that the groups' transactions overlap:
		// a group's next batch grows while its statement runs, and fewer,
		// larger statements cost the database less than several at once (A/B
		// pairs: submission p99 31–32 ms with one committer, 42–48 with four;
		// the durable path 4–23 % more jobs/s with one claim committer than
		// with two). Two completion batches of one project would only queue
		// on its episode counter.
		for _, g := range []source{&s.creates, &s.picks, &s.claims, &s.completes, &s.checkpoints} {
			start(g)
		}
	})
}

func (g *group[Q, A]) setWake(w chan struct{}) { g.wake = w }
