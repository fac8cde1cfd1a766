package server

import (
	"context"

	"github.com/scriptgen/scriptgen/internal/metrics"
)

// HistoryFigures reads what a point of the operator page's charts records
// (metrics.HistorySource): the durable queue's depth and the oldest queued
// durable job's age, which are the cluster's, and this process's running
// background_tasks jobs.
func (s *Server) HistoryFigures(ctx context.Context) metrics.HistoryFigures {
	f := metrics.HistoryFigures{BackgroundActive: s.exec.Active()}
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

// History answers GET /api/admin/history: this replica's last hour of
// points.
func (s *Server) History() metrics.HistoryView {
	if s.history == nil {
		return metrics.HistoryView{Points: []metrics.HistoryPoint{}}
	}
	return s.history.View()
}
