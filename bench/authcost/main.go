// Command authcost measures what access and limits cost a submission (issue
// 17). It starts the same scriptgen binary twice, side by side, each on a
// database of its own:
//
//   - on: writers need an API key (one made with `scriptgen keys create`),
//     with the default limits, TENANT_RATE and TENANT_BURST high enough to
//     refuse nothing (the rate's statement runs for every submission all the
//     same);
//   - off: AUTH=off, TENANT_RATE=0 and every cap off;
//   - key (with -modes on,key,off): the API key and the default limits but
//     TENANT_RATE=0, to tell the rate's share from the rest.
//
// Then rounds run every server in turn, each round in another order (on,
// off; then off, on; …), so that the shared machine's drift falls on all. A run posts N jobs from C clients as
// fast as they go (saturation: accepted jobs/s and p99), waits until they are
// done, then posts N more offered at RATE/s open loop (p99 from each
// submission's planned time). It prints every run, then per phase the
// medians of on and off and their ratios, with the server's CPU time per job
// (from /proc/<pid>/stat, submission and completion together).
//
// With -profile DIR it then takes a CPU profile of each server under a
// saturated load (DIR/on.pprof, DIR/off.pprof), for
// `go tool pprof -top -diff_base DIR/off.pprof DIR/on.pprof`.
package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

const adminToken = "authcost-admin-token-0123456789"

func main() {
	bin := flag.String("scriptgen", "", "the scriptgen binary to measure (required)")
	store := flag.String("store", "sqlite", "sqlite or postgres")
	pgBase := flag.String("postgres", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
		"PostgreSQL where -store postgres creates a schema per server (dropped at the end)")
	rounds := flag.Int("rounds", 3, "rounds; each runs both servers, in alternating order")
	n := flag.Int("n", 5000, "jobs per run")
	clients := flag.Int("c", 50, "concurrent clients")
	rate := flag.Float64("rate", 1000, "submissions per second of the open-loop phase (0: no such phase)")
	warmup := flag.Int("warmup", 1000, "submissions sent to each server, and finished, before the rounds")
	profile := flag.String("profile", "", "directory for a CPU profile of each server under saturation (empty: none)")
	modes := flag.String("modes", "on,off", "the servers, of on, key and off (off is the base of the ratios)")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "authcost: -scriptgen is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, config{bin: *bin, store: *store, pgBase: *pgBase, rounds: *rounds, n: *n, clients: *clients,
		rate: *rate, warmup: *warmup, profile: *profile, modes: strings.Split(*modes, ",")}); err != nil {
		fmt.Fprintln(os.Stderr, "authcost:", err)
		os.Exit(1)
	}
}

type config struct {
	bin, store, pgBase, profile string
	rounds, n, clients, warmup  int
	rate                        float64
	modes                       []string
}

// server is one scriptgen serve under measure.
type server struct {
	mode string // on | off
	base string
	key  string // the API key (on)
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
}

// result is one run.
type result struct {
	round           int
	mode, phase     string
	p50, p99, max   time.Duration
	acceptedPerSec  float64
	endToEndPerSec  float64
	cpuPerJob       time.Duration
	failed, refused int64
}

