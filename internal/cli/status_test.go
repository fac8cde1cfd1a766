package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/config"
	"github.com/scriptgen/scriptgen/internal/server"
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
		{"no token: no admin figures, on purpose", []string{"status", "--url", base}, 0, "unavailable (HTTP 401; set ADMIN_TOKEN)", ""},
		{"wrong token", []string{"status", "--url", base, "--admin-token", "wrong"}, 1, "unavailable (HTTP 403; the admin token was refused", "admin stats unavailable: HTTP 403"},
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

// TestStatusSaysTheTokenWasRefused: against a real serve, a wrong token is
// "refused", not "set ADMIN_TOKEN" (which was set); no token is "set
// ADMIN_TOKEN"; a server without one says so.
func TestStatusSaysTheTokenWasRefused(t *testing.T) {
	cleanEnv(t)
	serve := func(token string) string { return startServe(t, token) }
	withToken, without := serve("the-right-admin-token-1234"), serve("")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"wrong token", []string{"--url", withToken, "--admin-token", "a-wrong-admin-token-12345"}, "the admin token was refused"},
		{"no token", []string{"--url", withToken}, "set ADMIN_TOKEN"},
		{"server without a token", []string{"--url", without, "--admin-token", "a-wrong-admin-token-12345"}, "the server has no ADMIN_TOKEN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			statusCmd(t.Context(), find("status"), tt.args, &out, io.Discard)
			if !strings.Contains(out.String(), tt.want) || (tt.name == "wrong token" && strings.Contains(out.String(), "set ADMIN_TOKEN")) {
				t.Fatalf("status %v:\n%s\nwant %q", tt.args, out.String(), tt.want)
			}
		})
	}
}

// startServe runs a real serve on SQLite with the admin token given (none
// when empty) until the test ends, and returns its URL.
func startServe(t *testing.T, token string) string {
	args := []string{"--database-url", "sqlite:" + filepath.Join(t.TempDir(), "s.db"), "--listen-addr", "127.0.0.1:0"}
	if token != "" {
		args = append(args, "--admin-token", token)
	}
	cfg, err := config.Parse("serve", args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + ln.Addr().String()
}
