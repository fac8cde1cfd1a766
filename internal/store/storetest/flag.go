package storetest

import (
	"time"

	"github.com/scriptgen/scriptgen/internal/store"
)

// flagTests: the persisted worker setting behind the worker-system flag.
var flagTests = []test{
	{"WorkerSetting", testWorkerSetting},
}

// testWorkerSetting: the default until one is saved; a save is stamped with
// the store's clock and read back as saved; the next save replaces it.
func testWorkerSetting(f *fixture) {
	if w, err := f.s.GetWorkerSetting(f.ctx); err != nil || w != store.DefaultWorkerSetting {
		f.t.Fatalf("setting before any save: %+v (%v), want the default %+v", w, err, store.DefaultWorkerSetting)
	}
	off := store.WorkerSetting{
		Enabled:        false,
		RolloutPercent: 0,
		Reason:         "rollback: redis down",
		UpdatedBy:      "op",
	}
	saved, err := f.s.PutWorkerSetting(f.ctx, off)
	if err != nil || !saved.UpdatedAt.Equal(f.clk.Now()) || saved.Revision != 1 {
		f.t.Fatalf("save: %+v (%v), want it stamped %v", saved, err, f.clk.Now())
	}
	got, err := f.s.GetWorkerSetting(f.ctx)
	if err != nil || got.Enabled || got.RolloutPercent != 0 || got.Reason != off.Reason || got.UpdatedBy != "op" ||
		!got.UpdatedAt.Equal(saved.UpdatedAt) || got.Revision != 1 {
		f.t.Fatalf("setting read back: %+v (%v), want %+v", got, err, saved)
	}
	f.clk.Advance(time.Minute)
	on := store.WorkerSetting{
		Enabled:        true,
		RolloutPercent: 25,
		Reason:         "rollforward: fixed",
		UpdatedBy:      "other",
	}
	// Each save moves the revision on, so that replicas can say which one
	// they applied.
	if saved, err := f.s.PutWorkerSetting(f.ctx, on); err != nil || saved.Revision != 2 {
		f.t.Fatalf("second save: revision %d (%v), want 2", saved.Revision, err)
	}
	got, err = f.s.GetWorkerSetting(f.ctx)
	if err != nil || !got.Enabled || got.RolloutPercent != 25 || got.UpdatedBy != "other" || !got.UpdatedAt.Equal(f.clk.Now()) ||
		got.Revision != 2 {
		f.t.Fatalf("setting after the second save: %+v (%v), want %+v stamped %v", got, err, on, f.clk.Now())
	}
}
