package server

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/store/sqlite"
)

// TestQueueDelayIsTheLongestWait: the queue_delay trigger reads how long the
// queued durable job that has waited longest has waited. QueueDelay used to
// take the queued job with the smallest id and measure from its updated_at:
// when that job was queued again just now (a retried attempt, a released or
// expired lease), the jobs behind it that had waited twelve minutes went
// unseen, and the trigger read ~0 while the queue was stalled.
func TestQueueDelayIsTheLongestWait(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(time.Now().Add(-12 * time.Minute))
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "q.db"), clk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	payload := json.RawMessage(`{"title":"t"}`)
	create := func(project string) job.Job {
		j, _, err := st.CreateJob(ctx, store.NewJob{Kind: job.KindGeneration, ProjectID: project, Payload: payload,
			RequestHash: job.RequestHash(job.KindGeneration, project, payload), Backend: job.BackendDurable})
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	a := create("p-a") // oldest id
	clk.Advance(time.Millisecond)
	b := create("p-b") // waits from now on: twelve minutes
	// a is taken by a worker and released (or retried) just now.
	claimed, err := st.ClaimDispatch(ctx, job.Dispatch{JobID: a.ID, Epoch: a.DispatchEpoch}, "w1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(12 * time.Minute)
	if err := st.Release(ctx, claimed.Lease(), "released on shutdown"); err != nil {
		t.Fatal(err)
	}

	s := &Server{store: st}
	delay, err := s.QueueDelay(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if delay < 11*time.Minute {
		t.Fatalf("QueueDelay %s, but job %s has been queued for ~12m (the trigger's threshold is 10m)", delay, b.ID)
	}
}
