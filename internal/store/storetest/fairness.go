package storetest

import (
	"errors"
	"fmt"
	"sync"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// fairnessTests: claims under a cap of running jobs per tenant (issue 17).
// A claim never takes a tenant past its cap, gives a free slot to the tenant
// with the fewest running jobs, and refuses a dispatch of a tenant at its cap
// without touching the job.
var fairnessTests = []test{
	{"ClaimBatchSkipsTenantsAtTheirCap", testClaimBatchSkipsCapped},
	{"ClaimBatchPrefersTheFewestRunning", testClaimBatchFewestRunning},
	{"TenantCapPerOwnerAndBackend", testTenantCapScope},
	{"ConcurrentClaimsKeepTheCap", testConcurrentClaimsKeepTheCap},
	{"ClaimDispatchRefusesATenantAtItsCap", testClaimDispatchAtCap},
	{"GroupedDispatchClaimsKeepTheCap", testGroupedDispatchClaimsKeepTheCap},
}

const bg = job.BackendBackgroundTasks

// createN creates n background jobs of project and returns their ids, oldest
// first.
func (f *fixture) createN(project string, n int, backend job.Backend) []string {
	f.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = f.create(project, "", backend).ID
	}
	return ids
}

// claimCapped claims up to n background jobs for owner under o and returns
// the ids it took.
func (f *fixture) claimCapped(owner string, n int, o store.ClaimOptions) []string {
	f.t.Helper()
	jobs, err := f.s.ClaimBatch(f.ctx, bg, owner, lease, n, "", o)
	if err != nil {
		f.t.Fatalf("claim: %v", err)
	}
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		if j.Status != job.StatusRunning || j.LeaseOwner != owner {
			f.t.Fatalf("claimed %+v", j)
		}
		ids[i] = j.ID
	}
	return ids
}

// finish completes a running job of owner.
func (f *fixture) finish(id, owner string) {
	f.t.Helper()
	j, err := f.s.GetJob(f.ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.s.Complete(f.ctx, job.Lease{Dispatch: j.Dispatch(), Owner: owner}, store.Completion{Result: []byte(`{}`)}); err != nil {
		f.t.Fatalf("complete %s: %v", id, err)
	}
}

func same(got []string, want ...string) bool {
	return fmt.Sprint(got) == fmt.Sprint(want)
}

// testClaimBatchSkipsCapped: tenant a's long queue comes first, but a claim
// for more than a's cap takes only the cap of a's jobs and then b's; while a
// is at its cap nothing of a's is taken, and a finished run of a's frees a
// slot for a's next job. The open server's projects (no tenant) have no cap.
func testClaimBatchSkipsCapped(f *fixture) {
	a := f.createN("a/p1", 5, bg)
	b := f.create("b/p1", "", bg).ID
	capTwo := store.ClaimOptions{TenantMaxRunning: 2}

	if got := f.claimCapped("w", 3, capTwo); !same(got, a[0], a[1], b) {
		f.t.Fatalf("first claim took %v, want a's two oldest and b's %v", got, []string{a[0], a[1], b})
	}
	open := f.createN("p1", 3, bg)
	if got := f.claimCapped("w", 10, capTwo); !same(got, open...) {
		f.t.Fatalf("with a at its cap a claim took %v, want only the open server's %v", got, open)
	}
	if got := f.claimCapped("w", 10, capTwo); len(got) != 0 {
		f.t.Fatalf("a at its cap: a claim took %v", got)
	}
	for _, id := range a[2:] {
		if j, _ := f.s.GetJob(f.ctx, id); j.Status != job.StatusQueued || j.Attempt != 0 || len(f.events(id)) != 1 {
			f.t.Fatalf("a job passed over is not as it was: %+v", j)
		}
	}
	f.finish(a[0], "w")
	if got := f.claimCapped("w", 10, capTwo); !same(got, a[2]) {
		f.t.Fatalf("after one of a's runs ended a claim took %v, want a's next %s", got, a[2])
	}
	// Without a cap the claim is as it always was.
	if got := f.claimCapped("w", 10, store.ClaimOptions{}); !same(got, a[3], a[4]) {
		f.t.Fatalf("uncapped claim took %v", got)
	}
}

// testClaimBatchFewestRunning: among the oldest queued jobs, a free slot goes
// to the tenant with the fewest running jobs, and a batch spreads over
// tenants in turn.
func testClaimBatchFewestRunning(f *fixture) {
	capFour := store.ClaimOptions{TenantMaxRunning: 4}
	first := f.create("a/p1", "", bg).ID
	if got := f.claimCapped("w", 1, capFour); !same(got, first) {
		f.t.Fatalf("claim took %v", got)
	}
	a := f.createN("a/p1", 2, bg)
	b := f.createN("b/p1", 2, bg)
	// Loads if each ran: a's 2 and 3, b's 1 and 2.
	if got := f.claimCapped("w", 2, capFour); !same(got, a[0], b[0]) {
		f.t.Fatalf("claim took %v, want b's oldest (b runs nothing) and a's oldest (a runs one, the same as b then): %v",
			got, []string{a[0], b[0]})
	}
	if got := f.claimCapped("w", 1, capFour); !same(got, b[1]) {
		f.t.Fatalf("claim took %v, want b's %s (b runs one, a two)", got, b[1])
	}
}

// testTenantCapScope: a cap counts the claim's backend only, and with
// PerOwner the claiming owner's jobs only.
func testTenantCapScope(f *fixture) {
	d := f.createN("a/p1", 2, job.BackendDurable)
	for _, id := range d {
		if _, err := f.s.ClaimDispatch(f.ctx, job.Dispatch{JobID: id, Epoch: 1}, "w1", lease); err != nil {
			f.t.Fatal(err)
		}
	}
	a := f.createN("a/p1", 4, bg)
	capTwo := store.ClaimOptions{TenantMaxRunning: 2}
	if got := f.claimCapped("w1", 10, capTwo); !same(got, a[0], a[1]) {
		f.t.Fatalf("a's durable jobs counted against its background cap: took %v", got)
	}
	perOwner := store.ClaimOptions{TenantMaxRunning: 2, PerOwner: true}
	if got := f.claimCapped("w1", 10, perOwner); len(got) != 0 {
		f.t.Fatalf("w1 runs a's cap, yet took %v", got)
	}
	if got := f.claimCapped("w2", 10, perOwner); !same(got, a[2], a[3]) {
		f.t.Fatalf("w2 runs nothing of a's, took %v", got)
	}
}

// testConcurrentClaimsKeepTheCap: claimers that race for one tenant's queue
// under a cap counted over all of them never run more than the cap.
func testConcurrentClaimsKeepTheCap(f *fixture) {
	f.createN("a/p1", 30, bg)
	f.createN("b/p1", 30, bg)
	const capped = 3
	o := store.ClaimOptions{TenantMaxRunning: capped}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				if _, err := f.s.ClaimBatch(f.ctx, bg, fmt.Sprintf("w%d", w), lease, 2, "", o); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		f.t.Fatal(err)
	}
	for _, tenant := range []string{"a", "b"} {
		n, err := f.s.CountJobs(f.ctx, store.JobFilter{Tenant: &tenant, Status: job.StatusRunning})
		if err != nil || n != capped {
			f.t.Fatalf("tenant %s runs %d jobs (%v), want its cap %d", tenant, n, err, capped)
		}
	}
}

