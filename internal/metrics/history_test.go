package metrics

import (
	"context"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/runner"
	"github.com/scriptgen/scriptgen/internal/store"
)

// figures is a HistorySource that answers what the test set.
type figures struct{ f HistoryFigures }

func (s *figures) HistoryFigures(context.Context) HistoryFigures { return s.f }

// newTestHistory is a History on a fake clock, its Metrics' response-time
// window on the same clock.
func newTestHistory(t *testing.T, interval time.Duration) (*History, *Metrics, *figures, *clock.Fake) {
	t.Helper()
	c := clock.NewFake(time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC))
	m := New(prometheus.NewRegistry(), nil)
	m.window = newWindow(windowSize, windowAge, c.Now)
	src := &figures{}
	return NewHistory(m, src, HistoryConfig{Interval: interval, Clock: c}, slog.New(slog.DiscardHandler)), m, src, c
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// A point's rates are the runs the cluster's processes finished since the
// previous point over the time between, by outcome; its p99 is of the
// requests of its own interval only; the source's figures are kept as they
// came, absent ones as null.
func TestHistoryPointRatesAndP99(t *testing.T) {
	h, m, src, c := newTestHistory(t, 10*time.Second)

	// The first point sets the processes' baseline: a worker and a replica
	// that ran before the history started add nothing yet.
	src.f = HistoryFigures{Runs: map[string]store.RunCounts{
		"worker-a": {"succeeded": 100},
		"serve-1":  {"failed": 7},
	}}
	c.Advance(10 * time.Second)
	h.Sample(context.Background())

	// Interval 1: over both processes, 20 succeeded, 5 failed, 1 dropped in
	// 10 s; 100 requests of 1..100 ms, so the p99 is 99 ms.
	c.Advance(time.Second)
	for i := 1; i <= 100; i++ {
		m.window.add(time.Duration(i) * time.Millisecond)
	}
	depth, delay := 7, 1500*time.Millisecond
	src.f = HistoryFigures{QueueDepth: &depth, QueueDelay: &delay, BackgroundActive: 3, Runs: map[string]store.RunCounts{
		"worker-a": {"succeeded": 115, "dropped": 1},
		"serve-1":  {"failed": 12, "succeeded": 5},
	}}
	c.Advance(9 * time.Second)
	h.Sample(context.Background())

	// Interval 2: 20 s later (a late tick), 4 succeeded, no request, Redis down.
	src.f = HistoryFigures{BackgroundActive: 0, Runs: map[string]store.RunCounts{
		"worker-a": {"succeeded": 119, "dropped": 1},
		"serve-1":  {"failed": 12, "succeeded": 5},
	}}
	c.Advance(20 * time.Second)
	h.Sample(context.Background())

	// Interval 3: one slow request alone is the p99; the processes' counts
	// could not be read, so no rate, and the next point covers the gap.
	c.Advance(time.Second)
	m.window.add(4 * time.Second)
	src.f = HistoryFigures{}
	c.Advance(9 * time.Second)
	h.Sample(context.Background())

	// Interval 4: 10 s after interval 3, 20 after the last read: 6 more
	// succeeded, so 0.3/s.
	src.f = HistoryFigures{Runs: map[string]store.RunCounts{
		"worker-a": {"succeeded": 125, "dropped": 1},
		"serve-1":  {"failed": 12, "succeeded": 5},
	}}
	c.Advance(10 * time.Second)
	h.Sample(context.Background())

	v := h.View()
	if v.IntervalSeconds != 10 || v.Capacity != HistoryPoints || len(v.Points) != 5 {
		t.Fatalf("view: interval %v capacity %d points %d, want 10, %d, 5", v.IntervalSeconds, v.Capacity, len(v.Points), HistoryPoints)
	}
	p0, p1, p2, p3, p4 := v.Points[0], v.Points[1], v.Points[2], v.Points[3], v.Points[4]
	if want := time.Date(2026, 12, 7, 3, 0, 10, 0, time.UTC); !p0.At.Equal(want) {
		t.Errorf("first point at %v, want %v", p0.At, want)
	}
	if r := p0.JobsPerSecond; r != (JobRates{}) {
		t.Errorf("first point's rates %+v, want none (the counts before it are of the processes' past)", r)
	}
	if r := p1.JobsPerSecond; !near(r.Succeeded, 2) || !near(r.Failed, 0.5) || !near(r.Dropped, 0.1) || r.Retry != 0 || r.Released != 0 {
		t.Errorf("interval 1 rates %+v, want succeeded 2, failed 0.5, dropped 0.1", r)
	}
	if p1.P99ResponseSeconds == nil || !near(*p1.P99ResponseSeconds, 0.099) {
		t.Errorf("interval 1 p99 %v, want 0.099", p1.P99ResponseSeconds)
	}
	if p1.QueueDepth == nil || *p1.QueueDepth != 7 || p1.QueueDelaySeconds == nil || !near(*p1.QueueDelaySeconds, 1.5) || p1.BackgroundTasksActive != 3 {
		t.Errorf("interval 1 figures: depth %v delay %v active %d", p1.QueueDepth, p1.QueueDelaySeconds, p1.BackgroundTasksActive)
	}
	if r := p2.JobsPerSecond; !near(r.Succeeded, 0.2) || r.Failed != 0 || r.Dropped != 0 {
		t.Errorf("interval 2 rates %+v, want succeeded 0.2 (4 in 20 s), nothing else", r)
	}
	if p2.P99ResponseSeconds != nil || p2.QueueDepth != nil || p2.QueueDelaySeconds != nil {
		t.Errorf("interval 2 without requests or Redis: p99 %v depth %v delay %v, want all null", p2.P99ResponseSeconds, p2.QueueDepth, p2.QueueDelaySeconds)
	}
	if p3.P99ResponseSeconds == nil || !near(*p3.P99ResponseSeconds, 4) {
		t.Errorf("interval 3 p99 %v, want 4 (its one request, none of interval 1's)", p3.P99ResponseSeconds)
	}
	if r := p3.JobsPerSecond; r != (JobRates{}) {
		t.Errorf("interval 3 rates %+v, want none (counts unread)", r)
	}
	if r := p4.JobsPerSecond; !near(r.Succeeded, 0.3) || r.Failed != 0 || r.Dropped != 0 {
		t.Errorf("interval 4 rates %+v, want succeeded 0.3 (6 in the 20 s since the last read)", r)
	}
}