func run(ctx context.Context, cfg config) error {
	dir, err := os.MkdirTemp("", "authcost")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var servers []*server
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	if !slices.Contains(cfg.modes, "off") {
		return errors.New("-modes must hold off, the base of the ratios")
	}
	for _, mode := range cfg.modes {
		dbURL, drop, err := database(cfg, dir, mode)
		if err != nil {
			return err
		}
		defer drop()
		s, err := start(ctx, cfg.bin, mode, dbURL, dir)
		if err != nil {
			return err
		}
		servers = append(servers, s)
	}
	tr := &http.Transport{MaxIdleConns: cfg.clients * 4, MaxIdleConnsPerHost: cfg.clients * 2}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	fmt.Printf("scriptgen %s, store %s, %d clients, %d jobs a run, %d rounds, open loop at %.0f/s; load before: %s\n",
		cfg.bin, cfg.store, cfg.clients, cfg.n, cfg.rounds, cfg.rate, loadavg())
	for _, s := range servers {
		if cfg.warmup > 0 {
			res, err := s.submit(ctx, client, "warmup-"+s.mode, cfg.warmup, cfg.clients, 0)
			if err == nil && res.failed+res.refused > 0 {
				err = fmt.Errorf("%d submissions failed, %d refused", res.failed, res.refused)
			}
			if err != nil {
				return fmt.Errorf("warm-up of %s: %w", s.mode, err)
			}
		}
	}
	phases := []struct {
		name string
		rate float64
	}{{"saturated", 0}}
	if cfg.rate > 0 {
		phases = append(phases, struct {
			name string
			rate float64
		}{fmt.Sprintf("%.0f/s", cfg.rate), cfg.rate})
	}
	var results []result
	for r := 1; r <= cfg.rounds; r++ {
		order := slices.Clone(servers)
		if r%2 == 0 {
			slices.Reverse(order)
		}
		for _, ph := range phases {
			for _, s := range order {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				res, err := s.submit(ctx, client, fmt.Sprintf("r%d-%s-%d", r, s.mode, int(ph.rate)), cfg.n, cfg.clients, ph.rate)
				if err != nil {
					return fmt.Errorf("round %d, %s, %s: %w", r, s.mode, ph.name, err)
				}
				res.round, res.phase = r, ph.name
				results = append(results, res)
				fmt.Printf("round %d %-9s %-3s p50 %7s  p99 %7s  max %7s  accepted %6.0f/s  end-to-end %5.0f jobs/s  serve CPU %5.0f µs/job  failed %d refused %d\n",
					r, ph.name, s.mode, ms(res.p50), ms(res.p99), ms(res.max), res.acceptedPerSec, res.endToEndPerSec,
					float64(res.cpuPerJob)/float64(time.Microsecond), res.failed, res.refused)
			}
		}
	}
	fmt.Printf("load after: %s\n\n", loadavg())
	for _, ph := range phases {
		for _, mode := range cfg.modes {
			if mode != "off" {
				summarize(results, ph.name, mode)
			}
		}
	}
	if cfg.profile != "" {
		if err := os.MkdirAll(cfg.profile, 0o755); err != nil {
			return err
		}
		for _, s := range servers {
			if err := s.profile(ctx, client, cfg.profile, cfg.clients); err != nil {
				return fmt.Errorf("profile of %s: %w", s.mode, err)
			}
		}
		fmt.Printf("\nprofiles: go tool pprof -top -diff_base %s %s\n",
			filepath.Join(cfg.profile, "off.pprof"), filepath.Join(cfg.profile, cfg.modes[0]+".pprof"))
	}
	for _, res := range results {
		if res.failed > 0 || res.refused > 0 {
			return errors.New("some submissions failed or were refused")
		}
	}
	return nil
}

