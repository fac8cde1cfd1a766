// Package testenv gives tests real services, each isolated: a PostgreSQL schema
// of their own, a Redis database number of their own, or a redis-server process
// of their own for tests that kill or flush it. Without a service a test skips
// with a clear message locally and fails under CI=true.
package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"github.com/redis/go-redis/v9"
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

// PostgresBaseURL is the shared server, overridable with TEST_POSTGRES_URL.
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

// SharedRedisAddr is the shared server, overridable with TEST_REDIS_ADDR.
func SharedRedisAddr() string {
	if a := os.Getenv("TEST_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// RedisURL gives the test a database number of its own on the shared Redis,
// flushed before use. Numbers 1-15 are handed out round robin through a
// counter in database 0, so parallel tests of different packages do not meet.
func RedisURL(t testing.TB) string {
	t.Helper()
	addr := SharedRedisAddr()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := c.Incr(ctx, "scriptgen:test:db").Result()
	Require(t, "Redis at "+addr, err)
	db := int(n%15) + 1
	dc := redis.NewClient(&redis.Options{Addr: addr, DB: db})
	defer dc.Close()
	if err := dc.FlushDB(ctx).Err(); err != nil {
		t.Fatalf("flush redis db %d: %v", db, err)
	}
	return fmt.Sprintf("redis://%s/%d", addr, db)
}

// RedisServer is a redis-server process of the test's own.
type RedisServer struct {
	Port int
	dir  string
	cmd  *exec.Cmd
	t    testing.TB
}

// StartRedis starts a redis-server on a free port; it is killed when the test ends.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	_, err := exec.LookPath("redis-server")
	Require(t, "redis-server binary", err)
	r := &RedisServer{Port: FreePort(t), dir: t.TempDir(), t: t}
	r.Start()
	t.Cleanup(r.Kill)
	return r
}

// Addr is host:port of the server.
func (r *RedisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.Port) }

// URL is a redis:// URL for database db.
func (r *RedisServer) URL(db int) string { return fmt.Sprintf("redis://%s/%d", r.Addr(), db) }

// Start (re)starts the server on its port and waits until it answers.
func (r *RedisServer) Start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log"))
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c.Ping(context.Background()).Err() == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.t.Fatalf("redis-server on %d did not answer", r.Port)
}

// Kill stops the server with SIGKILL and waits for it to exit.
func (r *RedisServer) Kill() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
}

// FreePort asks the kernel for a free TCP port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
