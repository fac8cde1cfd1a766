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

// TestPurgerDrainsInBatches: one pass deletes every job finished before the
// retention, batch after batch, and keeps the rest.
func TestPurgerDrainsInBatches(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "purge.db"), clk)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	finish := func(n int) {
		for range n {
			payload := json.RawMessage(`{"title":"t"}`)
			if _, _, err := st.CreateJob(ctx, store.NewJob{Kind: job.KindGeneration, ProjectID: "p", Payload: payload,
				RequestHash: job.RequestHash(job.KindGeneration, "p", payload), Backend: job.BackendBackgroundTasks}); err != nil {
				t.Fatal(err)
			}
			j, err := st.ClaimNext(ctx, job.BackendBackgroundTasks, "w", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Complete(ctx, j.Lease(), store.Completion{Result: []byte(`{}`)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	finish(7)
	clk.Advance(48 * time.Hour)
	finish(2)
	var logged []any
	p := &purger{store: st, retention: 24 * time.Hour, batch: 3, now: clk.Now,
		logf: func(_ string, args ...any) { logged = args }}
	if err := p.pass(ctx); err != nil {
		t.Fatal(err)
	}
	left, err := st.CountJobs(ctx, store.JobFilter{})
	if err != nil || left != 2 {
		t.Fatalf("%d jobs left (%v), want the 2 younger than the retention", left, err)
	}
	if len(logged) < 2 || logged[1] != 7 {
		t.Fatalf("logged %v, want the 7 purged jobs counted", logged)
	}
}
