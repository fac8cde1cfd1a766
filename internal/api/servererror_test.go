package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/api"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/metrics"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/testenv"
	"github.com/scriptgen/scriptgen/internal/testenv/contract"
)

// secret is the text of the failures below: it must reach the log, and never
// a client.
const secret = "disk I/O error on /var/lib/scriptgen/secret-volume (user=svc_db)"

var errSecret = errors.New(secret)

// brokenStore fails the reads the handlers below make.
type brokenStore struct{ store.Store }

func (brokenStore) ListJobs(context.Context, store.JobFilter) ([]job.Job, string, error) {
	return nil, "", errSecret
}
func (brokenStore) CountByStatus(context.Context, store.JobFilter) (map[job.Status]int, error) {
	return nil, errSecret
}
func (brokenStore) ListAudits(context.Context, int) ([]store.AuditRecord, error) {
	return nil, errSecret
}
func (brokenStore) GetAudit(context.Context, string) (store.AuditRecord, error) {
	return store.AuditRecord{}, errSecret
}
func (brokenStore) ListMigrationFailures(context.Context, int) ([]store.MigrationFailure, error) {
	return nil, errSecret
}

// brokenAdmin fails the flag's change and panics when asked for stats.
type brokenAdmin struct{}

func (brokenAdmin) SetWorkerSystem(context.Context, api.WorkerSystemChange, string) error {
	return errSecret
}
func (brokenAdmin) Stats(context.Context) any               { panic(secret) }
func (brokenAdmin) Cleanup(context.Context, bool, bool) any { return nil }
func (brokenAdmin) GracefulRestart() error                  { return nil }
func (brokenAdmin) History() metrics.HistoryView            { return metrics.HistoryView{} }
func (brokenAdmin) Replicas(context.Context, time.Duration) (api.ReplicasView, error) {
	return api.ReplicasView{}, errSecret
}

// syncBuffer is a log that handlers may write while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A 500 tells the client the request's id and nothing of its error, which
// goes to the log with that id: on the writer API, the admin API, and for a
// handler's panic.
func TestServerErrorsHideTheirCause(t *testing.T) {
	var logged syncBuffer
	h := api.New(api.Config{
		Store:      brokenStore{testenv.SQLite(t)},
		System:     system{},
		Log:        slog.New(slog.NewTextHandler(&logged, nil)),
		AdminToken: testAdminToken,
		Admin:      brokenAdmin{},
	})
	srv := httptest.NewServer(contract.Handler(t, h))
	t.Cleanup(srv.Close)
	for i, tc := range []struct{ method, path, body string }{
		{"GET", "/api/generation", ""},
		{"GET", "/api/projects/p1", ""},
		{"GET", "/api/admin/rollbacks", ""},
		{"GET", "/api/admin/rollbacks/r1", ""},
		{"GET", "/api/admin/rollbacks/r1/report", ""},
		{"GET", "/api/admin/migration-failed", ""},
		{"PUT", "/api/admin/worker-system", `{"enabled":false,"reason":"maintenance"}`},
		{"GET", "/api/admin/replicas", ""},
		{"GET", "/api/admin/stats", ""}, // panics
	} {
		id := "req-" + strings.Repeat("x", i) + "9"
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		req.Header.Set("X-Request-Id", id)
		if tc.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var body struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		json.Unmarshal(raw, &body)
		if res.StatusCode != 500 || body.Error.Code != "internal" || body.Error.Message != "internal error (request id "+id+")" ||
			res.Header.Get("X-Request-Id") != id {
			t.Errorf("%s %s: %d %s (X-Request-Id %q), want 500 internal naming request id %s",
				tc.method, tc.path, res.StatusCode, raw, res.Header.Get("X-Request-Id"), id)
		}
		if strings.Contains(string(raw), "secret-volume") || strings.Contains(string(raw), "svc_db") {
			t.Errorf("%s %s: the answer leaks the error: %s", tc.method, tc.path, raw)
		}
		found := false
		for _, line := range strings.Split(logged.String(), "\n") {
			found = found || (strings.Contains(line, "request_id="+id+" ") && strings.Contains(line, "secret-volume"))
		}
		if !found {
			t.Errorf("%s %s: no log line has both the error and request id %s:\n%s", tc.method, tc.path, id, logged.String())
		}
	}
}

// Every answer carries a request id: the client's when it sent a sane one,
// else a new one.
func TestEveryAnswerHasARequestID(t *testing.T) {
	srv := httptest.NewServer(contract.Handler(t, api.New(api.Config{})))
	t.Cleanup(srv.Close)
	ask := func(id string) string {
		req, _ := http.NewRequest("GET", srv.URL+"/api/nothing", nil)
		contract.OffSpec(req) // a route that does not exist
		if id != "" {
			req.Header.Set("X-Request-Id", id)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.Header.Get("X-Request-Id")
	}
	if got := ask("lb-1234"); got != "lb-1234" {
		t.Errorf("a sane id came back as %q", got)
	}
	if got := ask("has space"); got == "" || got == "has space" {
		t.Errorf("an insane id came back as %q, want a new one", got)
	}
	if a, b := ask(""), ask(""); a == "" || a == b {
		t.Errorf("ids %q and %q for two requests without one", a, b)
	}
}
