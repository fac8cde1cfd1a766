package rollback_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/durable"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/rollback"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/store/sqlite"
	"github.com/scriptgen/scriptgen/internal/testenv"
)

// openStore is an SQLite store of the test's own.
func openStore(t *testing.T) store.Store {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "r.db"), clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestRollbackSupersededByAnEnable: an operator who enables the durable
// worker while a rollback runs wins; the rollback says so with ErrSuperseded
// (the API's 409), records itself as failed and leaves the setting alone.
func TestRollbackSupersededByAnEnable(t *testing.T) {
	ctx, st := context.Background(), openStore(t)
	svc := rollback.New(st, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	svc.FlagRefresh = 0
	enable := store.WorkerSetting{
		Enabled:        true,
		RolloutPercent: 100,
		Reason:         "redis is back",
		UpdatedBy:      "other-operator",
	}
	if _, err := st.PutWorkerSetting(ctx, enable); err != nil {
		t.Fatal(err)
	}

	var steps []rollback.Step
	rec, err := svc.Rollback(ctx, rollback.Request{Reason: "redis down", Actor: "op"}, func(s rollback.Step) {
		steps = append(steps, s)
		if s.Name == "flag off" { // the other operator's PUT lands between flag off and verify
			if _, err := st.PutWorkerSetting(ctx, enable); err != nil {
				t.Error(err)
			}
		}
	})
	if !errors.Is(err, rollback.ErrSuperseded) {
		t.Fatalf("rollback error %v, want ErrSuperseded; steps %+v", err, steps)
	}
	if !strings.Contains(err.Error(), "verify") || !strings.Contains(err.Error(), "other-operator") {
		t.Fatalf("error %q should name the step and who enabled the worker", err)
	}
	if rec.Status != "failed" {
		t.Fatalf("record status %q, want failed", rec.Status)
	}
	saved, err := st.GetAudit(ctx, rec.ID)
	if err != nil || saved.Status != "failed" || saved.Kind != "rollback" {
		t.Fatalf("audit record %+v, %v", saved, err)
	}
	w, err := st.GetWorkerSetting(ctx)
	if err != nil || !w.Enabled || w.RolloutPercent != 100 || w.UpdatedBy != "other-operator" {
		t.Fatalf("setting after the rollback: %+v, %v; the later enable must stand", w, err)
	}

	// Without a concurrent change the same rollback completes.
	steps = nil
	rec, err = svc.Rollback(ctx, rollback.Request{Reason: "redis down", Actor: "op"}, func(s rollback.Step) { steps = append(steps, s) })
	if err != nil || rec.Status != "completed" {
		t.Fatalf("plain rollback: %+v, %v", rec, err)
	}
	verified := false
	for _, s := range steps {
		if s.Name == "verify" {
			verified = s.Detail == "flag off; no queued durable job left"
		}
	}
	if !verified {
		t.Fatalf("steps %+v: want verify to say that no queued durable job is left", steps)
	}
}

// failingAudit is a store whose audit records cannot be saved.
type failingAudit struct{ store.Store }

func (failingAudit) InsertAudit(context.Context, store.AuditRecord) error {
	return errors.New("disk full")
}

// A roll-forward without a durable side is refused with ErrNoDurableSide (the
// API's 409) and leaves no record, so the last rollback stays the latest
// record `scriptgen report` shows; one whose record cannot be saved says
// ErrNotRecorded (a 500 without a report link), as does such a rollback.
func TestRollforwardAndRecordErrors(t *testing.T) {
	ctx, st := context.Background(), openStore(t)
	var err error
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	plain := rollback.New(st, nil, log)
	plain.FlagRefresh = 0
	rb, err := plain.Rollback(ctx, rollback.Request{Reason: "redis down", Actor: "op"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := st.GetWorkerSetting(ctx)
	_, err = plain.Rollforward(ctx, 50, rollback.Request{Reason: "step up", Actor: "op"}, nil)
	if !errors.Is(err, rollback.ErrNoDurableSide) || errors.Is(err, rollback.ErrNotRecorded) {
		t.Fatalf("roll-forward without Redis: %v, want ErrNoDurableSide", err)
	}
	if after, _ := st.GetWorkerSetting(ctx); after != before {
		t.Fatalf("a refused roll-forward changed the setting: %+v, was %+v", after, before)
	}
	if recs, _ := st.ListAudits(ctx, 10); len(recs) != 1 || recs[0].ID != rb.ID {
		t.Fatalf("records after a refused roll-forward: %+v, want only the rollback %s", recs, rb.ID)
	}

	opt, err := durable.RedisOpt(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	side := durable.NewSide(opt)
	t.Cleanup(func() { side.Close() })
	svc := rollback.New(failingAudit{st}, side, log)
	svc.FlagRefresh = 0
	if _, err := svc.Rollforward(ctx, 50, rollback.Request{Reason: "step up", Actor: "op"}, nil); !errors.Is(err, rollback.ErrNotRecorded) {
		t.Fatalf("roll-forward whose record fails: %v, want ErrNotRecorded", err)
	}
	if _, err := svc.Rollback(ctx, rollback.Request{Reason: "redis down", Actor: "op"}, nil); !errors.Is(err, rollback.ErrNotRecorded) {
		t.Fatalf("rollback whose record fails: %v, want ErrNotRecorded", err)
	}
}

// TestRollbackCountsAJobThatCannotMoveOnce: a job no backend can run fails
// in both of the rollback's migration passes; its record counts it once (it
// counted two, which inflated jobs_failed and loosened the verify step's
// check that nothing else was left behind).
func TestRollbackCountsAJobThatCannotMoveOnce(t *testing.T) {
	ctx, st := context.Background(), openStore(t)
	svc := rollback.New(st, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	svc.FlagRefresh = 0
	svc.KnownKinds = map[job.Kind]bool{job.KindGeneration: true}
	for _, k := range []job.Kind{job.KindGeneration, job.KindRAGDocument} {
		if _, _, err := st.CreateJob(ctx, store.NewJob{
			Kind:        k,
			ProjectID:   "p",
			Payload:     json.RawMessage(`{"title":"x"}`),
			RequestHash: string(k),
			Backend:     job.BackendDurable,
		}); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := svc.Rollback(ctx, rollback.Request{Reason: "redis down", Actor: "op"}, nil)
	if err != nil || rec.Status != "completed" {
		t.Fatalf("rollback: %+v, %v", rec, err)
	}
	if rec.JobsMigrated != 1 || rec.JobsFailed != 1 {
		t.Fatalf("jobs migrated %d, failed %d; want 1 and 1", rec.JobsMigrated, rec.JobsFailed)
	}
}

// TestServiceTellsTimeByItsClock: the service's records, step durations and
// sweeps go by the clock it is given, the store's, so a test moves them
// without sleeping: a sweep takes a queued durable job only once it has
// waited longer than the grace on that clock.
func TestServiceTellsTimeByItsClock(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "r.db"), clk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc := rollback.New(st, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	svc.FlagRefresh, svc.Clock = 0, clk

	if _, _, err := st.CreateJob(ctx, store.NewJob{
		Kind:        job.KindGeneration,
		ProjectID:   "p",
		Payload:     json.RawMessage(`{"title":"x"}`),
		RequestHash: "h",
		Backend:     job.BackendDurable,
	}); err != nil {
		t.Fatal(err)
	}
	if n, err := svc.Sweep(ctx, time.Minute); err != nil || n != 0 {
		t.Fatalf("sweep of a job queued just now: %d moved (%v), want none", n, err)
	}
	clk.Advance(2 * time.Minute)
	if n, err := svc.Sweep(ctx, time.Minute); err != nil || n != 1 {
		t.Fatalf("sweep of a job queued two minutes ago: %d moved (%v), want 1", n, err)
	}

	var steps []rollback.Step
	rec, err := svc.Rollback(ctx, rollback.Request{Reason: "redis down", Actor: "op"}, func(s rollback.Step) { steps = append(steps, s) })
	if err != nil {
		t.Fatal(err)
	}
	if !rec.StartedAt.Equal(clk.Now()) || !rec.FinishedAt.Equal(clk.Now()) {
		t.Fatalf("rollback from %v to %v, want both at %v", rec.StartedAt, rec.FinishedAt, clk.Now())
	}
	for _, s := range steps {
		if s.Took != 0 {
			t.Fatalf("step %q took %s on a clock that stood still", s.Name, s.Took)
		}
	}
}

// TestRollbackSweepsAfterEveryReplicaAppliedTheFlag: a serving replica whose
// reads of the setting are slow routes jobs to durable after the flag is off.
// The rollback's second sweep waits until every live replica reports the new
// revision, so the job such a replica routed moves too and the verify step
// passes; a replica that never catches up is named in the sweep's detail.
func TestRollbackSweepsAfterEveryReplicaAppliedTheFlag(t *testing.T) {
	ctx, st := context.Background(), openStore(t)
	svc := rollback.New(st, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	svc.FlagRefresh, svc.ReplicaWait = 0, 5*time.Second
	on, err := st.PutWorkerSetting(ctx, store.DefaultWorkerSetting)
	if err != nil {
		t.Fatal(err)
	}
	lagging := store.WorkerProcess{ID: "serve-slow", Role: durable.RoleReplica, Address: "10.0.0.9:8000", FlagRevision: on.Revision}
	if err := st.RegisterWorker(ctx, lagging); err != nil {
		t.Fatal(err)
	}
	late := make(chan error, 1)
	var steps []rollback.Step
	rec, err := svc.Rollback(ctx, rollback.Request{Reason: "redis down", Actor: "op"}, func(s rollback.Step) {
		steps = append(steps, s)
		if s.Name != "sync statuses" {
			return
		}
		// The replica routes one more job by the old flag, 300 ms after
		// the first sweep, then applies the new flag.
		go func() {
			time.Sleep(300 * time.Millisecond)
			routed := store.NewJob{Kind: job.KindGeneration, ProjectID: "p", Payload: json.RawMessage(`{"title":"x"}`),
				RequestHash: "late", Backend: job.BackendDurable}
			if _, _, err := st.CreateJob(ctx, routed); err != nil {
				late <- err
				return
			}
			w, err := st.GetWorkerSetting(ctx)
			if err == nil {
				err = st.HeartbeatReplica(ctx, lagging.ID, w.Revision, store.RunCounts{})
			}
			late <- err
		}()
	})
	if err := <-late; err != nil {
		t.Fatal(err)
	}
	if err != nil || rec.Status != "completed" || rec.JobsMigrated != 1 {
		t.Fatalf("rollback: %+v, %v; steps %+v", rec, err, steps)
	}
	if left, err := st.CountJobs(ctx, store.JobFilter{Backend: job.BackendDurable, Status: job.StatusQueued}); err != nil || left != 0 {
		t.Fatalf("%d queued durable jobs left (%v)", left, err)
	}

	// A replica that stays behind is waited for no longer than ReplicaWait,
	// and named.
	svc.ReplicaWait = 200 * time.Millisecond
	if err := st.HeartbeatReplica(ctx, lagging.ID, 0, store.RunCounts{}); err != nil {
		t.Fatal(err)
	}
	steps = nil
	start := time.Now()
	if _, err := svc.Rollback(ctx, rollback.Request{Reason: "again", Actor: "op"}, func(s rollback.Step) { steps = append(steps, s) }); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("the rollback took %s with ReplicaWait 200ms", took)
	}
	named := false
	for _, s := range steps {
		if s.Name == "sweep after flag refresh" {
			named = strings.Contains(s.Detail, "still routing by a flag older than revision") && strings.Contains(s.Detail, "serving replica "+lagging.Address)
		}
	}
	if !named {
		t.Fatalf("steps %+v: the sweep should name the replica still behind", steps)
	}
}

// stuckMigrate is a store in which every queued job is passed over by the
// migration, as rows another transaction holds are (SKIP LOCKED).
type stuckMigrate struct{ store.Store }

func (stuckMigrate) MigrateQueued(context.Context, job.Backend, job.Backend, []string, int) ([]job.Job, error) {
	return nil, nil
}

// TestRollbackVerifySweepsAgain: a job routed to durable after the second
// sweep is swept by the verify step instead of failing the rollback; one no
// sweep can move fails it, named with its stage.
func TestRollbackVerifySweepsAgain(t *testing.T) {
	ctx, st := context.Background(), openStore(t)
	svc := rollback.New(st, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	svc.FlagRefresh = 0
	routed := func(key string) store.NewJob {
		return store.NewJob{Kind: job.KindGeneration, ProjectID: "p", Payload: json.RawMessage(`{"title":"x"}`),
			RequestHash: key, Backend: job.BackendDurable}
	}
	rec, err := svc.Rollback(ctx, rollback.Request{Reason: "redis down", Actor: "op"}, func(s rollback.Step) {
		if s.Name == "sweep after flag refresh" {
			if _, _, err := st.CreateJob(ctx, routed("late")); err != nil {
				t.Error(err)
			}
		}
	})
	if err != nil || rec.Status != "completed" || rec.JobsMigrated != 1 {
		t.Fatalf("rollback: %+v, %v; want completed with the late job migrated", rec, err)
	}

	stuck := rollback.New(stuckMigrate{st}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	stuck.FlagRefresh = 0
	j, _, err := st.CreateJob(ctx, routed("held"))
	if err != nil {
		t.Fatal(err)
	}
	rec, err = stuck.Rollback(ctx, rollback.Request{Reason: "redis down", Actor: "op"}, nil)
	if err == nil || rec.Status != "failed" || !strings.Contains(err.Error(), "1 queued durable jobs left (0 dead-lettered) after 3 more sweeps") ||
		!strings.Contains(err.Error(), j.ID+` (stage "queued"`) {
		t.Fatalf("rollback with a job no sweep moves: %+v, %v", rec, err)
	}
}
