package server

import (
	"context"
	"time"

	"github.com/scriptgen/scriptgen/internal/metrics"
)

// HistoryFigures reads what a point of the operator page's charts records
// (metrics.HistorySource): the durable queue's depth, the oldest queued
// durable job's age and every live process's finished-run counts, which are
// the cluster's, and this process's running background_tasks jobs.
func (s *Server) HistoryFigures(ctx context.Context) metrics.HistoryFigures {
	f := metrics.HistoryFigures{BackgroundActive: s.exec.Active()}
	// Workers and replicas alike, one query.
	if runs, err := s.store.FinishedRuns(ctx, time.Now().Add(-historyRunsSeenFor)); err == nil {
		f.Runs = runs
	} else {
		s.log.Warn("Could not read the processes' finished runs for the history", "err", err)
	}
	if s.insp != nil {
		if qs, err := s.insp.Stats(ctx); err == nil {
			f.QueueDepth = &qs.Depth
		} else {
			s.log.Debug("Could not read the durable queues for the history", "err", err)
		}
	}
	if d, err := s.QueueDelay(ctx); err == nil {
		f.QueueDelay = &d
	} else {
		s.log.Warn("Could not read the queue delay for the history", "err", err)
	}
	return f
}

// historyRunsSeenFor is how long after its last heartbeat a process's
// finished-run counts are still read for the history's jobs/s. A silent or
// stopped process's counts do not change, so it adds nothing however long it
// is read; the window is wide so that a process late with a few beats is not
// taken for a new one (which would lose its runs of that interval), and
// bounded so that the read stays small.
const historyRunsSeenFor = time.Minute

// History answers GET /api/admin/history: this replica's last hour of
// points.
func (s *Server) History() metrics.HistoryView {
	if s.history == nil {
		return metrics.HistoryView{Points: []metrics.HistoryPoint{}}
	}
	return s.history.View()
}
