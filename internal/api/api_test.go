package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/api"
	"github.com/scriptgen/scriptgen/internal/backgroundtasks"
	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/generate"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/jobhandler"
	"github.com/scriptgen/scriptgen/internal/runner"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/store/sqlite"
	"github.com/scriptgen/scriptgen/internal/testenv/contract"
)

type staticRouter struct{}

func (staticRouter) BackendFor(string) job.Backend { return job.BackendBackgroundTasks }

type system struct{}

func (system) WorkerSystem(context.Context) api.WorkerSystem {
	return api.WorkerSystem{Type: "background_tasks", Redis: "unconfigured"}
}
func (system) BackgroundTasks(context.Context) api.BackgroundTasks {
	return api.BackgroundTasks{Max: 4}
}

// gatedStore holds CreateJob until the gate opens, to catch a request in
// flight; entered tells when a request is held.
type gatedStore struct {
	store.Store
	gate    chan struct{}
	entered chan struct{}
}

func (g *gatedStore) CreateJob(ctx context.Context, nj store.NewJob) (job.Job, bool, error) {
	if g.gate != nil {
		g.entered <- struct{}{}
		<-g.gate
	}
	return g.Store.CreateJob(ctx, nj)
}

type env struct {
	t     *testing.T
	srv   *httptest.Server
	store *gatedStore
	exec  *runner.Executor
}

func newEnv(t *testing.T, gen generate.Generator) *env {
	return startEnv(t, 4, func(store.Store) map[job.Kind]runner.Handler {
		return map[job.Kind]runner.Handler{job.KindGeneration: jobhandler.Generation{Generator: gen}}
	}, nil)
}

// startEnv serves the API over a real SQLite store and runs its jobs on a real
// background_tasks pool with the given handlers; configure, when set, changes
// the API's configuration.
func startEnv(t *testing.T, workers int, handlers func(st store.Store) map[job.Kind]runner.Handler,
	configure func(cfg *api.Config)) *env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "api.db"), clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	gs := &gatedStore{Store: st}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	exec := runner.NewExecutor(gs, handlers(gs), runner.ExecutorConfig{LeaseFor: 10 * time.Second}, log, nil)
	pool := backgroundtasks.New(gs, exec, backgroundtasks.Config{
		Workers:      workers,
		Owner:        "test",
		PollInterval: 50 * time.Millisecond,
		DrainTimeout: 5 * time.Second,
	}, log)
	pool.Start(context.Background())
	adapter := runner.NewAdapter(staticRouter{}, log, pool)
	cfg := api.Config{
		Store:      gs,
		Dispatcher: adapter,
		Canceller:  exec,
		System:     system{},
		Generator:  "template",
		Log:        log,
	}
	if configure != nil {
		configure(&cfg)
	}
	srv := httptest.NewServer(contract.Handler(t, api.New(cfg)))
	t.Cleanup(func() {
		srv.Close()
		pool.Stop(context.Background())
		st.Close()
	})
	return &env{t: t, srv: srv, store: gs, exec: exec}
}

func (e *env) do(method, path string, body string, headers ...string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		e.t.Fatalf("%s %s: body is not JSON: %q", method, path, raw)
	}
	return resp.StatusCode, out
}

func (e *env) jobCount() int {
	n, err := e.store.CountJobs(context.Background(), store.JobFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) waitFor(id string, status job.Status) map[string]any {
	e.t.Helper()
	var j map[string]any
	waitUntil(e.t, 20*time.Second, "job "+id+" to become "+string(status), func() bool {
		_, j = e.do("GET", "/api/generation/"+id, "")
		return j["status"] == string(status)
	})
	return j
}

// waitUntil polls cond every 10 ms until it holds, and fails the test if it
// does not within timeout.
func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", timeout, what)
		}
	}
}

const valid = `{"project_id":"p1","episode_data":{"title":"첫 만남","synopsis":"두 사람이 카페에서 만난다.","characters":["지수",{"name":"Minho","description":"barista"}]}}`

