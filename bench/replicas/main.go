// Command replicas measures issue 20's figures on the real binary: serve
// replicas behind HAProxy, two durable workers, PostgreSQL (a schema of each
// run's own) and Redis as a master, a replica and three sentinels
// (testenv.StartSentinelGroup), reached through a redis-sentinel:// URL.
//
//   - scale: submission throughput and p99 through HAProxy with 1, 2 and 3
//     replicas (-clients concurrent clients posting for -duration each),
//     beside one replica without HAProxy (the peer of the ratio);
//   - failover: with 3 replicas under a steady load, the time from
//     SENTINEL FAILOVER (-runs times), and from a SIGKILL of the master,
//     to the first durable job accepted after it that succeeded.
//
// After each part every accepted job must have succeeded exactly once, its
// project's episodes numbered 1..n (jobs lost and duplicated: 0), or the
// program fails.
package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/scriptgen/scriptgen/internal/testenv"
)

var (
	binary   string
	clients  = flag.Int("clients", 16, "concurrent submitting clients in the scale part")
	duration = flag.Duration("duration", 15*time.Second, "how long each scale step submits")
	runs     = flag.Int("runs", 3, "SENTINEL FAILOVER runs")
	parts    = flag.String("parts", "scale,failover", "what to measure")
	pgBase   = flag.String("postgres", testenv.PostgresBaseURL(), "PostgreSQL server (a schema of the run's own is created and dropped)")
)

func main() {
	flag.Parse()
	r := &runner{}
	defer r.cleanup()
	dir := r.TempDir()
	binary = filepath.Join(dir, "scriptgen")
	build := exec.Command("go", "build", "-o", binary, "./cmd/scriptgen")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		r.Fatalf("build scriptgen (run from the repository's root): %v", err)
	}
	if strings.Contains(*parts, "scale") {
		r.scale()
	}
	if strings.Contains(*parts, "failover") {
		r.failover()
	}
}

// runner is the program's testenv.T: cleanups run at the end, a fatal
// error runs them and exits 1.
type runner struct {
	parent   *runner // a step's runner: a fatal error cleans up both
	mu       sync.Mutex
	cleanups []func()
}

func (r *runner) Helper()          {}
func (r *runner) Cleanup(f func()) { r.mu.Lock(); r.cleanups = append(r.cleanups, f); r.mu.Unlock() }
func (r *runner) TempDir() string {
	d, err := os.MkdirTemp("", "bench-replicas-")
	if err != nil {
		log.Fatal(err)
	}
	r.Cleanup(func() { os.RemoveAll(d) })
	return d
}
func (r *runner) Fatalf(format string, args ...any) {
	log.Printf("FATAL: "+format, args...)
	r.cleanup()
	if r.parent != nil {
		r.parent.cleanup()
	}
	os.Exit(1)
}
func (r *runner) Skipf(format string, args ...any) { r.Fatalf(format, args...) }
func (r *runner) cleanup() {
	r.mu.Lock()
	cs := r.cleanups
	r.cleanups = nil
	r.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}

// schema creates a PostgreSQL schema for one part and returns its URL.
func (r *runner) schema(name string) string {
	db, err := sql.Open("pgx", *pgBase)
	if err != nil {
		r.Fatalf("postgres: %v", err)
	}
	schema := fmt.Sprintf("bench_replicas_%s_%d", name, time.Now().UnixNano()%1e9)
	if _, err := db.Exec(`CREATE SCHEMA ` + schema); err != nil {
		r.Fatalf("create schema: %v", err)
	}
	r.Cleanup(func() { db.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); db.Close() })
	u, _ := url.Parse(*pgBase)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// process is one scriptgen process.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	url  string
}

