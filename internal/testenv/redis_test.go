package testenv

import (
	"bufio"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func client(t *testing.T, rawURL string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRedisURLIsTheBinarysOwn: each test gets a database of its own, empty,
// on the package's redis-server, never on the shared 6379.
func TestRedisURLIsTheBinarysOwn(t *testing.T) {
	if RedisOptInAddr() != "" {
		skipOptIn(t, "TEST_REDIS_ADDR is set: RedisURL uses it, as asked")
	}
	held := map[string]bool{}
	for range 3 {
		raw := RedisURL(t)
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if u.Host == "127.0.0.1:6379" || u.Host != pkgRedis.srv.Addr() || u.Path == "/0" {
			t.Fatalf("RedisURL %s: want a database other than 0 of the package's redis-server %s", raw, pkgRedis.srv.Addr())
		}
		if held[raw] {
			t.Fatalf("%s handed out twice at once", raw)
		}
		held[raw] = true
	}
	// A database handed back by an ended test comes out again empty.
	var first string
	for i := range 2 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			raw := RedisURL(t)
			if first == "" {
				first = raw
			} else if raw != first {
				t.Logf("database %s rather than the handed-back %s", raw, first)
			}
			c := client(t, raw)
			if n, err := c.DBSize(t.Context()).Result(); err != nil || n != 0 {
				t.Fatalf("database of %s holds %d keys (%v), want an empty one", raw, n, err)
			}
			if err := c.Set(t.Context(), "left-over", "x", 0).Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
	c := client(t, first)
	dbs, err := c.ConfigGet(t.Context(), "databases").Result()
	if err != nil || dbs["databases"] != fmt.Sprint(PackageRedisDatabases) {
		t.Fatalf("the package's redis-server has %v databases (%v), want %d", dbs, err, PackageRedisDatabases)
	}
}

// fatalTB records a Fatal instead of ending the goroutine.
type fatalTB struct {
	testing.TB
	msg string
}

type fatalled struct{}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	panic(fatalled{})
}
func (f *fatalTB) Fatalf(format string, args ...any) { f.Fatal(fmt.Sprintf(format, args...)) }

// TestRedisURLWithoutMainFails: a package that did not route its tests
// through Main would leak its redis-server, so RedisURL refuses, saying what
// to add.
func TestRedisURLWithoutMainFails(t *testing.T) {
	pkgRedis.viaMain.Store(false)
	defer pkgRedis.viaMain.Store(true)
	f := &fatalTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil && r != (fatalled{}) {
				panic(r)
			}
		}()
		RedisURL(f)
	}()
	if !strings.Contains(f.msg, "func TestMain(m *testing.M) { testenv.Main(m) }") {
		t.Fatalf("RedisURL without Main said %q, want it to say to add the TestMain", f.msg)
	}
}

// TestRedisOptIn: TEST_REDIS_ADDR is used when set, as the user asked.
func TestRedisOptIn(t *testing.T) {
	srv := StartRedis(t)
	t.Setenv("TEST_REDIS_ADDR", srv.Addr())
	raw := RedisURL(t)
	if !strings.HasPrefix(raw, "redis://"+srv.Addr()+"/") {
		t.Fatalf("RedisURL %s with TEST_REDIS_ADDR=%s", raw, srv.Addr())
	}
}

// TestPackageRedisDiesWithTheBinary: a test binary killed with SIGKILL (no
// cleanup, no Main) takes its redis-server with it.
func TestPackageRedisDiesWithTheBinary(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") == "1" {
		fmt.Printf("url %s\ndir %s\n", RedisURL(t), pkgRedis.srv.dir)
		select {} // until killed
	}
	if RedisOptInAddr() != "" {
		skipOptIn(t, "TEST_REDIS_ADDR is set")
	}
	Require(t, "redis-server binary", func() error { _, err := exec.LookPath("redis-server"); return err }())
	child := exec.Command(os.Args[0], "-test.run=^TestPackageRedisDiesWithTheBinary$", "-test.v")
	child.Env = append(os.Environ(), "TESTENV_CHILD=1")
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	var raw, dir string
	lines := bufio.NewScanner(out)
	for (raw == "" || dir == "") && lines.Scan() {
		if s, ok := strings.CutPrefix(lines.Text(), "url "); ok {
			raw = s
		}
		if s, ok := strings.CutPrefix(lines.Text(), "dir "); ok {
			dir = s
		}
	}
	if raw == "" || dir == "" {
		t.Fatal("the child test binary did not report its redis-server")
	}
	defer os.RemoveAll(dir) // what a killed binary leaves behind
	c := client(t, raw)
	if err := c.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("the child's redis-server at %s: %v", raw, err)
	}
	child.Process.Kill()
	child.Wait()
	addr := strings.TrimPrefix(raw[:strings.LastIndex(raw, "/")], "redis://")
	Eventually(t, 5*time.Second, func() bool {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
		}
		return err != nil
	}, "the redis-server at %s outlived its killed test binary", addr)
}

// skipOptIn leaves a test of the package's own redis-server out when a
// developer opted into another Redis; under CI=true the opt-in is a mistake
// (CI must prove the tests' own servers), and the test fails.
func skipOptIn(t *testing.T, why string) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s under CI=true: CI runs the tests on their own redis-server; unset TEST_REDIS_ADDR", why)
	}
	t.Skipf("%s (under CI=true this fails)", why)
}
