// Package storetest is the one test suite every store driver passes, run
// against the real database of each driver.
//
// The suite is split by area, a file each: jobs.go (submission, reading,
// listing, cancelling), claims.go (taking queued jobs), leases.go (what a
// lease holder may do, and what happens when a lease runs out), backoff.go
// (the wait between a failed job's attempts), episodes.go
// (completions and the episodes they save), flag.go (the worker setting),
// leadership.go, migration.go (moving queued jobs between backends, audit
// records, the migration_failed list), workers.go (the worker
// registry), documents.go, access.go (API keys, tenants' lists, rate
// buckets, usage) and purge.go (JOB_RETENTION). Every test gets a fresh store of its own from setup, so all of
// them run in parallel.
package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// Opener opens a fresh, empty store for one test, on clk, closed when the
// test ends: a file of the test's own for SQLite, a schema of the test's own
// for PostgreSQL.
type Opener func(t *testing.T, clk clock.Clock) store.Store

// test is one test of the suite; it gets a fixture of its own.
type test struct {
	name string
	run  func(*fixture)
}

// areas are the suite's tests, a list per file.
func areas() [][]test {
	return [][]test{
		jobTests,
		claimTests,
		leaseTests,
		backoffTests,
		episodeTests,
		flagTests,
		leadershipTests,
		migrationTests,
		workerTests,
		documentTests,
		accessTests,
		fairnessTests,
		eventSeqTests,
		scriptTests,
		purgeTests,
		deleteProjectTests,
	}
}

// Run runs the suite, every test in parallel on a store of its own.
func Run(t *testing.T, open Opener) {
	for _, area := range areas() {
		for _, tc := range area {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tc.run(setup(t, open))
			})
		}
	}
}

const lease = 30 * time.Second

// fixture is what a test works with: its own store, on a fake clock that
// moves only when the test advances it.
type fixture struct {
	t   *testing.T
	s   store.Store
	clk *clock.Fake
	ctx context.Context
}

// setup opens a fresh store for t.
func setup(t *testing.T, open Opener) *fixture {
	t.Helper()
	clk := clock.NewFake(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
	return &fixture{
		t:   t,
		s:   open(t, clk),
		clk: clk,
		ctx: context.Background(),
	}
}

// newJob is a generation job of project for backend, under key when set.
func newJob(project, key string, backend job.Backend) store.NewJob {
	payload := json.RawMessage(`{"title":"t"}`)
	return store.NewJob{
		Kind:           job.KindGeneration,
		ProjectID:      project,
		Payload:        payload,
		IdempotencyKey: key,
		RequestHash:    job.RequestHash(job.KindGeneration, project, payload),
		Backend:        backend,
	}
}

func (f *fixture) create(project, key string, backend job.Backend) job.Job {
	f.t.Helper()
	j, created, err := f.s.CreateJob(f.ctx, newJob(project, key, backend))
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
	return store.Completion{
		Result:  json.RawMessage(`{"scenes":3}`),
		Episode: &job.Episode{ProjectID: j.ProjectID, Title: "ep", Script: "INT. ROOM - DAY"},
	}
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
