// Command livescript measures the live script of issue 18 on the real
// binary, with a fake OpenAI-compatible model in this process
// (scriptkit.Fake) and SSE clients that follow the jobs' event streams
// (scriptkit.Follower):
//
//   - first: the time from a submission to the first script event on the
//     job's stream, over -jobs jobs, with the model's first token after
//     -first-token; and where it goes (to the model's request, the model's
//     wait, from the first token to the client);
//   - kill: the tokens a generation of -tokens tokens costs when the durable
//     worker writing it is killed (SIGKILL) once the model has served
//     -kill-at of them, against the -kill-at + -tokens it would cost were
//     the text written so far lost;
//   - rollback: the same when `scriptgen rollback` runs at that point and
//     the worker is then stopped (SIGTERM, DRAIN_TIMEOUT=1s), so that the
//     job moves to serve's background tasks and continues there;
//   - fanout: -subscribers SSE clients on -generations generations running
//     at once: the lag from the model sending a token to each client
//     reading the script event that holds it (the model logs when it sent
//     each token; one clock), split at the event's commit (its created_at,
//     read from the database afterwards), and serve's peak RSS.
//
// Every generation's script must come out as the model's answer, and every
// client must piece together exactly that text from its script events, or
// the program fails.
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
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/scriptgen/scriptgen/bench/livescript/scriptkit"
	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/database"
)

const adminToken = "bench-livescript-admin-token"

var (
	binary     string
	tmp        string
	pgBase     string
	redisBin   string
	tokens     int
	firstToken time.Duration
	storeFlag  string
	profileDir string
	serveExtra stringList
)

// stringList is a flag that may be given many times.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	mode := flag.String("mode", "all", "first, kill, rollback, fanout, or all of them")
	flag.StringVar(&binary, "binary", "", "the scriptgen binary (default: go build ./cmd/scriptgen)")
	flag.StringVar(&storeFlag, "store", "sqlite", "first, fanout: sqlite (a fresh file) or postgres (a fresh schema in -postgres)")
	flag.StringVar(&pgBase, "postgres", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "kill, rollback: the PostgreSQL database in which each run makes a schema of its own, and drops it")
	flag.StringVar(&redisBin, "redis-server", "redis-server", "kill, rollback: the redis-server binary (each run starts its own)")
	flag.IntVar(&tokens, "tokens", 2000, "kill, rollback, fanout: tokens of the model's answer")
	flag.DurationVar(&firstToken, "first-token", 300*time.Millisecond, "the model's wait before its first token")
	jobs := flag.Int("jobs", 60, "first: jobs")
	firstGap := flag.Duration("first-gap", 250*time.Millisecond, "first: time between two submissions")
	runs := flag.Int("runs", 3, "kill, rollback: runs")
	killAt := flag.Int("kill-at", 1500, "kill, rollback: interrupt once the model has served this many tokens")
	killEvery := flag.Duration("kill-every", 10*time.Millisecond, "kill, rollback: the model's time between tokens")
	gens := flag.Int("generations", 200, "fanout: generations at once")
	subs := flag.Int("subscribers", 1000, "fanout: SSE clients, spread evenly over the generations")
	fanEvery := flag.Duration("fanout-every", 20*time.Millisecond, "fanout: the model's time between tokens")
	flag.Var(&serveExtra, "serve-env", "NAME=VALUE added to serve's (and the workers') environment; may be repeated")
	flag.StringVar(&profileDir, "profile", "", "fanout: save serve's heap profile every 10 s and a 10 s CPU profile from a third of the run in this directory")
	flag.Parse()

	var err error
	if tmp, err = os.MkdirTemp("", "livescript"); err != nil {
		fail(err)
	}
	if binary == "" {
		binary = filepath.Join(tmp, "scriptgen")
		build := exec.Command("go", "build", "-o", binary, "./cmd/scriptgen")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fail(fmt.Errorf("build scriptgen (run this from the repository's root): %w", err))
		}
	}
	fmt.Printf("livescript: %s, GOMAXPROCS %d, load average %s, %s\n", runtime.GOOS, runtime.GOMAXPROCS(0), loadavg(), time.Now().UTC().Format(time.RFC3339))
	modes := []string{*mode}
	if *mode == "all" {
		modes = []string{"first", "kill", "rollback", "fanout"}
	}
	for _, m := range modes {
		switch m {
		case "first":
			err = runFirst(*jobs, *firstGap)
		case "kill", "rollback":
			err = runInterrupted(m, *runs, *killAt, *killEvery)
		case "fanout":
			err = runFanout(*gens, *subs, *fanEvery)
		default:
			err = fmt.Errorf("unknown mode %q", m)
		}
		if err != nil {
			fail(fmt.Errorf("%s: %w", m, err))
		}
		fmt.Printf("load average %s\n", loadavg())
	}
	os.RemoveAll(tmp)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "livescript:", err)
	if tmp != "" {
		os.RemoveAll(tmp)
	}
	os.Exit(1)
}

