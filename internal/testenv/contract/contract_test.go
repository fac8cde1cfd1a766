package contract_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/scriptgen/scriptgen/internal/testenv/contract"
)

// collector keeps what a checker reports, for a test of the checker.
type collector struct {
	mu   sync.Mutex
	errs []string
}

func (c *collector) Helper() {}
func (c *collector) Errorf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

func (c *collector) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.errs
	c.errs = nil
	return out
}

const (
	goodError = `{"error":{"code":"not_found","message":"no such job"}}`
	goodEvent = `{"seq":1,"type":"progress","status":"running","progress":10,"stage":"outline","message":"","data":null,"created_at":"2026-12-06T23:00:00Z"}`
)

// fake answers as the test's table says, the real server's shapes or not.
func fake(status int, contentType, body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		for _, part := range strings.SplitAfter(body, "\n\n") {
			io.WriteString(w, part)
			http.NewResponseController(w).Flush()
		}
	})
}

// TestCheckerHasTeeth: through the middleware and through the transport, an
// undocumented route, status, field, event name or event field is reported
// with its method and path; documented answers, and the error answer to a
// request marked off-spec, are not.
func TestCheckerHasTeeth(t *testing.T) {
	sse := "text/event-stream"
	cases := []struct {
		name            string
		method, path    string
		offSpec         bool
		status          int
		contentType     string
		body            string
		wantReport      bool
		wantReportMatch string
	}{
		{"a documented error", "GET", "/api/generation/j1", false, 404, "application/json", goodError, false, ""},
		{"an undocumented field", "GET", "/api/generation/j1", false, 404, "application/json",
			`{"error":{"code":"not_found","message":"x","extra":1}}`, true, "GET /api/generation/j1 (404)"},
		{"an undocumented status", "GET", "/api/generation/j1", false, 418, "application/json", goodError, true, "(418)"},
		{"an undocumented route", "GET", "/api/nothing", false, 404, "application/json", goodError, true, "/api/nothing"},
		{"an undocumented query parameter", "GET", "/api/generation/j1?verbose=1", false, 404, "application/json", goodError, true, "verbose"},
		{"an off-spec request's error", "PATCH", "/api/generation", true, 405, "application/json", goodError, false, ""},
		{"an off-spec request's odd status", "PATCH", "/api/generation", true, 418, "application/json", goodError, true, "418"},
		{"an off-spec request's odd body", "GET", "/api/nothing", true, 404, "application/json", `{"oops":1}`, true, "/api/nothing"},
		{"a documented stream", "GET", "/api/generation/j1/events", false, 200, sse,
			"retry: 1000\n\n: ping\n\nid: 1\nevent: progress\ndata: " + goodEvent + "\n\n", false, ""},
		{"an undocumented event", "GET", "/api/generation/j1/events", false, 200, sse,
			"id: 1\nevent: error\ndata: " + goodEvent + "\n\n", true, `event "error" is not in`},
		{"an unnamed event", "GET", "/api/generation/j1/events", false, 200, sse,
			"id: 1\ndata: " + goodEvent + "\n\n", true, `event "message" is not in`},
		{"an event with a field more", "GET", "/api/generation/j1/events", false, 200, sse,
			"id: 1\nevent: progress\ndata: " + strings.Replace(goodEvent, `"seq":1`, `"seq":1,"x":2`, 1) + "\n\n", true, "event progress (id 1)"},
	}
	for _, via := range []string{"handler", "transport"} {
		for _, tc := range cases {
			t.Run(via+"/"+tc.name, func(t *testing.T) {
				rep := &collector{}
				c := contract.NewReporting(rep)
				h := fake(tc.status, tc.contentType, tc.body)
				client := http.DefaultClient
				if via == "handler" {
					h = c.Handler(h)
				} else {
					client = &http.Client{Transport: c.Transport(nil)}
				}
				srv := httptest.NewServer(h)
				defer srv.Close()
				req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
				if tc.offSpec {
					contract.OffSpec(req)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.ReadAll(resp.Body)
				resp.Body.Close()
				srv.Close() // the handler's check has run
				got := rep.take()
				if tc.wantReport != (len(got) > 0) {
					t.Fatalf("reported %q, want a report: %v", got, tc.wantReport)
				}
				if tc.wantReport && !strings.Contains(strings.Join(got, "\n"), tc.wantReportMatch) {
					t.Errorf("report %q does not name %q", got, tc.wantReportMatch)
				}
			})
		}
	}
}
