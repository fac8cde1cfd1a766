// Package storetest is the one test suite every store driver passes, run
// against the real database of each driver.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// Opener opens a fresh, empty store for one test, closed when the test ends.
type Opener func(t *testing.T, clk clock.Clock) store.Store

const lease = 30 * time.Second

type fixture struct {
	t   *testing.T
	s   store.Store
	clk *clock.Fake
	ctx context.Context
}

func newFixture(t *testing.T, open Opener) *fixture {
	clk := clock.NewFake(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
	return &fixture{t: t, s: open(t, clk), clk: clk, ctx: context.Background()}
}

func (f *fixture) create(project, key string, backend job.Backend) job.Job {
	f.t.Helper()
	payload := json.RawMessage(`{"title":"t"}`)
	j, created, err := f.s.CreateJob(f.ctx, store.NewJob{Kind: job.KindGeneration, ProjectID: project, Payload: payload,
		IdempotencyKey: key, RequestHash: job.RequestHash(job.KindGeneration, project, payload), Backend: backend})
	if err != nil || !created {
		f.t.Fatalf("create job: created=%v err=%v", created, err)
	}
	return j
}

func (f *fixture) claim(backend job.Backend, owner string) job.Job {
	f.t.Helper()
	j, err := f.s.ClaimNext(f.ctx, backend, owner, lease)
	if err != nil {
		f.t.Fatalf("claim: %v", err)
	}
	return j
}

func (f *fixture) episode(j job.Job) store.Completion {
	return store.Completion{Result: json.RawMessage(`{"scenes":3}`),
		Episode: &job.Episode{ProjectID: j.ProjectID, Title: "ep", Script: "INT. ROOM - DAY"}}
}

func (f *fixture) events(id string) []job.Event {
	f.t.Helper()
	evs, err := f.s.ListEvents(f.ctx, id, 0, 0)
	if err != nil {
		f.t.Fatalf("events: %v", err)
	}
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			f.t.Fatalf("event %d has seq %d; events must be numbered 1..n without gaps", i, e.Seq)
		}
	}
	return evs
}

// Run runs the suite.
func Run(t *testing.T, open Opener) {
	tests := map[string]func(*fixture){
		"CreateAndGet":                testCreateAndGet,
		"Idempotency":                 testIdempotency,
		"ConcurrentSameKey":           testConcurrentSameKey,
		"ConcurrentMixedSubmissions":  testConcurrentMixed,
		"ClaimOrderAndBackend":        testClaimOrderAndBackend,
		"ConcurrentClaimsTakeOnce":    testConcurrentClaims,
		"ClaimBatchTakesAtMostN":      testClaimBatch,
		"ClaimDispatchFencing":        testClaimDispatchFencing,
		"CompleteSavesEpisodeOnce":    testCompleteSavesEpisode,
		"FiftyEpisodesNumberedOnce":   testFiftyEpisodes,
		"StaleHolderCannotFinish":     testStaleHolder,
		"FailRetriesThenFails":        testFailRetries,
		"ReleaseGivesAttemptBack":     testRelease,
		"OldestQueuedAt":              testOldestQueuedAt,
		"ExpireLeases":                testExpireLeases,
		"Cancel":                      testCancel,
		"ProgressEventsInOrder":       testProgressEvents,
		"ListJobsFilterAndPagination": testListJobs,
		"MigrateQueuedBumpsEpochs":    testMigrateQueued,
		"LeadershipAndAudits":         testLeadershipAndAudits,
		"WorkerRegistry":              testWorkerRegistry,
		"GroupedClaimsAndCompletions": testConcurrentDispatchesAndCompletions,

		"DocumentCreateAndIdempotency":      testDocumentCreateAndIdempotency,
		"DocumentChunksReplaced":            testDocumentChunksReplaced,
		"DocumentStaleHolderWritesNoChunks": testDocumentStaleHolderWritesNoChunks,
		"DocumentDelete":                    testDocumentDelete,
		"SearchRanksAndIsolates":            testSearchRanksAndIsolates,
		"ClaimSeesDocuments":                testClaimSeesDocuments,
		"ListDocumentsPagination":           testListDocumentsPagination,
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(newFixture(t, open))
		})
	}
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
	payload := json.RawMessage(`{"title":"t"}`)
	again, created, err := f.s.CreateJob(f.ctx, store.NewJob{Kind: job.KindGeneration, ProjectID: "p1", Payload: payload,
		IdempotencyKey: "key-1", RequestHash: job.RequestHash(job.KindGeneration, "p1", payload), Backend: job.BackendBackgroundTasks})
	if err != nil || created || again.ID != first.ID {
		f.t.Fatalf("same key and body: id=%s created=%v err=%v, want %s", again.ID, created, err, first.ID)
	}
	other := json.RawMessage(`{"title":"other"}`)
	_, _, err = f.s.CreateJob(f.ctx, store.NewJob{Kind: job.KindGeneration, ProjectID: "p1", Payload: other,
		IdempotencyKey: "key-1", RequestHash: job.RequestHash(job.KindGeneration, "p1", other), Backend: job.BackendBackgroundTasks})
	if !errors.Is(err, job.ErrIdempotencyMismatch) {
		f.t.Fatalf("same key, other body: %v, want ErrIdempotencyMismatch", err)
	}
	if n, _ := f.s.CountJobs(f.ctx, store.JobFilter{}); n != 1 {
		f.t.Fatalf("%d jobs, want 1", n)
	}
}

