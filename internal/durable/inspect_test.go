package durable_test

import (
	"context"
	"slices"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/scriptgen/scriptgen/internal/durable"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/testenv"
)

// TestTaskStatesFollowTheQueue: the reconciler's look at Redis sees a
// dispatched task (generation and rag_processing queues alike) as pending, and
// one never enqueued, another epoch's, or one whose Redis database was flushed
// as gone.
func TestTaskStatesFollowTheQueue(t *testing.T) {
	opt, err := asynq.ParseRedisURI(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	disp := durable.NewDispatcher(opt)
	defer disp.Stop(ctx)
	insp := durable.NewInspector(opt)
	defer insp.Close()

	gen := job.Job{ID: "job-gen", Kind: job.KindGeneration, DispatchEpoch: 1}
	doc := job.Job{ID: "job-doc", Kind: job.KindRAGDocument, DispatchEpoch: 2}
	never := job.Job{ID: "job-never", Kind: job.KindGeneration, DispatchEpoch: 1}
	for _, j := range []job.Job{gen, doc} {
		if err := disp.Dispatch(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	later := gen
	later.DispatchEpoch = 2
	states, err := insp.TaskStates(ctx, []job.Job{gen, doc, never, later})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"pending", "pending", durable.TaskGone, durable.TaskGone}; !slices.Equal(states, want) {
		t.Fatalf("states %q, want %q", states, want)
	}
	c := opt.MakeRedisClient().(redis.UniversalClient)
	defer c.Close()
	if err := c.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if states, err = insp.TaskStates(ctx, []job.Job{gen, doc}); err != nil || !slices.Equal(states, []string{durable.TaskGone, durable.TaskGone}) {
		t.Fatalf("after FLUSHDB: states %q (%v), want gone", states, err)
	}
}
