package durable_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/durable"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/runner"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/store/sqlite"
	"github.com/scriptgen/scriptgen/internal/testenv"
)

// slowToStop runs until its context ends, then takes a moment (a generator
// step, an HTTP call unwinding) before it returns.
type slowToStop struct{ started, returned chan struct{} }

func (h slowToStop) Handle(ctx context.Context, j job.Job, _ runner.ReportFunc) (store.Completion, error) {
	defer close(h.returned)
	close(h.started)
	<-ctx.Done()
	// The unwinding's own time, deliberately: asynq's Shutdown returns within
	// it, and Stop must not.
	time.Sleep(100 * time.Millisecond)
	return store.Completion{}, ctx.Err()
}

// TestWorkerStopWaitsForReleases: asynq's Shutdown returns once its drain
// timeout has put the task back, while the handler is still unwinding. Stop
// must wait for the executor's release on shutdown, since RunWorker closes the
// store right after it: without the wait the job stayed "running" under a dead
// lease and, when the lease expired, lost an attempt (or failed on its last).
func TestWorkerStopWaitsForReleases(t *testing.T) {
	opt, err := asynq.ParseRedisURI(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "w.db")
	st, err := sqlite.Open(ctx, path, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := slowToStop{started: make(chan struct{}), returned: make(chan struct{})}
	exec := runner.NewExecutor(st, map[job.Kind]runner.Handler{job.KindGeneration: h},
		runner.ExecutorConfig{LeaseFor: 30 * time.Second}, log, nil)
	disp := durable.NewDispatcher(opt)
	w := durable.NewWorker(st, exec, disp, durable.WorkerConfig{Redis: opt, ID: "w1", Concurrency: 1,
		ShutdownTimeout: 200 * time.Millisecond}, log)
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	j, _, err := st.CreateJob(ctx, store.NewJob{Kind: job.KindGeneration, ProjectID: "p", Payload: json.RawMessage(`{"title":"x"}`),
		RequestHash: "h", Backend: job.BackendDurable})
	if err != nil {
		t.Fatal(err)
	}
	if err := disp.Dispatch(ctx, j); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.started:
	case <-time.After(10 * time.Second):
		t.Fatal("job never started")
	}
	// RunWorker's shutdown: stop the components, then the deferred closes.
	w.Stop(ctx)
	active := exec.Active()
	disp.Stop(ctx)
	st.Close()
	// Whatever the handler still does happens before the job is read back.
	select {
	case <-h.returned:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler never returned")
	}

	st2, err := sqlite.Open(ctx, path, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	cur, err := st2.GetJob(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Status != job.StatusQueued || cur.Attempt != 0 || cur.DispatchEpoch != j.DispatchEpoch+1 {
		t.Fatalf("after the worker stopped (runs still active when Stop returned: %d) the job is %s, attempt %d, epoch %d (lease owner %q); "+
			"want queued, attempt 0, epoch %d (released on shutdown)", active, cur.Status, cur.Attempt, cur.DispatchEpoch, cur.LeaseOwner, j.DispatchEpoch+1)
	}
}
