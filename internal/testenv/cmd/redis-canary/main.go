// Command redis-canary runs a command (the test suite) and proves it left the
// shared Redis alone. Before the command it plants a canary key with a random
// value in databases 0-15 of the Redis at SHARED_REDIS_ADDR (default
// 127.0.0.1:6379) and watches that Redis with MONITOR; after the command,
// whatever its exit, it checks every canary is still there with its value,
// deletes them, and counts the commands MONITOR saw that were not its own.
//
// It fails (exit status 1, or the command's own when that is not 0) when a
// canary is missing or changed, and under CI=true also when any other command
// reached that Redis: nobody else uses it in CI. Otherwise it exits with the
// command's status. Without a Redis at that address there is nothing to
// protect: it says so and just runs the command.
//
// The canaries expire after a day, so a run killed before its check leaves
// nothing behind for good.
//
// Usage: redis-canary [-addr host:port] -- command [args...]
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	keyPrefix = "scriptgen:canary:"
	databases = 16 // 0 and 1-15, a default Redis's all
	ttl       = 24 * time.Hour
	samples   = 20 // foreign commands quoted in the report
)

// quiet drops go-redis's own log lines (a refused dial when no Redis is
// there is an answer here, not news).
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func main() {
	redis.SetLogger(quiet{})
	log := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "redis-canary: "+format+"\n", args...) }
	addr := flag.String("addr", envOr("SHARED_REDIS_ADDR", "127.0.0.1:6379"), "the shared Redis the command must not touch")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: redis-canary [-addr host:port] -- command [args...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	ci := os.Getenv("CI") == "true"

	var g *guard
	if optIn := os.Getenv("TEST_REDIS_ADDR"); optIn != "" && sameAddr(optIn, *addr) {
		log("TEST_REDIS_ADDR=%s is the shared Redis: the tests write to it and flush it, as asked; no canary check", optIn)
	} else {
		var err error
		g, err = plant(*addr)
		var absent errAbsent
		switch {
		case errors.As(err, &absent):
			log("no shared Redis at %s (%v): nothing to protect, no canary check", *addr, absent.err)
		case err != nil:
			log("could not plant the canaries in the shared Redis at %s: %v", *addr, err)
			os.Exit(1)
		default:
			log("%d canaries %s planted in the shared Redis at %s; watching it with MONITOR", g.planted, g.key, *addr)
		}
	}

	status := run(flag.Args())

	if g == nil {
		os.Exit(status)
	}
	r, err := g.check()
	failed := func(format string, args ...any) {
		log(format, args...)
		status = max(status, 1)
	}
	switch {
	case err != nil:
		failed("the canary check of the shared Redis at %s failed: %v", *addr, err)
	case len(r.missing) > 0:
		failed("the suite touched the shared Redis at %s: canaries missing or changed in databases %v (%d of %d intact); "+
			"a test wrote to a Redis it did not start", *addr, r.missing, g.planted-len(r.missing), g.planted)
		r.quote(log)
	case r.foreign > 0 && ci:
		failed("shared Redis at %s: %d canaries intact, but %d commands reached it while the suite ran, and nobody else uses it under CI=true",
			*addr, g.planted, r.foreign)
		r.quote(log)
	case r.foreign > 0:
		fmt.Printf("shared Redis untouched: %d canaries intact; %d commands by other clients seen while the suite ran "+
			"(yours? under CI=true this fails)\n", g.planted, r.foreign)
		r.quote(log)
	default:
		fmt.Printf("shared Redis untouched: %d canaries intact, 0 commands from the suite\n", g.planted)
	}
	os.Exit(status)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// sameAddr tells whether two host:port name the same server, as far as the
// names go (localhost and 127.0.0.1 alike).
func sameAddr(a, b string) bool {
	norm := func(s string) string {
		s = strings.TrimPrefix(s, "redis://")
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return s
		}
		if host == "localhost" || host == "" || host == "::1" {
			host = "127.0.0.1"
		}
		return net.JoinHostPort(host, port)
	}
	return norm(a) == norm(b)
}

// run runs the command with this process's stdin, stdout and stderr and
// returns its exit status. An interrupt reaches the command from the terminal;
// this process outlives it to do the check.
func run(args []string) int {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "redis-canary: %v\n", err)
		return 127
	}
	go func() {
		for s := range sigs {
			if s == syscall.SIGTERM {
				cmd.Process.Signal(s)
			}
		}
	}()
	err := cmd.Wait()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return exit.ExitCode()
	default:
		fmt.Fprintf(os.Stderr, "redis-canary: %v\n", err)
		return 1
	}
}

type errAbsent struct{ err error }

func (e errAbsent) Error() string { return e.err.Error() }

// guard is the canaries planted in one Redis and the MONITOR watching it.
type guard struct {
	addr    string
	key     string // the canaries' key, the same in every database
	value   string
	planted int // databases 0..planted-1
	end     string

	ours    sync.Map // local addresses of this program's connections
	monitor net.Conn
	seen    chan struct{} // closed when MONITOR showed the end marker
	mu      sync.Mutex
	foreign int
	sample  []string
	readErr error
}

