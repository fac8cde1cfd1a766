package api_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scriptgen/scriptgen/internal/api"
	"github.com/scriptgen/scriptgen/internal/metrics"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/testenv/contract"
)

// historyAdmin answers GET /api/admin/history from a real History.
type historyAdmin struct {
	brokenAdmin
	h *metrics.History
}

func (a historyAdmin) History() metrics.HistoryView { return a.h.View() }

// queueFigures answers fixed queue figures and a worker process's
// finished-run counts as the test sets them.
type queueFigures struct{ runs *store.RunCounts }

func (f queueFigures) HistoryFigures(context.Context) metrics.HistoryFigures {
	depth, delay := 4, 2*time.Second
	return metrics.HistoryFigures{QueueDepth: &depth, QueueDelay: &delay, BackgroundActive: 1,
		Runs: map[string]store.RunCounts{"worker-1": *f.runs}}
}

// GET /api/admin/history wants the admin token and answers the History's
// points, oldest first, in the contract's shape (the validator checks every
// answer): one with figures and one without a request or Redis.
func TestAdminHistory(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry(), nil)
	runs := store.RunCounts{"succeeded": 5}
	h := metrics.NewHistory(m, queueFigures{runs: &runs}, metrics.HistoryConfig{Interval: time.Second}, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(contract.Handler(t, m.Middleware(api.New(api.Config{
		System:     system{},
		AdminToken: testAdminToken,
		Admin:      historyAdmin{h: h},
		Log:        slog.New(slog.DiscardHandler),
	}))))
	t.Cleanup(srv.Close)
	get := func(token string) (int, metrics.HistoryView) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+"/api/admin/history", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var v metrics.HistoryView
		json.NewDecoder(res.Body).Decode(&v)
		return res.StatusCode, v
	}
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Fatalf("without a token: %d, want 401", code)
	}
	if code, _ := get("not-the-admin-token-012"); code != http.StatusUnauthorized && code != http.StatusForbidden {
		t.Fatalf("with a wrong token: %d, want 401 or 403", code)
	}
	code, v := get(testAdminToken)
	if code != 200 || len(v.Points) != 0 || v.Capacity != metrics.HistoryPoints || v.IntervalSeconds != 1 {
		t.Fatalf("before a sample: %d %+v, want 200, no points, capacity %d, interval 1", code, v, metrics.HistoryPoints)
	}

	h.Sample(context.Background()) // the worker's baseline
	runs = store.RunCounts{"succeeded": 6}
	get(testAdminToken)
	h.Sample(context.Background()) // after a request: a p99
	h.Sample(context.Background())
	code, v = get(testAdminToken)
	if code != 200 || len(v.Points) != 3 {
		t.Fatalf("after three samples: %d, %d points", code, len(v.Points))
	}
	p := v.Points[1]
	if p.QueueDepth == nil || *p.QueueDepth != 4 || p.QueueDelaySeconds == nil || *p.QueueDelaySeconds != 2 ||
		p.BackgroundTasksActive != 1 || p.JobsPerSecond.Succeeded <= 0 || p.P99ResponseSeconds == nil || p.At.IsZero() {
		t.Fatalf("first point %+v: want depth 4, delay 2, active 1, a success rate, a p99 and a time", p)
	}
	if q := v.Points[2]; q.P99ResponseSeconds != nil || q.JobsPerSecond.Succeeded != 0 || !q.At.After(p.At) {
		t.Fatalf("second point %+v: want no p99 and no runs (none in its interval), after the first", q)
	}
}
