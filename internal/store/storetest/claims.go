package storetest

import (
	"errors"
	"fmt"
	"sync"

	"github.com/scriptgen/scriptgen/internal/job"
)

// claimTests: taking queued jobs, one at a time, in batches and by dispatch;
// each job is taken once, whatever the concurrency.
var claimTests = []test{
	{"ClaimOrderAndBackend", testClaimOrderAndBackend},
	{"ConcurrentClaimsTakeOnce", testConcurrentClaims},
	{"ClaimBatchTakesAtMostN", testClaimBatch},
	{"ClaimDispatchFencing", testClaimDispatchFencing},
}

func testClaimOrderAndBackend(f *fixture) {
	if _, err := f.s.ClaimNext(f.ctx, job.BackendBackgroundTasks, "w", lease); !errors.Is(err, job.ErrNotFound) {
		f.t.Fatalf("empty queue: %v, want ErrNotFound", err)
	}
	a := f.create("p1", "", job.BackendBackgroundTasks)
	d := f.create("p1", "", job.BackendDurable)
	b := f.create("p1", "", job.BackendBackgroundTasks)
	got := f.claim(job.BackendBackgroundTasks, "w1")
	if got.ID != a.ID || got.Status != job.StatusRunning || got.Attempt != 1 || got.LeaseOwner != "w1" ||
		!got.LeaseExpiresAt.Equal(f.clk.Now().Add(lease)) {
		f.t.Fatalf("first claim: %+v, want job %s running with a lease", got, a.ID)
	}
	if got := f.claim(job.BackendBackgroundTasks, "w1"); got.ID != b.ID {
		f.t.Fatalf("second claim took %s, want %s", got.ID, b.ID)
	}
	if _, err := f.s.ClaimNext(f.ctx, job.BackendBackgroundTasks, "w", lease); !errors.Is(err, job.ErrNotFound) {
		f.t.Fatalf("background queue drained but claim gave %v", err)
	}
	if got := f.claim(job.BackendDurable, "w2"); got.ID != d.ID {
		f.t.Fatalf("durable claim took %s, want %s", got.ID, d.ID)
	}
}

func testConcurrentClaims(f *fixture) {
	const n = 40
	for range n {
		f.create("p1", "", job.BackendBackgroundTasks)
	}
	var mu sync.Mutex
	claimed := map[string]int{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j, err := f.s.ClaimNext(f.ctx, job.BackendBackgroundTasks, fmt.Sprintf("w%d", w), lease)
				if errors.Is(err, job.ErrNotFound) {
					return
				}
				if err != nil {
					f.t.Errorf("claim: %v", err)
					return
				}
				mu.Lock()
				claimed[j.ID]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(claimed) != n {
		f.t.Fatalf("claimed %d distinct jobs, want %d", len(claimed), n)
	}
	for id, c := range claimed {
		if c != 1 {
			f.t.Fatalf("job %s claimed %d times", id, c)
		}
	}
}

func testClaimBatch(f *fixture) {
	var ids []string
	for range 7 {
		ids = append(ids, f.create("p1", "", job.BackendBackgroundTasks).ID)
	}
	got, err := f.s.ClaimBatch(f.ctx, job.BackendBackgroundTasks, "w", lease, 3, "")
	if err != nil || len(got) != 3 || got[0].ID != ids[0] || got[2].ID != ids[2] {
		f.t.Fatalf("first batch %d jobs (%v), want the 3 oldest", len(got), err)
	}
	rest, _ := f.s.ClaimBatch(f.ctx, job.BackendBackgroundTasks, "w", lease, 10, "")
	if len(rest) != 4 || rest[0].ID != ids[3] {
		f.t.Fatalf("second batch %d jobs, want the other 4", len(rest))
	}
	for _, j := range append(got, rest...) {
		if j.Status != job.StatusRunning || j.Attempt != 1 || j.LeaseOwner != "w" {
			f.t.Fatalf("claimed job %+v", j)
		}
		if evs := f.events(j.ID); evs[len(evs)-1].Status != job.StatusRunning {
			f.t.Fatalf("no running event for %s", j.ID)
		}
	}
	if none, _ := f.s.ClaimBatch(f.ctx, job.BackendBackgroundTasks, "w", lease, 5, ""); len(none) != 0 {
		f.t.Fatalf("claimed %d from an empty queue", len(none))
	}

	// With after, the claim starts past that id; what lies below waits for a
	// claim from the start.
	ids = ids[:0]
	for range 4 {
		ids = append(ids, f.create("p1", "", job.BackendBackgroundTasks).ID)
	}
	got, err = f.s.ClaimBatch(f.ctx, job.BackendBackgroundTasks, "w", lease, 10, ids[1])
	if err != nil || len(got) != 2 || got[0].ID != ids[2] || got[1].ID != ids[3] {
		f.t.Fatalf("claim after the second job: %d jobs (%v), want the last two", len(got), err)
	}
	if none, _ := f.s.ClaimBatch(f.ctx, job.BackendBackgroundTasks, "w", lease, 10, ids[3]); len(none) != 0 {
		f.t.Fatalf("claimed %d after the newest job", len(none))
	}
	if got, _ = f.s.ClaimBatch(f.ctx, job.BackendBackgroundTasks, "w", lease, 10, ""); len(got) != 2 || got[0].ID != ids[0] {
		f.t.Fatalf("claim from the start: %d jobs, want the first two", len(got))
	}
}

func testClaimDispatchFencing(f *fixture) {
	j := f.create("p1", "", job.BackendDurable)
	if _, err := f.s.ClaimDispatch(f.ctx, job.Dispatch{JobID: j.ID, Epoch: 0}, "w", lease); !errors.Is(err, job.ErrStaleLease) {
		f.t.Fatalf("old epoch: %v, want ErrStaleLease", err)
	}
	got, err := f.s.ClaimDispatch(f.ctx, job.Dispatch{JobID: j.ID, Epoch: 1}, "w", lease)
	if err != nil || got.Status != job.StatusRunning {
		f.t.Fatalf("current epoch: %+v %v", got, err)
	}
	if _, err := f.s.ClaimDispatch(f.ctx, job.Dispatch{JobID: j.ID, Epoch: 1}, "w2", lease); !errors.Is(err, job.ErrStaleLease) {
		f.t.Fatalf("second delivery of the same dispatch: %v, want ErrStaleLease", err)
	}
}
