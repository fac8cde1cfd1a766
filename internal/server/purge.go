package server

import (
	"context"
	"time"

	"github.com/scriptgen/scriptgen/internal/store"
)

// A retention pass deletes batches for at most purgeBudget, pausing
// purgePause between them, so that the writer — SQLite has one — keeps
// taking submissions while a backlog of millions of jobs drains over many
// passes.
const (
	purgeBudget = 2 * time.Second
	purgePause  = 20 * time.Millisecond
)

// purger deletes the jobs that finished more than retention ago (JOB_RETENTION),
// batch by batch. It runs as a pass of the reconciler on every replica; two
// replicas purging at once delete disjoint or already-deleted rows.
type purger struct {
	store interface {
		PurgeFinished(ctx context.Context, cutoff time.Time, limit int, from store.PurgeCursor) (int, error)
	}
	retention time.Duration
	batch     int
	now       func() time.Time
	logf      func(msg string, args ...any)
}

// pass purges until nothing older is left or its time budget is spent.
func (p *purger) pass(ctx context.Context) error {
	start := p.now()
	cutoff := start.Add(-p.retention)
	total := 0
	from := store.PurgeCursor{}
	defer func() {
		if total > 0 {
			p.logf("Purged finished jobs", "jobs", total, "older_than", p.retention.String(), "took", p.now().Sub(start).Round(time.Millisecond).String())
		}
	}()
	for {
		n, err := p.store.PurgeFinished(ctx, cutoff, p.batch, from)
		total += n
		if err != nil || n < p.batch || p.now().Sub(start) >= purgeBudget {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(purgePause):
		}
	}
}
