package storetest

import (
	"errors"
	"fmt"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// leaseTests: what a lease's holder may do while it holds it, and what
// becomes of a job whose holder fails, gives it back or goes silent.
var leaseTests = []test{
	{"StaleHolderCannotFinish", testStaleHolder},
	{"FailRetriesThenFails", testFailRetries},
	{"ReleaseGivesAttemptBack", testRelease},
	{"ExpireLeases", testExpireLeases},
}

func testStaleHolder(f *fixture) {
	f.create("p1", "", job.BackendBackgroundTasks)
	j := f.claim(job.BackendBackgroundTasks, "dead")
	f.clk.Advance(lease + time.Second)
	expired, err := f.s.ExpireLeases(f.ctx)
	if err != nil || len(expired) != 1 || expired[0].Status != job.StatusQueued || expired[0].DispatchEpoch != 2 {
		f.t.Fatalf("expire: %+v %v", expired, err)
	}
	again := f.claim(job.BackendBackgroundTasks, "alive")
	if again.Attempt != 2 {
		f.t.Fatalf("second attempt numbered %d", again.Attempt)
	}
	for name, err := range map[string]error{
		"complete": func() error { _, err := f.s.Complete(f.ctx, j.Lease(), f.episode(j)); return err }(),
		"progress": f.s.ReportProgress(f.ctx, j.Lease(), store.Progress{Percent: 50}),
		"extend":   f.s.ExtendLease(f.ctx, j.Lease(), lease),
		"release":  f.s.Release(f.ctx, j.Lease(), "x"),
		"fail":     func() error { _, err := f.s.Fail(f.ctx, j.Lease(), "x", true); return err }(),
	} {
		if !errors.Is(err, job.ErrStaleLease) {
			f.t.Errorf("stale holder %s: %v, want ErrStaleLease", name, err)
		}
	}
	if _, err := f.s.Complete(f.ctx, again.Lease(), f.episode(again)); err != nil {
		f.t.Fatal(err)
	}
	if eps, _ := f.s.ListEpisodes(f.ctx, "p1", 0, 0); len(eps) != 1 {
		f.t.Fatalf("%d episodes, want exactly 1", len(eps))
	}
}

func testFailRetries(f *fixture) {
	f.create("p1", "", job.BackendBackgroundTasks)
	for attempt := 1; attempt <= job.DefaultMaxAttempts; attempt++ {
		j := f.claim(job.BackendBackgroundTasks, "w")
		got, err := f.s.Fail(f.ctx, j.Lease(), fmt.Sprintf("boom %d", attempt), true)
		if err != nil {
			f.t.Fatal(err)
		}
		want := job.StatusQueued
		if attempt == job.DefaultMaxAttempts {
			want = job.StatusFailed
		}
		if got.Status != want || got.Error != fmt.Sprintf("boom %d", attempt) || got.DispatchEpoch != int64(attempt+1) {
			f.t.Fatalf("after attempt %d: %+v, want %s", attempt, got, want)
		}
	}
	f.create("p1", "", job.BackendBackgroundTasks)
	j := f.claim(job.BackendBackgroundTasks, "w")
	if got, _ := f.s.Fail(f.ctx, j.Lease(), "bad input", false); got.Status != job.StatusFailed {
		f.t.Fatalf("permanent failure left the job %s", got.Status)
	}
}

func testRelease(f *fixture) {
	f.create("p1", "", job.BackendBackgroundTasks)
	j := f.claim(job.BackendBackgroundTasks, "w")
	if err := f.s.Release(f.ctx, j.Lease(), "shutting down"); err != nil {
		f.t.Fatal(err)
	}
	got, _ := f.s.GetJob(f.ctx, j.ID)
	if got.Status != job.StatusQueued || got.Attempt != 0 || got.DispatchEpoch != 2 || got.LeaseOwner != "" {
		f.t.Fatalf("released job: %+v", got)
	}
}

func testExpireLeases(f *fixture) {
	f.create("p1", "", job.BackendBackgroundTasks)
	f.create("p1", "", job.BackendBackgroundTasks)
	held := f.claim(job.BackendBackgroundTasks, "w")
	renewed := f.claim(job.BackendBackgroundTasks, "w")
	f.clk.Advance(lease / 2)
	if err := f.s.ExtendLease(f.ctx, renewed.Lease(), lease); err != nil {
		f.t.Fatal(err)
	}
	if exp, _ := f.s.ExpireLeases(f.ctx); len(exp) != 0 {
		f.t.Fatalf("expired %d live leases", len(exp))
	}
	f.clk.Advance(lease/2 + time.Second)
	exp, err := f.s.ExpireLeases(f.ctx)
	if err != nil || len(exp) != 1 || exp[0].ID != held.ID {
		f.t.Fatalf("expired %+v (%v), want only the unrenewed %s", exp, err, held.ID)
	}
	// Out of attempts: the expiry fails the job instead of requeueing it.
	for range job.DefaultMaxAttempts - 1 {
		f.claim(job.BackendBackgroundTasks, "w")
		f.clk.Advance(lease + time.Second)
		f.s.ExpireLeases(f.ctx)
	}
	got, _ := f.s.GetJob(f.ctx, held.ID)
	if got.Status != job.StatusFailed || got.Error == "" {
		f.t.Fatalf("job out of attempts: %+v", got)
	}
}
