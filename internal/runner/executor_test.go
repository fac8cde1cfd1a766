package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/runner"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/testenv"
)

// heldByEpoch runs until its context ends or the test lets the run of that
// epoch go.
type heldByEpoch map[int64]chan struct{}

func (h heldByEpoch) Handle(ctx context.Context, j job.Job, _ runner.ReportFunc) (store.Completion, error) {
	select {
	case <-h[j.DispatchEpoch]:
		return store.Completion{}, nil
	case <-ctx.Done():
		return store.Completion{}, ctx.Err()
	}
}

// TestCancelLocalReachesTheFreshRun: a stale run of a job (its lease expired
// and the job was claimed again, here by the same process, before the stale
// run noticed) and the fresh run overlap. When the stale run ends it must not
// take the fresh run's place in the executor: a cancel still stops the fresh
// run at once, instead of at its next lease renewal.
func TestCancelLocalReachesTheFreshRun(t *testing.T) {
	ctx := context.Background()
	st := testenv.SQLite(t)
	created, _, err := st.CreateJob(ctx, store.NewJob{
		Kind:        job.KindGeneration,
		ProjectID:   "p",
		Payload:     json.RawMessage(`{"title":"x"}`),
		RequestHash: "h",
		Backend:     job.BackendDurable,
	})
	if err != nil {
		t.Fatal(err)
	}
	stale, err := st.ClaimDispatch(ctx, job.Dispatch{JobID: created.ID, Epoch: created.DispatchEpoch}, "w1", time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "expiry of the 1 ms lease", func() bool {
		expired, err := st.ExpireLeases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(expired) == 1
	})
	fresh, err := st.ClaimDispatch(ctx, job.Dispatch{JobID: created.ID, Epoch: stale.DispatchEpoch + 1}, "w1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}

	h := heldByEpoch{stale.DispatchEpoch: make(chan struct{}), fresh.DispatchEpoch: make(chan struct{})}
	exec := runner.NewExecutor(st, map[job.Kind]runner.Handler{job.KindGeneration: h},
		runner.ExecutorConfig{LeaseFor: time.Minute, Heartbeat: time.Hour}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	staleDone, freshDone := make(chan runner.Outcome, 1), make(chan runner.Outcome, 1)
	go func() { staleDone <- exec.Run(ctx, stale) }()
	go func() { freshDone <- exec.Run(ctx, fresh) }()
	waitFor(t, "two runs under way", func() bool { return exec.Active() == 2 })
	close(h[stale.DispatchEpoch])
	if o := <-staleDone; o != runner.OutcomeDropped {
		t.Fatalf("the stale run ended with %v, want dropped", o)
	}
	if n := exec.Active(); n != 1 {
		t.Fatalf("%d runs under way after the stale one ended, want 1", n)
	}
	exec.CancelLocal(created.ID)
	select {
	case <-freshDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the fresh run did not stop at a local cancel")
	}
}

// blinkingStore fails the first completions and failures it is asked for, as a
// database that restarts would.
type blinkingStore struct {
	store.Store
	completes, fails int
}

func (b *blinkingStore) Complete(ctx context.Context, l job.Lease, c store.Completion) (job.Job, error) {
	if b.completes > 0 {
		b.completes--
		return job.Job{}, errors.New("connection refused")
	}
	return b.Store.Complete(ctx, l, c)
}

func (b *blinkingStore) Fail(ctx context.Context, l job.Lease, reason string, retryable bool) (job.Job, error) {
	if b.fails > 0 {
		b.fails--
		return job.Job{}, errors.New("connection refused")
	}
	return b.Store.Fail(ctx, l, reason, retryable)
}

type succeeding struct{}

func (succeeding) Handle(context.Context, job.Job, runner.ReportFunc) (store.Completion, error) {
	return store.Completion{}, nil
}

type failing struct{}

func (failing) Handle(context.Context, job.Job, runner.ReportFunc) (store.Completion, error) {
	return store.Completion{}, fmt.Errorf("%w: no such template", runner.ErrPermanent)
}

// TestFinishingWritesOutlastABlink: a completion or failure that the database
// refuses a few times is written again until it lands. The job used to be
// left to its lease, to lose an attempt and run its effect a second time (or
// fail, on its last attempt, with its work done).
func TestFinishingWritesOutlastABlink(t *testing.T) {
	ctx := context.Background()
	st := testenv.SQLite(t)
	blink := &blinkingStore{Store: st, completes: 3, fails: 3}
	exec := runner.NewExecutor(blink, map[job.Kind]runner.Handler{job.KindGeneration: succeeding{}, job.KindRAGDocument: failing{}},
		runner.ExecutorConfig{LeaseFor: time.Minute}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	for _, tc := range []struct {
		kind    job.Kind
		outcome runner.Outcome
		status  job.Status
	}{
		{job.KindGeneration, runner.OutcomeSucceeded, job.StatusSucceeded},
		{job.KindRAGDocument, runner.OutcomeFailed, job.StatusFailed},
	} {
		created, _, err := st.CreateJob(ctx, store.NewJob{
			Kind:        tc.kind,
			ProjectID:   "p",
			Payload:     json.RawMessage(`{"title":"x"}`),
			RequestHash: string(tc.kind),
			Backend:     job.BackendDurable,
		})
		if err != nil {
			t.Fatal(err)
		}
		claimed, err := st.ClaimDispatch(ctx, job.Dispatch{JobID: created.ID, Epoch: created.DispatchEpoch}, "w1", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if o := exec.Run(ctx, claimed); o != tc.outcome {
			t.Fatalf("%s: outcome %v, want %v", tc.kind, o, tc.outcome)
		}
		cur, err := st.GetJob(ctx, created.ID)
		if err != nil || cur.Status != tc.status || cur.Attempt != 1 {
			t.Fatalf("%s: %s on attempt %d (%v), want %s on attempt 1", tc.kind, cur.Status, cur.Attempt, err, tc.status)
		}
	}
	if blink.completes != 0 || blink.fails != 0 {
		t.Fatalf("%d completions and %d failures still to refuse", blink.completes, blink.fails)
	}
}

// waitFor polls cond every 10 ms until it holds, and fails the test when it
// still does not after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, cond, "no %s", what)
}

// scripting is a LiveHandler that checkpoints a line of script, waits to be
// let go, then tries to write another.
type scripting struct {
	wrote, release chan struct{}
	second         chan error // the second write's error, once the run's context has ended
}

func (s scripting) Handle(context.Context, job.Job, runner.ReportFunc) (store.Completion, error) {
	return store.Completion{}, errors.New("the executor must call HandleLive")
}

func (s scripting) HandleLive(ctx context.Context, j job.Job, r runner.Reporter) (store.Completion, error) {
	if so, err := r.ScriptSoFar(ctx); err != nil || so != "" {
		return store.Completion{}, fmt.Errorf("script so far %q: %v", so, err)
	}
	if err := r.Script(ctx, 0, "1. INT."); err != nil {
		return store.Completion{}, err
	}
	close(s.wrote)
	<-s.release
	err := r.Script(ctx, 7, " ROOM")
	<-ctx.Done()
	s.second <- err
	return store.Completion{}, err
}

// TestReporterWritesUnderTheLease: a LiveHandler checkpoints its script
// through the executor's Reporter; once the job is cancelled elsewhere its
// next checkpoint is refused as stale, its run cancelled and dropped, and
// the script stays as it was.
func TestReporterWritesUnderTheLease(t *testing.T) {
	ctx := context.Background()
	st := testenv.SQLite(t)
	created, _, err := st.CreateJob(ctx, store.NewJob{
		Kind:        job.KindGeneration,
		ProjectID:   "p",
		Payload:     json.RawMessage(`{"title":"x"}`),
		RequestHash: "h",
		Backend:     job.BackendDurable,
	})
	if err != nil {
		t.Fatal(err)
	}
	claimed, err := st.ClaimDispatch(ctx, job.Dispatch{JobID: created.ID, Epoch: created.DispatchEpoch}, "w1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	h := scripting{wrote: make(chan struct{}), release: make(chan struct{}), second: make(chan error, 1)}
	exec := runner.NewExecutor(st, map[job.Kind]runner.Handler{job.KindGeneration: h},
		runner.ExecutorConfig{LeaseFor: time.Minute, Heartbeat: time.Hour}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	done := make(chan runner.Outcome, 1)
	go func() { done <- exec.Run(ctx, claimed) }()
	<-h.wrote
	if so, err := st.ScriptSoFar(ctx, created.ID); err != nil || so != "1. INT." {
		t.Fatalf("script so far %q (%v)", so, err)
	}
	if _, err := st.Cancel(ctx, created.ID); err != nil {
		t.Fatal(err)
	}
	close(h.release)
	if err := <-h.second; !errors.Is(err, job.ErrStaleLease) {
		t.Fatalf("checkpoint after the cancel: %v, want ErrStaleLease", err)
	}
	if o := <-done; o != runner.OutcomeDropped {
		t.Fatalf("outcome %v, want dropped", o)
	}
	if so, _ := st.ScriptSoFar(ctx, created.ID); so != "1. INT." {
		t.Fatalf("script after the stale checkpoint %q", so)
	}
}
