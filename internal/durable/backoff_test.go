package durable_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/scriptgen/scriptgen/internal/durable"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/runner"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/testenv"
)

// failsFirst fails every job's first attempt and records when each attempt
// of each job started.
type failsFirst struct {
	mu     sync.Mutex
	starts map[string][]time.Time
}

func (h *failsFirst) Handle(_ context.Context, j job.Job, _ runner.ReportFunc) (store.Completion, error) {
	h.mu.Lock()
	h.starts[j.ID] = append(h.starts[j.ID], time.Now())
	h.mu.Unlock()
	if j.Attempt == 1 {
		return store.Completion{}, errors.New("transient")
	}
	return store.Completion{Result: json.RawMessage(`{"ok":true}`)}, nil
}

func (h *failsFirst) runs(id string) []time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Time(nil), h.starts[id]...)
}

// TestDurableRetryWaitsItsBackoff: on the durable side a failed job's second
// attempt starts no sooner than JOB_BACKOFF_BASE after its failure, whether
// its task was scheduled for the end of the backoff (the worker's
// re-dispatch) or reached a worker early (a task enqueued without its
// schedule: the claim refuses it and the worker hands it back to asynq),
// and each job succeeds exactly once.
func TestDurableRetryWaitsItsBackoff(t *testing.T) {
	opt, err := asynq.ParseRedisURI(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st := testenv.SQLite(t)
	const base = 1500 * time.Millisecond
	st.SetBackoff(job.Backoff{Base: base, Cap: base})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := &failsFirst{starts: map[string][]time.Time{}}
	exec := runner.NewExecutor(st, map[job.Kind]runner.Handler{job.KindGeneration: h},
		runner.ExecutorConfig{LeaseFor: 30 * time.Second}, log, nil)
	disp := durable.NewDispatcher(opt)
	defer disp.Stop(ctx)
	w := durable.NewWorker(st, exec, disp, durable.WorkerConfig{Redis: opt, ID: "w1", Concurrency: 2,
		ShutdownTimeout: time.Second}, log)
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop(ctx)
	create := func(title string) job.Job {
		j, _, err := st.CreateJob(ctx, store.NewJob{Kind: job.KindGeneration, ProjectID: "p",
			Payload: json.RawMessage(`{"title":"` + title + `"}`), RequestHash: title, Backend: job.BackendDurable})
		if err != nil {
			t.Fatal(err)
		}
		return j
	}

	// Through the worker: its first attempt fails, the worker re-dispatches
	// the retry, scheduled.
	scheduled := create("scheduled")
	if err := disp.Dispatch(ctx, scheduled); err != nil {
		t.Fatal(err)
	}

	// Failed elsewhere (another process's attempt), then enqueued plainly,
	// as a task of an older build or a hand-made one would be.
	early := create("early")
	claimed, err := st.ClaimDispatch(ctx, early.Dispatch(), "other", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	failedAt := time.Now()
	failed, err := st.Fail(ctx, claimed.Lease(), "elsewhere", true)
	if err != nil || failed.RetryAt.IsZero() {
		t.Fatalf("fail: %+v %v", failed, err)
	}
	b, _ := json.Marshal(map[string]any{"job_id": failed.ID, "epoch": failed.DispatchEpoch})
	client := asynq.NewClient(opt)
	defer client.Close()
	if _, err := client.EnqueueContext(ctx, asynq.NewTask(durable.TaskType, b,
		asynq.TaskID(durable.TaskID(failed.Dispatch())), asynq.Queue(durable.QueueGeneration))); err != nil {
		t.Fatal(err)
	}

	for _, j := range []job.Job{scheduled, early} {
		testenv.Eventually(t, 20*time.Second, func() bool {
			cur, err := st.GetJob(ctx, j.ID)
			return err == nil && cur.Status == job.StatusSucceeded
		}, "job %s never succeeded", j.ID)
	}

	runs := h.runs(scheduled.ID)
	if len(runs) != 2 || runs[1].Sub(runs[0]) < base {
		t.Fatalf("scheduled retry: runs %v, want 2, the second at least %s after the first", runs, base)
	}
	if runs := h.runs(early.ID); len(runs) != 1 || runs[0].Sub(failedAt) < base {
		t.Fatalf("early task: runs %v, want 1, at least %s after the failure at %s", runs, base, failedAt)
	}
	for _, j := range []job.Job{scheduled, early} {
		cur, err := st.GetJob(ctx, j.ID)
		if err != nil || cur.Attempt != 2 {
			t.Fatalf("job %s: %+v %v, want succeeded on attempt 2", j.ID, cur, err)
		}
		evs, err := st.ListEvents(ctx, j.ID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		results := 0
		for _, e := range evs {
			if e.Type == job.EventResult {
				results++
			}
		}
		if results != 1 {
			t.Fatalf("job %s: %d result events, want exactly 1", j.ID, results)
		}
	}
}