func testConcurrentSameKey(f *fixture) {
	payload := json.RawMessage(`{"title":"t"}`)
	ids := make(chan string, 20)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j, _, err := f.s.CreateJob(f.ctx, store.NewJob{Kind: job.KindGeneration, ProjectID: "p1", Payload: payload,
				IdempotencyKey: "same", RequestHash: job.RequestHash(job.KindGeneration, "p1", payload), Backend: job.BackendBackgroundTasks})
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
		reqs = append(reqs, &sent{nj: store.NewJob{Kind: kind, ProjectID: project, Payload: payload, IdempotencyKey: key,
			RequestHash: job.RequestHash(kind, project, payload), Backend: backend, MaxAttempts: 2 + i%5}})
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

func testCompleteSavesEpisode(f *fixture) {
	f.create("p1", "", job.BackendBackgroundTasks)
	j := f.claim(job.BackendBackgroundTasks, "w")
	done, err := f.s.Complete(f.ctx, j.Lease(), f.episode(j))
	if err != nil {
		f.t.Fatal(err)
	}
	var res map[string]any
	if err := json.Unmarshal(done.Result, &res); err != nil || res["episode_number"] != float64(1) || res["scenes"] != float64(3) {
		f.t.Fatalf("result %s (%v): want episode_number 1 beside the generator's fields", done.Result, err)
	}
	if done.Status != job.StatusSucceeded || done.Progress != 100 || done.FinishedAt.IsZero() || done.LeaseOwner != "" {
		f.t.Fatalf("completed job: %+v", done)
	}
	if _, err := f.s.Complete(f.ctx, j.Lease(), f.episode(j)); !errors.Is(err, job.ErrStaleLease) {
		f.t.Fatalf("second completion: %v, want ErrStaleLease", err)
	}
	eps, err := f.s.ListEpisodes(f.ctx, "p1", 0, 0)
	if err != nil || len(eps) != 1 || eps[0].Number != 1 || eps[0].JobID != j.ID {
		f.t.Fatalf("episodes: %+v %v", eps, err)
	}
	ep, err := f.s.GetEpisode(f.ctx, "p1", 1)
	if err != nil || ep.Script != "INT. ROOM - DAY" {
		f.t.Fatalf("episode 1: %+v %v", ep, err)
	}
	if _, err := f.s.GetEpisode(f.ctx, "p1", 2); !errors.Is(err, job.ErrNotFound) {
		f.t.Fatalf("episode 2: %v, want ErrNotFound", err)
	}
	evs := f.events(j.ID)
	if last := evs[len(evs)-1]; last.Type != job.EventResult || last.Status != job.StatusSucceeded {
		f.t.Fatalf("last event %+v, want the result", last)
	}
}

func testFiftyEpisodes(f *fixture) {
	const n = 50
	for range n {
		f.create("p1", "", job.BackendBackgroundTasks)
	}
	f.create("p2", "", job.BackendBackgroundTasks)
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j, err := f.s.ClaimNext(f.ctx, job.BackendBackgroundTasks, "w", lease)
				if errors.Is(err, job.ErrNotFound) {
					return
				}
				if err == nil {
					_, err = f.s.Complete(f.ctx, j.Lease(), f.episode(j))
				}
				if err != nil {
					f.t.Errorf("claim/complete: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	eps, err := f.s.ListEpisodes(f.ctx, "p1", 0, 100)
	if err != nil || len(eps) != n {
		f.t.Fatalf("%d episodes of p1 (%v), want %d", len(eps), err, n)
	}
	jobs := map[string]bool{}
	for i, e := range eps {
		if e.Number != i+1 || jobs[e.JobID] {
			f.t.Fatalf("episode %d: number %d job %s (numbers must be 1..%d, one per job)", i, e.Number, e.JobID, n)
		}
		jobs[e.JobID] = true
	}
	if p2, _ := f.s.ListEpisodes(f.ctx, "p2", 0, 0); len(p2) != 1 || p2[0].Number != 1 {
		f.t.Fatalf("p2 episodes %+v: each project counts on its own", p2)
	}
	page, _ := f.s.ListEpisodes(f.ctx, "p1", 48, 10)
	if len(page) != 2 || page[0].Number != 49 {
		f.t.Fatalf("page after 48: %+v", page)
	}
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

func testLeadershipAndAudits(f *fixture) {
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
	rec := store.AuditRecord{ID: "r1", Kind: "rollback", Trigger: "manual", Reason: "why", Actor: "me", Status: "completed",
		Evidence: json.RawMessage(`{"fired":"x"}`), Actions: []string{"a", "b"}, JobsMigrated: 3, StartedAt: f.clk.Now(), FinishedAt: f.clk.Now()}
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
	if err := f.s.AddMigrationFailure(f.ctx, store.MigrationFailure{JobID: "j1", Source: job.BackendDurable, Target: job.BackendBackgroundTasks, Reason: "r"}); err != nil {
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

func testWorkerRegistry(f *fixture) {
	for _, id := range []string{"old", "live", "stopped"} {
		if err := f.s.RegisterWorker(f.ctx, store.WorkerProcess{ID: id, Role: "worker", Host: "h", PID: 1}); err != nil {
			f.t.Fatal(err)
		}
	}
	f.clk.Advance(25 * time.Hour)
	f.s.HeartbeatWorker(f.ctx, "live")
	f.s.HeartbeatWorker(f.ctx, "stopped")
	f.s.StopWorker(f.ctx, "stopped")
	if err := f.s.PruneWorkers(f.ctx, f.clk.Now().Add(-24*time.Hour)); err != nil {
		f.t.Fatal(err)
	}
	ws, err := f.s.ListWorkers(f.ctx, "worker", time.Time{})
	if err != nil || len(ws) != 2 {
		f.t.Fatalf("workers after prune: %+v %v, want live and stopped", ws, err)
	}
	for _, w := range ws {
		if w.ID == "old" || (w.ID == "stopped") == w.StoppedAt.IsZero() || !w.HeartbeatAt.Equal(f.clk.Now()) {
			f.t.Fatalf("worker %+v", w)
		}
	}
}

// testConcurrentDispatchesAndCompletions drives the grouped claims and
// completions: many at once, mixed with stale and duplicate requests, over
// several projects. Each job is claimed once, completed once, and numbered
// once in its project; a stale request changes nothing.
func testConcurrentDispatchesAndCompletions(f *fixture) {
	const perProject, projects = 20, 3
	var jobs []job.Job
	for p := range projects {
		for range perProject {
			jobs = append(jobs, f.create(fmt.Sprintf("p%d", p), "", job.BackendDurable))
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	claimed := map[string][]job.Job{}
	for _, j := range jobs {
		// The same dispatch twice, by two workers, and a stale one.
		for n, d := range []job.Dispatch{{JobID: j.ID, Epoch: j.DispatchEpoch}, {JobID: j.ID, Epoch: j.DispatchEpoch}, {JobID: j.ID, Epoch: j.DispatchEpoch - 1}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := f.s.ClaimDispatch(f.ctx, d, fmt.Sprintf("w%d", n%2), lease)
				if err != nil && !errors.Is(err, job.ErrStaleLease) {
					f.t.Errorf("claim %+v: %v", d, err)
				}
				if err == nil {
					if d.Epoch != j.DispatchEpoch || got.ID != j.ID || got.Status != job.StatusRunning {
						f.t.Errorf("claim %+v gave %+v", d, got)
					}
					mu.Lock()
					claimed[j.ID] = append(claimed[j.ID], got)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	for _, j := range jobs {
		if len(claimed[j.ID]) != 1 {
			f.t.Fatalf("job %s claimed %d times, want once", j.ID, len(claimed[j.ID]))
		}
	}

	completed := map[string]int{}
	for _, j := range jobs {
		c := claimed[j.ID][0]
		for _, l := range []job.Lease{c.Lease(), {Dispatch: c.Lease().Dispatch, Owner: "other"}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				done, err := f.s.Complete(f.ctx, l, f.episode(c))
				if l.Owner == "other" {
					if !errors.Is(err, job.ErrStaleLease) {
						f.t.Errorf("completion by a stale holder: %v, want ErrStaleLease", err)
					}
					return
				}
				var res struct {
					Number int `json:"episode_number"`
				}
				if err != nil || done.Status != job.StatusSucceeded || json.Unmarshal(done.Result, &res) != nil || res.Number < 1 {
					f.t.Errorf("complete %s: %+v %v", c.ID, done, err)
					return
				}
				mu.Lock()
				completed[c.ID] = res.Number
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	for p := range projects {
		project := fmt.Sprintf("p%d", p)
		eps, err := f.s.ListEpisodes(f.ctx, project, 0, 100)
		if err != nil || len(eps) != perProject {
			f.t.Fatalf("%d episodes of %s (%v), want %d", len(eps), project, err, perProject)
		}
		for i, e := range eps {
			if e.Number != i+1 || completed[e.JobID] != e.Number {
				f.t.Fatalf("%s episode %d: number %d of job %s, whose result says %d", project, i, e.Number, e.JobID, completed[e.JobID])
			}
		}
	}
	for _, j := range jobs {
		evs := f.events(j.ID)
		if len(evs) != 3 || evs[1].Status != job.StatusRunning || evs[2].Type != job.EventResult {
			f.t.Fatalf("events of %s: %+v, want created, running, result", j.ID, evs)
		}
	}
}
