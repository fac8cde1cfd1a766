package storetest

import (
	"errors"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// leadershipTests: one holder of a named leadership at a time, taken over
// when it expires or is given up.
var leadershipTests = []test{
	{"Leadership", testLeadership},
	{"LeaseEpochs", testLeaseEpochs},
	{"FencedWrites", testFencedWrites},
}

func testLeadership(f *fixture) {
	if ok, err := f.s.AcquireLeadership(f.ctx, "c", "a", lease); !ok || err != nil {
		f.t.Fatalf("a takes the free leadership: %v %v", ok, err)
	}
	if ok, _ := f.s.AcquireLeadership(f.ctx, "c", "b", lease); ok {
		f.t.Fatal("b took a held leadership")
	}
	if ok, _ := f.s.AcquireLeadership(f.ctx, "c", "a", lease); !ok {
		f.t.Fatal("a could not renew")
	}
	f.clk.Advance(lease + time.Second)
	if ok, _ := f.s.AcquireLeadership(f.ctx, "c", "b", lease); !ok {
		f.t.Fatal("b did not take over an expired leadership")
	}
	// a cannot give up what b holds; b's release frees it at once.
	if err := f.s.ReleaseLeadership(f.ctx, "c", "a"); err != nil {
		f.t.Fatal(err)
	}
	if ok, _ := f.s.AcquireLeadership(f.ctx, "c", "a", lease); ok {
		f.t.Fatal("a's release took b's leadership")
	}
	if err := f.s.ReleaseLeadership(f.ctx, "c", "b"); err != nil {
		f.t.Fatal(err)
	}
	if ok, _ := f.s.AcquireLeadership(f.ctx, "c", "a", lease); !ok {
		f.t.Fatal("a could not take a leadership released before it expired")
	}
}

// testLeaseEpochs: a renewal keeps the term's epoch, even after the lease
// expired or was released when no one else led in between; a takeover starts
// the next.
func testLeaseEpochs(f *fixture) {
	acquire := func(holder string) (int64, bool) {
		e, ok, err := f.s.AcquireLease(f.ctx, "c", holder, lease)
		if err != nil {
			f.t.Fatal(err)
		}
		return e, ok
	}
	if e, ok := acquire("a"); !ok || e != 1 {
		f.t.Fatalf("a's first term: %d %v, want 1", e, ok)
	}
	if e, _ := acquire("a"); e != 1 {
		f.t.Fatalf("a's renewal moved the epoch to %d", e)
	}
	if e, ok := acquire("b"); ok || e != 0 {
		f.t.Fatalf("b got term %d of a held leadership", e)
	}
	f.clk.Advance(lease + time.Second)
	if e, ok := acquire("b"); !ok || e != 2 {
		f.t.Fatalf("b's takeover: %d %v, want term 2", e, ok)
	}
	if err := f.s.ReleaseLeadership(f.ctx, "c", "b"); err != nil {
		f.t.Fatal(err)
	}
	if e, ok := acquire("b"); !ok || e != 2 {
		f.t.Fatalf("b after its own release: %d %v, want its term 2", e, ok)
	}
	if err := f.s.ReleaseLeadership(f.ctx, "c", "b"); err != nil {
		f.t.Fatal(err)
	}
	if e, ok := acquire("a"); !ok || e != 3 {
		f.t.Fatalf("a after b's release: %d %v, want term 3", e, ok)
	}
}

// testFencedWrites: every fenced write of a deposed leader is refused with
// ErrFenced and changes nothing; the current term's go through.
func testFencedWrites(f *fixture) {
	ea, _, err := f.s.AcquireLease(f.ctx, "c", "a", lease)
	if err != nil {
		f.t.Fatal(err)
	}
	asA := store.WithFence(f.ctx, store.Fence{Name: "c", Holder: "a", Epoch: ea})
	q := f.create("p1", "k1", job.BackendDurable)
	if _, err := f.s.PutWorkerSetting(asA, store.WorkerSetting{Enabled: true, RolloutPercent: 50, Reason: "a leads"}); err != nil {
		f.t.Fatalf("the leader's write was refused: %v", err)
	}
	f.clk.Advance(lease + time.Second)
	eb, ok, err := f.s.AcquireLease(f.ctx, "c", "b", lease)
	if err != nil || !ok {
		f.t.Fatalf("b takes over: %v %v", ok, err)
	}
	late := []struct {
		name  string
		write func() error
	}{
		{"flag", func() error {
			_, err := f.s.PutWorkerSetting(asA, store.WorkerSetting{Reason: "a's late rollback"})
			return err
		}},
		{"migrate", func() error {
			_, err := f.s.MigrateQueued(asA, job.BackendDurable, job.BackendBackgroundTasks, nil, 10)
			return err
		}},
		{"audit", func() error {
			return f.s.InsertAudit(asA, store.AuditRecord{ID: "late", Kind: "rollback", Status: "completed", LeaderEpoch: ea})
		}},
		{"dead-letter", func() error {
			return f.s.AddMigrationFailure(asA, store.MigrationFailure{JobID: q.ID, Source: job.BackendDurable, Target: job.BackendBackgroundTasks})
		}},
	}
	for _, w := range late {
		if err := w.write(); !errors.Is(err, store.ErrFenced) {
			f.t.Fatalf("a's late %s after b took over: %v, want ErrFenced", w.name, err)
		}
	}
	if w, _ := f.s.GetWorkerSetting(f.ctx); !w.Enabled || w.RolloutPercent != 50 {
		f.t.Fatalf("a's late flag write went through: %+v", w)
	}
	if j, _ := f.s.GetJob(f.ctx, q.ID); j.Backend != job.BackendDurable || j.DispatchEpoch != 1 {
		f.t.Fatalf("a's late migration moved the job: %+v", j)
	}
	if recs, _ := f.s.ListAudits(f.ctx, 10); len(recs) != 0 {
		f.t.Fatalf("a's late audit record was saved: %+v", recs)
	}
	if fs, _ := f.s.ListMigrationFailures(f.ctx, 10); len(fs) != 0 {
		f.t.Fatalf("a's late dead-letter entry was saved: %+v", fs)
	}
	asB := store.WithFence(f.ctx, store.Fence{Name: "c", Holder: "b", Epoch: eb})
	if err := f.s.InsertAudit(asB, store.AuditRecord{ID: "b1", Kind: "rollback", Status: "completed", LeaderEpoch: eb}); err != nil {
		f.t.Fatalf("the new leader's record was refused: %v", err)
	}
	if rec, err := f.s.GetAudit(f.ctx, "b1"); err != nil || rec.LeaderEpoch != eb {
		f.t.Fatalf("record %+v %v, want leader epoch %d", rec, err, eb)
	}
}
