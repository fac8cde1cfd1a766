package backgroundtasks_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/backgroundtasks"
	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/runner"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/store/sqlite"
	"github.com/scriptgen/scriptgen/internal/testenv"
)

// recorder passes claims to the store and remembers what each asked for and got.
type recorder struct {
	store.Store
	mu     sync.Mutex
	claims []claimCall
}

type claimCall struct {
	after string
	got   []string
}

func (r *recorder) ClaimBatch(ctx context.Context, b job.Backend, owner string, leaseFor time.Duration, n int, after string, opts ...store.ClaimOptions) ([]job.Job, error) {
	jobs, err := r.Store.ClaimBatch(ctx, b, owner, leaseFor, n, after, opts...)
	c := claimCall{after: after}
	for _, j := range jobs {
		c.got = append(c.got, j.ID)
	}
	r.mu.Lock()
	r.claims = append(r.claims, c)
	r.mu.Unlock()
	return jobs, err
}

// failsOnce fails the first attempt of one job, which queues it again.
type failsOnce struct{ id string }

func (h failsOnce) Handle(_ context.Context, j job.Job, _ runner.ReportFunc) (store.Completion, error) {
	if j.ID == h.id && j.Attempt == 1 {
		return store.Completion{}, errors.New("transient")
	}
	return store.Completion{Result: json.RawMessage(`{"ok":true}`)}, nil
}

// A claimer looks after the last id it took, and a job queued again below it
// — here a retry — still runs, found by the claim from the oldest that comes
// once per Rescan.
func TestClaimsLookAfterTheLastIDAndRescanForRetries(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "pool.db"), clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var ids []string
	for range 2 {
		j, _, err := st.CreateJob(ctx, store.NewJob{
			Kind:      job.KindGeneration,
			ProjectID: "p1",
			Payload:   json.RawMessage(`{"title":"t"}`),
			Backend:   job.BackendBackgroundTasks,
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	rec := &recorder{Store: st}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	exec := runner.NewExecutor(rec, map[job.Kind]runner.Handler{job.KindGeneration: failsOnce{ids[0]}},
		runner.ExecutorConfig{LeaseFor: 10 * time.Second}, log, nil)
	pool := backgroundtasks.New(rec, exec, backgroundtasks.Config{Workers: 2, Owner: "test",
		PollInterval: 20 * time.Millisecond, Rescan: 300 * time.Millisecond, DrainTimeout: time.Second}, log)
	pool.Start(ctx)
	defer pool.Stop(ctx)

	var a job.Job
	waitFor(t, 10*time.Second, "second run of the job queued again below the last claimed id", func() bool {
		if a, err = st.GetJob(ctx, ids[0]); err != nil {
			t.Fatal(err)
		}
		return a.Status == job.StatusSucceeded
	})
	if a.Attempt != 2 {
		t.Fatalf("retried job succeeded on attempt %d, want 2", a.Attempt)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	var after, retried bool
	for _, c := range rec.claims {
		after = after || c.after == ids[1]
		for _, id := range c.got {
			if id == ids[0] && c.after == "" && len(c.got) == 1 {
				retried = true
			}
		}
	}
	if !after || !retried {
		t.Fatalf("claims %+v: want one after %s and the retry of %s taken from the oldest", rec.claims, ids[1], ids[0])
	}
}

// deaf runs until the test lets it go, whatever its context says.
type deaf struct {
	started chan struct{}
	release chan struct{}
}

func (h deaf) Handle(context.Context, job.Job, runner.ReportFunc) (store.Completion, error) {
	close(h.started)
	<-h.release
	return store.Completion{}, nil
}

// TestStopIsBoundedByAHandlerThatIgnoresItsContext: once the drain timeout
// has cut a run short, Stop waits StopWait for it and then returns an error,
// rather than holding the process up for as long as the handler likes (it
// waited with no bound).
func TestStopIsBoundedByAHandlerThatIgnoresItsContext(t *testing.T) {
	ctx := context.Background()
	st := testenv.SQLite(t)
	if _, _, err := st.CreateJob(ctx, store.NewJob{Kind: job.KindGeneration, ProjectID: "p1",
		Payload: json.RawMessage(`{"title":"t"}`), Backend: job.BackendBackgroundTasks}); err != nil {
		t.Fatal(err)
	}
	h := deaf{started: make(chan struct{}), release: make(chan struct{})}
	defer close(h.release)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	exec := runner.NewExecutor(st, map[job.Kind]runner.Handler{job.KindGeneration: h}, runner.ExecutorConfig{LeaseFor: 10 * time.Second}, log, nil)
	pool := backgroundtasks.New(st, exec, backgroundtasks.Config{Workers: 1, Owner: "test", PollInterval: 20 * time.Millisecond,
		DrainTimeout: 100 * time.Millisecond, StopWait: 200 * time.Millisecond}, log)
	pool.Start(ctx)
	select {
	case <-h.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the job never started")
	}
	stopped := make(chan error, 1)
	go func() { stopped <- pool.Stop(ctx) }()
	select {
	case err := <-stopped:
		if err == nil {
			t.Fatal("Stop returned no error with a run still under way")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop still waits 5 s after a drain timeout of 100 ms and a StopWait of 200 ms")
	}
}

// waitFor polls cond every 10 ms until it holds, and fails the test when it
// still does not after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, timeout, cond, "no %s", what)
}
