package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/store/sqlite"
	"github.com/scriptgen/scriptgen/internal/store/storetest"
)

func TestStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, clk clock.Clock) store.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "test.db"), clk)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestLogIsCheckpointedOffTheWriter: the writer never checkpoints, so the
// write-ahead log stays bounded only because the checkpointer catches up
// between waves of writes and the writer then starts the log over. Without it
// the log would hold every wave.
//
// Not in parallel: how far the log grows depends on how the writes and the
// checkpointer's passes interleave, which other tests' load would change.
func TestLogIsCheckpointedOffTheWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.db")
	ctx := context.Background()
	s, err := sqlite.Open(ctx, path, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	payload := json.RawMessage(`{"title":"t"}`)
	var sizes []int64
	for wave := range 5 {
		for i := range 300 {
			if _, _, err := s.CreateJob(ctx, store.NewJob{
				Kind:           job.KindGeneration,
				ProjectID:      "p",
				Payload:        payload,
				IdempotencyKey: fmt.Sprintf("w%d-%d", wave, i),
				RequestHash:    "h",
				Backend:        job.BackendBackgroundTasks,
			}); err != nil {
				t.Fatal(err)
			}
		}
		// Two passes: the second started after the wave's last commit.
		passes := s.CheckpointPasses()
		waitFor(t, "two checkpoint passes after the wave", func() bool { return s.CheckpointPasses() >= passes+2 })
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, fi.Size())
	}
	if last := sizes[len(sizes)-1]; last > 2*sizes[0] {
		t.Fatalf("log sizes after each wave %v: the log grows, nothing checkpoints it", sizes)
	}
}

// waitFor polls cond every 10 ms until it holds, and fails the test when it
// still does not after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10 s", what)
		}
		<-tick.C
	}
}

// TestScriptTextIsStoredAsIs: a batch of checkpoints travels to SQLite as one
// JSON array, which does not carry invalid UTF-8 (encoding/json replaces it);
// a batch holding such a text (or a NUL) is written a statement per row, so
// every text is stored byte for byte, JSON's special characters included.
func TestScriptTextIsStoredAsIs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "test.db"), clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	claim := func(key string) job.Job {
		t.Helper()
		if _, _, err := s.CreateJob(ctx, store.NewJob{
			Kind:           job.KindGeneration,
			ProjectID:      "p",
			Payload:        json.RawMessage(`{"title":"t"}`),
			IdempotencyKey: key,
			RequestHash:    "h",
			Backend:        job.BackendBackgroundTasks,
		}); err != nil {
			t.Fatal(err)
		}
		j, err := s.ClaimNext(ctx, job.BackendBackgroundTasks, "w", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	for _, texts := range [][]string{
		{`"quoted" \back\slash <b>&amp; ☕ 지수`, "\t\u2028\n"},
		{"before\x00after", "\xff\xfe not UTF-8"},
	} {
		a, b := claim(texts[0]), claim(texts[1])
		answers, err := s.CheckpointScripts(ctx, []store.ScriptCheckpoint{
			{Lease: a.Lease(), Offset: 0, Text: texts[0]},
			{Lease: b.Lease(), Offset: 0, Text: texts[1]},
		})
		if err != nil || answers[0] != nil || answers[1] != nil {
			t.Fatalf("checkpoints %q: %v %v", texts, answers, err)
		}
		for i, j := range []job.Job{a, b} {
			got, err := s.ScriptSoFar(ctx, j.ID)
			if err != nil || got != texts[i] {
				t.Fatalf("script so far %q (%v), want %q", got, err, texts[i])
			}
		}
	}
}

// TestScriptEndBehindItsParts: a part appended without moving the job row's
// script_chars — what a binary from before that column does during an
// upgrade — does not make the next checkpoint a conflict: the parts have the
// last word, and the row catches up.
func TestScriptEndBehindItsParts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "test.db")
	s, err := sqlite.Open(ctx, path, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.CreateJob(ctx, store.NewJob{Kind: job.KindGeneration, ProjectID: "p", Payload: json.RawMessage(`{"title":"t"}`),
		IdempotencyKey: "k", RequestHash: "h", Backend: job.BackendBackgroundTasks}); err != nil {
		t.Fatal(err)
	}
	j, err := s.ClaimNext(ctx, job.BackendBackgroundTasks, "w", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckpointScript(ctx, j.Lease(), 0, "장면 1. "); err != nil {
		t.Fatal(err)
	}
	old, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if _, err := old.ExecContext(ctx, `INSERT INTO job_script_parts (job_id, start, chars, epoch, text) VALUES (?, 6, 4, ?, '지수가 ')`,
		j.ID, j.DispatchEpoch); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckpointScript(ctx, j.Lease(), 10, "웃는다."); err != nil {
		t.Fatalf("a checkpoint at the parts' end: %v", err)
	}
	var chars, parts int
	if err := old.QueryRowContext(ctx, `SELECT script_chars, script_parts FROM jobs WHERE id = ?`, j.ID).Scan(&chars, &parts); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ScriptSoFar(ctx, j.ID); err != nil || got != "장면 1. 지수가 웃는다." || chars != 14 || parts != 3 {
		t.Fatalf("script %q (%v), the row says %d characters in %d parts; want 14 in 3", got, err, chars, parts)
	}
	if err := s.CheckpointScript(ctx, j.Lease(), 20, "!"); !errors.Is(err, store.ErrScriptConflict) {
		t.Fatalf("a checkpoint past the end: %v, want ErrScriptConflict", err)
	}
}

// TestWarmOpensTheReaders: Warm leaves the read pool's connections (8) open
// and idle, however many more it is asked for.
func TestWarmOpensTheReaders(t *testing.T) {
	t.Parallel()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "test.db"), clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := s.Warm(context.Background(), store.WarmConns); n != 8 {
		t.Fatalf("warmed %d read connections, want the pool's 8", n)
	}
	if st := s.R.Stats(); st.OpenConnections != 8 || st.Idle != 8 {
		t.Fatalf("after Warm: %d open, %d idle; want 8 of each", st.OpenConnections, st.Idle)
	}
}
