package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// jobTests: submitting jobs (idempotency keys included), reading, listing
// and cancelling them, their event logs, and the queue's oldest wait.
var jobTests = []test{
	{"CreateAndGet", testCreateAndGet},
	{"Idempotency", testIdempotency},
	{"ConcurrentSameKey", testConcurrentSameKey},
	{"ConcurrentMixedSubmissions", testConcurrentMixed},
	{"Cancel", testCancel},
	{"ProgressEventsInOrder", testProgressEvents},
	{"ListJobsFilterAndPagination", testListJobs},
	{"OldestQueuedAt", testOldestQueuedAt},
}

func testCreateAndGet(f *fixture) {
	j := f.create("p1", "", job.BackendBackgroundTasks)
	got, err := f.s.GetJob(f.ctx, j.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	if got.Status != job.StatusQueued || got.DispatchEpoch != 1 || got.Attempt != 0 || got.ProjectID != "p1" ||
		got.Backend != job.BackendBackgroundTasks || got.MaxAttempts != job.DefaultMaxAttempts {
		f.t.Fatalf("unexpected new job: %+v", got)
	}
	if !got.CreatedAt.Equal(f.clk.Now()) {
		f.t.Fatalf("created_at %v, want %v", got.CreatedAt, f.clk.Now())
	}
	if _, err := f.s.GetJob(f.ctx, "nope"); !errors.Is(err, job.ErrNotFound) {
		f.t.Fatalf("unknown id: %v, want ErrNotFound", err)
	}
	if evs := f.events(j.ID); len(evs) != 1 || evs[0].Status != job.StatusQueued {
		f.t.Fatalf("first event: %+v", evs)
	}
}

func testIdempotency(f *fixture) {
	first := f.create("p1", "key-1", job.BackendBackgroundTasks)
	again, created, err := f.s.CreateJob(f.ctx, newJob("p1", "key-1", job.BackendBackgroundTasks))
	if err != nil || created || again.ID != first.ID {
		f.t.Fatalf("same key and body: id=%s created=%v err=%v, want %s", again.ID, created, err, first.ID)
	}
	other := newJob("p1", "key-1", job.BackendBackgroundTasks)
	other.Payload = json.RawMessage(`{"title":"other"}`)
	other.RequestHash = job.RequestHash(job.KindGeneration, "p1", other.Payload)
	_, _, err = f.s.CreateJob(f.ctx, other)
	if !errors.Is(err, job.ErrIdempotencyMismatch) {
		f.t.Fatalf("same key, other body: %v, want ErrIdempotencyMismatch", err)
	}
	if n, _ := f.s.CountJobs(f.ctx, store.JobFilter{}); n != 1 {
		f.t.Fatalf("%d jobs, want 1", n)
	}
}

func testConcurrentSameKey(f *fixture) {
	ids := make(chan string, 20)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j, _, err := f.s.CreateJob(f.ctx, newJob("p1", "same", job.BackendBackgroundTasks))
			if err != nil {
				f.t.Errorf("create: %v", err)
				return
			}
			ids <- j.ID
		}()
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		seen[id] = true
	}
	if len(seen) != 1 {
		f.t.Fatalf("20 concurrent creates with one key made %d jobs", len(seen))
	}
}

