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
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/metrics"
	"github.com/scriptgen/scriptgen/internal/runner"
	"github.com/scriptgen/scriptgen/internal/testenv/contract"
)

// historyAdmin answers GET /api/admin/history from a real History.
type historyAdmin struct {
	brokenAdmin
	h *metrics.History
}

func (a historyAdmin) History() metrics.HistoryView { return a.h.View() }

type queueFigures struct{}

func (queueFigures) HistoryFigures(context.Context) metrics.HistoryFigures {
	depth, delay := 4, 2*time.Second
	return metrics.HistoryFigures{QueueDepth: &depth, QueueDelay: &delay, BackgroundActive: 1}
}

// GET /api/admin/history wants the admin token and answers the History's
// points, oldest first, in the contract's shape (the validator checks every
// answer): one with figures and one without a request or Redis.
func TestAdminHistory(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry(), nil)
	h := metrics.NewHistory(m, queueFigures{}, metrics.HistoryConfig{Interval: time.Second}, slog.New(slog.DiscardHandler))
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

	m.JobFinished(job.Job{Kind: job.KindGeneration}, runner.OutcomeSucceeded, time.Second)
	h.Sample(context.Background()) // after the requests above: a p99
	h.Sample(context.Background())
	code, v = get(testAdminToken)
	if code != 200 || len(v.Points) != 2 {
		t.Fatalf("after two samples: %d, %d points", code, len(v.Points))
	}
	p := v.Points[0]
	if p.QueueDepth == nil || *p.QueueDepth != 4 || p.QueueDelaySeconds == nil || *p.QueueDelaySeconds != 2 ||
		p.BackgroundTasksActive != 1 || p.JobsPerSecond.Succeeded <= 0 || p.P99ResponseSeconds == nil || p.At.IsZero() {
		t.Fatalf("first point %+v: want depth 4, delay 2, active 1, a success rate, a p99 and a time", p)
	}
	if q := v.Points[1]; q.P99ResponseSeconds != nil || q.JobsPerSecond.Succeeded != 0 || !q.At.After(p.At) {
		t.Fatalf("second point %+v: want no p99 and no runs (none in its interval), after the first", q)
	}
}
