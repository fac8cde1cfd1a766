package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// PackageRedisDatabases is how many databases the package's redis-server has:
// RedisURL hands each test one of its own, 1 to PackageRedisDatabases-1.
const PackageRedisDatabases = 1024

// pkgRedis is the test binary's own redis-server, shared by the package's
// tests that call RedisURL: started at the first call, stopped by Main.
var pkgRedis struct {
	viaMain atomic.Bool // the package's TestMain goes through Main
	once    sync.Once
	srv     *RedisServer
	missing error // no redis-server binary: skip locally, fail under CI
	err     error // it would not start

	mu   sync.Mutex
	free []int // databases handed back by ended tests
	next int   // the next database never handed out
}

// Main runs the package's tests and exits with their status; call it from the
// TestMain of every package whose tests use RedisURL:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) { os.Exit(RunMain(m)) }

// RunMain is Main for a TestMain with work of its own around the tests: it
// runs them, then kills the package's redis-server (if a test started it) and
// removes its directory, and returns the status for os.Exit.
func RunMain(m *testing.M) int {
	pkgRedis.viaMain.Store(true)
	defer stopPackageRedis()
	return m.Run()
}

func stopPackageRedis() {
	if srv := pkgRedis.srv; srv != nil {
		srv.Kill()
		os.RemoveAll(srv.dir)
	}
}

// RedisOptInAddr is the Redis the user chose with TEST_REDIS_ADDR, or "" when
// none: the tests then use redis-servers they started themselves, and never
// the shared Redis on 127.0.0.1:6379.
func RedisOptInAddr() string { return os.Getenv("TEST_REDIS_ADDR") }

// RedisURL gives the test a Redis database of its own, empty, as a redis://
// URL.
//
// It lives on the test binary's own redis-server (a free port, no persistence,
// PackageRedisDatabases databases), started at the first call and stopped when
// the package's tests end, which needs the package's TestMain to call Main. No
// Redis the tests did not start is touched.
//
// With TEST_REDIS_ADDR set, the tests use that server instead, as the user
// asked: they write to it and FLUSHDB its databases 1-15 (handed out round
// robin through the counter key scriptgen:test:db in database 0), so point it
// only at a Redis whose data may go.
func RedisURL(t testing.TB) string {
	t.Helper()
	if !pkgRedis.viaMain.Load() {
		t.Fatal("testenv.RedisURL needs this package's TestMain to run the tests through testenv.Main, " +
			"which stops the package's redis-server when they end; add a main_test.go with\n\n" +
			"\tfunc TestMain(m *testing.M) { testenv.Main(m) }\n\n" +
			"(or call testenv.RunMain(m) from the TestMain the package has)")
	}
	if addr := RedisOptInAddr(); addr != "" {
		return optInRedisURL(t, addr)
	}
	srv := packageRedis(t)
	db := takeDatabase(t)
	t.Cleanup(func() { giveBackDatabase(db) })
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), DB: db})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The database may hold what an ended test left.
	if err := c.FlushDB(ctx).Err(); err != nil { // our own, started by this binary
		t.Fatalf("flush database %d of the package's redis-server: %v", db, err)
	}
	return srv.URL(db)
}

// packageRedis starts the package's redis-server once, or reports why it
// could not.
func packageRedis(t testing.TB) *RedisServer {
	t.Helper()
	pkgRedis.once.Do(func() {
		if _, err := exec.LookPath("redis-server"); err != nil {
			pkgRedis.missing = err
			return
		}
		dir, err := os.MkdirTemp("", "scriptgen-redis-")
		if err != nil {
			pkgRedis.err = err
			return
		}
		srv := &RedisServer{dir: dir, databases: PackageRedisDatabases}
		if err := srv.launchOnFreePort(); err != nil {
			os.RemoveAll(dir)
			pkgRedis.err = err
			return
		}
		pkgRedis.srv = srv
	})
	Require(t, "redis-server binary", pkgRedis.missing)
	if pkgRedis.err != nil {
		t.Fatalf("start the package's redis-server: %v", pkgRedis.err)
	}
	return pkgRedis.srv
}