// testClaimDispatchAtCap: a durable dispatch of a tenant at its cap is
// refused with ErrTenantAtCap and the job as it is — still queued under the
// same epoch, its attempt not counted, no event — and claimed once a run of
// the tenant ends; a stale dispatch is still stale, and another tenant's is
// claimed.
func testClaimDispatchAtCap(f *fixture) {
	a := f.createN("a/p1", 3, job.BackendDurable)
	b := f.create("b/p1", "", job.BackendDurable)
	o := store.ClaimOptions{TenantMaxRunning: 2}
	claim := func(id string, epoch int64) (job.Job, error) {
		return f.s.ClaimDispatch(f.ctx, job.Dispatch{JobID: id, Epoch: epoch}, "w", lease, o)
	}
	for _, id := range a[:2] {
		if _, err := claim(id, 1); err != nil {
			f.t.Fatalf("claim %s: %v", id, err)
		}
	}
	j, err := claim(a[2], 1)
	if !errors.Is(err, store.ErrTenantAtCap) {
		f.t.Fatalf("third of a's jobs under a cap of 2: %v, want ErrTenantAtCap", err)
	}
	if j.ID != a[2] || j.Status != job.StatusQueued || j.DispatchEpoch != 1 || j.Attempt != 0 || len(f.events(a[2])) != 1 {
		f.t.Fatalf("refused job: %+v, want it queued as it was", j)
	}
	if _, err := claim(a[2], 2); !errors.Is(err, job.ErrStaleLease) {
		f.t.Fatalf("a dispatch of a future epoch: %v, want ErrStaleLease", err)
	}
	if got, err := claim(b.ID, 1); err != nil || got.Status != job.StatusRunning {
		f.t.Fatalf("b below its cap: %+v %v", got, err)
	}
	f.finish(a[0], "w")
	if got, err := claim(a[2], 1); err != nil || got.Attempt != 1 {
		f.t.Fatalf("a below its cap again: %+v %v", got, err)
	}
}

// testGroupedDispatchClaimsKeepTheCap: dispatches of one tenant claimed at
// once (one group commit) take the cap between them, the oldest first, and
// the rest are refused.
func testGroupedDispatchClaimsKeepTheCap(f *fixture) {
	a := f.createN("a/p1", 12, job.BackendDurable)
	o := store.ClaimOptions{TenantMaxRunning: 3}
	var wg sync.WaitGroup
	var mu sync.Mutex
	claimed, refused := 0, 0
	for _, id := range a {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.s.ClaimDispatch(f.ctx, job.Dispatch{JobID: id, Epoch: 1}, "w", lease, o)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				claimed++
			case errors.Is(err, store.ErrTenantAtCap):
				refused++
			default:
				f.t.Errorf("claim %s: %v", id, err)
			}
		}()
	}
	wg.Wait()
	if claimed != 3 || refused != 9 {
		f.t.Fatalf("claimed %d and refused %d of 12 dispatches under a cap of 3", claimed, refused)
	}
}
