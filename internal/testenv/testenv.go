// Package testenv gives tests real services, each isolated, and never touches
// data the tests did not create: a PostgreSQL schema of their own (dropped at
// the end), a Redis database of their own on a redis-server the test binary
// started (see RedisURL and Main), or a redis-server of their own for tests
// that kill or flush it. The shared Redis on 127.0.0.1:6379 is never written.
// Without a service a test skips with a clear message locally and fails under
// CI=true.
package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// InCI reports whether the tests run under CI=true.
func InCI() bool { return os.Getenv("CI") == "true" }

// Require skips t locally, or fails it under CI, when a service is missing.
func Require(t testing.TB, service string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if InCI() {
		t.Fatalf("%s is required under CI=true but unavailable: %v", service, err)
	}
	t.Skipf("%s unavailable, skipping (start it as the README says; under CI=true this fails): %v", service, err)
}

// SkipShort skips a slow test under -short, except under CI=true, where
// every test runs.
func SkipShort(t testing.TB, why string) {
	t.Helper()
	if testing.Short() && !InCI() {
		t.Skipf("%s: skipped with -short (under CI=true it runs)", why)
	}
}

// PostgresBaseURL is the shared server, overridable with TEST_POSTGRES_URL.
// The tests only create schemas of their own there and drop them.
func PostgresBaseURL() string {
	if u := os.Getenv("TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

var schemaSeq atomic.Int64

// PostgresURL creates a schema of the test's own and returns a URL whose
// search_path points at it. The schema is dropped when the test ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := PostgresBaseURL()
	db, err := sql.Open("pgx", base)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = db.PingContext(ctx)
		cancel()
	}
	Require(t, "PostgreSQL at "+base, err)
	schema := fmt.Sprintf("t_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9, schemaSeq.Add(1))
	if _, err := db.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		db.Exec(`DROP SCHEMA ` + schema + ` CASCADE`)
		db.Close()
	})
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// FreePort asks the kernel for a free TCP port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Eventually waits until cond holds, asking every 15 ms, and fails the test
// with msg (formatted with args) if it does not within timeout. It is the
// tests' way to wait for something to happen, rather than a fixed sleep.
func Eventually(t interface {
	Helper()
	Fatalf(format string, args ...any)
}, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s (waited %s)", fmt.Sprintf(msg, args...), timeout)
		}
		time.Sleep(15 * time.Millisecond)
	}
}
