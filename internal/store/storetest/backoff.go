package storetest

import (
	"errors"
	"strings"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// backoffTests: a job queued again after a failed attempt is not claimed
// before its backoff has passed (JOB_BACKOFF_BASE, JOB_BACKOFF_CAP) — by a
// claim of its backend's queue, with or without a tenant cap, nor by the
// claim of its dispatch — and is once it has; a migration carries the delay,
// an operator's retry has none.
var backoffTests = []test{
	{"FailedAttemptWaitsItsBackoff", testFailedAttemptWaits},
	{"ExpiredLeaseWaitsItsBackoff", testExpiredLeaseWaits},
	{"DispatchClaimRefusedUntilDue", testDispatchClaimNotDue},
	{"MigrationKeepsTheBackoff", testMigrationKeepsBackoff},
	{"OperatorRetryRunsAtOnce", testOperatorRetryAtOnce},
}

var testBackoff = job.Backoff{Base: time.Second, Cap: 3 * time.Second}

// failedOnce creates a job of project on backend that may be tried
// attempts times, claims it and fails its first attempt.
func (f *fixture) failedOnce(project string, backend job.Backend, attempts int) job.Job {
	f.t.Helper()
	nj := newJob(project, "", backend)
	nj.MaxAttempts = attempts
	j, _, err := f.s.CreateJob(f.ctx, nj)
	if err != nil {
		f.t.Fatal(err)
	}
	j, err = f.s.ClaimDispatch(f.ctx, j.Dispatch(), "w", lease)
	if err != nil {
		f.t.Fatal(err)
	}
	j, err = f.s.Fail(f.ctx, j.Lease(), "boom", true)
	if err != nil || j.Status != job.StatusQueued {
		f.t.Fatalf("fail: %+v %v", j, err)
	}
	return j
}

// notClaimable checks that no claim of the background_tasks queue, capped
// or not, takes anything.
func (f *fixture) notClaimable(when string) {
	f.t.Helper()
	if j, err := f.s.ClaimNext(f.ctx, bg, "early", lease); !errors.Is(err, job.ErrNotFound) {
		f.t.Fatalf("%s: claimed %+v (%v) before its backoff passed", when, j, err)
	}
	if ids := f.claimCapped("early", 4, store.ClaimOptions{TenantMaxRunning: 2}); len(ids) != 0 {
		f.t.Fatalf("%s: a capped claim took %v before its backoff passed", when, ids)
	}
}

func testFailedAttemptWaits(f *fixture) {
	f.s.SetBackoff(testBackoff)
	start := f.clk.Now()
	j := f.failedOnce("t1/p1", bg, 4)
	if !j.RetryAt.Equal(start.Add(time.Second)) {
		f.t.Fatalf("retry_at %s, want %s", j.RetryAt, start.Add(time.Second))
	}
	evs := f.events(j.ID)
	if msg := evs[len(evs)-1].Message; !strings.Contains(msg, "boom") || !strings.HasSuffix(msg, "attempt 2 of 4 in 1s") {
		f.t.Fatalf("retry event says %q", msg)
	}
	if at, err := f.s.OldestQueuedAt(f.ctx, bg); err != nil || !at.IsZero() {
		f.t.Fatalf("a job in its backoff counts as waiting since %s (%v)", at, err)
	}
	// Each later attempt waits twice as long, up to the cap: 1s, 2s, 3s.
	for attempt, wait := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second} {
		f.clk.Advance(wait - time.Millisecond)
		f.notClaimable("1ms early")
		f.clk.Advance(time.Millisecond)
		if at, err := f.s.OldestQueuedAt(f.ctx, bg); err != nil || !at.Equal(f.clk.Now()) {
			f.t.Fatalf("a due job waits since %s, want since its retry_at %s (%v)", at, f.clk.Now(), err)
		}
		got := f.claim(bg, "w")
		if got.ID != j.ID || got.Attempt != attempt+2 || !got.RetryAt.IsZero() {
			f.t.Fatalf("claim when due: %+v", got)
		}
		failed, err := f.s.Fail(f.ctx, got.Lease(), "boom", true)
		if err != nil {
			f.t.Fatal(err)
		}
		if attempt+2 == 4 {
			if failed.Status != job.StatusFailed || !failed.RetryAt.IsZero() {
				f.t.Fatalf("out of attempts: %+v", failed)
			}
			break
		}
		next := []time.Duration{2 * time.Second, 3 * time.Second}[attempt]
		if !failed.RetryAt.Equal(f.clk.Now().Add(next)) {
			f.t.Fatalf("after attempt %d: retry_at %s, want in %s", attempt+2, failed.RetryAt.Sub(f.clk.Now()), next)
		}
		if got, _ := f.s.GetJob(f.ctx, j.ID); !got.RetryAt.Equal(failed.RetryAt) {
			f.t.Fatalf("stored retry_at %s, want %s", got.RetryAt, failed.RetryAt)
		}
	}
}