func random() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// client opens database db, recording its connections' local addresses so
// that MONITOR's lines of them are known as ours.
func (g *guard) client(db int) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: g.addr, DB: db, MaxRetries: -1, PoolSize: 1,
		DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				g.ours.Store(c.LocalAddr().String(), true)
			}
			return c, err
		}})
}

// plant starts MONITOR, then sets the canaries (so MONITOR sees all that
// follows).
func plant(addr string) (*guard, error) {
	g := &guard{addr: addr, key: keyPrefix + random(), value: random(), seen: make(chan struct{})}
	g.end = g.key + ":end"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c0 := g.client(0)
	defer c0.Close()
	if err := c0.Ping(ctx).Err(); err != nil {
		return nil, errAbsent{err}
	}
	if err := g.startMonitor(); err != nil {
		return nil, fmt.Errorf("MONITOR: %w", err)
	}
	for db := range databases {
		c := g.client(db)
		err := c.Set(ctx, g.key, g.value, ttl).Err()
		c.Close()
		if err != nil && db > 0 && strings.Contains(err.Error(), "DB index is out of range") {
			break // a Redis with fewer databases
		}
		if err != nil {
			g.monitor.Close()
			return nil, fmt.Errorf("SET in database %d: %w", db, err)
		}
		g.planted++
	}
	return g, nil
}

func (g *guard) startMonitor() error {
	conn, err := net.DialTimeout("tcp", g.addr, 2*time.Second)
	if err != nil {
		return err
	}
	g.ours.Store(conn.LocalAddr().String(), true)
	if _, err := conn.Write([]byte("*1\r\n$7\r\nMONITOR\r\n")); err != nil {
		conn.Close()
		return err
	}
	r := bufio.NewReader(conn)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	first, err := r.ReadString('\n')
	if err != nil {
		conn.Close()
		return err
	}
	if strings.TrimSpace(first) != "+OK" {
		conn.Close()
		return fmt.Errorf("answered %q", strings.TrimSpace(first))
	}
	conn.SetReadDeadline(time.Time{})
	g.monitor = conn
	go g.watch(r)
	return nil
}

// watch reads MONITOR's lines, like
//
//	+1700000000.123456 [0 127.0.0.1:50412] "SET" "key" "value"
//
// and counts those neither from this program's connections nor about its
// canaries.
func (g *guard) watch(r *bufio.Reader) {
	ended := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			g.mu.Lock()
			if !ended {
				g.readErr = err
			}
			g.mu.Unlock()
			if !ended {
				close(g.seen)
			}
			return
		}
		line = strings.TrimRight(line, "\r\n")
		if strings.Contains(line, g.end) && !ended {
			ended = true
			close(g.seen)
			continue
		}
		if g.ourLine(line) {
			continue
		}
		g.mu.Lock()
		g.foreign++
		if len(g.sample) < samples {
			g.sample = append(g.sample, line)
		}
		g.mu.Unlock()
	}
}

func (g *guard) ourLine(line string) bool {
	if strings.Contains(line, g.key) { // the canaries' SET, GET and DEL
		return true
	}
	lb, rb := strings.IndexByte(line, '['), strings.IndexByte(line, ']')
	if lb < 0 || rb < lb {
		return false
	}
	fields := strings.Fields(line[lb+1 : rb]) // "db addr", or "db lua"
	if len(fields) == 2 {
		_, ok := g.ours.Load(fields[1])
		return ok
	}
	return false
}

type result struct {
	missing []int // databases whose canary is gone or changed
	foreign int
	sample  []string
}

func (r result) quote(log func(string, ...any)) {
	for _, l := range r.sample {
		log("  seen: %s", l)
	}
	if r.foreign > len(r.sample) {
		log("  … and %d more", r.foreign-len(r.sample))
	}
}

// check reads and deletes the canaries, then closes MONITOR once it has shown
// everything up to the check.
func (g *guard) check() (result, error) {
	var r result
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer g.monitor.Close()
	for db := range g.planted {
		c := g.client(db)
		v, err := c.Get(ctx, g.key).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			c.Close()
			return r, fmt.Errorf("GET in database %d: %w", db, err)
		}
		if v != g.value {
			r.missing = append(r.missing, db)
		}
		err = c.Del(ctx, g.key).Err()
		c.Close()
		if err != nil {
			return r, fmt.Errorf("DEL in database %d: %w", db, err)
		}
	}
	c := g.client(0)
	err := c.Echo(ctx, g.end).Err()
	c.Close()
	if err != nil {
		return r, fmt.Errorf("ECHO: %w", err)
	}
	select {
	case <-g.seen:
	case <-ctx.Done():
		return r, errors.New("MONITOR did not show the check's end marker")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.readErr != nil {
		return r, fmt.Errorf("MONITOR: %w", g.readErr)
	}
	r.foreign, r.sample = g.foreign, g.sample
	return r, nil
}
