package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/store/postgres"
	"github.com/scriptgen/scriptgen/internal/store/storetest"
	"github.com/scriptgen/scriptgen/internal/testenv"
)

func TestStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, clk clock.Clock) store.Store {
		s, err := postgres.Open(context.Background(), testenv.PostgresURL(t), clk)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestEventsAreAnnounced: every step that appends an event — submission,
// claim of a dispatch, completion — notifies the event channel with the job
// id, which is what wakes the live streams of other processes.
func TestEventsAreAnnounced(t *testing.T) {
	t.Parallel()
	url := testenv.PostgresURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, url, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+postgres.EventChannel); err != nil {
		t.Fatal(err)
	}
	// The channel is shared by every schema: wait for this job's id.
	announced := func(step, id string) {
		t.Helper()
		wait, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		for {
			n, err := conn.WaitForNotification(wait)
			if err != nil {
				t.Fatalf("%s: no notification for job %s: %v", step, id, err)
			}
			if n.Payload == id {
				return
			}
		}
	}
	payload := json.RawMessage(`{"title":"t"}`)
	j, _, err := s.CreateJob(ctx, store.NewJob{
		Kind:        job.KindGeneration,
		ProjectID:   "p",
		Payload:     payload,
		RequestHash: job.RequestHash(job.KindGeneration, "p", payload),
		Backend:     job.BackendDurable,
	})
	if err != nil {
		t.Fatal(err)
	}
	announced("create", j.ID)
	c, err := s.ClaimDispatch(ctx, job.Dispatch{JobID: j.ID, Epoch: j.DispatchEpoch}, "w", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	announced("claim", j.ID)
	done := store.Completion{
		Result:  json.RawMessage(`{}`),
		Episode: &job.Episode{ProjectID: "p", Title: "t", Script: "s"},
	}
	if _, err := s.Complete(ctx, c.Lease(), done); err != nil {
		t.Fatal(err)
	}
	announced("complete", j.ID)
	evs, err := s.ListEvents(ctx, j.ID, 0, 0)
	if err != nil || len(evs) != 3 || evs[1].Message != "attempt 1 of 3 on durable" {
		t.Fatalf("events %+v (%v): want created, claimed (with its attempt), succeeded", evs, err)
	}
}

// TestPoolSizeFromTheURL: pool_max_conns in DATABASE_URL caps the process's
// connections (the default 32 per process made two replicas and two workers
// exceed PostgreSQL's default max_connections of 100), never reaches
// PostgreSQL as a setting, and is refused when it is not one number in range.
func TestPoolSizeFromTheURL(t *testing.T) {
	t.Parallel()
	url := testenv.PostgresURL(t)
	s, err := postgres.Open(context.Background(), url+"&pool_max_conns=3", clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := s.W.Stats().MaxOpenConnections; n != 3 {
		t.Fatalf("max open connections %d, want 3", n)
	}
	if strings.Contains(s.URL, "pool_max_conns") {
		t.Fatalf("the URL kept for other connections still holds pool_max_conns: %s", s.URL)
	}
	if _, n, err := postgres.PoolSize(url); err != nil || n != postgres.DefaultPoolSize {
		t.Fatalf("without the parameter: %d, %v; want %d", n, err, postgres.DefaultPoolSize)
	}
	for _, bad := range []string{"0", "-1", "x", "1001", "3&pool_max_conns=4"} {
		if _, err := postgres.Open(context.Background(), url+"&pool_max_conns="+bad, clock.Real{}); err == nil || !strings.Contains(err.Error(), "pool_max_conns") {
			t.Errorf("pool_max_conns=%s: %v, want an error naming it", bad, err)
		}
	}
}

// TestWarmOpensThePool: Warm leaves that many connections open and idle in
// the pool, never more than the pool holds.
func TestWarmOpensThePool(t *testing.T) {
	t.Parallel()
	url := testenv.PostgresURL(t)
	for _, tc := range []struct {
		url  string
		want int
	}{{url, store.WarmConns}, {url + "&pool_max_conns=3", 3}} {
		// The application name tells this store's backends from the other tests'.
		app := fmt.Sprintf("warm-%d-%d", os.Getpid(), tc.want)
		s, err := postgres.Open(context.Background(), tc.url+"&application_name="+app, clock.Real{})
		if err != nil {
			t.Fatal(err)
		}
		if n := s.Warm(context.Background(), store.WarmConns); n != tc.want {
			t.Errorf("warmed %d connections, want %d", n, tc.want)
		}
		if st := s.W.Stats(); st.OpenConnections != tc.want || st.Idle != tc.want {
			t.Errorf("after Warm: %d open, %d idle; want %d of each", st.OpenConnections, st.Idle, tc.want)
		}
		// Each of them ran the list's first page, the statement GET
		// /api/generation runs (its last query, as PostgreSQL shows it).
		var listed int
		if err := s.W.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1
			AND query LIKE 'SELECT % FROM jobs WHERE project_id <> $1 ORDER BY id DESC LIMIT $2'`, app).Scan(&listed); err != nil {
			t.Fatal(err)
		}
		// The count's own backend is one of the warmed ones, its query this one.
		if listed != tc.want-1 {
			t.Errorf("%d warmed backends ran the list's query last, want %d", listed, tc.want-1)
		}
		s.Close()
	}
}

// A DATABASE_URL that does not parse is refused without its password: the
// parser's error quotes the whole URL.
func TestPoolSizeKeepsThePasswordOutOfItsError(t *testing.T) {
	t.Parallel()
	_, _, err := postgres.PoolSize("postgres://app:s3cr%et@db:5432/test")
	if err == nil || strings.Contains(err.Error(), "s3cr") {
		t.Fatalf("error %v: want one without the password", err)
	}
}