// summarize prints the medians of a phase for mode and off, and their ratios.
func summarize(results []result, phase, mode string) {
	med := func(mode string, f func(result) float64) float64 {
		var xs []float64
		for _, r := range results {
			if r.phase == phase && r.mode == mode {
				xs = append(xs, f(r))
			}
		}
		sort.Float64s(xs)
		if len(xs) == 0 {
			return 0
		}
		if len(xs)%2 == 1 {
			return xs[len(xs)/2]
		}
		return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
	}
	row := func(name, unit string, f func(result) float64) {
		a, b := med(mode, f), med("off", f)
		fmt.Printf("  %-22s %-3s %9.2f %-5s off %9.2f %-5s %s/off %.3f\n", name, mode, a, unit, b, unit, mode, a/b)
	}
	fmt.Printf("%s, %s against off, medians over the rounds:\n", phase, mode)
	row("submit p50", "ms", func(r result) float64 { return float64(r.p50) / float64(time.Millisecond) })
	row("submit p99", "ms", func(r result) float64 { return float64(r.p99) / float64(time.Millisecond) })
	row("accepted", "/s", func(r result) float64 { return r.acceptedPerSec })
	row("end-to-end", "/s", func(r result) float64 { return r.endToEndPerSec })
	row("serve CPU per job", "µs", func(r result) float64 { return float64(r.cpuPerJob) / float64(time.Microsecond) })
	var pairs []string
	for _, on := range results {
		for _, off := range results {
			if on.phase == phase && off.phase == phase && on.round == off.round && on.mode == mode && off.mode == "off" {
				pairs = append(pairs, fmt.Sprintf("%.2f", float64(on.p99)/float64(off.p99)))
			}
		}
	}
	fmt.Printf("  p99 %s/off per round: %s\n", mode, strings.Join(pairs, " "))
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// database gives a server its own database: an SQLite file, or a schema of
// PostgreSQL that drop removes.
func database(cfg config, dir, mode string) (string, func(), error) {
	if cfg.store == "sqlite" {
		return "sqlite:" + filepath.Join(dir, mode+".db"), func() {}, nil
	}
	if cfg.store != "postgres" {
		return "", nil, fmt.Errorf("-store %q: sqlite or postgres", cfg.store)
	}
	db, err := sql.Open("pgx", cfg.pgBase)
	if err != nil {
		return "", nil, err
	}
	schema := fmt.Sprintf("authcost_%s_%d", mode, os.Getpid())
	if _, err := db.Exec(`CREATE SCHEMA ` + schema); err != nil {
		db.Close()
		return "", nil, fmt.Errorf("create schema: %w", err)
	}
	u, err := url.Parse(cfg.pgBase)
	if err != nil {
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), func() {
		db.Exec(`DROP SCHEMA ` + schema + ` CASCADE`)
		db.Close()
	}, nil
}

// start starts `scriptgen serve` in a mode, with a key made first when on.
func start(ctx context.Context, bin, mode, dbURL, dir string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	env := append(os.Environ(),
		"LISTEN_ADDR=127.0.0.1:"+strconv.Itoa(port), "DATABASE_URL="+dbURL, "GENERATOR=noop", "MAX_WORKERS=4",
		"REDIS_URL=", "LOG_LEVEL=warn", "ADMIN_TOKEN="+adminToken)
	s := &server{mode: mode, base: fmt.Sprintf("http://127.0.0.1:%d", port), done: make(chan struct{})}
	switch mode {
	case "on", "key":
		// TENANT_BURST too: at 100,000/s the default burst of 100 is a
		// bucket 1 ms deep, and a submission reads its time before it waits
		// for the bucket's row, so one that waited longer than the bucket is
		// deep is refused: at 50 clients nearly half were on SQLite, and at
		// a burst of 100,000 (1 s) some still were on PostgreSQL on the busy
		// machine. 10,000,000 is 100 s deep. The statement is the same
		// whatever the numbers.
		env = append(env, "AUTH=auto", "TENANT_RATE=100000", "TENANT_BURST=10000000")
		if mode == "key" {
			env = append(env, "TENANT_RATE=0")
		}
		keys := exec.CommandContext(ctx, bin, "keys", "create", "--tenant", "bench", "--name", "authcost", "--json")
		keys.Env = env // its DATABASE_URL
		out, err := keys.Output()
		if err != nil {
			return nil, fmt.Errorf("keys create: %w", err)
		}
		var k struct{ Key string }
		if err := json.Unmarshal(out, &k); err != nil || k.Key == "" {
			return nil, fmt.Errorf("keys create printed %q", out)
		}
		s.key = k.Key
	case "off":
		env = append(env, "AUTH=off", "TENANT_RATE=0", "MAX_CONNECTIONS=0", "MAX_STREAMS=0", "MAX_STREAMS_PER_CLIENT=0",
			"MAX_STREAMS_PER_JOB=0", "TENANT_MAX_DOCUMENTS=0", "TENANT_MAX_DOCUMENT_BYTES=0")
	default:
		return nil, fmt.Errorf("mode %q: on, key or off", mode)
	}
	s.log, err = os.Create(filepath.Join(dir, mode+".log"))
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(bin, "serve")
	s.cmd.Env = env
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get(s.base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
		select {
		case <-s.done:
			b, _ := os.ReadFile(s.log.Name())
			return nil, fmt.Errorf("serve (%s) exited: %s", mode, b)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("serve (%s) not healthy within 30s", mode)
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(40 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.log.Close()
}

func (s *server) auth(req *http.Request) {
	if s.key != "" {
		req.Header.Set("Authorization", "Bearer "+s.key)
	}
}

// submit posts n jobs of one project from clients concurrent clients (at
// rate per second, open loop, when rate > 0), then waits until they are
// done.
func (s *server) submit(ctx context.Context, client *http.Client, project string, n, clients int, rate float64) (result, error) {
	return s.post(ctx, client, project, n, clients, rate, true)
}

// post is submit, waiting for the jobs to be done or not.
func (s *server) post(ctx context.Context, client *http.Client, project string, n, clients int, rate float64, wait bool) (result, error) {
	// The bodies are made before the clock starts: the load generator shares
	// the server's cores.
	bodies, keys := make([][]byte, n), make([]string, n)
	for i := range n {
		bodies[i], _ = json.Marshal(map[string]any{"project_id": project,
			"episode_data": map[string]any{"title": fmt.Sprintf("Episode %d", i), "synopsis": "bench", "characters": []string{"A", "B"}}})
		keys[i] = fmt.Sprintf("%s-%d", project, i)
	}
	lat := make([]time.Duration, n)
	var next, failed, refused atomic.Int64
	var wg sync.WaitGroup
	cpu0 := cpuTime(s.cmd.Process.Pid)
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				planned := time.Now()
				if rate > 0 {
					planned = start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
					time.Sleep(time.Until(planned))
				}
				req, _ := http.NewRequest("POST", s.base+"/api/generation", bytes.NewReader(bodies[i]))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Idempotency-Key", keys[i])
				s.auth(req)
				if rate == 0 {
					planned = time.Now()
				}
				resp, err := client.Do(req)
				lat[i] = time.Since(planned)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusAccepted:
				case http.StatusTooManyRequests:
					if refused.Add(1) == 1 {
						fmt.Fprintf(os.Stderr, "%s: first refusal: %s\n", s.mode, resp.Header.Get("Retry-After"))
					}
				default:
					if failed.Add(1) == 1 {
						fmt.Fprintf(os.Stderr, "%s: first failure: %d\n", s.mode, resp.StatusCode)
					}
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if f := failed.Load() + refused.Load(); f > 0 {
		return result{mode: s.mode, failed: failed.Load(), refused: refused.Load()}, fmt.Errorf("%d of %d submissions failed or were refused", f, n)
	}
	if !wait {
		return result{mode: s.mode}, nil
	}
	if err := s.waitDone(ctx, client, project, n, start.Add(5*time.Minute)); err != nil {
		return result{}, err
	}
	e2e := time.Since(start)
	cpu := cpuTime(s.cmd.Process.Pid) - cpu0
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration { return lat[int(float64(len(lat)-1)*p)] }
	return result{mode: s.mode, p50: pct(0.5), p99: pct(0.99), max: lat[len(lat)-1],
		acceptedPerSec: float64(n) / took.Seconds(), endToEndPerSec: float64(n) / e2e.Seconds(),
		cpuPerJob: cpu / time.Duration(n), failed: failed.Load(), refused: refused.Load()}, nil
}

// waitDone waits until the project's episode n exists: its n jobs succeeded.
func (s *server) waitDone(ctx context.Context, client *http.Client, project string, n int, deadline time.Time) error {
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/api/projects/%s/episodes/%d", s.base, project, n), nil)
		s.auth(req)
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("project %s: episode %d not there in time", project, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// profile takes an 8 s CPU profile of the server under a saturated load.
func (s *server) profile(ctx context.Context, client *http.Client, dir string, clients int) error {
	got := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", s.base+"/debug/pprof/profile?seconds=8", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			got <- err
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			got <- fmt.Errorf("pprof: %d", resp.StatusCode)
			return
		}
		f, err := os.Create(filepath.Join(dir, s.mode+".pprof"))
		if err != nil {
			got <- err
			return
		}
		defer f.Close()
		_, err = io.Copy(f, resp.Body)
		got <- err
	}()
	for i := 0; ; i++ {
		select {
		case err := <-got:
			return err
		default:
		}
		if _, err := s.post(ctx, client, fmt.Sprintf("profile-%s-%d", s.mode, i), 1000, clients, 0, false); err != nil {
			return err
		}
	}
}

// cpuTime is the user and system time of process pid so far.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces; the fields follow its closing ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}
