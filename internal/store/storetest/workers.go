package storetest

import (
	"reflect"
	"time"

	"github.com/scriptgen/scriptgen/internal/store"
)

// workerTests: the registry of worker processes.
var workerTests = []test{
	{"WorkerRegistry", testWorkerRegistry},
	{"ReplicaRegistry", testReplicaRegistry},
	{"WorkerFinishedRuns", testWorkerFinishedRuns},
}

// testWorkerFinishedRuns: the finished-run counts a worker's or a replica's
// heartbeat writes are read back by process id, for both roles in one read;
// each beat replaces the previous counts; a process registered but not beaten
// yet reads {}; one silent since before the window is left out.
func testWorkerFinishedRuns(f *fixture) {
	for _, p := range []store.WorkerProcess{
		{ID: "old", Role: "worker", Host: "h", PID: 1},
		{ID: "w1", Role: "worker", Host: "h", PID: 2},
		{ID: "s1", Role: "serve", Host: "h", PID: 3, Address: "a:1"},
	} {
		if err := f.s.RegisterWorker(f.ctx, p); err != nil {
			f.t.Fatal(err)
		}
	}
	if err := f.s.HeartbeatWorker(f.ctx, "old", store.RunCounts{"succeeded": 99}); err != nil {
		f.t.Fatal(err)
	}
	f.clk.Advance(time.Minute)
	since := f.clk.Now()
	if err := f.s.HeartbeatWorker(f.ctx, "w1", store.RunCounts{"succeeded": 3, "failed": 1}); err != nil {
		f.t.Fatal(err)
	}
	f.clk.Advance(time.Second)
	if err := f.s.HeartbeatWorker(f.ctx, "w1", store.RunCounts{"succeeded": 12, "failed": 1, "retry": 1 << 40}); err != nil {
		f.t.Fatal(err)
	}
	if err := f.s.HeartbeatReplica(f.ctx, "s1", 2, store.RunCounts{"dropped": 2}); err != nil {
		f.t.Fatal(err)
	}
	got, err := f.s.FinishedRuns(f.ctx, since)
	if err != nil {
		f.t.Fatal(err)
	}
	want := map[string]store.RunCounts{
		"w1": {"succeeded": 12, "failed": 1, "retry": 1 << 40},
		"s1": {"dropped": 2},
	}
	if !reflect.DeepEqual(got, want) {
		f.t.Fatalf("finished runs since %v: %v, want %v (old left out)", since, got, want)
	}

	// A replica's beat without counts (nil) writes {}.
	if err := f.s.HeartbeatReplica(f.ctx, "s1", 2, nil); err != nil {
		f.t.Fatal(err)
	}
	got, err = f.s.FinishedRuns(f.ctx, time.Time{})
	if err != nil {
		f.t.Fatal(err)
	}
	if r, ok := got["s1"]; !ok || len(r) != 0 || !reflect.DeepEqual(got["old"], store.RunCounts{"succeeded": 99}) || len(got) != 3 {
		f.t.Fatalf("finished runs of all: %v, want s1 {} and old 99 succeeded among 3", got)
	}
}

// testReplicaRegistry: a serving replica registers with its address and
// build, reports the flag revision it applied with each heartbeat, and is
// listed under its own role only.
func testReplicaRegistry(f *fixture) {
	r := store.WorkerProcess{ID: "serve-1", Role: "serve", Host: "h", PID: 2, Address: "10.0.0.7:8002", Version: "v1.2.3", FlagRevision: 4}
	if err := f.s.RegisterWorker(f.ctx, r); err != nil {
		f.t.Fatal(err)
	}
	if err := f.s.RegisterWorker(f.ctx, store.WorkerProcess{ID: "worker-1", Role: "worker", Host: "h", PID: 3}); err != nil {
		f.t.Fatal(err)
	}
	f.clk.Advance(time.Second)
	if err := f.s.HeartbeatReplica(f.ctx, "serve-1", 5, nil); err != nil {
		f.t.Fatal(err)
	}
	ws, err := f.s.ListWorkers(f.ctx, "serve", time.Time{})
	if err != nil || len(ws) != 1 {
		f.t.Fatalf("replicas: %+v %v, want serve-1 alone", ws, err)
	}
	got := ws[0]
	if got.ID != "serve-1" || got.Address != r.Address || got.Version != r.Version || got.FlagRevision != 5 ||
		!got.HeartbeatAt.Equal(f.clk.Now()) || got.StartedAt.Equal(got.HeartbeatAt) {
		f.t.Fatalf("replica read back: %+v, want %+v at revision 5, beaten at %v", got, r, f.clk.Now())
	}
}

func testWorkerRegistry(f *fixture) {
	for _, id := range []string{"old", "live", "stopped"} {
		if err := f.s.RegisterWorker(f.ctx, store.WorkerProcess{ID: id, Role: "worker", Host: "h", PID: 1}); err != nil {
			f.t.Fatal(err)
		}
	}
	f.clk.Advance(25 * time.Hour)
	f.s.HeartbeatWorker(f.ctx, "live", nil)
	f.s.HeartbeatWorker(f.ctx, "stopped", nil)
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