// clusterRuns differences each process against its own previous counts: a
// process seen for the first time adds nothing, one gone adds nothing, and
// one whose counts went down (restarted under the same id) adds all of its
// new counts.
func TestClusterRuns(t *testing.T) {
	prev := map[string]store.RunCounts{
		"steady":    {"succeeded": 10, "failed": 2},
		"gone":      {"succeeded": 50},
		"restarted": {"succeeded": 40, "retry": 3},
		"quiet":     {"succeeded": 5},
	}
	cur := map[string]store.RunCounts{
		"steady":    {"succeeded": 14, "failed": 2, "released": 1},
		"new":       {"succeeded": 1000, "dropped": 9},
		"restarted": {"succeeded": 6},
		"quiet":     {"succeeded": 5},
	}
	got := clusterRuns(prev, cur)
	want := store.RunCounts{"succeeded": 4 + 6, "released": 1}
	for o, n := range got {
		if n != want[o] {
			t.Fatalf("cluster runs %v, want %v", got, want)
		}
	}
	for o, n := range want {
		if got[o] != n {
			t.Fatalf("cluster runs %v, want %v", got, want)
		}
	}
	if len(clusterRuns(nil, cur)) != 0 {
		t.Fatalf("no previous sample: %v, want nothing", clusterRuns(nil, cur))
	}
}

// Metrics counts a process's finished runs by outcome for its heartbeats,
// and so does a RunCounter alone (a worker's); the counts are copies.
func TestFinishedRunsCounts(t *testing.T) {
	m := New(prometheus.NewRegistry(), nil)
	var w RunCounter
	j := job.Job{Kind: job.KindGeneration, Backend: job.BackendDurable}
	for _, o := range []runner.Observer{m, &w} {
		for range 3 {
			o.JobFinished(j, runner.OutcomeSucceeded, time.Second)
		}
		o.JobFinished(j, runner.OutcomeRetry, time.Second)
	}
	for name, got := range map[string]store.RunCounts{"metrics": m.FinishedRuns(), "counter": w.Counts()} {
		if len(got) != 2 || got["succeeded"] != 3 || got["retry"] != 1 {
			t.Fatalf("%s counts %v, want 3 succeeded and 1 retry", name, got)
		}
		got["succeeded"] = 0
	}
	if m.FinishedRuns()["succeeded"] != 3 || w.Counts()["succeeded"] != 3 {
		t.Fatal("a copy of the counts changed the counter's")
	}
}

// The ring keeps the last HistoryPoints points, oldest first, and drops the
// oldest when full.
func TestHistoryWrapsAtCapacity(t *testing.T) {
	h, _, src, c := newTestHistory(t, 10*time.Second)
	if v := h.View(); v.Points == nil || len(v.Points) != 0 {
		t.Fatalf("before any sample: %v, want an empty list", v.Points)
	}
	for i := range HistoryPoints + 25 {
		src.f = HistoryFigures{BackgroundActive: i}
		c.Advance(10 * time.Second)
		h.Sample(context.Background())
	}
	v := h.View()
	if len(v.Points) != HistoryPoints {
		t.Fatalf("%d points, want %d", len(v.Points), HistoryPoints)
	}
	for i, p := range v.Points {
		if p.BackgroundTasksActive != 25+i {
			t.Fatalf("point %d is sample %d, want %d (oldest first, the first 25 dropped)", i, p.BackgroundTasksActive, 25+i)
		}
		if i > 0 && p.At.Sub(v.Points[i-1].At) != 10*time.Second {
			t.Fatalf("points %d and %d are %v apart, want 10s", i-1, i, p.At.Sub(v.Points[i-1].At))
		}
	}
}

// Start samples on its own every interval until Stop.
func TestHistoryStartSamples(t *testing.T) {
	m := New(prometheus.NewRegistry(), nil)
	h := NewHistory(m, &figures{}, HistoryConfig{Interval: 5 * time.Millisecond}, slog.New(slog.DiscardHandler))
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(h.View().Points) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no two points within 5 s at a 5 ms interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := len(h.View().Points)
	time.Sleep(30 * time.Millisecond)
	if after := len(h.View().Points); after != n {
		t.Fatalf("%d points after Stop, then %d", n, after)
	}
}
