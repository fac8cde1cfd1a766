package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/database"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// TestPurgeCommand: `scriptgen purge` deletes the jobs finished before
// --older-than, batch by batch, keeps the younger ones, and refuses a
// retention short enough to be a typo.
func TestPurgeCommand(t *testing.T) {
	cleanEnv(t)
	url := newDB(t)
	clk := clock.NewFake(time.Now().Add(-72 * time.Hour))
	st, err := database.Open(t.Context(), url, clk)
	if err != nil {
		t.Fatal(err)
	}
	finish := func(n int) {
		for range n {
			payload := json.RawMessage(`{"title":"t"}`)
			if _, _, err := st.CreateJob(t.Context(), store.NewJob{Kind: job.KindGeneration, ProjectID: "p", Payload: payload,
				RequestHash: job.RequestHash(job.KindGeneration, "p", payload), Backend: job.BackendBackgroundTasks}); err != nil {
				t.Fatal(err)
			}
			j, err := st.ClaimNext(t.Context(), job.BackendBackgroundTasks, "w", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Complete(t.Context(), j.Lease(), store.Completion{Result: []byte(`{}`)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	finish(5)
	clk.Advance(72 * time.Hour)
	finish(1)
	st.Close()

	t.Setenv("DATABASE_URL", url)
	if code, _, errs := run("purge", "--older-than", "10s"); code != 2 || !strings.Contains(errs, "at least 1m") {
		t.Fatalf("purge --older-than 10s: exit %d, %s; want a usage error", code, errs)
	}
	code, out, errs := run("purge", "--older-than", "24h", "--batch", "2")
	if code != 0 || !strings.Contains(out, "5 jobs purged (finished before") {
		t.Fatalf("purge: exit %d\n%s\n%s", code, out, errs)
	}
	st, err = database.Open(t.Context(), url, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n, err := st.CountJobs(t.Context(), store.JobFilter{}); err != nil || n != 1 {
		t.Fatalf("%d jobs left (%v), want the one finished just now", n, err)
	}
}
