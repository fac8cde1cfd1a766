package storetest

import (
	"errors"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// deleteProjectTests: the reserved project of `scriptgen verify` can be
// emptied, and nothing of another project goes with it.
var deleteProjectTests = []test{
	{"DeleteProject", testDeleteProject},
	{"RetryJob", testRetryJob},
}

func testDeleteProject(f *fixture) {
	keep := f.create("p1", "k1", job.BackendBackgroundTasks)
	gone := f.create(job.VerifyProject, "k2", job.BackendBackgroundTasks)
	for range 2 { // keep, then gone: claims take the oldest first
		c := f.claim(job.BackendBackgroundTasks, "w")
		l := job.Lease{Dispatch: job.Dispatch{JobID: c.ID, Epoch: c.DispatchEpoch}, Owner: "w"}
		if err := f.s.CheckpointScript(f.ctx, l, 0, "INT. ROOM"); err != nil {
			f.t.Fatal(err)
		}
		if _, err := f.s.Complete(f.ctx, l, f.episode(c)); err != nil {
			f.t.Fatal(err)
		}
	}
	d, err := f.s.DeleteProject(f.ctx, job.VerifyProject)
	if err != nil || d != (store.ProjectDeletion{Jobs: 1, Episodes: 1}) {
		f.t.Fatalf("DeleteProject: %+v %v, want 1 job and 1 episode", d, err)
	}
	if _, err := f.s.GetJob(f.ctx, gone.ID); err == nil {
		f.t.Fatal("the reserved project's job is still there")
	}
	if eps, _ := f.s.ListEpisodes(f.ctx, job.VerifyProject, 0, 10); len(eps) != 0 {
		f.t.Fatalf("its episodes are still there: %d", len(eps))
	}
	if _, err := f.s.GetJob(f.ctx, keep.ID); err != nil {
		f.t.Fatalf("the other project's job went too: %v", err)
	}
	if eps, _ := f.s.ListEpisodes(f.ctx, "p1", 0, 10); len(eps) != 1 {
		f.t.Fatalf("the other project's episodes: %d, want 1", len(eps))
	}
	// Its numbering starts afresh, so the next check's episode is 1 again.
	again := f.create(job.VerifyProject, "k3", job.BackendBackgroundTasks)
	c := f.claim(job.BackendBackgroundTasks, "w")
	l := job.Lease{Dispatch: job.Dispatch{JobID: c.ID, Epoch: c.DispatchEpoch}, Owner: "w"}
	if _, err := f.s.Complete(f.ctx, l, f.episode(c)); err != nil || c.ID != again.ID {
		f.t.Fatal(err)
	}
	if _, err := f.s.GetEpisode(f.ctx, job.VerifyProject, 1); err != nil {
		f.t.Fatalf("episode 1 of the emptied project: %v", err)
	}
}

// testRetryJob: a failed job is queued again with its attempts given back and
// the next epoch; one that has not failed is refused.
func testRetryJob(f *fixture) {
	q := f.create("p1", "k1", job.BackendBackgroundTasks)
	c := f.claim(job.BackendBackgroundTasks, "w")
	l := job.Lease{Dispatch: job.Dispatch{JobID: c.ID, Epoch: c.DispatchEpoch}, Owner: "w"}
	failed, err := f.s.Fail(f.ctx, l, "refused", false)
	if err != nil || failed.Status != job.StatusFailed {
		f.t.Fatal(failed.Status, err)
	}
	j, err := f.s.RetryJob(f.ctx, q.ID)
	if err != nil || j.Status != job.StatusQueued || j.Attempt != 0 || j.DispatchEpoch != failed.DispatchEpoch+1 {
		f.t.Fatalf("retry: %+v %v", j, err)
	}
	if _, err := f.s.RetryJob(f.ctx, q.ID); !errors.Is(err, store.ErrNotFailed) {
		f.t.Fatalf("retry of a queued job: %v, want ErrNotFailed", err)
	}
	if _, err := f.s.RetryJob(f.ctx, "nope"); !errors.Is(err, job.ErrNotFound) {
		f.t.Fatalf("retry of no job: %v, want ErrNotFound", err)
	}
}