// testConcurrentMixed submits, at once (so that group commit batches them),
// jobs without a key, with keys of their own and with one shared key, to
// several projects, backends, kinds and attempt limits; each stored job must
// carry exactly what its request sent.
func testConcurrentMixed(f *fixture) {
	type sent struct {
		nj  store.NewJob
		got job.Job
	}
	var reqs []*sent
	for i := range 30 {
		kind, backend := job.KindGeneration, job.BackendBackgroundTasks
		if i%3 == 1 {
			kind, backend = job.KindRAGDocument, job.BackendDurable
		}
		project := fmt.Sprintf("mixed-%d", i%4)
		payload := json.RawMessage(fmt.Sprintf(`{"title":"t%d"}`, i))
		key := ""
		switch {
		case i%3 == 1:
			key = fmt.Sprintf("own-%d", i)
		case i%3 == 2:
			key, project, payload = "shared", "mixed-shared", json.RawMessage(`{"title":"shared"}`)
			kind, backend = job.KindGeneration, job.BackendBackgroundTasks
		}
		reqs = append(reqs, &sent{nj: store.NewJob{
			Kind:           kind,
			ProjectID:      project,
			Payload:        payload,
			IdempotencyKey: key,
			RequestHash:    job.RequestHash(kind, project, payload),
			Backend:        backend,
			MaxAttempts:    2 + i%5,
		}})
	}
	var wg sync.WaitGroup
	for _, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j, _, err := f.s.CreateJob(f.ctx, r.nj)
			if err != nil {
				f.t.Errorf("create %+v: %v", r.nj, err)
			}
			r.got = j
		}()
	}
	wg.Wait()
	ids := map[string]bool{}
	shared := ""
	for _, r := range reqs {
		if r.nj.IdempotencyKey == "shared" {
			if shared == "" {
				shared = r.got.ID
			} else if r.got.ID != shared {
				f.t.Fatalf("one shared key gave jobs %s and %s", shared, r.got.ID)
			}
		}
		ids[r.got.ID] = true
		j, err := f.s.GetJob(f.ctx, r.got.ID)
		if err != nil {
			f.t.Fatalf("get %s: %v", r.got.ID, err)
		}
		if j.Kind != r.nj.Kind || j.ProjectID != r.nj.ProjectID || string(j.Payload) != string(r.nj.Payload) ||
			j.Backend != r.nj.Backend || j.Status != job.StatusQueued || j.DispatchEpoch != 1 ||
			(r.nj.IdempotencyKey != "shared" && j.MaxAttempts != r.nj.MaxAttempts) {
			f.t.Fatalf("stored %+v for request %+v", j, r.nj)
		}
	}
	if n, _ := f.s.CountJobs(f.ctx, store.JobFilter{}); len(ids) != 21 || n != 21 {
		f.t.Fatalf("%d distinct jobs answered, %d stored; want 21 (10 without a key, 10 keys of their own, one shared)", len(ids), n)
	}
}

func testCancel(f *fixture) {
	queued := f.create("p1", "", job.BackendBackgroundTasks)
	if got, err := f.s.Cancel(f.ctx, queued.ID); err != nil || got.Status != job.StatusCancelled {
		f.t.Fatalf("cancel queued: %+v %v", got, err)
	}
	if _, err := f.s.Cancel(f.ctx, queued.ID); !errors.Is(err, job.ErrNotCancellable) {
		f.t.Fatalf("cancel twice: %v, want ErrNotCancellable", err)
	}
	if _, err := f.s.Cancel(f.ctx, "missing"); !errors.Is(err, job.ErrNotFound) {
		f.t.Fatalf("cancel unknown: %v, want ErrNotFound", err)
	}
	f.create("p1", "", job.BackendBackgroundTasks)
	running := f.claim(job.BackendBackgroundTasks, "w")
	if _, err := f.s.Cancel(f.ctx, running.ID); err != nil {
		f.t.Fatal(err)
	}
	if err := f.s.ExtendLease(f.ctx, running.Lease(), lease); !errors.Is(err, job.ErrStaleLease) {
		f.t.Fatalf("holder of a cancelled job renewed its lease: %v", err)
	}
	if _, err := f.s.Complete(f.ctx, running.Lease(), f.episode(running)); !errors.Is(err, job.ErrStaleLease) {
		f.t.Fatalf("cancelled job completed: %v", err)
	}
	if eps, _ := f.s.ListEpisodes(f.ctx, "p1", 0, 0); len(eps) != 0 {
		f.t.Fatalf("cancelled job saved an episode")
	}
}

