package storetest

import (
	"errors"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// purgeTests: the retention purge (JOB_RETENTION) deletes finished jobs
// older than its cutoff with their events, a bounded batch at a time, and
// nothing else: not a job still queued or running, not one finished after
// the cutoff, not an episode.
var purgeTests = []test{
	{"PurgeDeletesOldFinishedJobsInBatches", testPurgeFinished},
	{"PurgeCursorStartsAfterTheLastBatch", testPurgeCursor},
}

// testPurgeCursor: batches sharing a cursor start after the last id chosen
// (not at the index's first entry again), so a job of an older id that
// finishes meanwhile is left to the next run, which starts from the beginning.
func testPurgeCursor(f *fixture) {
	f.create("p1", "late", bg)
	late := f.claim(bg, "w") // the oldest id, finished last
	var done []job.Job
	for _, key := range []string{"a", "b"} {
		f.create("p1", key, bg)
		j := f.claim(bg, "w")
		if _, err := f.s.Complete(f.ctx, j.Lease(), f.episode(j)); err != nil {
			f.t.Fatal(err)
		}
		done = append(done, j)
	}
	cutoff := f.clk.Now().Add(time.Hour)
	from := store.PurgeCursor{}
	if n, err := f.s.PurgeFinished(f.ctx, cutoff, 1, from); err != nil || n != 1 || from[job.StatusSucceeded] != done[0].ID {
		f.t.Fatalf("first batch: %d, %v, cursor %v; want %s", n, err, from, done[0].ID)
	}
	if _, err := f.s.Complete(f.ctx, late.Lease(), f.episode(late)); err != nil {
		f.t.Fatal(err)
	}
	if n, err := f.s.PurgeFinished(f.ctx, cutoff, 10, from); err != nil || n != 1 || from[job.StatusSucceeded] != done[1].ID {
		f.t.Fatalf("second batch: %d, %v, cursor %v; want only %s", n, err, from, done[1].ID)
	}
	if _, err := f.s.GetJob(f.ctx, late.ID); err != nil {
		f.t.Fatalf("the job behind the cursor: %v, want it kept for the next run", err)
	}
	if n, err := f.s.PurgeFinished(f.ctx, cutoff, 10, store.PurgeCursor{}); err != nil || n != 1 {
		f.t.Fatalf("a new run: %d, %v; want the late job", n, err)
	}
}

func testPurgeFinished(f *fixture) {
	t0 := f.clk.Now()
	done := func(key string) job.Job {
		f.create("p1", key, bg)
		j := f.claim(bg, "w")
		if _, err := f.s.Complete(f.ctx, j.Lease(), f.episode(j)); err != nil {
			f.t.Fatal(err)
		}
		return j
	}
	old1, old2 := done("k1"), done("k2")
	cancelled := f.create("p1", "k3", bg)
	if _, err := f.s.Cancel(f.ctx, cancelled.ID); err != nil {
		f.t.Fatal(err)
	}
	f.clk.Advance(time.Hour)
	young := done("k4")
	f.create("p1", "k5", bg)
	running := f.claim(bg, "w")
	queued := f.create("p1", "k6", bg)

	cutoff := t0.Add(30 * time.Minute)
	if n, err := f.s.PurgeFinished(f.ctx, t0.Add(-time.Minute), 10, nil); err != nil || n != 0 {
		f.t.Fatalf("purge before anything is old enough: %d, %v; want 0", n, err)
	}
	if n, err := f.s.PurgeFinished(f.ctx, cutoff, 2, nil); err != nil || n != 2 {
		f.t.Fatalf("first batch of 2: %d, %v", n, err)
	}
	if n, err := f.s.PurgeFinished(f.ctx, cutoff, 2, nil); err != nil || n != 1 {
		f.t.Fatalf("second batch: %d, %v; want the last old job", n, err)
	}
	if n, err := f.s.PurgeFinished(f.ctx, cutoff, 2, nil); err != nil || n != 0 {
		f.t.Fatalf("third batch: %d, %v; want nothing left", n, err)
	}
	for _, id := range []string{old1.ID, old2.ID, cancelled.ID} {
		if _, err := f.s.GetJob(f.ctx, id); !errors.Is(err, job.ErrNotFound) {
			f.t.Fatalf("purged job %s: %v, want ErrNotFound", id, err)
		}
		if evs := f.events(id); len(evs) != 0 {
			f.t.Fatalf("purged job %s kept %d events", id, len(evs))
		}
	}
	for _, want := range []struct {
		id     string
		status job.Status
	}{{young.ID, job.StatusSucceeded}, {running.ID, job.StatusRunning}, {queued.ID, job.StatusQueued}} {
		j, err := f.s.GetJob(f.ctx, want.id)
		if err != nil || j.Status != want.status || len(f.events(want.id)) == 0 {
			f.t.Fatalf("job %s after the purge: %+v %v, want it %s with its events", want.id, j, err, want.status)
		}
	}
	if eps, err := f.s.ListEpisodes(f.ctx, "p1", 0, 0); err != nil || len(eps) != 3 {
		f.t.Fatalf("episodes after the purge: %d %v, want all 3 kept", len(eps), err)
	}
	// A purged job's idempotency key is free again: a retry that late is a new job.
	if _, created, err := f.s.CreateJob(f.ctx, newJob("p1", "k1", bg)); err != nil || !created {
		f.t.Fatalf("key of a purged job: created=%v %v", created, err)
	}
}
