package server

import (
	"net/http"
	"strings"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/progress"
	"github.com/scriptgen/scriptgen/internal/store/postgres"
	"github.com/scriptgen/scriptgen/internal/store/sqlite"
)

// newProgress builds live progress: the broker that follows jobs' events
// (woken by PostgreSQL's notifications when the store is PostgreSQL, by the
// store's own commits when it is SQLite) and the stream that serves them as
// Server-Sent Events. The broker and the listener join s.components; open
// streams end when srv's shutdown begins.
func (s *Server) newProgress(srv *http.Server) *progress.Stream {
	broker := progress.NewBroker(s.store, progress.BrokerConfig{}, s.log)
	s.components = append(s.components, broker)
	if u := s.cfg.DatabaseURL; strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://") {
		// The store opened with this URL already, so it is well formed.
		u, _, _ = postgres.PoolSize(u)
		s.components = append(s.components, progress.NewListener(u, postgres.EventChannel, broker, s.log))
	} else if h, ok := s.store.(interface{ OnEvents(func(evs ...job.Event)) }); ok && s.store.Driver() == sqlite.Dialect.Name {
		// SQLite has one writer, this process: every commit that appends
		// events wakes their jobs' readers here, so the broker's watcher
		// looks only at the floor interval (other processes' writes, such
		// as the CLI's, are seen then).
		h.OnEvents(broker.Publish)
		broker.SetLive(true)
	}
	// Open streams end when shutdown begins, so that Shutdown does not wait
	// for them; clients resume from their last event id.
	srv.RegisterOnShutdown(broker.Close)
	return progress.NewStream(broker, s.store, progress.StreamConfig{}, s.log)
}
