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
)

// fakeService answers what status reads; its admin token is "right". Its
// health says degraded, with 503, under /degraded/.
func fakeService(t *testing.T) string {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"status": "ok", "version": "test"}`)
	})
	mux.HandleFunc("GET /degraded/health", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"status": "degraded", "version": "test"}`)
	})
	mux.Handle("GET /degraded/api/", http.StripPrefix("/degraded", mux))
	mux.HandleFunc("GET /api/admin/", func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Authorization") {
		case "Bearer right":
			fmt.Fprint(w, `{}`)
		case "":
			w.WriteHeader(http.StatusUnauthorized)
		default:
			w.WriteHeader(http.StatusForbidden)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestStatusExitCode(t *testing.T) {
	cleanEnv(t)
	base := fakeService(t)
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
		{"degraded", []string{"status", "--url", base + "/degraded", "--admin-token", "right"}, 1, "Service:          degraded (version test)", "degraded"},
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
	base := fakeService(t)
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
