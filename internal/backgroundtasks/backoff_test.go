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
)

// failsFirst fails every job's first attempt and records when, on the
// store's clock, each attempt started.
type failsFirst struct {
	clk    clock.Clock
	mu     sync.Mutex
	starts []time.Time
}

func (h *failsFirst) Handle(_ context.Context, j job.Job, _ runner.ReportFunc) (store.Completion, error) {
	h.mu.Lock()
	h.starts = append(h.starts, h.clk.Now())
	h.mu.Unlock()
	if j.Attempt == 1 {
		return store.Completion{}, errors.New("transient")
	}
	return store.Completion{Result: json.RawMessage(`{"ok":true}`)}, nil
}

func (h *failsFirst) runs() []time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Time(nil), h.starts...)
}

// TestRetryWaitsItsBackoff: the pool does not run a failed job's second
// attempt before JOB_BACKOFF_BASE has passed on the store's clock, however
// often it polls and rescans meanwhile, runs it once it has, and the job
// succeeds exactly once.
func TestRetryWaitsItsBackoff(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "pool.db"), clk)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const base = time.Hour
	st.SetBackoff(job.Backoff{Base: base, Cap: 2 * base})
	j, _, err := st.CreateJob(ctx, store.NewJob{Kind: job.KindGeneration, ProjectID: "p1",
		Payload: json.RawMessage(`{"title":"t"}`), Backend: job.BackendBackgroundTasks})
	if err != nil {
		t.Fatal(err)
	}
	h := &failsFirst{clk: clk}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	exec := runner.NewExecutor(st, map[job.Kind]runner.Handler{job.KindGeneration: h},
		runner.ExecutorConfig{LeaseFor: 10 * time.Second}, log, nil)
	pool := backgroundtasks.New(st, exec, backgroundtasks.Config{Workers: 2, Owner: "test",
		PollInterval: 10 * time.Millisecond, Rescan: 10 * time.Millisecond, DrainTimeout: time.Second}, log)
	pool.Start(ctx)
	defer pool.Stop(ctx)

	waitFor(t, 10*time.Second, "failed first attempt", func() bool {
		cur, err := st.GetJob(ctx, j.ID)
		return err == nil && cur.Status == job.StatusQueued && cur.Attempt == 1
	})
	failed, err := st.GetJob(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := clk.Now().Add(base); !failed.RetryAt.Equal(want) {
		t.Fatalf("retry_at %s, want %s", failed.RetryAt, want)
	}
	// Dozens of polls and rescans, each a claim from the oldest job, while
	// the store's clock stands a microsecond short of the retry.
	clk.Advance(base - time.Microsecond)
	time.Sleep(300 * time.Millisecond)
	if n := len(h.runs()); n != 1 {
		t.Fatalf("%d runs before the backoff passed, want 1", n)
	}
	clk.Advance(time.Microsecond)
	waitFor(t, 10*time.Second, "second attempt after the backoff", func() bool {
		cur, err := st.GetJob(ctx, j.ID)
		return err == nil && cur.Status == job.StatusSucceeded
	})
	runs := h.runs()
	if len(runs) != 2 || runs[1].Sub(runs[0]) < base {
		t.Fatalf("runs at %v: want 2, the second %s after the first", runs, base)
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
		t.Fatalf("%d result events, want exactly 1", results)
	}
}
