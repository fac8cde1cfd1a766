package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/scriptgen/scriptgen/internal/job"
)

// A batch of submissions tried again after its commit — whose answer was
// lost, say — answers each request with the job the first try committed and
// adds no job and no event: the first try gives each request its id, kept for
// the next, so the retry of a failed round cannot turn one submission into two
// jobs.
func TestCreateTriedAgainAfterItsCommitAddsNothing(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	// The jobs table and its later columns.
	for _, m := range []string{"001_jobs.sql", "008_retry_backoff.sql"} {
		schema, err := os.ReadFile("sqlite/migrations/" + m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(string(schema)); err != nil {
			t.Fatal(err)
		}
	}
	s := NewSQL(db, db, Dialect{}, nil)
	payload := json.RawMessage(`{"title":"t"}`)
	var batch []createReq
	for _, key := range []string{"k1", ""} {
		batch = append(batch, createReq{NewJob: NewJob{Kind: job.KindGeneration,
			ProjectID: "p1", Payload: payload, IdempotencyKey: key, Backend: job.BackendBackgroundTasks, MaxAttempts: 3,
			RequestHash: job.RequestHash(job.KindGeneration, "p1", payload)}})
	}
	try := func() []createRes {
		res := make([]createRes, len(batch))
		if err := s.inTx(ctx, func(tx *Tx) error { return s.createAll(ctx, tx, batch, res) }); err != nil {
			t.Fatal(err)
		}
		return res
	}
	first, again := try(), try()
	for i := range batch {
		if again[i].err != nil || !again[i].created || again[i].j.ID != first[i].j.ID || first[i].j.ID != batch[i].id {
			t.Fatalf("request %d tried again: %+v, first try %+v", i, again[i], first[i])
		}
	}
	var jobs, events int
	db.QueryRow(`SELECT COUNT(*) FROM jobs`).Scan(&jobs)
	db.QueryRow(`SELECT COUNT(*) FROM job_events`).Scan(&events)
	if jobs != 2 || events != 2 {
		t.Fatalf("%d jobs and %d events after two tries of two submissions, want 2 and 2", jobs, events)
	}
}
