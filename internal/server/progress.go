package server

import "net/http"

// progressRoutes wires live progress (SSE) and the web UI; it may append to
// s.components what must run beside the server.
func (s *Server) progressRoutes() ([]func(*http.ServeMux), error) {
	return nil, nil
}