func TestSubmitRunsAndSavesEpisode(t *testing.T) {
	e := newEnv(t, generate.NewTemplate(generate.TemplateConfig{}))
	code, j := e.do("POST", "/api/generation", valid, "Idempotency-Key", "k1")
	if code != http.StatusAccepted || j["status"] != "queued" || j["links"].(map[string]any)["events"] == nil {
		t.Fatalf("submit: %d %v", code, j)
	}
	id := j["id"].(string)
	done := e.waitFor(id, job.StatusSucceeded)
	result := done["result"].(map[string]any)
	if result["episode_number"] != float64(1) || done["progress"] != float64(100) {
		t.Fatalf("finished job %v", done)
	}
	code, ep := e.do("GET", "/api/projects/p1/episodes/1", "")
	if code != 200 || ep["job_id"] != id || !strings.Contains(ep["script"].(string), "INT.") || ep["title"] != "첫 만남" {
		t.Fatalf("episode 1: %d %v", code, ep)
	}
	code, list := e.do("GET", "/api/projects/p1/episodes", "")
	if code != 200 || len(list["items"].([]any)) != 1 {
		t.Fatalf("episodes: %d %v", code, list)
	}
	code, again := e.do("POST", "/api/generation", valid, "Idempotency-Key", "k1")
	if code != http.StatusAccepted || again["id"] != id {
		t.Fatalf("replay: %d %v, want the same job", code, again)
	}
	if _, list := e.do("GET", "/api/projects/p1/episodes", ""); len(list["items"].([]any)) != 1 {
		t.Fatal("replay made a second episode")
	}
}

func TestIdempotency(t *testing.T) {
	e := newEnv(t, generate.NewTemplate(generate.TemplateConfig{}))
	code, first := e.do("POST", "/api/generation", valid, "Idempotency-Key", "same")
	if code != 202 {
		t.Fatal(code)
	}
	// The same request with other whitespace is the same request.
	var buf bytes.Buffer
	json.Indent(&buf, []byte(valid), "", "  ")
	if code, again := e.do("POST", "/api/generation", buf.String(), "Idempotency-Key", "same"); code != 202 || again["id"] != first["id"] {
		t.Fatalf("same body reformatted: %d %v", code, again)
	}
	other := strings.Replace(valid, "첫 만남", "두 번째", 1)
	if code, body := e.do("POST", "/api/generation", other, "Idempotency-Key", "same"); code != 422 ||
		body["error"].(map[string]any)["code"] != "idempotency_key_reused" {
		t.Fatalf("other body: %d %v, want 422", code, body)
	}
	if n := e.jobCount(); n != 1 {
		t.Fatalf("%d jobs, want 1", n)
	}

	e.store.gate, e.store.entered = make(chan struct{}), make(chan struct{}, 1)
	first2 := make(chan int)
	go func() {
		code, _ := e.do("POST", "/api/generation", other, "Idempotency-Key", "slow")
		first2 <- code
	}()
	select {
	case <-e.store.entered: // the first request is now held in CreateJob
	case <-time.After(10 * time.Second):
		t.Fatal("the first request never reached CreateJob")
	}
	code, body := e.do("POST", "/api/generation", other, "Idempotency-Key", "slow")
	close(e.store.gate)
	if code != 409 || body["error"].(map[string]any)["code"] != "idempotency_key_in_flight" {
		t.Fatalf("concurrent same key: %d %v, want 409", code, body)
	}
	if c := <-first2; c != 202 {
		t.Fatalf("first of the concurrent pair: %d", c)
	}
	if n := e.jobCount(); n != 2 {
		t.Fatalf("%d jobs, want 2", n)
	}
}

