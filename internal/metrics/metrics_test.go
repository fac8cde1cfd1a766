package metrics

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/runner"
)

type fakeSource struct{ snap Snapshot }

func (f *fakeSource) MetricsSnapshot(context.Context) Snapshot { return f.snap }

func newTestMetrics(t *testing.T, snap Snapshot) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	return New(reg, &fakeSource{snap: snap}), reg
}

// scrape fetches /metrics the way Prometheus does.
func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	srv := httptest.NewServer(Handler(reg))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestScrapeShowsSnapshot(t *testing.T) {
	snap := Snapshot{
		RollbackActive: true, WorkerSystemEnabled: false, RolloutPercent: 25,
		BackgroundActive: 3, BackgroundQueued: 7, BackgroundMax: 4,
		QueueDepth: 12, QueueLatency: 1500 * time.Millisecond,
		WorkersUp: 2, WorkerCrashes: 1, RedisConfigured: true, RedisUp: true,
		Jobs: []JobCount{
			{Kind: "generation", Status: "queued", Backend: "durable", N: 5},
			{Kind: "rag_document", Status: "running", Backend: "background_tasks", N: 2},
		},
		Triggers: []TriggerState{{Name: "system_memory", State: "inconclusive"}, {Name: "redis_unreachable", State: "pending"}},
	}
	m, reg := newTestMetrics(t, snap)
	m.RollbackError()
	m.RollbackError()
	body := scrape(t, reg)
	for _, line := range []string{
		"system_rollback_active 1",
		"scriptgen_worker_system_enabled 0",
		"scriptgen_worker_system_rollout_percent 25",
		"background_tasks_active 3",
		"background_tasks_queued 7",
		"background_tasks_max 4",
		"scriptgen_durable_queue_depth 12",
		"scriptgen_durable_queue_latency_seconds 1.5",
		"scriptgen_workers_up 2",
		"scriptgen_worker_crashes 1",
		"scriptgen_redis_up 1",
		`scriptgen_jobs{backend="durable",kind="generation",status="queued"} 5`,
		`scriptgen_jobs{backend="background_tasks",kind="rag_document",status="running"} 2`,
		"rollback_errors_total 2",
		`scriptgen_rollback_trigger_state{state="inconclusive",trigger="system_memory"} 1`,
		`scriptgen_rollback_trigger_state{state="ok",trigger="system_memory"} 0`,
		`scriptgen_rollback_trigger_state{state="pending",trigger="redis_unreachable"} 1`,
		"rollback_performance_ratio 20", // no requests yet: 2.0 / 0.1
		"go_goroutines ",
		"process_start_time_seconds ",
	} {
		if !strings.Contains(body, "\n"+line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}

func TestScrapeWithoutRedis(t *testing.T) {
	tests := []struct {
		name    string
		snap    Snapshot
		present []string
		absent  []string
	}{
		{"unconfigured", Snapshot{}, nil,
			[]string{"scriptgen_redis_up", "scriptgen_durable_queue_depth", "scriptgen_durable_queue_latency_seconds"}},
		{"down", Snapshot{RedisConfigured: true, QueueDepth: 9}, []string{"scriptgen_redis_up 0"},
			[]string{"scriptgen_durable_queue_depth", "scriptgen_durable_queue_latency_seconds"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, reg := newTestMetrics(t, tt.snap)
			body := scrape(t, reg)
			for _, l := range tt.present {
				if !strings.Contains(body, "\n"+l+"\n") {
					t.Errorf("/metrics lacks %q", l)
				}
			}
			for _, name := range tt.absent {
				if strings.Contains(body, "\n"+name+" ") {
					t.Errorf("/metrics has %s, which is unknown", name)
				}
			}
		})
	}
}

func TestDuplicateJobCountsDoNotBreakScrape(t *testing.T) {
	c := JobCount{Kind: "generation", Status: "queued", Backend: "durable", N: 1}
	_, reg := newTestMetrics(t, Snapshot{Jobs: []JobCount{c, c}})
	if n, err := testutil.GatherAndCount(reg, "scriptgen_jobs"); err != nil || n != 1 {
		t.Fatalf("scriptgen_jobs series = %d, %v; want 1", n, err)
	}
}

func TestWorkerProcessWithoutSource(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, nil)
	m.JobFinished(job.Job{Kind: job.KindGeneration, Backend: job.BackendDurable}, runner.OutcomeSucceeded, time.Second)
	body := scrape(t, reg)
	if strings.Contains(body, "system_rollback_active") {
		t.Error("a process without a Source exports the serving gauges")
	}
	if !strings.Contains(body, `scriptgen_jobs_finished_total{backend="durable",kind="generation",outcome="succeeded"} 1`) {
		t.Error("finished run not counted")
	}
}

func TestJobFinished(t *testing.T) {
	m, reg := newTestMetrics(t, Snapshot{})
	gen := job.Job{Kind: job.KindGeneration, Backend: job.BackendBackgroundTasks}
	m.JobFinished(gen, runner.OutcomeSucceeded, 2*time.Second)
	m.JobFinished(gen, runner.OutcomeSucceeded, 4*time.Second)
	m.JobFinished(gen, runner.OutcomeFailed, 100*time.Millisecond)

	if got := testutil.ToFloat64(m.jobsFinished.WithLabelValues("generation", "succeeded", "background_tasks")); got != 2 {
		t.Errorf("succeeded = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.jobsFinished.WithLabelValues("generation", "failed", "background_tasks")); got != 1 {
		t.Errorf("failed = %v, want 1", got)
	}
	body := scrape(t, reg)
	for _, line := range []string{
		`scriptgen_job_duration_seconds_count{backend="background_tasks",kind="generation"} 3`,
		`scriptgen_job_duration_seconds_sum{backend="background_tasks",kind="generation"} 6.1`,
	} {
		if !strings.Contains(body, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}

func TestPerformanceRatio(t *testing.T) {
	m, _ := newTestMetrics(t, Snapshot{})
	now := time.Unix(1_700_000_000, 0)
	m.window = newWindow(windowSize, windowAge, func() time.Time { return now })
	for _, d := range []time.Duration{time.Second, 3 * time.Second} { // average 2 s
		m.window.add(d)
	}
	if got := m.performanceRatio(); got != 1 {
		t.Errorf("ratio at the baseline = %v, want 1", got)
	}
	m.window.add(20 * time.Second) // average 8 s
	if got := m.performanceRatio(); got != 0.25 {
		t.Errorf("ratio at 8 s = %v, want 0.25", got)
	}
}