func takeDatabase(t testing.TB) int {
	t.Helper()
	pkgRedis.mu.Lock()
	defer pkgRedis.mu.Unlock()
	if n := len(pkgRedis.free); n > 0 {
		db := pkgRedis.free[n-1]
		pkgRedis.free = pkgRedis.free[:n-1]
		return db
	}
	if pkgRedis.next == 0 {
		pkgRedis.next = 1 // database 0 is left alone, as a user's default
	}
	if pkgRedis.next >= PackageRedisDatabases {
		t.Fatalf("more than %d tests of this package hold a Redis database at once", PackageRedisDatabases-1)
	}
	pkgRedis.next++
	return pkgRedis.next - 1
}

func giveBackDatabase(db int) {
	pkgRedis.mu.Lock()
	defer pkgRedis.mu.Unlock()
	pkgRedis.free = append(pkgRedis.free, db)
}

// optInRedisURL hands out databases 1-15 of the user's TEST_REDIS_ADDR round
// robin, through a counter in database 0, so that parallel tests of different
// packages do not meet, and flushes the one it hands out.
func optInRedisURL(t testing.TB, addr string) string {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := c.Incr(ctx, "scriptgen:test:db").Result()
	Require(t, "Redis at TEST_REDIS_ADDR="+addr, err)
	db := int(n%15) + 1
	dc := redis.NewClient(&redis.Options{Addr: addr, DB: db})
	defer dc.Close()
	if err := dc.FlushDB(ctx).Err(); err != nil { // not our own: its owner opted in with TEST_REDIS_ADDR
		t.Fatalf("flush database %d of TEST_REDIS_ADDR=%s: %v", db, addr, err)
	}
	return fmt.Sprintf("redis://%s/%d", addr, db)
}

// RedisServer is a redis-server process the tests started: on a free port of
// 127.0.0.1, without persistence, in a directory of its own. On Linux it is
// killed by the kernel if the test binary dies before it could stop it.
type RedisServer struct {
	Port      int
	dir       string
	databases int // 0: redis-server's default (16)
	cmd       *exec.Cmd
	exited    chan struct{}
	t         testing.TB
}

// StartRedis starts a redis-server of the test's own, for tests that kill,
// restart or flush it; it is killed when the test ends.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	_, err := exec.LookPath("redis-server")
	Require(t, "redis-server binary", err)
	r := &RedisServer{dir: t.TempDir(), t: t}
	t.Cleanup(r.Kill)
	if err := r.launchOnFreePort(); err != nil {
		t.Fatal(err)
	}
	return r
}

// Addr is host:port of the server.
func (r *RedisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.Port) }

// URL is a redis:// URL for database db.
func (r *RedisServer) URL(db int) string { return fmt.Sprintf("redis://%s/%d", r.Addr(), db) }

// Start restarts a killed server on its port and waits until it answers.
func (r *RedisServer) Start() {
	r.t.Helper()
	if err := r.launch(); err != nil {
		r.t.Fatal(err)
	}
}

// launchOnFreePort starts the server on a port the kernel said was free; if
// another process took the port in between, it tries another.
func (r *RedisServer) launchOnFreePort() error {
	var err error
	for range 5 {
		if r.Port, err = freePort(); err != nil {
			return err
		}
		if err = r.launch(); err == nil {
			return nil
		}
	}
	return err
}

// launch starts redis-server on r.Port and waits until it answers.
func (r *RedisServer) launch() error {
	logPath := filepath.Join(r.dir, "redis.log")
	args := []string{"--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--logfile", logPath}
	if r.databases > 0 {
		args = append(args, "--databases", strconv.Itoa(r.databases))
	}
	cmd := exec.Command("redis-server", args...)
	if err := startTied(cmd); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	r.cmd, r.exited = cmd, exited
	err := awaitPing(r.Addr(), exited, "redis-server", r.Port, logPath)
	if errors.Is(err, errExited) {
		r.cmd = nil
	} else if err != nil {
		r.Kill()
	}
	return err
}

// errExited is a server process that ended before it answered.
var errExited = errors.New("exited")

// awaitPing waits up to 10 s for the server at addr to answer PING, or for
// its process to exit (exited closed); either failure carries its log's tail.
func awaitPing(addr string, exited <-chan struct{}, binary string, port int, logPath string) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s on port %d %w: %s", binary, port, errExited, logTail(logPath))
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s on port %d did not answer within 10s: %s", binary, port, logTail(logPath))
}

func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, "\n")
}

// Kill stops the server with SIGKILL and waits for it to exit.
func (r *RedisServer) Kill() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	r.cmd.Process.Kill()
	<-r.exited
	r.cmd = nil
}
