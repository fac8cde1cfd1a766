package e2e

import (
	"math"
	"testing"
	"time"
)

// historyJobs reads GET /api/admin/history through the contract-validated
// client and returns the highest succeeded rate of its points and the runs
// they add up to (each point's rate over the time since the point before).
func historyJobs(t *testing.T, base, token string) (peak, runs float64) {
	t.Helper()
	code, h := request(t, "GET", base+"/api/admin/history", nil, "Authorization", "Bearer "+token)
	if code != 200 {
		t.Fatalf("GET /api/admin/history: %d %v", code, h)
	}
	points, _ := h["points"].([]any)
	var prev time.Time
	for _, it := range points {
		p, _ := it.(map[string]any)
		at, err := time.Parse(time.RFC3339Nano, p["at"].(string))
		if err != nil {
			t.Fatalf("point %v: %v", p, err)
		}
		rates, _ := p["jobs_per_second"].(map[string]any)
		r, _ := rates["succeeded"].(float64)
		peak = math.Max(peak, r)
		if !prev.IsZero() {
			runs += r * at.Sub(prev).Seconds()
		}
		prev = at
	}
	return peak, runs
}

// TestHistoryCountsWorkerRuns: in durable mode the jobs run in a `scriptgen
// worker` process, not in serve, and the operator page's jobs/s still counts
// them: serve's history sums the finished-run counts every process reports
// with its heartbeat. The points' succeeded rates add up to the jobs run.
func TestHistoryCountsWorkerRuns(t *testing.T) {
	c := newCluster(t, 1, "HISTORY_INTERVAL=200ms")
	c.setDurable(true)
	// A few points first, so that the history has seen the worker (with no
	// runs yet) before it runs any: a process's first sample is its baseline.
	time.Sleep(600 * time.Millisecond)
	var jobs []submitted
	for i := 1; i <= 8; i++ {
		jobs = append(jobs, submit(t, c.serve.URL, "history-runs", i))
	}
	waitAllSucceeded(t, c.serve.URL, jobs, 60*time.Second)
	if by := backends(t, c.serve.URL, jobs); by["durable"] != len(jobs) {
		t.Fatalf("jobs by backend %v, want all %d on the durable worker", by, len(jobs))
	}

	// The worker's counts reach the registry with its next heartbeat (1 s)
	// and the history with its next point.
	deadline := time.Now().Add(15 * time.Second)
	for {
		peak, runs := historyJobs(t, c.serve.URL, adminToken)
		if peak > 0 && math.Abs(runs-float64(len(jobs))) < 0.01 {
			t.Logf("history: peak %.2f succeeded/s, %.3f runs in all", peak, runs)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("history: peak %.2f succeeded/s, %.3f runs in all; want above 0 and %d (the worker's runs)", peak, runs, len(jobs))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
