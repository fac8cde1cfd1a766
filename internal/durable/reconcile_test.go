package durable_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/scriptgen/scriptgen/internal/durable"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/testenv"
)

// TestRedispatchActsOnEachTaskState runs the reconciler's durable pass over
// queued jobs whose tasks are in every state it tells apart, on a real Redis
// with a real asynq server holding one task active:
//   - waiting (pending): left alone;
//   - gone (never enqueued, or flushed): enqueued again under the same epoch;
//   - archived by asynq (its retries ran out; before the fix the job stayed
//     queued for ever, its task id taken): a new epoch and task, and the old
//     dead-letter entry removed;
//   - active and unclaimed past stuckAfter (a worker died before its claim):
//     left alone at the first pass that sees it (a live worker may be about to
//     claim it), a new epoch and task at the next.
func TestRedispatchActsOnEachTaskState(t *testing.T) {
	opt, err := asynq.ParseRedisURI(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st := testenv.SQLite(t)
	disp := durable.NewDispatcher(opt)
	defer disp.Stop(ctx)
	insp := durable.NewInspector(opt)
	defer insp.Close()
	raw := asynq.NewInspector(opt)
	defer raw.Close()

	newJob := func(key string) job.Job {
		j, _, err := st.CreateJob(ctx, store.NewJob{Kind: job.KindGeneration, ProjectID: "p", Payload: json.RawMessage(`{"title":"x"}`),
			RequestHash: key, IdempotencyKey: key, Backend: job.BackendDurable})
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	taskOf := func(j job.Job) string { return durable.TaskID(job.Dispatch{JobID: j.ID, Epoch: j.DispatchEpoch}) }
	state := func(j job.Job) string {
		info, err := raw.GetTaskInfo(durable.QueueGeneration, taskOf(j))
		if err != nil {
			return "gone"
		}
		return info.State.String()
	}

	// One slot, held by the first task: it stays active while the test runs.
	release := make(chan struct{})
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: 1, Queues: durable.Queues, LogLevel: asynq.FatalLevel,
		TaskCheckInterval: 50 * time.Millisecond})
	if err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	defer close(release)
	active := newJob("active")
	if err := disp.Dispatch(ctx, active); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return state(active) == "active" }, "the task never became active")
	pending, gone, archived := newJob("pending"), newJob("gone"), newJob("archived")
	for _, j := range []job.Job{pending, archived} {
		if err := disp.Dispatch(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	// What asynq does once the task's last retry failed.
	if err := raw.ArchiveTask(durable.QueueGeneration, taskOf(archived)); err != nil {
		t.Fatal(err)
	}

	// The pass runs an hour from now: every job has waited past the stuck
	// limit of a minute.
	pass := durable.Redispatch(st, disp, insp, 0, time.Minute, func() time.Time { return time.Now().Add(time.Hour) })
	current := func(j job.Job) job.Job {
		cur, err := st.GetJob(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		return cur
	}
	// The first pass sees the active task for the first time: a live worker
	// could be about to claim it, so it is left alone.
	if err := pass(ctx); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		j     job.Job
		epoch int64
		state string
	}{
		{pending, pending.DispatchEpoch, "pending"},
		{gone, gone.DispatchEpoch, "pending"},
		{archived, archived.DispatchEpoch + 1, "pending"},
		{active, active.DispatchEpoch, "active"},
	} {
		j, cur := want.j, current(want.j)
		if cur.Status != job.StatusQueued || cur.DispatchEpoch != want.epoch || state(cur) != want.state {
			t.Errorf("%s: %s at epoch %d, task %s; want queued at epoch %d, task %s",
				j.IdempotencyKey, cur.Status, cur.DispatchEpoch, state(cur), want.epoch, want.state)
		}
	}
	if s := state(archived); s != "gone" {
		t.Errorf("the archived task of the old epoch is %s, want it removed", s)
	}

	// Still active, still unclaimed, at the next pass: its worker died.
	if err := pass(ctx); err != nil {
		t.Fatal(err)
	}
	if cur := current(active); cur.DispatchEpoch != active.DispatchEpoch+1 || state(cur) != "pending" {
		t.Errorf("stuck active job: epoch %d, task %s; want epoch %d with a pending task", cur.DispatchEpoch, state(cur), active.DispatchEpoch+1)
	}
	for _, j := range []job.Job{pending, gone} {
		if cur := current(j); cur.DispatchEpoch != j.DispatchEpoch {
			t.Errorf("%s: epoch moved to %d on the second pass", j.IdempotencyKey, cur.DispatchEpoch)
		}
	}
}