func testProgressEvents(f *fixture) {
	f.create("p1", "", job.BackendBackgroundTasks)
	j := f.claim(job.BackendBackgroundTasks, "w")
	for _, p := range []int{10, 40, 80} {
		if err := f.s.ReportProgress(f.ctx, j.Lease(), store.Progress{Percent: p, Stage: fmt.Sprintf("s%d", p), Message: "m"}); err != nil {
			f.t.Fatal(err)
		}
	}
	got, _ := f.s.GetJob(f.ctx, j.ID)
	if got.Progress != 80 || got.Stage != "s80" {
		f.t.Fatalf("job progress %d stage %q", got.Progress, got.Stage)
	}
	evs := f.events(j.ID)
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, fmt.Sprintf("%s:%s:%d", e.Type, e.Status, e.Progress))
	}
	want := []string{"status:queued:0", "status:running:0", "progress:running:10", "progress:running:40", "progress:running:80"}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		f.t.Fatalf("events %v, want %v", kinds, want)
	}
	after, _ := f.s.ListEvents(f.ctx, j.ID, 3, 0)
	if len(after) != 2 || after[0].Seq != 4 {
		f.t.Fatalf("events after 3: %+v", after)
	}
}

func testListJobs(f *fixture) {
	var ids []string
	for i := range 7 {
		p := "a"
		if i%2 == 1 {
			p = "b"
		}
		ids = append(ids, f.create(p, "", job.BackendBackgroundTasks).ID)
		f.clk.Advance(time.Millisecond)
	}
	f.claim(job.BackendBackgroundTasks, "w") // ids[0] runs
	var all []string
	cursor := ""
	for pages := 0; ; pages++ {
		page, next, err := f.s.ListJobs(f.ctx, store.JobFilter{Cursor: cursor, Limit: 3})
		if err != nil || pages > 5 {
			f.t.Fatalf("list: %v (pages %d)", err, pages)
		}
		for _, j := range page {
			all = append(all, j.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(all) != 7 || all[0] != ids[6] || all[6] != ids[0] {
		f.t.Fatalf("paged list %v, want all 7 newest first", all)
	}
	bs, _, _ := f.s.ListJobs(f.ctx, store.JobFilter{ProjectID: "b"})
	if len(bs) != 3 {
		f.t.Fatalf("project b has %d jobs, want 3", len(bs))
	}
	running, _, _ := f.s.ListJobs(f.ctx, store.JobFilter{Status: job.StatusRunning})
	if len(running) != 1 || running[0].ID != ids[0] {
		f.t.Fatalf("running: %+v", running)
	}
	if n, _ := f.s.CountJobs(f.ctx, store.JobFilter{ProjectID: "a", Status: job.StatusQueued}); n != 3 {
		f.t.Fatalf("queued jobs of a: %d, want 3", n)
	}
	byStatus, err := f.s.CountByStatus(f.ctx, store.JobFilter{ProjectID: "a", Status: job.StatusFailed})
	if err != nil || len(byStatus) != 2 || byStatus[job.StatusQueued] != 3 || byStatus[job.StatusRunning] != 1 {
		f.t.Fatalf("jobs of a by status: %v (%v), want 3 queued and 1 running (the filter's status ignored)", byStatus, err)
	}
}

// testOldestQueuedAt: the longest wait of a backend's queued jobs, not the
// wait of the smallest id (a job queued again just now), and not reset by a
// new epoch (the reconciler replacing a lost transport).
func testOldestQueuedAt(f *fixture) {
	if at, err := f.s.OldestQueuedAt(f.ctx, job.BackendDurable); err != nil || !at.IsZero() {
		f.t.Fatalf("no queued job: %v, %v; want the zero time", at, err)
	}
	first := f.create("p1", "", job.BackendDurable)
	f.clk.Advance(time.Minute)
	waiting := f.create("p1", "", job.BackendDurable)
	f.create("p1", "", job.BackendBackgroundTasks)
	claimed, err := f.s.ClaimDispatch(f.ctx, job.Dispatch{JobID: first.ID, Epoch: first.DispatchEpoch}, "w", lease)
	if err != nil {
		f.t.Fatal(err)
	}
	f.clk.Advance(10 * time.Minute)
	if err := f.s.Release(f.ctx, claimed.Lease(), "shutting down"); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.s.BumpEpoch(f.ctx, job.Dispatch{JobID: waiting.ID, Epoch: waiting.DispatchEpoch}); err != nil {
		f.t.Fatal(err)
	}
	at, err := f.s.OldestQueuedAt(f.ctx, job.BackendDurable)
	if err != nil || !at.Equal(waiting.CreatedAt) {
		f.t.Fatalf("oldest queued at %v (%v), want %v, when the job still waiting was queued", at, err, waiting.CreatedAt)
	}
}