// model serves the fake model on a port of this process.
func model(cfg scriptkit.FakeConfig) (*scriptkit.Fake, string, func()) {
	fake := scriptkit.NewFake(cfg)
	srv := httptest.NewServer(fake)
	return fake, srv.URL + "/v1", srv.Close
}

// serveEnv is the environment of a serve or worker process.
func serveEnv(dbURL, modelURL string, extra ...string) []string {
	return append([]string{
		fmt.Sprintf("LISTEN_ADDR=127.0.0.1:%d", freePort()), "DATABASE_URL=" + dbURL,
		"GENERATOR=openai", "OPENAI_BASE_URL=" + modelURL, "OPENAI_MODEL=fake-model", "OPENAI_API_KEY=",
		"ADMIN_TOKEN=" + adminToken, "LOG_LEVEL=warn",
	}, append(extra, serveExtra...)...)
}

func sqliteURL(name string) string { return "sqlite:" + filepath.Join(tmp, name+".db") }

// submit posts a generation of the episode titled title.
func submit(base, project, title string) (string, error) {
	body, _ := json.Marshal(map[string]any{"project_id": project, "episode_data": map[string]any{
		"title": title, "synopsis": "A writer meets a deadline.", "characters": []string{"지수", "Minho"}}})
	resp, err := http.Post(base+"/api/generation", "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var j struct {
		ID string `json:"id"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(raw, &j) != nil || j.ID == "" {
		return "", fmt.Errorf("submit %s: %s %s", title, resp.Status, raw)
	}
	return j.ID, nil
}

// jobView is what GET /api/generation/{id}?include=script tells.
type jobView struct {
	Status  string `json:"status"`
	Backend string `json:"backend"`
	Worker  string `json:"worker"`
	Error   string `json:"error"`
	Script  string `json:"script"`
	Result  struct {
		ResumedFrom int `json:"resumed_from"`
		Attempt     int `json:"attempt"`
	} `json:"result"`
}

func getJob(base, id string) (jobView, error) {
	var v jobView
	resp, err := http.Get(base + "/api/generation/" + id + "?include=script")
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return v, fmt.Errorf("GET job %s: %s", id, resp.Status)
	}
	return v, json.NewDecoder(resp.Body).Decode(&v)
}

// waitDone waits for the job to succeed and checks its script.
func waitDone(base, id string, want string, limit time.Duration) (jobView, error) {
	deadline := time.Now().Add(limit)
	for {
		v, err := getJob(base, id)
		if err == nil {
			switch v.Status {
			case "succeeded":
				if v.Script != want {
					return v, fmt.Errorf("job %s: its script (%d bytes) is not the model's answer (%d)", id, len(v.Script), len(want))
				}
				return v, nil
			case "failed", "cancelled":
				return v, fmt.Errorf("job %s ended %s: %s", id, v.Status, v.Error)
			}
		}
		if time.Now().After(deadline) {
			return v, fmt.Errorf("job %s not done within %s (%s)", id, limit, v.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkFollowed checks what a client pieced together.
func checkFollowed(id string, got scriptkit.Followed, err error, want string) error {
	if err != nil {
		return err
	}
	if len(got.Problems) > 0 || !got.Final || got.Status != "succeeded" || got.Script != want {
		return fmt.Errorf("job %s: the client's stream: problems %q, final %v (%s), the script is the answer: %v",
			id, got.Problems, got.Final, got.Status, got.Script == want)
	}
	return nil
}

type dist []float64 // milliseconds

func (d dist) pct(p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(int(p/100*float64(len(s))), len(s)-1)]
}

func (d dist) String() string {
	return fmt.Sprintf("p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms (n=%d)", d.pct(50), d.pct(90), d.pct(99), d.pct(100), len(d))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// runFirst: the time from submission to the first script event.
func runFirst(jobs int, gap time.Duration) error {
	fake, modelURL, stop := model(scriptkit.FakeConfig{Tokens: 100, FirstToken: firstToken, Every: 5 * time.Millisecond})
	defer stop()
	dbURL, drop, err := storeURL("first")
	if err != nil {
		return err
	}
	defer drop()
	serve, err := start(tmp, "serve-first", binary, serveEnv(dbURL, modelURL), "serve")
	if err != nil {
		return err
	}
	defer serve.kill()
	fmt.Printf("\n== first: %d jobs, one every %s, 100 tokens each 5 ms apart, first token after %s; serve on %s\n", jobs, gap, firstToken, storeFlag)
	type result struct {
		title      string
		submitted  time.Time
		firstEvent time.Time
		err        error
	}
	results := make([]*result, jobs)
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	for i := range jobs {
		r := &result{title: fmt.Sprintf("첫 대사 %d", i)}
		results[i] = r
		r.submitted = time.Now()
		id, err := submit(serve.URL, "first", r.title)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var once sync.Once
			f := &scriptkit.Follower{Base: serve.URL, JobID: id, Client: client,
				OnScript: func(_ int64, _ int, _ string, at time.Time) { once.Do(func() { r.firstEvent = at }) }}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			got, err := f.Run(ctx)
			r.err = checkFollowed(id, got, err, fake.Answer(r.title).Text)
		}()
		time.Sleep(gap)
	}
	wg.Wait()
	var total, toModel, modelWait, toClient dist
	for _, r := range results {
		if r.err != nil {
			return r.err
		}
		reqs := fake.RequestsFor(r.title)
		sent := fake.SentAt(r.title, 0)
		total = append(total, ms(r.firstEvent.Sub(r.submitted)))
		toModel = append(toModel, ms(reqs[0].At.Sub(r.submitted)))
		modelWait = append(modelWait, ms(sent.Sub(reqs[0].At)))
		toClient = append(toClient, ms(r.firstEvent.Sub(sent)))
	}
	fmt.Printf("submission → first script event at the client: %s\n", total)
	fmt.Printf("  submission → the model's request:            %s\n", toModel)
	fmt.Printf("  the model's request → its first token:        %s\n", modelWait)
	fmt.Printf("  first token sent → its script event read:     %s\n", toClient)
	return nil
}

// cluster is PostgreSQL (a schema of its own), a redis-server, serve and
// durable workers.
type cluster struct {
	dbURL, redisURL string
	redis           *proc
	serve           *proc
	workers         []*proc
	env             []string
	drop            func()
}

// freshPostgres makes a schema of its own in the -postgres database and
// returns its URL and a function that drops it.
func freshPostgres() (string, func(), error) {
	db, err := sql.Open("pgx", pgBase)
	if err != nil {
		return "", nil, err
	}
	schema := fmt.Sprintf("bench_livescript_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		db.Close()
		return "", nil, fmt.Errorf("PostgreSQL at %s: %w", pgBase, err)
	}
	drop := func() {
		db.Exec("DROP SCHEMA " + schema + " CASCADE")
		db.Close()
	}
	u, _ := url.Parse(pgBase)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}

// storeURL is the database of a first or fanout run: -store's.
func storeURL(name string) (string, func(), error) {
	switch storeFlag {
	case "sqlite":
		return sqliteURL(name), func() {}, nil
	case "postgres":
		return freshPostgres()
	}
	return "", nil, fmt.Errorf("-store %q: sqlite or postgres", storeFlag)
}

func newCluster(name, modelURL string, workers int, extra ...string) (*cluster, error) {
	c := &cluster{}
	var err error
	if c.dbURL, c.drop, err = freshPostgres(); err != nil {
		return nil, err
	}
	port := freePort()
	c.redis, err = start(tmp, name+"-redis", redisBin, nil, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp)
	if err != nil {
		c.close()
		return nil, err
	}
	c.redisURL = fmt.Sprintf("redis://127.0.0.1:%d/5", port)
	time.Sleep(300 * time.Millisecond)
	c.env = append([]string{"REDIS_URL=" + c.redisURL}, extra...)
	if c.serve, err = start(tmp, name+"-serve", binary, serveEnv(c.dbURL, modelURL, c.env...), "serve"); err != nil {
		c.close()
		return nil, err
	}
	for i := range workers {
		w, err := start(tmp, fmt.Sprintf("%s-worker-%d", name, i), binary, serveEnv(c.dbURL, modelURL, append(c.env, "LISTEN_ADDR=")...), "worker")
		if err != nil {
			c.close()
			return nil, err
		}
		c.workers = append(c.workers, w)
	}
	deadline := time.Now().Add(30 * time.Second)
	for c.workersUp() < workers {
		if time.Now().After(deadline) {
			c.close()
			return nil, errors.New("the workers did not come up")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return c, nil
}

func (c *cluster) workersUp() int {
	req, _ := http.NewRequest("GET", c.serve.URL+"/health", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var h struct {
		WorkerSystem struct {
			WorkersUp int `json:"workers_up"`
		} `json:"worker_system"`
	}
	json.NewDecoder(resp.Body).Decode(&h)
	return h.WorkerSystem.WorkersUp
}

func (c *cluster) close() {
	for _, w := range c.workers {
		w.kill()
	}
	if c.serve != nil {
		c.serve.kill()
	}
	if c.redis != nil {
		c.redis.kill()
	}
	c.drop()
}

// ownerPID is the pid in a lease owner's id (role-host-pid-random).
func ownerPID(owner string) int {
	parts := strings.Split(owner, "-")
	pid := 0
	if len(parts) >= 3 {
		fmt.Sscan(parts[len(parts)-2], &pid)
	}
	return pid
}

// runInterrupted: the tokens a generation interrupted at killAt costs.
func runInterrupted(mode string, runs, killAt int, every time.Duration) error {
	fmt.Printf("\n== %s: %d runs, an answer of %d tokens %s apart (first after %s), interrupted once the model served %d; PostgreSQL, redis-server of its own\n",
		mode, runs, tokens, every, firstToken, killAt)
	for run := range runs {
		fake, modelURL, stop := model(scriptkit.FakeConfig{Tokens: tokens, FirstToken: firstToken, Every: every})
		workers, extra := 2, []string{"LEASE_DURATION=5s"}
		if mode == "rollback" {
			workers, extra = 1, []string{"AUTO_ROLLBACK=false", "DRAIN_TIMEOUT=1s"}
		}
		c, err := newCluster(fmt.Sprintf("%s-%d", mode, run), modelURL, workers, extra...)
		if err != nil {
			stop()
			return err
		}
		err = interruptOnce(mode, c, fake, killAt)
		c.close()
		stop()
		if err != nil {
			return err
		}
	}
	fmt.Printf("from nothing (the text written before the interruption lost): %d + %d = %d tokens\n", killAt, tokens, killAt+tokens)
	return nil
}

func interruptOnce(mode string, c *cluster, fake *scriptkit.Fake, killAt int) error {
	title := "중단된 대본 1"
	want := fake.Answer(title).Text
	id, err := submit(c.serve.URL, "interrupted", title)
	if err != nil {
		return err
	}
	followed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		got, err := (&scriptkit.Follower{Base: c.serve.URL, JobID: id, DropEvery: 50}).Run(ctx)
		followed <- checkFollowed(id, got, err, want)
	}()
	select {
	case <-fake.WhenServed(title, killAt):
	case <-time.After(3 * time.Minute):
		return errors.New("the model never served enough tokens")
	}
	at := fake.ServedFor(title)
	v, err := getJob(c.serve.URL, id)
	if err != nil {
		return err
	}
	var victim *proc
	for _, w := range c.workers {
		if w.pid() == ownerPID(v.Worker) {
			victim = w
		}
	}
	if victim == nil {
		return fmt.Errorf("no worker holds the job (owner %q)", v.Worker)
	}
	start := time.Now()
	switch mode {
	case "kill":
		victim.kill()
	case "rollback":
		cmd := exec.Command(binary, "rollback", "--reason", "bench livescript")
		cmd.Env = append(append(os.Environ(), "REDIS_URL="), "DATABASE_URL="+c.dbURL, "REDIS_URL="+c.redisURL)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("rollback: %v\n%s", err, out)
		}
		victim.term(60 * time.Second)
	}
	done, err := waitDone(c.serve.URL, id, want, 3*time.Minute)
	if err != nil {
		return err
	}
	if err := <-followed; err != nil {
		return err
	}
	served := fake.ServedFor(title)
	reqs := fake.RequestsFor(title)
	prompt := 0
	var parts []string
	for _, r := range reqs {
		prompt += r.Prompt
		parts = append(parts, fmt.Sprintf("from token %d: %d served, prompt ≈%d", r.From, r.Served, r.Prompt))
	}
	fmt.Printf("run: %d served when interrupted; the job finished on %s %.1f s later, resumed from %d characters; model requests: %s\n",
		at, done.Backend, time.Since(start).Seconds(), done.Result.ResumedFrom, strings.Join(parts, "; "))
	fmt.Printf("  completion tokens paid: %d (%+d beyond the answer's %d); prompt tokens ≈%d\n", served, served-tokens, tokens, prompt)
	if done.Result.ResumedFrom == 0 || len(reqs) < 2 || (mode == "rollback" && done.Backend != "background_tasks") {
		return fmt.Errorf("the job did not resume as it should: backend %s, resumed from %d, %d requests", done.Backend, done.Result.ResumedFrom, len(reqs))
	}
	return nil
}

// profile saves in -profile a CPU profile of serve over the 10 s from
// `at`, and its heap profile every 10 s from the start until ctx ends.
func profile(ctx context.Context, base string, begin, at time.Time) {
	os.MkdirAll(profileDir, 0o755)
	get := func(path, file string) {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		os.WriteFile(filepath.Join(profileDir, file), b, 0o644)
	}
	go func() {
		time.Sleep(time.Until(at))
		get("/debug/pprof/profile?seconds=10", "cpu.pb.gz")
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Second):
		}
		get("/debug/pprof/heap", fmt.Sprintf("heap-%03.0fs.pb.gz", time.Since(begin).Seconds()))
	}
}

// delivery is one script event a client read.
type delivery struct {
	seq    int64
	offset int
	chars  int
	at     int64 // unix ns
}

// runFanout: the lag from token to client with many generations and clients.
func runFanout(gens, subs int, every time.Duration) error {
	fake, modelURL, stop := model(scriptkit.FakeConfig{Tokens: tokens, FirstToken: firstToken, Every: every})
	defer stop()
	dbURL, drop, err := storeURL("fanout")
	if err != nil {
		return err
	}
	defer drop()
	serve, err := start(tmp, "serve-fanout", binary, serveEnv(dbURL, modelURL,
		fmt.Sprintf("MAX_WORKERS=%d", gens), "MAX_STREAMS_PER_CLIENT=0", "MAX_STREAMS=0"), "serve")
	if err != nil {
		return err
	}
	defer serve.kill()
	per := max(subs/gens, 1)
	fmt.Printf("\n== fanout: %d generations at once, %d tokens %s apart (first after %s), %d SSE clients each (%d in all); serve on %s\n",
		gens, tokens, every, firstToken, per, per*gens, storeFlag)
	rssCtx, rssStop := context.WithCancel(context.Background())
	mem := sampleMemory(rssCtx, serve.pid(), serve.URL, adminToken)
	serveCPU0, selfCPU0 := cpuOf(serve.pid()), selfCPU()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024}}
	type sub struct {
		got        scriptkit.Followed
		err        error
		deliveries []delivery
	}
	ids := make([]string, gens)
	titles := make([]string, gens)
	all := make([][]*sub, gens)
	var wg sync.WaitGroup
	begin := time.Now()
	if profileDir != "" {
		go profile(rssCtx, serve.URL, begin, begin.Add((firstToken+time.Duration(tokens)*every)/3))
	}
	var submitErr error
	var mu sync.Mutex
	sem := make(chan struct{}, 16)
	for g := range gens {
		titles[g] = fmt.Sprintf("동시 대본 %d", g)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			id, err := submit(serve.URL, fmt.Sprintf("fan-%d", g%20), titles[g])
			<-sem
			if err != nil {
				mu.Lock()
				submitErr = err
				mu.Unlock()
				return
			}
			ids[g] = id
			for range per {
				s := &sub{}
				all[g] = append(all[g], s)
			}
			for _, s := range all[g] {
				wg.Add(1)
				go func() {
					defer wg.Done()
					f := &scriptkit.Follower{Base: serve.URL, JobID: id, Client: client,
						OnScript: func(seq int64, offset int, text string, at time.Time) {
							s.deliveries = append(s.deliveries, delivery{seq, offset, len([]rune(text)), at.UnixNano()})
						}}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
					defer cancel()
					s.got, s.err = f.Run(ctx)
				}()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	serveCPU, selfCPUUsed := cpuOf(serve.pid())-serveCPU0, selfCPU()-selfCPU0
	rssStop()
	peak := mem()
	if submitErr != nil {
		return submitErr
	}
	// Every client has its job's whole answer.
	for g := range gens {
		want := fake.Answer(titles[g]).Text
		for _, s := range all[g] {
			if err := checkFollowed(ids[g], s.got, s.err, want); err != nil {
				v, _ := getJob(serve.URL, ids[g])
				return fmt.Errorf("%w (the job: %s, %q)", err, v.Status, v.Error)
			}
		}
	}
	serve.term(60 * time.Second)

	// When each script event was committed: its created_at.
	st, err := database.Open(context.Background(), dbURL, clock.Real{})
	if err != nil {
		return err
	}
	defer st.Close()
	var lag, toCommit, fromCommit dist
	for g := range gens {
		a := fake.Answer(titles[g])
		sent := fake.SentTimes(titles[g])
		evs, err := st.ListEvents(context.Background(), ids[g], 0, 100000)
		if err != nil {
			return err
		}
		committed := map[int64]int64{}
		for _, e := range evs {
			committed[e.Seq] = e.CreatedAt.UnixNano()
		}
		for n, s := range all[g] {
			for _, d := range s.deliveries {
				c := committed[d.seq]
				fromCommit = append(fromCommit, float64(d.at-c)/1e6)
				for i := a.TokenAt(d.offset); i < len(a.Ends) && a.Ends[i] <= d.offset+d.chars; i++ {
					lag = append(lag, float64(d.at-sent[i])/1e6)
					if n == 0 {
						toCommit = append(toCommit, float64(c-sent[i])/1e6)
					}
				}
			}
		}
	}
	events := 0
	for g := range gens {
		events += all[g][0].got.ScriptEvents
	}
	fmt.Printf("all %d generations done in %.1f s (%.1f s of tokens each); %d script events a generation, %.0f committed a second\n",
		gens, elapsed.Seconds(), (firstToken + time.Duration(tokens-1)*every).Seconds(), events/gens, float64(events)/elapsed.Seconds())
	fmt.Printf("serve: %s\n", peak)
	fmt.Printf("CPU over the run: serve %.0f %% of one core, this process (model and clients) %.0f %%\n",
		100*serveCPU.Seconds()/elapsed.Seconds(), 100*selfCPUUsed.Seconds()/elapsed.Seconds())
	fmt.Printf("token sent → a client read the script event holding it: %s\n", lag)
	fmt.Printf("  token sent → its script event committed (per token):  %s\n", toCommit)
	fmt.Printf("  script event committed → a client read it (per event): %s\n", fromCommit)
	return nil
}
