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

// TestPresentFollowsTheQueue: the reconciler's look at Redis sees a
// dispatched task (generation and rag_processing queues alike), does not see
// one never enqueued, another epoch's, or one whose Redis database was flushed.
func TestPresentFollowsTheQueue(t *testing.T) {
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
	present, err := insp.Present(ctx, []job.Job{gen, doc, never, later})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, true, false, false}; !slices.Equal(present, want) {
		t.Fatalf("present %v, want %v", present, want)
	}
	c := opt.MakeRedisClient().(redis.UniversalClient)
	defer c.Close()
	if err := c.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if present, err = insp.Present(ctx, []job.Job{gen, doc}); err != nil || !slices.Equal(present, []bool{false, false}) {
		t.Fatalf("after FLUSHDB: present %v (%v), want none", present, err)
	}
}
