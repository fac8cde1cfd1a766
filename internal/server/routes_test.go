package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scriptgen/scriptgen/internal/config"
	"github.com/scriptgen/scriptgen/internal/testenv/contract"
)

// TestNewServesEverySurface: the server New builds answers on each surface
// of api's route table (writer API, live progress, admin API behind the
// token, pages, metrics), and its requests are timed under their route.
func TestNewServesEverySurface(t *testing.T) {
	env := map[string]string{
		"DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "s.db"),
		"ADMIN_TOKEN":  "tok-0123456789abcdef",
		"GENERATOR":    "noop",
	}
	cfg, err := config.Parse("serve", nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.store.Close() })
	srv := httptest.NewServer(contract.Handler(t, s.http.Handler))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		method, path, token string
		status              int
		contains            string
	}{
		{"GET", "/health", "", 200, `"status":"ok"`},
		{"GET", "/api/generation", "", 200, `"items":[]`},
		{"GET", "/api/generation/no-such-job/events", "", 404, `"not_found"`},
		{"GET", "/api/projects/p1/documents", "", 200, `"items":[]`},
		{"GET", "/api/admin/worker-system", "", 401, `"unauthorized"`},
		{"GET", "/api/admin/worker-system", "tok-0123456789abcdef", 200, `"type":"background_tasks"`},
		{"GET", "/api/admin/rollbacks", "tok-0123456789abcdef", 200, `"items":[]`},
		{"POST", "/api/admin/graceful-restart", "tok-0123456789abcdef", 409, "restarter"},
		{"GET", "/operator", "", 200, "Admin token"},
		{"GET", "/debug/pprof/", "", 401, `"unauthorized"`},
		{"GET", "/nothing/here", "", 404, `"no such endpoint: GET /nothing/here"`},
		{"GET", "/metrics", "", 200, `route="/api/generation"`},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		if tc.path == "/nothing/here" {
			contract.OffSpec(req) // a route that does not exist
		}
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.status || !strings.Contains(string(b), tc.contains) || res.Header.Get("X-Request-Id") == "" {
			t.Errorf("%s %s: %d (X-Request-Id %q) %.300s; want %d containing %s", tc.method, tc.path, res.StatusCode,
				res.Header.Get("X-Request-Id"), b, tc.status, tc.contains)
		}
		if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") && !json.Valid(b) {
			t.Errorf("%s %s: invalid JSON %q", tc.method, tc.path, b)
		}
	}
}
