package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/durable"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/store/postgres"
	"github.com/scriptgen/scriptgen/internal/store/sqlite"
	"github.com/scriptgen/scriptgen/internal/testenv"
	"github.com/scriptgen/scriptgen/internal/workerflag"
)

// degradedServer is a Server with what Degraded reads: the store, the flag
// (the durable worker on at 100 % when durable) and, when durable, an
// inspector of the Redis at redisAddr.
func degradedServer(t *testing.T, st store.Store, durableOn bool, redisAddr string) *Server {
	t.Helper()
	s := &Server{store: st, log: slog.New(slog.DiscardHandler)}
	s.flag = workerflag.New(st, workerflag.Config{DurableAvailable: durableOn}, s.log)
	if durableOn {
		s.insp = durable.NewInspector(asynq.RedisClientOpt{Addr: redisAddr})
	}
	return s
}

func wantReasons(t *testing.T, s *Server, want ...string) {
	t.Helper()
	start := time.Now()
	got := s.Degraded(context.Background())
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("Degraded took %s", took)
	}
	if got == nil || !slices.Equal(got, want) {
		t.Fatalf("degraded %q, want %q", got, want)
	}
}

// diskFull is the error SQLite gives a write into a full database.
func diskFull(t *testing.T) error {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "full.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{`CREATE TABLE t (x TEXT)`, `PRAGMA max_page_count = 8`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	_, err = db.Exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
		INSERT INTO t SELECT printf('%.1000c', 'x') FROM n`)
	if err == nil {
		t.Fatal("the database took 1 MB in 8 pages")
	}
	return fmt.Errorf("save the job: %w", err)
}

// TestDegradedByFailingWrites: a write that failed because the database
// could not take it degrades the service for 30 s; other failures do not.
func TestDegradedByFailingWrites(t *testing.T) {
	s := degradedServer(t, testenv.SQLite(t), false, "")
	wantReasons(t, s)

	s.WriteFailed(errors.New("episode 3 is taken"))
	s.WriteFailed(context.Canceled)
	wantReasons(t, s)

	s.WriteFailed(diskFull(t))
	wantReasons(t, s, "database writes failing: disk full")

	w := s.writeFailure()
	w.mu.Lock()
	w.at = w.at.Add(-31 * time.Second)
	w.mu.Unlock()
	wantReasons(t, s)
}

// TestDegradedWhenTheDatabaseDoesNotAnswer: a closed store, and a PostgreSQL
// pool whose every connection is taken (a ping waits for one in vain).
func TestDegradedWhenTheDatabaseDoesNotAnswer(t *testing.T) {
	ctx := context.Background()
	lite, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "closed.db"), clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	s := degradedServer(t, lite, true, "127.0.0.1:1")
	lite.Close()
	// Neither Redis nor the workers are told apart from the database then.
	wantReasons(t, s, "database unreachable", "redis unreachable while the durable worker is on")

	pg, err := postgres.Open(ctx, testenv.PostgresURL(t)+"&pool_max_conns=1", clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	s = degradedServer(t, pg, false, "")
	wantReasons(t, s)
	conn, err := pg.R.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	wantReasons(t, s, "database unreachable")
}

// TestDegradedDurableSide: while the durable worker is on, Redis must answer
// and some worker process must have beaten within a minute; while it is off,
// neither matters.
func TestDegradedDurableSide(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(time.Now().Add(-2 * time.Minute))
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "w.db"), clk)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	redis := testenv.StartRedis(t)

	off := degradedServer(t, st, false, "")
	wantReasons(t, off)

	s := degradedServer(t, st, true, redis.Addr())
	wantReasons(t, s, "no durable worker alive")

	// A worker that beat two minutes ago is not alive…
	w := store.WorkerProcess{ID: "w1", Role: durable.RoleWorker, Host: "h", PID: 1}
	if err := st.RegisterWorker(ctx, w); err != nil {
		t.Fatal(err)
	}
	wantReasons(t, s, "no durable worker alive")
	// …one that beats now is.
	clk.Advance(2 * time.Minute)
	if err := st.HeartbeatWorker(ctx, w.ID, nil); err != nil {
		t.Fatal(err)
	}
	wantReasons(t, s)
	// …and one that stopped cleanly is not: the jobs sent there wait while
	// /health said ok, until the registry forgot it a minute later.
	if err := st.StopWorker(ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	wantReasons(t, s, "no durable worker alive")
	w2 := store.WorkerProcess{ID: "w2", Role: durable.RoleWorker, Host: "h", PID: 2}
	if err := st.RegisterWorker(ctx, w2); err != nil {
		t.Fatal(err)
	}
	wantReasons(t, s)

	redis.Kill()
	wantReasons(t, s, "redis unreachable while the durable worker is on")
	wantReasons(t, off)

	// A rollback (the setting off) ends both concerns.
	if _, err := st.PutWorkerSetting(ctx, store.WorkerSetting{Enabled: false, RolloutPercent: 0, Reason: "rollback", UpdatedBy: "test"}); err != nil {
		t.Fatal(err)
	}
	if err := s.flag.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	wantReasons(t, s)
}
