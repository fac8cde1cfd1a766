package storetest

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// migrationTests: moving queued jobs between backends (what a rollback
// does), and the records it leaves: audit records and the migration_failed
// list.
var migrationTests = []test{
	{"MigrateQueuedBumpsEpochs", testMigrateQueued},
	{"AuditsAndMigrationFailures", testAuditsAndMigrationFailures},
}

func testMigrateQueued(f *fixture) {
	var ids []string
	for range 5 {
		ids = append(ids, f.create("p1", "", job.BackendDurable).ID)
	}
	running, err := f.s.ClaimDispatch(f.ctx, job.Dispatch{JobID: ids[0], Epoch: 1}, "w", lease)
	if err != nil {
		f.t.Fatal(err)
	}
	moved, err := f.s.MigrateQueued(f.ctx, job.BackendDurable, job.BackendBackgroundTasks, nil, 100)
	if err != nil || len(moved) != 4 {
		f.t.Fatalf("migrated %d (%v), want the 4 queued ones", len(moved), err)
	}
	for _, j := range moved {
		if j.Backend != job.BackendBackgroundTasks || j.DispatchEpoch != 2 || j.Status != job.StatusQueued {
			f.t.Fatalf("migrated job %+v", j)
		}
		if evs := f.events(j.ID); evs[len(evs)-1].Stage != "migrated" {
			f.t.Fatalf("no migration event: %+v", evs)
		}
		// The old dispatch is stale now.
		if _, err := f.s.ClaimDispatch(f.ctx, job.Dispatch{JobID: j.ID, Epoch: 1}, "w", lease); !errors.Is(err, job.ErrStaleLease) {
			f.t.Fatalf("old dispatch of a migrated job: %v", err)
		}
	}
	if got, _ := f.s.GetJob(f.ctx, running.ID); got.Backend != job.BackendDurable || got.Status != job.StatusRunning {
		f.t.Fatalf("a running job was migrated: %+v", got)
	}
	again, _ := f.s.MigrateQueued(f.ctx, job.BackendDurable, job.BackendBackgroundTasks, nil, 100)
	if len(again) != 0 {
		f.t.Fatalf("a second migration moved %d", len(again))
	}
	back, _ := f.s.MigrateQueued(f.ctx, job.BackendBackgroundTasks, job.BackendDurable, []string{ids[1]}, 1)
	if len(back) != 1 || back[0].ID != ids[1] || back[0].DispatchEpoch != 3 {
		f.t.Fatalf("migrating one job back: %+v", back)
	}
	bumped, err := f.s.BumpEpoch(f.ctx, job.Dispatch{JobID: ids[1], Epoch: 3})
	if err != nil || bumped.DispatchEpoch != 4 {
		f.t.Fatalf("bump: %+v %v", bumped, err)
	}
	if _, err := f.s.BumpEpoch(f.ctx, job.Dispatch{JobID: ids[1], Epoch: 3}); !errors.Is(err, job.ErrStaleLease) {
		f.t.Fatalf("bumping a stale epoch: %v", err)
	}
}

// testAuditsAndMigrationFailures: audit records are kept as written and
// listed newest first; the migration_failed list takes, lists and forgets
// its entries.
func testAuditsAndMigrationFailures(f *fixture) {
	rec := store.AuditRecord{
		ID:           "r1",
		Kind:         "rollback",
		Trigger:      "manual",
		Reason:       "why",
		Actor:        "me",
		Status:       "completed",
		Evidence:     json.RawMessage(`{"fired":"x"}`),
		Actions:      []string{"a", "b"},
		JobsMigrated: 3,
		StartedAt:    f.clk.Now(),
		FinishedAt:   f.clk.Now(),
	}
	if err := f.s.InsertAudit(f.ctx, rec); err != nil {
		f.t.Fatal(err)
	}
	got, err := f.s.GetAudit(f.ctx, "r1")
	if err != nil || got.JobsMigrated != 3 || len(got.Actions) != 2 || string(got.Evidence) != `{"fired":"x"}` {
		f.t.Fatalf("audit %+v %v", got, err)
	}
	if _, err := f.s.GetAudit(f.ctx, "nope"); !errors.Is(err, job.ErrNotFound) {
		f.t.Fatalf("unknown audit: %v", err)
	}
	f.clk.Advance(time.Minute)
	later := rec
	later.ID, later.Kind, later.StartedAt, later.FinishedAt = "r2", "rollforward", f.clk.Now(), f.clk.Now()
	if err := f.s.InsertAudit(f.ctx, later); err != nil {
		f.t.Fatal(err)
	}
	if all, err := f.s.ListAudits(f.ctx, 10); err != nil || len(all) != 2 || all[0].ID != "r2" || all[1].ID != "r1" {
		f.t.Fatalf("audits %+v (%v), want r2 then r1, newest first", all, err)
	}
	if newest, _ := f.s.ListAudits(f.ctx, 1); len(newest) != 1 || newest[0].ID != "r2" {
		f.t.Fatalf("audits with limit 1: %+v, want r2", newest)
	}

	failure := store.MigrationFailure{
		JobID:  "j1",
		Source: job.BackendDurable,
		Target: job.BackendBackgroundTasks,
		Reason: "r",
	}
	if err := f.s.AddMigrationFailure(f.ctx, failure); err != nil {
		f.t.Fatal(err)
	}
	if fs, _ := f.s.ListMigrationFailures(f.ctx, 10); len(fs) != 1 || fs[0].Reason != "r" {
		f.t.Fatalf("dead letters %+v", fs)
	}
	f.s.DeleteMigrationFailure(f.ctx, "j1")
	if fs, _ := f.s.ListMigrationFailures(f.ctx, 10); len(fs) != 0 {
		f.t.Fatalf("dead letter not deleted: %+v", fs)
	}
}
