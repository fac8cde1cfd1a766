package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/testenv/contract"
)

// fakeService answers what status reads, in the shapes of api/openapi.yaml
// (the contract checker holds its answers to them); its admin token is
// "right". A degraded one says so in its health, with 503.
func fakeService(t *testing.T, degraded bool) string {
	const ws = `"worker_system": {"enabled": false, "type": "background_tasks", "rollout_percent": 0, "reason": "",
		"kill_switch": false, "redis": "unconfigured", "workers_up": 0, "workers_crashed": 0}`
	answer := func(w http.ResponseWriter, status int, body string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		if degraded {
			w.Header().Set("Retry-After", "5")
			answer(w, 503, `{"status": "degraded", "reasons": ["database unreachable"], "auth": "open", "version": "test", `+ws+`}`)
			return
		}
		answer(w, 200, `{"status": "ok", "reasons": [], "auth": "open", "version": "test", `+ws+`}`)
	})
	mux.HandleFunc("GET /api/admin/", func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Authorization") {
		case "Bearer right":
			if r.URL.Path == "/api/admin/rollbacks" {
				answer(w, 200, `{"items": [], "next_cursor": ""}`)
				return
			}
			answer(w, 200, `{`+ws+`, "background_tasks": {"active": 0, "queued": 0, "max": 4},
				"memory": {"rss_bytes": 1048576, "heap_bytes": 524288, "host_percent": 1, "goroutines": 9},
				"durable": {"redis": "unconfigured", "workers_up": 0, "workers_crashed": 0},
				"average_response_time": 0.001, "p99_response_time": 0.002, "triggers": null}`)
		case "":
			w.Header().Set("WWW-Authenticate", `Bearer realm="scriptgen"`)
			answer(w, 401, `{"error": {"code": "unauthorized", "message": "missing Authorization: Bearer <admin token>"}}`)
		default:
			answer(w, 403, `{"error": {"code": "forbidden", "message": "not the admin token"}}`)
		}
	})
	srv := httptest.NewServer(contract.Handler(t, mux))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestStatusExitCode(t *testing.T) {
	cleanEnv(t)
	base, degraded := fakeService(t, false), fakeService(t, true)
	tests := []struct {
		name      string
		args      []string
		code      int
		out, errs string
	}{
		{"healthy", []string{"status", "--url", base, "--admin-token", "right"}, 0, "Service:          ok (version test)", ""},
		{"no token: no admin figures, on purpose", []string{"status", "--url", base}, 0, "unavailable (HTTP 401 unauthorized", ""},
		{"wrong token", []string{"status", "--url", base, "--admin-token", "wrong"}, 1, "unavailable (HTTP 403", "admin stats unavailable: HTTP 403"},
		{"unreachable", []string{"status", "--url", "http://127.0.0.1:1"}, 1, "❌ unreachable", "service unreachable"},
		{"degraded", []string{"status", "--url", degraded, "--admin-token", "right"}, 1, "Service:          degraded (version test)", "degraded"},
		{"not a URL", []string{"status", "--url", "notaurl"}, 2, "", `--url "notaurl": want http://`},
		{"empty URL", []string{"status", "--url", ""}, 2, "", `--url "": want http://`},
		{"not HTTP", []string{"status", "--url", "ftp://x"}, 2, "", `--url "ftp://x": want http://`},
		{"no host", []string{"status", "--url", "http://"}, 2, "", `--url "http://": want http://`},
		{"verify, not a URL", []string{"verify", "--url", "notaurl"}, 2, "", `--url "notaurl": want http://`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := run(tt.args...)
			if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errs, tt.errs) {
				t.Fatalf("%q exited %d, want %d\nstdout:\n%s\nstderr:\n%s", tt.args, code, tt.code, out, errs)
			}
		})
	}
}

func TestStatusWatchRefusesATinyInterval(t *testing.T) {
	cleanEnv(t)
	base := fakeService(t, false)
	for _, tt := range []struct {
		interval string
		code     int
	}{{"0", 2}, {"-1s", 2}, {"1ns", 2}, {"99ms", 2}, {"100ms", 0}} {
		// Without the check the watch would loop until this deadline, then
		// end without an error.
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		err := statusCmd(ctx, find("status"), []string{"--url", base, "--watch", "--interval", tt.interval}, io.Discard, io.Discard)
		cancel()
		code := 0
		if err != nil {
			code = exitCode(err)
		}
		if code != tt.code || (code == 2 && !strings.Contains(err.Error(), "must be at least 100ms")) {
			t.Fatalf("--interval %s: exit %d (%v), want %d", tt.interval, code, err, tt.code)
		}
	}
}