func testExpiredLeaseWaits(f *fixture) {
	f.s.SetBackoff(testBackoff)
	f.create("p1", "", bg)
	f.claim(bg, "dead")
	f.clk.Advance(lease + time.Second)
	expired, err := f.s.ExpireLeases(f.ctx)
	if err != nil || len(expired) != 1 || expired[0].Status != job.StatusQueued {
		f.t.Fatalf("expire: %+v %v", expired, err)
	}
	if want := f.clk.Now().Add(time.Second); !expired[0].RetryAt.Equal(want) {
		f.t.Fatalf("retry_at %s, want %s", expired[0].RetryAt, want)
	}
	evs := f.events(expired[0].ID)
	if msg := evs[len(evs)-1].Message; msg != "lease of dead expired; attempt 2 of 3 in 1s" {
		f.t.Fatalf("expiry event says %q", msg)
	}
	f.notClaimable("after the expiry")
	f.clk.Advance(time.Second)
	if got := f.claim(bg, "alive"); got.Attempt != 2 {
		f.t.Fatalf("claim when due: %+v", got)
	}
}

func testDispatchClaimNotDue(f *fixture) {
	f.s.SetBackoff(testBackoff)
	j := f.failedOnce("t1/p1", job.BackendDurable, 3)
	for _, opts := range [][]store.ClaimOptions{nil, {{TenantMaxRunning: 2}}} {
		got, err := f.s.ClaimDispatch(f.ctx, j.Dispatch(), "early", lease, opts...)
		if !errors.Is(err, store.ErrNotDue) || got.ID != j.ID || !got.RetryAt.Equal(j.RetryAt) || got.Status != job.StatusQueued {
			f.t.Fatalf("early claim %v: %+v %v, want ErrNotDue and the job", opts, got, err)
		}
	}
	// The refused claims changed nothing: the same dispatch is claimed
	// once due, and an older epoch's is still stale.
	f.clk.Advance(time.Second)
	if _, err := f.s.ClaimDispatch(f.ctx, job.Dispatch{JobID: j.ID, Epoch: j.DispatchEpoch - 1}, "old", lease); !errors.Is(err, job.ErrStaleLease) {
		f.t.Fatalf("old epoch: %v", err)
	}
	got, err := f.s.ClaimDispatch(f.ctx, j.Dispatch(), "w", lease)
	if err != nil || got.Attempt != 2 || got.DispatchEpoch != j.DispatchEpoch {
		f.t.Fatalf("claim when due: %+v %v", got, err)
	}
}

func testMigrationKeepsBackoff(f *fixture) {
	f.s.SetBackoff(testBackoff)
	j := f.failedOnce("p1", job.BackendDurable, 3)
	moved, err := f.s.MigrateQueued(f.ctx, job.BackendDurable, bg, nil, 100)
	if err != nil || len(moved) != 1 || !moved[0].RetryAt.Equal(j.RetryAt) {
		f.t.Fatalf("migrate: %+v %v, want retry_at %s kept", moved, err, j.RetryAt)
	}
	f.notClaimable("after a rollback")
	back, err := f.s.MigrateQueued(f.ctx, bg, job.BackendDurable, nil, 100)
	if err != nil || len(back) != 1 || !back[0].RetryAt.Equal(j.RetryAt) {
		f.t.Fatalf("migrate back: %+v %v", back, err)
	}
	if _, err := f.s.ClaimDispatch(f.ctx, back[0].Dispatch(), "early", lease); !errors.Is(err, store.ErrNotDue) {
		f.t.Fatalf("claim after a roll-forward: %v, want ErrNotDue", err)
	}
	f.clk.Advance(time.Second)
	if _, err := f.s.ClaimDispatch(f.ctx, back[0].Dispatch(), "w", lease); err != nil {
		f.t.Fatalf("claim when due: %v", err)
	}
}

func testOperatorRetryAtOnce(f *fixture) {
	f.s.SetBackoff(job.Backoff{Base: time.Hour, Cap: time.Hour})
	j := f.failedOnce("p1", bg, 2)
	f.clk.Advance(time.Hour)
	j = f.claim(bg, "w")
	if failed, err := f.s.Fail(f.ctx, j.Lease(), "boom", true); err != nil || failed.Status != job.StatusFailed {
		f.t.Fatalf("last attempt: %+v %v", failed, err)
	}
	retried, err := f.s.RetryJob(f.ctx, j.ID)
	if err != nil || !retried.RetryAt.IsZero() {
		f.t.Fatalf("retry: %+v %v", retried, err)
	}
	got := f.claim(bg, "w")
	if got.ID != j.ID || got.Attempt != 1 {
		f.t.Fatalf("claim after an operator's retry: %+v", got)
	}
	// The retried job's own failures wait again.
	again, err := f.s.Fail(f.ctx, got.Lease(), "boom", true)
	if err != nil || !again.RetryAt.Equal(f.clk.Now().Add(time.Hour)) {
		f.t.Fatalf("fail after the retry: %+v %v", again, err)
	}
}