func (r *runner) start(name string, env []string, args ...string) *process {
	f, err := os.Create(filepath.Join(r.TempDir(), name+".log"))
	if err != nil {
		r.Fatalf("%v", err)
	}
	p := &process{cmd: exec.Command(binary, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := testenv.StartTied(p.cmd); err != nil {
		r.Fatalf("start %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	r.Cleanup(p.kill)
	for _, e := range env {
		if a, ok := strings.CutPrefix(e, "LISTEN_ADDR="); ok && a != "" {
			p.url = "http://" + a
		}
	}
	if p.url != "" {
		r.wait(30*time.Second, func() bool {
			resp, err := http.Get(p.url + "/health")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		}, name+" never became healthy")
	}
	return p
}

func (p *process) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (r *runner) wait(limit time.Duration, cond func() bool, what string) {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			r.Fatalf("%s (waited %s)", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freeAddr(r *runner) string {
	p, err := freePort()
	if err != nil {
		r.Fatalf("%v", err)
	}
	return fmt.Sprintf("127.0.0.1:%d", p)
}

// cluster is n replicas (behind HAProxy unless direct) and two workers.
type cluster struct {
	dbURL    string
	redis    *testenv.SentinelGroup
	replicas []*process
	lb       string // the base URL clients use
}

func (r *runner) cluster(name string, n int, direct bool) *cluster {
	c := &cluster{dbURL: r.schema(name), redis: testenv.StartSentinelGroup(r)}
	// Eight connections a process: seven processes share a PostgreSQL that
	// other work uses too (docs/runbook.md section 12).
	env := []string{"DATABASE_URL=" + c.dbURL + "&pool_max_conns=8", "REDIS_URL=" + c.redis.URL(5), "ADMIN_TOKEN=bench-replicas-admin-token",
		"GENERATOR=noop", "LOG_LEVEL=warn", "AUTO_ROLLBACK=false", "LEASE_DURATION=5s", "MAX_WORKERS=8"}
	var servers []string
	for i := range n {
		addr := freeAddr(r)
		c.replicas = append(c.replicas, r.start(fmt.Sprintf("%s-serve-%d", name, i), append(env, "LISTEN_ADDR="+addr), "serve"))
		servers = append(servers, addr)
	}
	for i := range 2 {
		r.start(fmt.Sprintf("%s-worker-%d", name, i), append(env, "LISTEN_ADDR="), "worker")
	}
	c.lb = c.replicas[0].url
	if !direct {
		c.lb = r.haproxy(servers)
	}
	return c
}

// haproxy starts HAProxy with e2e's configuration (docs/runbook.md).
func (r *runner) haproxy(servers []string) string {
	dir := r.TempDir()
	addr := freeAddr(r)
	var lines strings.Builder
	for i, s := range servers {
		fmt.Fprintf(&lines, "\tserver r%d %s check\n", i+1, s)
	}
	cfg := fmt.Sprintf(`global
	maxconn 4096
defaults
	mode http
	timeout connect 1s
	timeout client 60s
	timeout server 60s
	timeout http-keep-alive 5s
	timeout check 2s
	retries 3
	option redispatch 1
	retry-on conn-failure empty-response
frontend scriptgen
	bind %s
	default_backend replicas
backend replicas
	balance roundrobin
	option httpchk GET /health
	http-check expect status 200
	default-server inter 300ms fall 2 rise 2
%s`, addr, lines.String())
	path := filepath.Join(dir, "haproxy.cfg")
	os.WriteFile(path, []byte(cfg), 0o600)
	cmd := exec.Command("haproxy", "-db", "-f", path)
	if err := testenv.StartTied(cmd); err != nil {
		r.Fatalf("start haproxy: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	r.Cleanup(func() { cmd.Process.Kill(); <-done })
	base := "http://" + addr
	r.wait(20*time.Second, func() bool {
		resp, err := http.Get(base + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "haproxy never answered")
	return base
}

// accepted is one job the service accepted.
type accepted struct {
	id, project string
	at          time.Time
}

// submitter posts jobs with an Idempotency-Key each, retrying a failed post
// with the same key, and records every accepted job and its latency.
type submitter struct {
	base   string
	client *http.Client
	mu     sync.Mutex
	jobs   []accepted
	lat    []time.Duration
	errs   atomic.Int64
	seq    atomic.Int64
}

func newSubmitter(base string) *submitter {
	return &submitter{base: base, client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

func (s *submitter) post() {
	i := s.seq.Add(1)
	project := fmt.Sprintf("bench-%d", i%8)
	body, _ := json.Marshal(map[string]any{"project_id": project, "episode_data": map[string]any{"title": fmt.Sprintf("ep %d", i)}})
	key := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)
	for {
		start := time.Now()
		req, _ := http.NewRequest("POST", s.base+"/api/generation", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := s.client.Do(req)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			if resp != nil {
				resp.Body.Close()
			}
			s.errs.Add(1)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		var j struct {
			ID string `json:"id"`
		}
		json.NewDecoder(resp.Body).Decode(&j)
		resp.Body.Close()
		took := time.Since(start)
		s.mu.Lock()
		s.jobs = append(s.jobs, accepted{id: j.ID, project: project, at: time.Now()})
		s.lat = append(s.lat, took)
		s.mu.Unlock()
		return
	}
}

// run posts with n clients until ctx ends; pace > 0 waits that long between
// one client's posts.
func (s *submitter) run(ctx context.Context, n int, pace time.Duration) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for ctx.Err() == nil {
				s.post()
				if pace > 0 {
					time.Sleep(pace)
				}
			}
		})
	}
	return &wg
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// exactlyOnce waits until every accepted job succeeded and checks, in the
// database, that each saved one episode and every project's episodes are
// numbered 1..n; it returns the jobs lost and duplicated.
func (r *runner) exactlyOnce(dbURL string, jobs []accepted) (lost, dup int) {
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		r.Fatalf("%v", err)
	}
	defer db.Close()
	r.wait(3*time.Minute, func() bool {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM jobs WHERE status <> 'succeeded'`).Scan(&n); err != nil {
			r.Fatalf("count unfinished jobs: %v", err)
		}
		return n == 0
	}, "not every job succeeded")
	episodes := map[string]int{}
	rows, err := db.Query(`SELECT job_id, COUNT(*) FROM episodes GROUP BY job_id`)
	if err != nil {
		r.Fatalf("episodes: %v", err)
	}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			r.Fatalf("episodes: %v", err)
		}
		episodes[id] = n
	}
	rows.Close()
	for _, j := range jobs {
		switch episodes[j.id] {
		case 0:
			lost++
		case 1:
		default:
			dup++
		}
	}
	var gaps int
	if err := db.QueryRow(`SELECT COUNT(*) FROM (SELECT project_id FROM episodes GROUP BY project_id HAVING MAX(number) <> COUNT(*)) g`).Scan(&gaps); err != nil {
		r.Fatalf("gaps: %v", err)
	}
	if lost+dup+gaps > 0 || len(episodes) != len(jobs) {
		r.Fatalf("%d jobs lost, %d duplicated, %d projects with gaps, %d episodes for %d accepted jobs", lost, dup, gaps, len(episodes), len(jobs))
	}
	return lost, dup
}

func loadAverage() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:1], "")
}

// scale is the throughput through HAProxy with 1, 2 and 3 replicas, and of
// one replica without HAProxy.
func (r *runner) scale() {
	fmt.Println("| replicas | path | load before | accepted | throughput | p50 | p99 | failed posts | lost / duplicated |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for _, step := range []struct {
		n      int
		direct bool
	}{{1, true}, {1, false}, {2, false}, {3, false}} {
		name := fmt.Sprintf("scale%d", step.n)
		path := "HAProxy"
		if step.direct {
			name, path = "direct", "direct (no HAProxy)"
		}
		load := loadAverage()
		sr := &runner{parent: r}
		c := sr.cluster(name, step.n, step.direct)
		s := newSubmitter(c.lb)
		ctx, cancel := context.WithTimeout(context.Background(), *duration)
		s.run(ctx, *clients, 0).Wait()
		cancel()
		lost, dup := sr.exactlyOnce(c.dbURL, s.jobs)
		fmt.Printf("| %d | %s | %s | %d | %.0f /s | %s | %s | %d | %d / %d |\n", step.n, path, load, len(s.jobs),
			float64(len(s.jobs))/duration.Seconds(), percentile(s.lat, 0.5).Round(100*time.Microsecond),
			percentile(s.lat, 0.99).Round(100*time.Microsecond), s.errs.Load(), lost, dup)
		sr.cleanup() // this step's processes and schema
	}
}

// failover measures the time from SENTINEL FAILOVER, and from a SIGKILL of
// the master, to the first durable job accepted after it that succeeded,
// under a steady load of about 40 submissions a second.
func (r *runner) failover() {
	c := r.cluster("failover", 3, false)
	db, err := sql.Open("pgx", c.dbURL)
	if err != nil {
		r.Fatalf("%v", err)
	}
	defer db.Close()
	s := newSubmitter(c.lb)
	ctx, cancel := context.WithCancel(context.Background())
	wg := s.run(ctx, 4, 100*time.Millisecond)
	time.Sleep(3 * time.Second) // the load runs before the first fault
	firstDone := func(t0 time.Time) time.Duration {
		var took time.Duration
		r.wait(2*time.Minute, func() bool {
			var n int
			if err := db.QueryRow(`SELECT COUNT(*) FROM jobs WHERE backend = 'durable' AND status = 'succeeded' AND created_at > $1`, t0.UnixMicro()).Scan(&n); err != nil {
				r.Fatalf("count jobs done: %v", err)
			}
			took = time.Since(t0)
			return n > 0
		}, "no job accepted after the failover succeeded")
		return took
	}
	fmt.Println("| fault | run | load before | new master after | first job done after |")
	fmt.Println("|---|---|---|---|---|")
	for i := range *runs {
		c.redis.WaitReplicaSynced()
		load := loadAverage()
		t0 := time.Now()
		c.redis.Failover()
		promoted := time.Since(t0)
		fmt.Printf("| SENTINEL FAILOVER | %d | %s | %s | **%s** |\n", i+1, load, promoted.Round(time.Millisecond), firstDone(t0).Round(time.Millisecond))
		time.Sleep(2 * time.Second) // steady load between faults
	}
	c.redis.WaitReplicaSynced()
	load := loadAverage()
	master := c.redis.Master()
	t0 := time.Now()
	master.Kill()
	c.redis.WaitNewMaster(master.Addr())
	promoted := time.Since(t0)
	fmt.Printf("| SIGKILL of the master | 1 | %s | %s | **%s** |\n", load, promoted.Round(time.Millisecond), firstDone(t0).Round(time.Millisecond))
	cancel()
	wg.Wait()
	lost, dup := r.exactlyOnce(c.dbURL, s.jobs)
	fmt.Printf("\n%d jobs accepted during the failovers (%d posts retried): %d lost, %d duplicated\n", len(s.jobs), s.errs.Load(), lost, dup)
}
