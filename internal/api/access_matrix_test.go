package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/access"
	"github.com/scriptgen/scriptgen/internal/backgroundtasks"
	"github.com/scriptgen/scriptgen/internal/generate"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/jobhandler"
	"github.com/scriptgen/scriptgen/internal/limits"
	"github.com/scriptgen/scriptgen/internal/metrics"
	"github.com/scriptgen/scriptgen/internal/progress"
	"github.com/scriptgen/scriptgen/internal/runner"
	"github.com/scriptgen/scriptgen/internal/store/sqlite"
	"github.com/scriptgen/scriptgen/internal/testenv"
	"github.com/scriptgen/scriptgen/internal/testenv/contract"
)

// matrixSystem is a worker system that is always background_tasks.
type matrixSystem struct{}

func (matrixSystem) WorkerSystem(context.Context) WorkerSystem {
	return WorkerSystem{Type: "background_tasks", Reason: "operator's private reason", Redis: "unconfigured"}
}
func (matrixSystem) BackgroundTasks(context.Context) BackgroundTasks { return BackgroundTasks{Max: 2} }

type backgroundOnly struct{}

func (backgroundOnly) BackendFor(string) job.Backend { return job.BackendBackgroundTasks }

// matrixAdmin answers the admin calls the matrix makes, changing nothing.
type matrixAdmin struct{}

func (matrixAdmin) SetWorkerSystem(context.Context, WorkerSystemChange, string) error { return nil }
func (matrixAdmin) Stats(context.Context) any {
	return map[string]any{"worker_system": matrixSystem{}.WorkerSystem(context.Background()),
		"background_tasks": BackgroundTasks{Max: 2}, "memory": matrixMemory,
		"durable":               map[string]any{"redis": "unconfigured", "workers_up": 0, "workers_crashed": 0},
		"average_response_time": 0.0, "p99_response_time": 0.0}
}
func (matrixAdmin) Cleanup(context.Context, bool, bool) any {
	return map[string]any{"before": matrixMemory, "after": matrixMemory, "actions": []string{}, "took_ms": 0}
}

// matrixMemory is a process's memory as the admin API shows it.
var matrixMemory = map[string]any{"rss_bytes": 1 << 20, "heap_bytes": 1 << 19, "host_percent": 1.0, "goroutines": 10}

func (matrixAdmin) GracefulRestart() error { return nil }
func (matrixAdmin) Replicas(context.Context, time.Duration) (ReplicasView, error) {
	return ReplicasView{Replicas: []Replica{}}, nil
}
func (matrixAdmin) History() metrics.HistoryView {
	return metrics.HistoryView{IntervalSeconds: 10, Capacity: metrics.HistoryPoints, Points: []metrics.HistoryPoint{}}
}

const matrixAdminToken = "matrix-admin-token-0123456789"

// matrixEnv is a real API over a real SQLite store, with jobs run by a real
// pool, keys in the store and the real authenticator, on an address that is
// not loopback (so that writer calls need a credential).
type matrixEnv struct {
	t   *testing.T
	srv *httptest.Server
	// keys by column: acme (all projects), acme limited to p2, globex.
	acme, acmeP2, globex string
}

func newMatrixEnv(t *testing.T) *matrixEnv {
	return newMatrixEnvWith(t, generate.NewTemplate(generate.TemplateConfig{StepDelay: time.Millisecond}), nil)
}

