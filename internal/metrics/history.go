package metrics

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/runner"
	"github.com/scriptgen/scriptgen/internal/store"
)

// HistoryPoints is how many points History keeps: an hour at the default
// interval of 10 s. The ring is allocated once, so the history never grows.
const HistoryPoints = 360

// HistorySource reads the figures of a history point that need I/O. The
// serving process implements it; it must answer within the context's
// deadline.
type HistorySource interface {
	HistoryFigures(ctx context.Context) HistoryFigures
}

// HistoryFigures are the figures of the moment a point is taken.
type HistoryFigures struct {
	// QueueDepth is the durable queues' waiting tasks; nil while Redis is
	// unconfigured or down.
	QueueDepth *int
	// QueueDelay is the age of the oldest queued durable job (what the
	// rollback controller's queue-delay trigger reads); nil when it could
	// not be read.
	QueueDelay *time.Duration
	// BackgroundActive is the background_tasks jobs running in this process.
	BackgroundActive int
	// Runs are the finished-run counts every live process of the cluster,
	// worker or serving replica, reported with its last heartbeat, by
	// process id (one read of the registry); nil when they could not be
	// read.
	Runs map[string]store.RunCounts
}

// JobRates are runs of jobs finished in the whole cluster (every worker
// process and serving replica) per second over one interval, by outcome
// (scriptgen_jobs_finished_total's outcome label). The counts come with the
// processes' heartbeats, so a run shows up to one heartbeat late.
type JobRates struct {
	Succeeded float64 `json:"succeeded"`
	Failed    float64 `json:"failed"`
	Retry     float64 `json:"retry"`
	Released  float64 `json:"released"`
	// Dropped runs lost their lease: cancelled, expired or migrated.
	Dropped float64 `json:"dropped"`
}

// HistoryPoint is one sample of the operator page's charts.
type HistoryPoint struct {
	At                    time.Time `json:"at"`
	QueueDepth            *int      `json:"queue_depth"`
	QueueDelaySeconds     *float64  `json:"queue_delay_seconds"`
	BackgroundTasksActive int       `json:"background_tasks_active"`
	JobsPerSecond         JobRates  `json:"jobs_per_second"`
	// P99ResponseSeconds is the p99 of the HTTP requests answered in the
	// interval (nil without any).
	P99ResponseSeconds *float64 `json:"p99_response_seconds"`
}

// HistoryView is what GET /api/admin/history answers: the points, oldest
// first.
type HistoryView struct {
	IntervalSeconds float64        `json:"interval_seconds"`
	Capacity        int            `json:"capacity"`
	Points          []HistoryPoint `json:"points"`
}

// HistoryConfig is History's configuration.
type HistoryConfig struct {
	// Interval between two points (10 s if 0).
	Interval time.Duration
	Clock    clock.Clock
}

// History samples the figures of the operator page's charts every interval
// and keeps the last HistoryPoints of them. Each replica keeps its own: the
// queue figures and the jobs/s are the cluster's, the rest this process's.
type History struct {
	m        *Metrics
	src      HistorySource
	interval time.Duration
	clock    clock.Clock
	log      *slog.Logger

	mu   sync.Mutex
	ring [HistoryPoints]HistoryPoint
	next int
	full bool
	// last is when the previous point was taken: the p99 of the next point
	// is of the requests since.
	last time.Time
	// lastRuns are the processes' finished-run counts read at lastRunsAt,
	// by process id: the rates of the next point are what the processes
	// finished since, over the time between. A failed read keeps them, so
	// the next point that reads covers the gap.
	lastRuns   map[string]store.RunCounts
	lastRunsAt time.Time

	stop chan struct{}
	done chan struct{}
}

// NewHistory returns a History of m's counts and src's figures; Start runs
// its sampler.
func NewHistory(m *Metrics, src HistorySource, cfg HistoryConfig, log *slog.Logger) *History {
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	return &History{
		m:        m,
		src:      src,
		interval: cfg.Interval,
		clock:    cfg.Clock,
		log:      log,
		last:     cfg.Clock.Now(),
	}
}

// Start samples every interval until Stop.
func (h *History) Start(ctx context.Context) error {
	h.stop, h.done = make(chan struct{}), make(chan struct{})
	ctx = context.WithoutCancel(ctx)
	go func() {
		defer close(h.done)
		t := time.NewTicker(h.interval)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
				h.Sample(ctx)
			}
		}
	}()
	return nil
}

// Stop ends the sampler.
func (h *History) Stop(ctx context.Context) error {
	if h.stop == nil {
		return nil
	}
	close(h.stop)
	select {
	case <-h.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Sample takes one point now. Its reads of the source are bounded like a
// scrape's; a tick that comes while a slow read goes on is dropped (the
// ticker's), so samples never pile up.
func (h *History) Sample(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	f := h.src.HistoryFigures(ctx)
	now := h.clock.Now()

	h.mu.Lock()
	defer h.mu.Unlock()
	p := HistoryPoint{At: now.UTC(), QueueDepth: f.QueueDepth, BackgroundTasksActive: f.BackgroundActive}
	if f.QueueDelay != nil {
		s := f.QueueDelay.Seconds()
		p.QueueDelaySeconds = &s
	}
	if f.Runs != nil {
		if secs := now.Sub(h.lastRunsAt).Seconds(); secs > 0 && h.lastRuns != nil {
			runs := clusterRuns(h.lastRuns, f.Runs)
			rate := func(o runner.Outcome) float64 { return float64(runs[string(o)]) / secs }
			p.JobsPerSecond = JobRates{
				Succeeded: rate(runner.OutcomeSucceeded),
				Failed:    rate(runner.OutcomeFailed),
				Retry:     rate(runner.OutcomeRetry),
				Released:  rate(runner.OutcomeReleased),
				Dropped:   rate(runner.OutcomeDropped),
			}
		}
		h.lastRuns, h.lastRunsAt = f.Runs, now
	}
	if p99, ok := h.m.window.p99Since(h.last); ok {
		s := p99.Seconds()
		p.P99ResponseSeconds = &s
	}
	h.last = now
	h.ring[h.next] = p
	h.next = (h.next + 1) % len(h.ring)
	if h.next == 0 {
		h.full = true
	}
}

// clusterRuns is what the processes of cur finished since prev, summed by
// outcome, each process differenced against its own previous counts. A
// process not in prev, seen for the first time, adds nothing: its counts are
// of its whole life, not of the interval, so it adds from its next sample
// on. A process in prev but not in cur, gone, adds nothing. A process whose
// count of any outcome went down restarted under the same id, so all its
// counts are of runs since then.
func clusterRuns(prev, cur map[string]store.RunCounts) store.RunCounts {
	sum := store.RunCounts{}
	for id, now := range cur {
		before, seen := prev[id]
		if !seen {
			continue
		}
		restarted := false
		for o, n := range before {
			if now[o] < n {
				restarted = true
				break
			}
		}
		for o, n := range now {
			if !restarted {
				n -= before[o]
			}
			sum[o] += n
		}
	}
	return sum
}

// View returns the points kept, oldest first.
func (h *History) View() HistoryView {
	h.mu.Lock()
	defer h.mu.Unlock()
	v := HistoryView{IntervalSeconds: h.interval.Seconds(), Capacity: len(h.ring)}
	if h.full {
		v.Points = append(v.Points, h.ring[h.next:]...)
	}
	v.Points = append(v.Points, h.ring[:h.next]...)
	if v.Points == nil {
		v.Points = []HistoryPoint{}
	}
	return v
}
