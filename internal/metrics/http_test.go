package metrics

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMiddlewareLabelsRoutePatterns(t *testing.T) {
	m, reg := newTestMetrics(t, Snapshot{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/generation/{id}", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("POST /api/generation", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.(http.Flusher).Flush()
	})
	srv := httptest.NewServer(m.Middleware(mux))
	defer srv.Close()

	for i := range 3 {
		get(t, srv.URL+fmt.Sprintf("/api/generation/job-%d", i))
	}
	resp, err := http.Post(srv.URL+"/api/generation", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	get(t, srv.URL+"/no/such/path/12345")
	get(t, srv.URL+"/events")

	body := scrape(t, reg)
	for _, line := range []string{
		`scriptgen_http_request_duration_seconds_count{code="200",method="GET",route="/api/generation/{id}"} 3`,
		`scriptgen_http_request_duration_seconds_count{code="202",method="POST",route="/api/generation"} 1`,
		`scriptgen_http_request_duration_seconds_count{code="404",method="GET",route="other"} 1`,
	} {
		if !strings.Contains(body, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	for _, raw := range []string{"job-0", "12345", `route="/events"`} {
		if strings.Contains(body, raw) {
			t.Errorf("/metrics has %q: raw paths or event streams leaked into the labels", raw)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "scriptgen_http_request_duration_seconds"); err != nil || n != 3 {
		t.Errorf("request series = %d, %v; want 3", n, err)
	}
	if m.window.count() != 5 {
		t.Errorf("window holds %d requests, want 5 (the stream left out)", m.window.count())
	}
}

func get(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func TestRoute(t *testing.T) {
	tests := map[string]string{
		"":                                "other",
		"GET /api/generation/{id}":        "/api/generation/{id}",
		"/api/":                           "/api/",
		"POST  /api/admin/rollback":       "/api/admin/rollback",
		"example.com/api/generation/{id}": "example.com/api/generation/{id}",
	}
	for pattern, want := range tests {
		if got := route(pattern); got != want {
			t.Errorf("route(%q) = %q, want %q", pattern, got, want)
		}
	}
}

func TestResponseTimes(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name     string
		samples  []time.Duration
		avg, p99 time.Duration
	}{
		{"empty", nil, 0, 0},
		{"one", []time.Duration{50 * ms}, 50 * ms, 50 * ms},
		{"hundred", durations(100, func(i int) time.Duration { return time.Duration(i+1) * ms }), 50500 * time.Microsecond, 99 * ms},
		{"one slow in 200", append(durations(199, func(int) time.Duration { return 10 * ms }), 2010*ms), 20 * ms, 10 * ms},
		{"two slow in 200", append(durations(198, func(int) time.Duration { return 10 * ms }), 5*time.Second, 5*time.Second), 59900 * time.Microsecond, 10 * ms},
		{"three slow in 200", append(durations(197, func(int) time.Duration { return 10 * ms }), 5*time.Second, 5*time.Second, 5*time.Second), 84850 * time.Microsecond, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1_700_000_000, 0)
			w := newWindow(1000, 5*time.Minute, func() time.Time { return now })
			for _, d := range tt.samples {
				w.add(d)
			}
			avg, p99 := w.stats()
			if avg != tt.avg || p99 != tt.p99 {
				t.Errorf("stats = %v, %v; want %v, %v", avg, p99, tt.avg, tt.p99)
			}
		})
	}
}

func TestWindowForgets(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	w := newWindow(3, time.Minute, func() time.Time { return now })
	w.add(time.Hour) // pushed out by size below
	for _, d := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second} {
		w.add(d)
	}
	if avg, p99 := w.stats(); avg != 2*time.Second || p99 != 3*time.Second {
		t.Errorf("after wrap: %v, %v; want 2s, 3s", avg, p99)
	}
	now = now.Add(30 * time.Second)
	w.add(5 * time.Second)
	if avg, _ := w.stats(); avg != (2+3+5)*time.Second/3 {
		t.Errorf("after another: avg %v, want 3.333s", avg)
	}
	now = now.Add(45 * time.Second) // the first three are older than a minute
	if avg, p99 := w.stats(); avg != 5*time.Second || p99 != 5*time.Second {
		t.Errorf("after aging: %v, %v; want 5s, 5s", avg, p99)
	}
	now = now.Add(time.Hour)
	if avg, p99 := w.stats(); avg != 0 || p99 != 0 {
		t.Errorf("all aged out: %v, %v; want 0, 0", avg, p99)
	}
}

func durations(n int, f func(int) time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

// count is how many samples the ring holds, aged or not.
func (w *window) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.full {
		return len(w.ring)
	}
	return w.next
}