// newMatrixEnvWith is newMatrixEnv with a generator of the test's and a
// change to the API's configuration.
func newMatrixEnvWith(t *testing.T, gen generate.Generator, configure func(*Config, *sqlite.Store)) *matrixEnv {
	t.Helper()
	st := testenv.SQLite(t)
	log := slog.New(slog.DiscardHandler)
	exec := runner.NewExecutor(st, map[job.Kind]runner.Handler{
		job.KindGeneration:  jobhandler.Generation{Generator: gen, Usage: st},
		job.KindRAGDocument: jobhandler.NewRAGDocument(st),
	}, runner.ExecutorConfig{LeaseFor: 10 * time.Second}, log, nil)
	pool := backgroundtasks.New(st, exec, backgroundtasks.Config{
		Workers:      2,
		Owner:        "matrix",
		PollInterval: 20 * time.Millisecond,
		DrainTimeout: 5 * time.Second,
	}, log)
	if err := pool.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	broker := progress.NewBroker(st, progress.BrokerConfig{}, log)
	admin, err := access.ParseAdminTokens(matrixAdminToken, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Store:      st,
		Dispatcher: runner.NewAdapter(backgroundOnly{}, log, pool),
		Canceller:  exec,
		System:     matrixSystem{},
		Generator:  "template",
		Log:        log,
		Events:     progress.NewStream(broker, st, progress.StreamConfig{}, log),
		Auth:       access.New(st, access.Config{Admin: admin, Log: log}),
		Admin:      matrixAdmin{},
		Limits:     Limits{Streams: limits.NewStreamCaps(100, 10, 10)},
	}
	if configure != nil {
		configure(&cfg, st)
	}
	srv := httptest.NewServer(contract.Handler(t, New(cfg)))
	t.Cleanup(func() {
		srv.Close()
		broker.Close()
		pool.Stop(context.Background())
	})
	e := &matrixEnv{t: t, srv: srv}
	issue := func(tenant string, projects []string) string {
		plain, _, err := access.Issue(context.Background(), st, tenant, "matrix", projects, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return plain
	}
	e.acme, e.acmeP2, e.globex = issue("acme", nil), issue("acme", []string{"p2"}), issue("globex", nil)
	return e
}

func (e *matrixEnv) do(method, path, cred, body string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	// The matrix is about who may call: its bodies are the least that
	// reaches each check, not always valid ones. The answers are checked.
	contract.OffSpec(req)
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitDone waits until the job is finished, read as its owner.
func (e *matrixEnv) waitDone(id, cred string) {
	e.t.Helper()
	testenv.Eventually(e.t, 10*time.Second, func() bool {
		_, body := e.do("GET", "/api/generation/"+id, cred, "")
		return strings.Contains(body, `"status":"succeeded"`)
	}, "job %s did not succeed", id)
}

func jsonField(t *testing.T, body, field string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("not JSON: %s", body)
	}
	v, _ := m[field].(string)
	return v
}

// TestAccessMatrix: every route of the tables × {no key, another tenant's
// key, a key of the right tenant limited to another project, the right key,
// an admin token} answers the documented status, and no body but the right
// key's and the operator's holds anything of acme's project p1.
func TestAccessMatrix(t *testing.T) {
	e := newMatrixEnv(t)
	const secret = "ACME-SECRET"
	status, body := e.do("POST", "/api/generation", e.acme, `{"project_id":"p1","episode_data":{"title":"`+secret+`-TITLE"}}`)
	if status != 202 {
		t.Fatalf("seed job: %d %s", status, body)
	}
	jobID := jsonField(t, body, "id")
	e.waitDone(jobID, e.acme)
	// A second episode: p1's episode 2 exists in acme's namespace only.
	_, body = e.do("POST", "/api/generation", e.acme, `{"project_id":"p1","episode_data":{"title":"`+secret+`-SECOND"}}`)
	e.waitDone(jsonField(t, body, "id"), e.acme)
	status, body = e.do("POST", "/api/projects/p1/documents", e.acme, `{"title":"bible","content":"# World\n\n`+secret+`-DOC lives here."}`)
	if status != 202 {
		t.Fatalf("seed document: %d %s", status, body)
	}
	docID := jsonField(t, body, "document_id")
	e.waitDone(jsonField(t, body, "id"), e.acme)

	cols := []struct {
		name, cred string
		// leakFree: no answer to this caller may hold acme's p1.
		leakFree bool
	}{
		{"no key", "", true},
		{"other tenant", e.globex, true},
		{"other project", e.acmeP2, true},
		{"admin", matrixAdminToken, false},
		{"right key", e.acme, false},
	}
	gen := `{"project_id":"p1","episode_data":{"title":"matrix"}}`
	doc := `{"title":"notes","content":"plain notes"}`
	// want: statuses by column, in cols' order. The right key comes last, so
	// that its reprocess and delete run after everyone else's tries.
	type row struct {
		method, pattern, path, body string
		want                        [5]int
	}
	rows := []row{
		{"POST", "/api/generation", "/api/generation", gen, [5]int{401, 202, 404, 202, 202}},
		{"GET", "/api/generation", "/api/generation", "", [5]int{401, 200, 200, 200, 200}},
		{"GET", "/api/generation/system-info", "/api/generation/system-info", "", [5]int{200, 200, 200, 200, 200}},
		{"GET", "/api/generation/{id}", "/api/generation/" + jobID, "", [5]int{401, 404, 404, 200, 200}},
		{"POST", "/api/generation/{id}/cancel", "/api/generation/" + jobID + "/cancel", "", [5]int{401, 404, 404, 409, 409}},
		{"GET", "/api/generation/{id}/events", "/api/generation/" + jobID + "/events", "", [5]int{401, 404, 404, 200, 200}},
		{"GET", "/api/projects/{project_id}", "/api/projects/p1", "", [5]int{401, 200, 404, 200, 200}},
		{"GET", "/api/projects/{project_id}/episodes", "/api/projects/p1/episodes", "", [5]int{401, 200, 404, 200, 200}},
		{"GET", "/api/projects/{project_id}/episodes/{number}", "/api/projects/p1/episodes/2", "", [5]int{401, 404, 404, 404, 200}},
		{"POST", "/api/projects/{project_id}/documents", "/api/projects/p1/documents", doc, [5]int{401, 202, 404, 202, 202}},
		{"GET", "/api/projects/{project_id}/documents", "/api/projects/p1/documents", "", [5]int{401, 200, 404, 200, 200}},
		{"GET", "/api/projects/{project_id}/documents/{id}", "/api/projects/p1/documents/" + docID, "", [5]int{401, 404, 404, 404, 200}},
		{"GET", "/api/projects/{project_id}/search", "/api/projects/p1/search?q=" + secret, "", [5]int{401, 200, 404, 200, 200}},
		{"POST", "/api/projects/{project_id}/documents/{id}/reprocess", "/api/projects/p1/documents/" + docID + "/reprocess", "", [5]int{401, 404, 404, 404, 202}},
		{"DELETE", "/api/projects/{project_id}/documents/{id}", "/api/projects/p1/documents/" + docID, "", [5]int{401, 404, 404, 404, 200}},
		{"GET", "/api/usage", "/api/usage", "", [5]int{401, 200, 200, 200, 200}},
		{"GET", "/api/openapi.yaml", "/api/openapi.yaml", "", [5]int{200, 200, 200, 200, 200}},
		{"GET", "/health", "/health", "", [5]int{200, 200, 200, 200, 200}},
		{"GET", "/{$}", "/", "", [5]int{200, 200, 200, 200, 200}},
		{"GET", "/operator", "/operator", "", [5]int{200, 200, 200, 200, 200}},
		{"GET", "/static/", "/static/app.css", "", [5]int{200, 200, 200, 200, 200}},
		{"GET", "/metrics", "/metrics", "", [5]int{503, 503, 503, 503, 503}}, // no registry in this API: unavailable to all
	}
	// Admin and debug routes: 401 without a credential, 403 with a writer's
	// key; an admin token passes (checked on the calls that change nothing).
	adminRow := func(method, pattern, path, body string, adminStatus int) row {
		return row{method, pattern, path, body, [5]int{401, 403, 403, adminStatus, 403}}
	}
	rows = append(rows,
		adminRow("GET", "/api/admin/worker-system", "/api/admin/worker-system", "", 200),
		adminRow("PUT", "/api/admin/worker-system", "/api/admin/worker-system", `{}`, 400),
		adminRow("POST", "/api/admin/rollback", "/api/admin/rollback", `{"reason":"`+strings.Repeat("x", 600)+`"}`, -1),
		adminRow("POST", "/api/admin/rollforward", "/api/admin/rollforward", `{"percent":500}`, -1),
		adminRow("GET", "/api/admin/rollbacks", "/api/admin/rollbacks", "", -1),
		adminRow("GET", "/api/admin/rollbacks/{id}", "/api/admin/rollbacks/none", "", -1),
		adminRow("GET", "/api/admin/rollbacks/{id}/report", "/api/admin/rollbacks/none/report", "", -1),
		adminRow("POST", "/api/admin/migrate-pending-jobs", "/api/admin/migrate-pending-jobs", `{"source":"nowhere"}`, 400),
		adminRow("GET", "/api/admin/migration-failed", "/api/admin/migration-failed", "", 200),
		adminRow("POST", "/api/admin/migration-failed/{job_id}/retry", "/api/admin/migration-failed/none/retry", "", -1),
		adminRow("GET", "/api/admin/stats", "/api/admin/stats", "", 200),
		adminRow("GET", "/api/admin/history", "/api/admin/history", "", 200),
		adminRow("GET", "/api/admin/replicas", "/api/admin/replicas?stale_after=5s", "", 200),
		adminRow("DELETE", "/api/admin/verify-project", "/api/admin/verify-project", "", 200),
		adminRow("POST", "/api/admin/jobs/{id}/retry", "/api/admin/jobs/none/retry", "", 404),
		adminRow("POST", "/api/admin/jobs/cancel", "/api/admin/jobs/cancel", `{}`, 400),
		adminRow("POST", "/api/admin/cleanup", "/api/admin/cleanup", `{}`, 200),
		adminRow("POST", "/api/admin/graceful-restart", "/api/admin/graceful-restart", "", -1),
		adminRow("POST", "/api/admin/keys", "/api/admin/keys", `{"tenant":"initech","name":"matrix"}`, 201),
		adminRow("GET", "/api/admin/keys", "/api/admin/keys", "", 200),
		adminRow("POST", "/api/admin/keys/{id}/rotate", "/api/admin/keys/none/rotate", "", 404),
		adminRow("DELETE", "/api/admin/keys/{id}", "/api/admin/keys/none", "", 404),
		adminRow("GET", "/debug/pprof/", "/debug/pprof/", "", 200),
		adminRow("GET", "/debug/pprof/profile", "/debug/pprof/profile?seconds=1", "", 200),
		adminRow("GET", "/debug/pprof/trace", "/debug/pprof/trace?seconds=1", "", 200),
	)

	// Every route of the tables has its row.
	covered := map[string]bool{}
	for _, r := range rows {
		covered[r.method+" "+r.pattern] = true
	}
	for _, rt := range newAPI(Config{}).routes() {
		if !covered[rt.Method+" "+rt.Pattern] {
			t.Errorf("%s %s has no row in the access matrix", rt.Method, rt.Pattern)
		}
	}

	for _, r := range rows {
		for i, c := range cols {
			want := r.want[i]
			status, body := e.do(r.method, r.path, c.cred, r.body)
			if want >= 0 && status != want {
				t.Errorf("%s %s as %s: %d, want %d: %.200s", r.method, r.path, c.name, status, want, body)
			}
			if want < 0 && (status == 401 || status == 403) {
				t.Errorf("%s %s as %s: refused (%d): %.200s", r.method, r.path, c.name, status, body)
			}
			if c.leakFree {
				for _, mark := range []string{secret, jobID, docID, "acme/", "operator's private reason"} {
					if strings.Contains(body, mark) {
						t.Errorf("%s %s as %s: the answer holds %q: %.300s", r.method, r.path, c.name, mark, body)
					}
				}
			}
		}
	}

	// What the others created stayed theirs: acme's list holds its own jobs
	// only, globex's its own, and acme's scoped key sees nothing of p1.
	_, acmeList := e.do("GET", "/api/generation?limit=200", e.acme, "")
	_, globexList := e.do("GET", "/api/generation?limit=200", e.globex, "")
	_, p2List := e.do("GET", "/api/generation?limit=200", e.acmeP2, "")
	if !strings.Contains(acmeList, jobID) || strings.Contains(globexList, jobID) || strings.Contains(p2List, jobID) {
		t.Errorf("lists: acme %t, globex %t, acme/p2 %t hold acme's job", strings.Contains(acmeList, jobID),
			strings.Contains(globexList, jobID), strings.Contains(p2List, jobID))
	}
	if strings.Count(globexList, `"project_id":"p1"`) != 2 || strings.Contains(globexList, "acme") {
		t.Errorf("globex's list should hold its own two p1 jobs (a generation and a document), named p1: %.500s", globexList)
	}
}

// TestIdempotencyKeysAreTenants: the same Idempotency-Key of two tenants
// names two jobs; one tenant taking a key first cannot make another's
// submission fail.
func TestIdempotencyKeysAreTenants(t *testing.T) {
	e := newMatrixEnv(t)
	submit := func(cred, title string) (int, string) {
		req, _ := http.NewRequest("POST", e.srv.URL+"/api/generation",
			strings.NewReader(`{"project_id":"p1","episode_data":{"title":"`+title+`"}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+cred)
		req.Header.Set("Idempotency-Key", "episode-1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, jsonField(t, string(b), "id")
	}
	s1, attacker := submit(e.globex, "squatter")
	s2, victim := submit(e.acme, "real episode")
	s3, again := submit(e.acme, "real episode")
	if s1 != 202 || s2 != 202 || s3 != 202 || attacker == victim || again != victim {
		t.Fatalf("globex %d %s, acme %d %s, acme again %d %s", s1, attacker, s2, victim, s3, again)
	}
}

// TestWriterCallsNeedAKeyBeyondLoopback: a server beyond loopback with no
// key refuses writer calls, and says how to fix it; on loopback it runs
// open until the first key exists.
func TestWriterCallsNeedAKeyBeyondLoopback(t *testing.T) {
	st := testenv.SQLite(t)
	for _, loopback := range []bool{false, true} {
		auth := access.New(st, access.Config{Loopback: loopback})
		srv := httptest.NewServer(contract.Handler(t, New(Config{Store: st, System: matrixSystem{}, Auth: auth})))
		resp, err := http.Get(srv.URL + "/api/generation")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		hresp, _ := http.Get(srv.URL + "/health")
		hb, _ := io.ReadAll(hresp.Body)
		hresp.Body.Close()
		srv.Close()
		switch {
		case !loopback && (resp.StatusCode != 401 || !strings.Contains(string(b), "auth_not_configured") || !strings.Contains(string(hb), `"auth":"not_configured"`)):
			t.Errorf("beyond loopback without keys: %d %s; health %s", resp.StatusCode, b, hb)
		case loopback && (resp.StatusCode != 200 || !strings.Contains(string(hb), `"auth":"open"`)):
			t.Errorf("loopback without keys: %d %s; health %s", resp.StatusCode, b, hb)
		}
	}
}
