package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/store/postgres"
	"github.com/scriptgen/scriptgen/internal/store/sqlite"
	"github.com/scriptgen/scriptgen/internal/testenv"
)

func wantUnavailable(t *testing.T, what string, err error, class string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	if got := store.UnavailableClass(err); got != class || !store.IsUnavailable(err) {
		t.Fatalf("%s: %v is class %q (unavailable %v), want %q", what, err, got, store.IsUnavailable(err), class)
	}
	// However the store wraps it.
	if !store.IsUnavailable(fmt.Errorf("save the job: %w", err)) {
		t.Fatalf("%s: wrapped, %v is not unavailable", what, err)
	}
}

// TestUnavailableErrorsOfPostgres: a server that cannot be reached, a store
// that was closed and a pool that has no connection to give in time.
func TestUnavailableErrorsOfPostgres(t *testing.T) {
	ctx := context.Background()
	port := testenv.FreePort(t) // nothing listens there
	_, err := postgres.Open(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/test?sslmode=disable&connect_timeout=2", port), clock.Real{})
	wantUnavailable(t, "connect to a closed port", err, "cannot connect")

	st, err := postgres.Open(ctx, testenv.PostgresURL(t)+"&pool_max_conns=1", clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	// The only connection is taken: a query waits for it until its deadline.
	conn, err := st.R.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = st.GetJob(short, "00000000-0000-0000-0000-000000000000")
	cancel()
	wantUnavailable(t, "wait for a pooled connection", err, "timeout")
	conn.Close()

	// The connection is killed under the pool (a restarted server, a
	// failover): the next query on it fails.
	conn, err = st.R.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if err := conn.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("pgx", testenv.PostgresBaseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	var one int
	err = conn.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
	if err == nil || !store.IsUnavailable(err) {
		t.Fatalf("a query on a terminated connection: %v (class %q), want unavailable", err, store.UnavailableClass(err))
	}
	t.Logf("a query on a terminated connection: %v (%s)", err, store.UnavailableClass(err))
	conn.Close()

	st.Close()
	_, err = st.GetJob(ctx, "00000000-0000-0000-0000-000000000000")
	wantUnavailable(t, "a closed store", err, "database closed")
}

// TestUnavailableErrorsOfSQLite: the database file read-only, the database
// full, locked beyond its busy timeout, and a file that cannot be opened.
func TestUnavailableErrorsOfSQLite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "u.db")
	st, err := sqlite.Open(ctx, path, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	exec := func(dsn string, stmts ...string) error {
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			return err
		}
		defer db.Close()
		db.SetMaxOpenConns(1)
		for _, s := range stmts {
			if _, err := db.ExecContext(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}
	err = exec("file:"+path+"?mode=ro", `INSERT INTO leader_leases (name, holder, expires_at) VALUES ('x', 'y', 0)`)
	wantUnavailable(t, "write to a read-only database", err, "read-only")

	err = exec("file:"+filepath.Join(t.TempDir(), "missing", "dir", "x.db"), `CREATE TABLE t (x)`)
	wantUnavailable(t, "open a file in a missing directory", err, "cannot open the database file")

	full := filepath.Join(t.TempDir(), "full.db")
	err = exec("file:"+full, `CREATE TABLE t (x TEXT)`, `PRAGMA max_page_count = 8`,
		`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
		INSERT INTO t SELECT printf('%.1000c', 'x') FROM n`)
	wantUnavailable(t, "fill the database", err, "disk full")

	// Another connection holds the write lock past this one's busy timeout.
	holder, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	tx, err := holder.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO leader_leases (name, holder, expires_at) VALUES ('a', 'b', 0)`); err != nil {
		t.Fatal(err)
	}
	err = exec("file:"+path+"?_pragma=busy_timeout(50)", `INSERT INTO leader_leases (name, holder, expires_at) VALUES ('c', 'd', 0)`)
	wantUnavailable(t, "write while another connection holds the lock", err, "database locked")
	tx.Rollback()
}

// TestAvailableErrors: what the request got wrong, or the caller gave up on,
// is not the database being unavailable.
func TestAvailableErrors(t *testing.T) {
	ctx := context.Background()
	st := testenv.SQLite(t)
	_, err := st.GetJob(ctx, "00000000-0000-0000-0000-000000000000")
	if !errors.Is(err, job.ErrNotFound) {
		t.Fatalf("get a missing job: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, cerr := st.GetJob(cancelled, "00000000-0000-0000-0000-000000000000")
	_, serr := st.R.ExecContext(ctx, `SELECT FROM nowhere`)
	for _, err := range []error{nil, err, cerr, serr, job.ErrStaleLease, &job.ValidationError{Field: "q", Message: "is required"},
		errors.New("something else")} {
		if store.IsUnavailable(err) {
			t.Errorf("%v is unavailable (class %q)", err, store.UnavailableClass(err))
		}
	}
	if cerr == nil || !strings.Contains(cerr.Error(), "canceled") {
		t.Errorf("a cancelled read: %v", cerr)
	}
}
