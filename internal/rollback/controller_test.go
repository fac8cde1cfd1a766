package rollback_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/rollback"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/store/sqlite"
)

// probe is a world whose readings the test sets; the flag comes from the store.
type probe struct {
	mu      sync.Mutex
	st      store.Store
	redisUp bool
	crashes int
	delay   time.Duration
	memory  float64
}

func (p *probe) RedisUp(context.Context) bool { p.mu.Lock(); defer p.mu.Unlock(); return p.redisUp }
func (p *probe) WorkerCrashes(context.Context, time.Duration) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.crashes, nil
}
func (p *probe) QueueDelay(context.Context) (time.Duration, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delay, nil
}
func (p *probe) MemoryPercent() (float64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.memory, nil
}
func (p *probe) DurableEnabled() bool {
	w, _ := p.st.GetWorkerSetting(context.Background())
	return w.Enabled
}

type fixture struct {
	st    store.Store
	clk   *clock.Fake
	probe *probe
	ctl   *rollback.Controller
}

func newFixture(t *testing.T, holder string, st store.Store, clk *clock.Fake) *fixture {
	if clk == nil {
		clk = clock.NewFake(time.Now())
	}
	if st == nil {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "c.db"), clk)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		st = s
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := rollback.New(st, nil, log)
	svc.FlagRefresh, svc.Clock = 0, clk
	p := &probe{st: st, redisUp: true, memory: 40}
	cfg := rollback.DefaultControllerConfig()
	cfg.Clock, cfg.HolderID = clk, holder
	return &fixture{st: st, clk: clk, probe: p, ctl: rollback.NewController(svc, p, st, cfg, log)}
}

func (f *fixture) rollbacks(t *testing.T) []store.AuditRecord {
	recs, err := f.st.ListAudits(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// step advances the clock and evaluates once.
func (f *fixture) step(d time.Duration) {
	f.clk.Advance(d)
	f.ctl.Tick(context.Background())
}

func TestTriggersHoldForTheirWindow(t *testing.T) {
	tests := []struct {
		name    string
		trigger string
		set     func(p *probe)
		window  time.Duration
	}{
		{"redis", "redis_unreachable", func(p *probe) { p.redisUp = false }, 5 * time.Minute},
		{"crashes", "worker_crashes", func(p *probe) { p.crashes = 4 }, 10 * time.Second},
		{"queue", "queue_delay", func(p *probe) { p.delay = 11 * time.Minute }, time.Minute},
		{"memory", "system_memory", func(p *probe) { p.memory = 95 }, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "a", nil, nil)
			f.step(0)
			tt.set(f.probe)
			f.step(0)
			if tt.window > 0 {
				f.step(tt.window - time.Second)
				if n := len(f.rollbacks(t)); n != 0 {
					t.Fatalf("rolled back before the window of %s ended", tt.window)
				}
			}
			f.step(time.Second)
			recs := f.rollbacks(t)
			if len(recs) != 1 || recs[0].Trigger != tt.trigger || len(recs[0].Evidence) == 0 {
				t.Fatalf("records %+v, want one rollback by %s with evidence", recs, tt.trigger)
			}
			if at := f.clk.Now().UTC().Truncate(time.Microsecond); !recs[0].StartedAt.Equal(at) || !recs[0].FinishedAt.Equal(at) {
				t.Fatalf("rollback recorded from %v to %v, want both at %v, the controller's clock", recs[0].StartedAt, recs[0].FinishedAt, at)
			}
			// Still firing, and firing again later: the flag is off, so no second rollback.
			for range 5 {
				f.step(tt.window + time.Minute)
			}
			if n := len(f.rollbacks(t)); n != 1 {
				t.Fatalf("%d rollbacks, want one per incident", n)
			}
			if f.probe.DurableEnabled() {
				t.Fatal("the controller rolled forward by itself")
			}
		})
	}
}

func TestConditionThatClearsDoesNotFire(t *testing.T) {
	f := newFixture(t, "a", nil, nil)
	for range 10 {
		f.probe.redisUp = false
		f.step(4 * time.Minute) // down for four minutes…
		f.probe.redisUp = true
		f.step(time.Second) // …then back: the window starts over
	}
	if n := len(f.rollbacks(t)); n != 0 {
		t.Fatalf("%d rollbacks for a flapping Redis that never stayed down 5 min", n)
	}
}

func TestOnlyTheLeaderActs(t *testing.T) {
	clk := clock.NewFake(time.Now())
	a := newFixture(t, "a", nil, clk)
	b := newFixture(t, "b", a.st, clk)
	a.step(0)
	b.step(0)
	a.probe.memory, b.probe.memory = 99, 99
	for range 30 { // 2.5 minutes of ticks by both, the leader renewing its lease
		a.step(5 * time.Second)
		b.step(0)
	}
	if n := len(a.rollbacks(t)); n != 1 {
		t.Fatalf("%d rollbacks with two replicas, want one", n)
	}
	if got := b.ctl.Triggers(); len(got) != 0 {
		t.Fatalf("a follower evaluated triggers: %+v", got)
	}
	// The leader stops (a graceful restart): b takes over at its next tick,
	// not when a's lease expires.
	if err := a.ctl.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.step(0)
	if got := b.ctl.Triggers(); len(got) == 0 {
		t.Fatal("the follower did not take over when the leader stopped")
	}
}
