package rollback_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/durable"
	"github.com/scriptgen/scriptgen/internal/rollback"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/store/sqlite"
	"github.com/scriptgen/scriptgen/internal/testenv"
)

// probe is a world whose readings the test sets; the flag comes from the store.
type probe struct {
	mu      sync.Mutex
	st      store.Store
	redisUp bool
	crashes int
	delay   time.Duration
	memory  float64
	workers int
	// failing names the readings that fail (an unreadable metric).
	failing map[string]bool
	// onRead, when set, runs as the memory is read: the moment between a
	// leader's election and its decision.
	onRead func()
}

func (p *probe) RedisUp(context.Context) bool { p.mu.Lock(); defer p.mu.Unlock(); return p.redisUp }
func (p *probe) WorkerCrashes(context.Context, time.Duration) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.crashes, p.fail("crashes")
}
func (p *probe) QueueDelay(context.Context) (time.Duration, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delay, p.fail("delay")
}
func (p *probe) WorkersUp(context.Context) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.workers, p.fail("workers")
}

// fail is the error of a reading the test made fail.
func (p *probe) fail(name string) error {
	if p.failing[name] {
		return errors.New(name + " cannot be read")
	}
	return nil
}
func (p *probe) MemoryPercent() (float64, error) {
	p.mu.Lock()
	on := p.onRead
	p.onRead = nil
	p.mu.Unlock()
	if on != nil {
		on()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.memory, p.fail("memory")
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
	p := &probe{st: st, redisUp: true, memory: 40, workers: 2}
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
		{"workers", "workers_missing", func(p *probe) { p.workers = 0 }, time.Minute},
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

// TestDeposedLeadersLateStepIsRefused: a leader that loses its lease between
// its election and its rollback (a pause longer than the lease) acts late
// under its old term; the store refuses the step, so the flag stays as the
// new leader sees it, and no record of the deposed leader's is saved. The new
// leader decides afresh and its record carries its own term.
func TestDeposedLeadersLateStepIsRefused(t *testing.T) {
	clk := clock.NewFake(time.Now())
	a := newFixture(t, "a", nil, clk)
	b := newFixture(t, "b", a.st, clk)
	var aErr error
	a.ctl.OnRollback = func(_ string, err error) { aErr = err }
	a.step(0)
	b.step(0)
	a.probe.memory, b.probe.memory = 99, 99
	for range 11 { // 50 s of a 1 min window, a renewing its lease
		a.step(5 * time.Second)
		b.step(0)
	}
	a.probe.onRead = func() {
		clk.Advance(20 * time.Second)    // a pauses past its 15 s lease…
		b.ctl.Tick(context.Background()) // …and b takes over
	}
	a.step(10 * time.Second) // the window is over: a decides, late
	if !errors.Is(aErr, store.ErrFenced) {
		t.Fatalf("the deposed leader's rollback ended with %v, want ErrFenced", aErr)
	}
	if !a.probe.DurableEnabled() {
		t.Fatal("the deposed leader's late flag-off went through")
	}
	if recs := a.rollbacks(t); len(recs) != 0 {
		t.Fatalf("the deposed leader's record was saved: %+v", recs)
	}
	for range 13 { // b's own window, from its first tick as leader
		b.step(5 * time.Second)
		a.step(0)
	}
	recs := b.rollbacks(t)
	if len(recs) != 1 || recs[0].Actor != "controller@b" || recs[0].LeaderEpoch != 2 {
		t.Fatalf("records %+v, want one by b under term 2", recs)
	}
}

// TestEveryStepCarriesTheTerm: a fenced rollback's steps and record carry
// the leader's epoch; an operator's carry none.
func TestEveryStepCarriesTheTerm(t *testing.T) {
	f := newFixture(t, "a", nil, nil)
	ctx := context.Background()
	epoch, ok, err := f.st.AcquireLease(ctx, "rollback-controller", "a", time.Minute)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	svc := rollback.New(f.st, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	svc.FlagRefresh = 0
	fence := store.Fence{Name: "rollback-controller", Holder: "a", Epoch: epoch}
	var steps []rollback.Step
	rec, err := svc.Rollback(ctx, rollback.Request{Reason: "fenced", Actor: "controller@a", Fence: &fence},
		func(s rollback.Step) { steps = append(steps, s) })
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		if s.LeaderEpoch != epoch {
			t.Fatalf("step %q carries term %d, want %d", s.Name, s.LeaderEpoch, epoch)
		}
	}
	if got, _ := f.st.GetAudit(ctx, rec.ID); got.LeaderEpoch != epoch {
		t.Fatalf("record carries term %d, want %d", got.LeaderEpoch, epoch)
	}
	steps = nil
	rec, err = svc.Rollback(ctx, rollback.Request{Reason: "by hand", Actor: "cli"}, func(s rollback.Step) { steps = append(steps, s) })
	if err != nil || rec.LeaderEpoch != 0 || len(steps) == 0 || steps[0].LeaderEpoch != 0 {
		t.Fatalf("an operator's rollback: %+v %v %+v", rec, err, steps)
	}
}

// TestInconclusiveReadingsNeverRollBack: a trigger whose metric cannot be read
// is inconclusive, shown as such, and never counts toward a rollback, however
// long it lasts; Redis not answering is a trigger, not an inconclusive one.
func TestInconclusiveReadingsNeverRollBack(t *testing.T) {
	f := newFixture(t, "a", nil, nil)
	f.probe.failing = map[string]bool{"crashes": true, "delay": true, "memory": true, "workers": true}
	f.probe.crashes, f.probe.delay, f.probe.memory, f.probe.workers = 10, time.Hour, 99, 0
	for range 30 {
		f.step(time.Minute)
	}
	if n := len(f.rollbacks(t)); n != 0 {
		t.Fatalf("%d rollbacks on readings that failed", n)
	}
	states := map[string]string{}
	for _, st := range f.ctl.Triggers() {
		states[st.Name] = st.State
	}
	want := map[string]string{"redis_unreachable": "ok", "worker_crashes": "inconclusive", "queue_delay": "inconclusive",
		"system_memory": "inconclusive", "workers_missing": "inconclusive"}
	for name, state := range want {
		if states[name] != state {
			t.Fatalf("trigger states %v, want %v", states, want)
		}
	}
	f.probe.redisUp = false
	f.step(0)
	for _, st := range f.ctl.Triggers() {
		if st.Name == "redis_unreachable" && st.State != "pending" {
			t.Fatalf("Redis down is %s, want pending: it is a trigger, not an inconclusive reading", st.State)
		}
	}
}

// TestCrashWindowShowsItsConfiguredLength: the crash trigger's threshold is
// its configured window, not the time since the durable worker was switched
// on (which showed as "> 3 in 7m0s", "in 20s").
func TestCrashWindowShowsItsConfiguredLength(t *testing.T) {
	f := newFixture(t, "a", nil, nil)
	ctx := context.Background()
	if _, err := f.st.PutWorkerSetting(ctx, store.WorkerSetting{Enabled: false, Reason: "off", UpdatedBy: "t"}); err != nil {
		t.Fatal(err)
	}
	f.step(0)
	if _, err := f.st.PutWorkerSetting(ctx, store.WorkerSetting{Enabled: true, RolloutPercent: 100, Reason: "on", UpdatedBy: "t"}); err != nil {
		t.Fatal(err)
	}
	f.step(0)
	f.step(20 * time.Second)
	for _, st := range f.ctl.Triggers() {
		if st.Name == "worker_crashes" && st.Threshold != "> 3 in 10m0s" {
			t.Fatalf("crash threshold %q, want the configured window: > 3 in 10m0s", st.Threshold)
		}
	}
}

// TestRollforwardWaitsForCleanWindows: after a rollback, a roll-forward is
// refused (ErrTooSoon, no record) until ROLLFORWARD_CLEAN_WINDOWS windows
// without an unclean reading have passed; the controller's readings in
// rollback mode (here Redis down) restart the count; force with a reason
// goes on and says so in the record.
func TestRollforwardWaitsForCleanWindows(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "a", nil, nil)
	opt, err := durable.RedisOpt(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	side := durable.NewSide(opt)
	t.Cleanup(func() { side.Close() })
	svc := rollback.New(f.st, side, slog.New(slog.NewTextHandler(io.Discard, nil)))
	svc.FlagRefresh, svc.Clock = 0, f.clk
	svc.CleanWindows, svc.CleanWindow = 3, 5*time.Minute
	if _, err := svc.Rollback(ctx, rollback.Request{Reason: "incident", Actor: "op"}, nil); err != nil {
		t.Fatal(err)
	}
	forward := func(force bool, reason string) (store.AuditRecord, error) {
		return svc.Rollforward(ctx, 10, rollback.Request{Reason: reason, Actor: "op", Force: force}, nil)
	}
	f.step(0) // the controller leads; its readings are clean
	f.clk.Advance(10 * time.Minute)
	f.probe.redisUp = false
	f.step(0) // Redis down in rollback mode: the count starts again
	f.probe.redisUp = true
	f.step(14 * time.Minute) // two clean windows since
	if _, err := forward(false, "fixed"); !errors.Is(err, rollback.ErrTooSoon) || !strings.Contains(err.Error(), "redis_unreachable down") {
		t.Fatalf("roll-forward 2 windows after Redis was down: %v, want ErrTooSoon naming it", err)
	}
	if n := len(f.rollbacks(t)); n != 1 {
		t.Fatalf("a refused roll-forward left a record: %d records", n)
	}
	if _, err := forward(true, ""); err == nil {
		t.Fatal("a forced roll-forward without a reason went through")
	}
	rec, err := forward(true, "the customer needs it now")
	if err != nil || len(rec.Actions) == 0 || !strings.Contains(strings.Join(rec.Actions, " "), "Forced before the clean windows") {
		t.Fatalf("forced roll-forward: %+v %v", rec, err)
	}
	if _, err := svc.Rollback(ctx, rollback.Request{Reason: "again", Actor: "op"}, nil); err != nil {
		t.Fatal(err)
	}
	f.step(15 * time.Minute) // three clean windows
	if _, err := forward(false, "clean"); err != nil {
		t.Fatalf("roll-forward after three clean windows: %v", err)
	}
}
