package rollback_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/durable"
	"github.com/scriptgen/scriptgen/internal/rollback"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/store/sqlite"
)

// registryProbe reads worker crashes the way the serving process does
// (server.WorkerCrashes: the registry's processes seen in the window, counted
// by durable.Count), on the fake clock.
type registryProbe struct {
	st  store.Store
	clk *clock.Fake
}

func (p *registryProbe) RedisUp(context.Context) bool { return true }
func (p *registryProbe) WorkerCrashes(ctx context.Context, window time.Duration) (int, error) {
	now := p.clk.Now()
	ws, err := p.st.ListWorkers(ctx, durable.RoleWorker, now.Add(-window))
	if err != nil {
		return 0, err
	}
	return durable.Count(ws, now).Crashed, nil
}
func (p *registryProbe) WorkersUp(ctx context.Context) (int, error) {
	now := p.clk.Now()
	ws, err := p.st.ListWorkers(ctx, durable.RoleWorker, now.Add(-time.Minute))
	if err != nil {
		return 0, err
	}
	return durable.Count(ws, now).Up, nil
}
func (p *registryProbe) QueueDelay(context.Context) (time.Duration, error) { return 0, nil }
func (p *registryProbe) MemoryPercent() (float64, error)                   { return 40, nil }
func (p *registryProbe) DurableEnabled() bool {
	w, _ := p.st.GetWorkerSetting(context.Background())
	return w.Enabled
}

// TestControllerDoesNotUndoARollforwardOnOldCrashes: four workers crash, the
// controller rolls back (right). The operator replaces the workers and rolls
// forward two minutes later. The crashed workers' registry entries are still
// in the 10-minute window; the controller used to count the same four crashes
// at its next tick, evidence older than the operator's decision, and roll
// back again. A crash after the roll-forward still counts (the last part).
func TestControllerDoesNotUndoARollforwardOnOldCrashes(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(time.Now())
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "c.db"), clk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := rollback.New(st, nil, log)
	svc.FlagRefresh, svc.Clock = 0, clk
	cfg := rollback.DefaultControllerConfig()
	cfg.Clock, cfg.HolderID = clk, "a"
	ctl := rollback.NewController(svc, &registryProbe{st: st, clk: clk}, st, cfg, log)

	// Four workers register, then die without a clean stop.
	for i := range 4 {
		if err := st.RegisterWorker(ctx, store.WorkerProcess{ID: fmt.Sprintf("old-%d", i), Role: durable.RoleWorker}); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(10 * time.Second)
	ctl.Tick(ctx)
	clk.Advance(10 * time.Second)
	ctl.Tick(ctx)
	recs, _ := st.ListAudits(ctx, 10)
	if len(recs) != 1 || recs[0].Trigger != "worker_crashes" {
		t.Fatalf("records %+v, want one rollback by worker_crashes", recs)
	}

	// Two minutes later: new, healthy workers; the operator rolls forward.
	clk.Advance(2 * time.Minute)
	for i := range 4 {
		if err := st.RegisterWorker(ctx, store.WorkerProcess{ID: fmt.Sprintf("new-%d", i), Role: durable.RoleWorker}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.PutWorkerSetting(ctx, store.WorkerSetting{Enabled: true, RolloutPercent: 100,
		Reason: "workers replaced", UpdatedBy: "operator"}); err != nil {
		t.Fatal(err)
	}
	for range 3 { // 15 s of ticks; the new workers keep beating
		clk.Advance(5 * time.Second)
		for i := range 4 {
			st.HeartbeatWorker(ctx, fmt.Sprintf("new-%d", i), nil)
		}
		ctl.Tick(ctx)
	}
	recs, _ = st.ListAudits(ctx, 10)
	w, _ := st.GetWorkerSetting(ctx)
	if len(recs) != 1 || !w.Enabled {
		t.Fatalf("%d rollbacks (setting now enabled=%v by %q): the controller undid the operator's roll-forward "+
			"on crashes that happened before it", len(recs), w.Enabled, w.UpdatedBy)
	}

	// The new workers die too: four crashes after the roll-forward fire, once
	// they have been counted for the trigger's ten seconds. A change of the
	// rollout meanwhile (the next step of a gradual roll-forward) is no new
	// switch-on and keeps them counted.
	clk.Advance(time.Minute)
	if _, err := st.PutWorkerSetting(ctx, store.WorkerSetting{Enabled: true, RolloutPercent: 50,
		Reason: "next step", UpdatedBy: "operator"}); err != nil {
		t.Fatal(err)
	}
	ctl.Tick(ctx)
	clk.Advance(10 * time.Second)
	ctl.Tick(ctx)
	recs, _ = st.ListAudits(ctx, 10)
	if len(recs) != 2 || recs[0].Trigger != "worker_crashes" {
		t.Fatalf("records %+v: want a second rollback by worker_crashes once the new workers crashed", recs)
	}
}
