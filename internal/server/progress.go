package server

import (
	"net/http"
	"strings"

	"github.com/scriptgen/scriptgen/internal/progress"
	"github.com/scriptgen/scriptgen/internal/store/postgres"
	"github.com/scriptgen/scriptgen/internal/web"
)

// progressRoutes wires live progress (SSE) and the web UI; it may append to
// s.components what must run beside the server.
func (s *Server) progressRoutes() ([]func(*http.ServeMux), error) {
	broker := progress.NewBroker(s.store, progress.BrokerConfig{}, s.log)
	s.components = append(s.components, broker)
	if u := s.cfg.DatabaseURL; strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://") {
		// The store opened with this URL already, so it is well formed.
		u, _, _ = postgres.PoolSize(u)
		s.components = append(s.components, progress.NewListener(u, postgres.EventChannel, broker, s.log))
	}
	// Open streams end when shutdown begins, so that Shutdown does not wait
	// for them; clients resume from their last event id.
	s.http.RegisterOnShutdown(broker.Close)
	stream := progress.NewStream(broker, s.store, progress.StreamConfig{}, s.log)
	return []func(*http.ServeMux){stream.Route, web.Routes}, nil
}