func TestFiftyConcurrentSubmissionsNumberEpisodesOnce(t *testing.T) {
	e := newEnv(t, generate.Noop{})
	var wg sync.WaitGroup
	ids := make([]string, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"project_id":"p50","episode_data":{"title":"Episode %d"}}`, i)
			code, j := e.do("POST", "/api/generation", body, "Idempotency-Key", fmt.Sprintf("k-%d", i))
			if code != 202 {
				t.Errorf("submit %d: %d %v", i, code, j)
				return
			}
			ids[i] = j["id"].(string)
		}()
	}
	wg.Wait()
	for _, id := range ids {
		e.waitFor(id, job.StatusSucceeded)
	}
	_, list := e.do("GET", "/api/projects/p50/episodes?limit=200", "")
	items := list["items"].([]any)
	seen := map[string]bool{}
	for i, it := range items {
		ep := it.(map[string]any)
		if ep["number"] != float64(i+1) || seen[ep["job_id"].(string)] {
			t.Fatalf("episode %d: %v", i, ep)
		}
		seen[ep["job_id"].(string)] = true
	}
	if len(items) != 50 || len(seen) != 50 {
		t.Fatalf("%d episodes for %d jobs", len(items), len(seen))
	}
}

func TestBadInputIs4xxAndWritesNothing(t *testing.T) {
	e := newEnv(t, generate.Noop{})
	long := strings.Repeat("가", job.MaxTitleRunes+1)
	tests := []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		field                    string
	}{
		{"malformed json", "POST", "/api/generation", `{"project_id":`, nil, 400, ""},
		{"not an object", "POST", "/api/generation", `[1,2]`, nil, 400, ""},
		{"trailing data", "POST", "/api/generation", valid + `{}`, nil, 400, ""},
		{"empty body", "POST", "/api/generation", ``, nil, 400, ""},
		{"unknown field", "POST", "/api/generation", `{"project_id":"p1","episode_data":{"title":"t"},"extra":1}`, nil, 400, "extra"},
		{"unknown nested field", "POST", "/api/generation", `{"project_id":"p1","episode_data":{"title":"t","mood":"x"}}`, nil, 400, "mood"},
		{"missing project", "POST", "/api/generation", `{"episode_data":{"title":"t"}}`, nil, 400, "project_id"},
		{"bad project id", "POST", "/api/generation", `{"project_id":"../etc","episode_data":{"title":"t"}}`, nil, 400, "project_id"},
		{"missing episode", "POST", "/api/generation", `{"project_id":"p1"}`, nil, 400, "episode_data"},
		{"empty title", "POST", "/api/generation", `{"project_id":"p1","episode_data":{"title":"   "}}`, nil, 400, "episode_data.title"},
		{"overlong title", "POST", "/api/generation", `{"project_id":"p1","episode_data":{"title":"` + long + `"}}`, nil, 400, "episode_data.title"},
		{"wrong type", "POST", "/api/generation", `{"project_id":7,"episode_data":{"title":"t"}}`, nil, 400, "project_id"},
		{"field given twice", "POST", "/api/generation", `{"project_id":"p1","project_id":"p2","episode_data":{"title":"t"}}`, nil, 400, "project_id"},
		{"nested field given twice", "POST", "/api/generation", `{"project_id":"p1","episode_data":{"title":"t","title":"u"}}`, nil, 400, "episode_data.title"},
		{"field in another case", "POST", "/api/generation", `{"Project_Id":"p1","episode_data":{"title":"t"}}`, nil, 400, "Project_Id"},
		{"nameless character", "POST", "/api/generation", `{"project_id":"p1","episode_data":{"title":"t","characters":[{"description":"x"}]}}`, nil, 400, "episode_data.characters[0].name"},
		{"oversized body", "POST", "/api/generation", `{"project_id":"p1","episode_data":{"title":"t","synopsis":"` + strings.Repeat("a", job.MaxBodyBytes) + `"}}`, nil, 413, ""},
		{"empty idempotency key", "POST", "/api/generation", valid, []string{"Idempotency-Key", ""}, 400, "Idempotency-Key"},
		{"idempotency key with space", "POST", "/api/generation", valid, []string{"Idempotency-Key", "a b"}, 400, "Idempotency-Key"},
		{"overlong idempotency key", "POST", "/api/generation", valid, []string{"Idempotency-Key", strings.Repeat("k", 256)}, 400, "Idempotency-Key"},
		{"unknown job", "GET", "/api/generation/01900000-0000-7000-8000-000000000000", "", nil, 404, ""},
		{"cancel unknown job", "POST", "/api/generation/nope/cancel", "", nil, 404, ""},
		{"bad status filter", "GET", "/api/generation?status=done", "", nil, 400, "status"},
		{"bad limit", "GET", "/api/generation?limit=0", "", nil, 400, "limit"},
		{"limit with a sign", "GET", "/api/generation?limit=%2B5", "", nil, 400, "limit"},
		{"limit with a leading zero", "GET", "/api/generation?limit=05", "", nil, 400, "limit"},
		{"bad episode number", "GET", "/api/projects/p1/episodes/zero", "", nil, 400, "number"},
		{"episode number with a leading zero", "GET", "/api/projects/p1/episodes/01", "", nil, 400, "number"},
		{"episode number with a sign", "GET", "/api/projects/p1/episodes/+1", "", nil, 400, "number"},
		{"episode cursor with a sign", "GET", "/api/projects/p1/episodes?cursor=%2B1", "", nil, 400, "cursor"},
		{"episode cursor with a leading zero", "GET", "/api/projects/p1/episodes?cursor=01", "", nil, 400, "cursor"},
		{"negative episode cursor", "GET", "/api/projects/p1/episodes?cursor=-1", "", nil, 400, "cursor"},
		{"overlong episode cursor", "GET", "/api/projects/p1/episodes?cursor=1234567890123456789", "", nil, 400, "cursor"},
		{"bad episode project", "GET", "/api/projects/a%20b/episodes", "", nil, 400, "project_id"},
		{"missing episode", "GET", "/api/projects/p1/episodes/9", "", nil, 404, ""},
		{"unknown endpoint", "GET", "/api/nothing", "", nil, 404, ""},
		{"unknown endpoint, other method", "DELETE", "/api/nothing", "", nil, 404, ""},
		{"method not allowed", "DELETE", "/api/generation", "", nil, 405, ""},
		{"method not allowed on a job", "PUT", "/api/generation/x", "{}", nil, 405, ""},
		{"method not allowed on health", "POST", "/health", "", nil, 405, ""},
		// Text PostgreSQL cannot store never reaches a store: 400 on both.
		{"NUL in a job id", "GET", "/api/generation/a%00b", "", nil, 400, ""},
		{"invalid UTF-8 in a job id", "GET", "/api/generation/a%FFb", "", nil, 400, ""},
		{"NUL in a cancelled id", "POST", "/api/generation/a%00b/cancel", "", nil, 400, ""},
		{"NUL in the events' id", "GET", "/api/generation/a%00b/events", "", nil, 400, ""},
		{"NUL in a cursor", "GET", "/api/generation?cursor=%00", "", nil, 400, ""},
		{"invalid UTF-8 in a cursor", "GET", "/api/generation?cursor=%FF", "", nil, 400, ""},
		{"malformed query", "GET", "/api/generation?limit=%zz", "", nil, 400, ""},
		{"a parameter twice", "GET", "/api/generation?status=queued&status=bogus", "", nil, 400, ""},
		{"NUL in a query value", "GET", "/api/projects/p1/episodes?x=a%00", "", nil, 400, ""},
		{"line break in a path", "GET", "/api/generation/a%0Ab", "", nil, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			code, body := e.do(tt.method, tt.path, tt.body, append(tt.headers, contract.OffSpecHeader, "1")...)
			errObj, ok := body["error"].(map[string]any)
			if code != tt.status || !ok || errObj["message"] == "" || errObj["code"] == "" {
				t.Fatalf("%d %v, want %d with a JSON error", code, body, tt.status)
			}
			if tt.field != "" && errObj["field"] != tt.field {
				t.Fatalf("error names field %v, want %s", errObj["field"], tt.field)
			}
		})
	}
	e.t = t
	if code, body := e.do("GET", "/api/projects/p1/episodes?note=two%0Alines%09tabbed", "", contract.OffSpecHeader, "1"); code != 200 {
		t.Fatalf("a line break and a tab in a query value: %d %v, want 200", code, body)
	}
	if code, body := e.do("GET", "/api/projects/p1/episodes?cursor=0&limit=10", ""); code != 200 {
		t.Fatalf("cursor 0 and limit 10: %d %v, want 200", code, body)
	}
	if n := e.jobCount(); n != 0 {
		t.Fatalf("bad input wrote %d jobs", n)
	}
}

// blockingGenerator runs until its context ends.
type blockingGenerator struct{ started, stopped chan string }

func (b blockingGenerator) Generate(ctx context.Context, req generate.Request, _ generate.ProgressFunc) (generate.Script, error) {
	b.started <- req.JobID
	<-ctx.Done()
	b.stopped <- req.JobID
	return generate.Script{}, ctx.Err()
}

func TestCancelStopsRunningGenerator(t *testing.T) {
	gen := blockingGenerator{started: make(chan string, 1), stopped: make(chan string, 1)}
	e := newEnv(t, gen)
	_, j := e.do("POST", "/api/generation", valid)
	id := j["id"].(string)
	select {
	case got := <-gen.started:
		if got != id {
			t.Fatalf("started %s", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("job never started")
	}
	code, c := e.do("POST", "/api/generation/"+id+"/cancel", "")
	if code != 200 || c["status"] != "cancelled" {
		t.Fatalf("cancel: %d %v", code, c)
	}
	if code, _ := e.do("POST", "/api/generation/"+id+"/cancel", ""); code != 409 {
		t.Fatalf("cancel twice: %d, want 409", code)
	}
	select {
	case <-gen.stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the cancelled job's generator still runs")
	}
	// The run is over once the executor has let the job go: whatever it
	// would write after its generator stopped is written by then.
	waitUntil(t, 10*time.Second, "the executor to end the cancelled run", func() bool { return e.exec.Active() == 0 })
	if _, after := e.do("GET", "/api/generation/"+id, ""); after["status"] != "cancelled" {
		t.Fatalf("after cancel: %v", after)
	}
	if _, list := e.do("GET", "/api/projects/p1/episodes", ""); len(list["items"].([]any)) != 0 {
		t.Fatal("a cancelled job saved an episode")
	}
}

func TestListJobsFiltersAndPages(t *testing.T) {
	e := newEnv(t, generate.Noop{})
	for i := range 5 {
		project := "a"
		if i%2 == 1 {
			project = "b"
		}
		e.do("POST", "/api/generation", fmt.Sprintf(`{"project_id":%q,"episode_data":{"title":"t%d"}}`, project, i))
	}
	var all []any
	cursor := ""
	for range 5 {
		_, page := e.do("GET", "/api/generation?limit=2&cursor="+cursor, "")
		all = append(all, page["items"].([]any)...)
		cursor, _ = page["next_cursor"].(string)
		if cursor == "" {
			break
		}
	}
	if len(all) != 5 {
		t.Fatalf("paged through %d jobs, want 5", len(all))
	}
	_, b := e.do("GET", "/api/generation?project_id=b", "")
	if len(b["items"].([]any)) != 2 {
		t.Fatalf("project b: %v", b)
	}
}

func TestTwoIdempotencyKeysAreRefused(t *testing.T) {
	e := newEnv(t, generate.Noop{})
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/generation", strings.NewReader(valid))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Add("Idempotency-Key", "first")
	req.Header.Add("Idempotency-Key", "second")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 400 || body["error"]["field"] != "Idempotency-Key" {
		t.Fatalf("two keys: %d %v, want 400 naming Idempotency-Key", resp.StatusCode, body)
	}
	if n := e.jobCount(); n != 0 {
		t.Fatalf("two keys wrote %d jobs", n)
	}
}

// A route asked with a method it does not serve says which methods it does,
// in the Allow header and the JSON error.
func TestWrongMethodIs405WithAllow(t *testing.T) {
	e := newEnv(t, generate.Noop{})
	req, _ := http.NewRequest("PATCH", e.srv.URL+"/api/generation", nil)
	resp, err := http.DefaultClient.Do(contract.OffSpec(req))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	allow := resp.Header.Get("Allow")
	if resp.StatusCode != 405 || body.Error.Code != "method_not_allowed" || !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") ||
		!strings.Contains(body.Error.Message, allow) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("PATCH /api/generation: %d, Allow %q, %q %+v", resp.StatusCode, allow, resp.Header.Get("Content-Type"), body)
	}
}

// TestJobMaxAttemptsIsConfigured: JOB_MAX_ATTEMPTS (Config.MaxAttempts)
// sets how often a new job is tried, instead of the fixed 3.
func TestJobMaxAttemptsIsConfigured(t *testing.T) {
	e := startEnv(t, 1, func(store.Store) map[job.Kind]runner.Handler {
		return map[job.Kind]runner.Handler{job.KindGeneration: jobhandler.Generation{Generator: generate.NewTemplate(generate.TemplateConfig{})}}
	}, func(cfg *api.Config) { cfg.MaxAttempts = 7 })
	code, j := e.do("POST", "/api/generation", `{"project_id":"p1","episode_data":{"title":"t"}}`)
	if code != 202 || j["max_attempts"] != float64(7) {
		t.Fatalf("submission: %d %v, want max_attempts 7", code, j)
	}
}
