package storetest

import (
	"time"

	"github.com/scriptgen/scriptgen/internal/store"
)

// workerTests: the registry of worker processes.
var workerTests = []test{
	{"WorkerRegistry", testWorkerRegistry},
}

func testWorkerRegistry(f *fixture) {
	for _, id := range []string{"old", "live", "stopped"} {
		if err := f.s.RegisterWorker(f.ctx, store.WorkerProcess{ID: id, Role: "worker", Host: "h", PID: 1}); err != nil {
			f.t.Fatal(err)
		}
	}
	f.clk.Advance(25 * time.Hour)
	f.s.HeartbeatWorker(f.ctx, "live")
	f.s.HeartbeatWorker(f.ctx, "stopped")
	f.s.StopWorker(f.ctx, "stopped")
	if err := f.s.PruneWorkers(f.ctx, f.clk.Now().Add(-24*time.Hour)); err != nil {
		f.t.Fatal(err)
	}
	ws, err := f.s.ListWorkers(f.ctx, "worker", time.Time{})
	if err != nil || len(ws) != 2 {
		f.t.Fatalf("workers after prune: %+v %v, want live and stopped", ws, err)
	}
	for _, w := range ws {
		if w.ID == "old" || (w.ID == "stopped") == w.StoppedAt.IsZero() || !w.HeartbeatAt.Equal(f.clk.Now()) {
			f.t.Fatalf("worker %+v", w)
		}
	}
}
