package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/api"
	"github.com/scriptgen/scriptgen/internal/durable"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/rollback"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/testenv"
	"github.com/scriptgen/scriptgen/internal/testenv/contract"
)

// TestRollbackOutlivesItsClient: an operator whose client goes away while the
// rollback waits for the replicas to see the flag (a closed terminal, a
// proxy's timeout) still gets the whole rollback. It used to stop at that
// wait with the client's context, after the flag was off and before the
// sweep, and record itself as failed.
func TestRollbackOutlivesItsClient(t *testing.T) {
	ctx := context.Background()
	st := testenv.SQLite(t)
	svc := rollback.New(st, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	svc.FlagRefresh = 600 * time.Millisecond
	srv := httptest.NewServer(contract.Handler(t, api.New(api.Config{Store: st, Rollback: svc, AdminToken: testAdminToken})))
	t.Cleanup(srv.Close)

	clientCtx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(clientCtx, "POST", srv.URL+"/api/admin/rollback", strings.NewReader(`{"reason":"redis down"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
		t.Fatalf("the rollback answered %d within 150 ms; the test needs it to outlast its client", res.StatusCode)
	}
	var recs []store.AuditRecord
	waitUntil(t, 10*time.Second, "the audit record of the rollback whose client left", func() bool {
		var err error
		if recs, err = st.ListAudits(ctx, 10); err != nil {
			t.Fatal(err)
		}
		return len(recs) == 1
	})
	if recs[0].Status != "completed" {
		t.Fatalf("rollback whose client left: %s (%v), want completed", recs[0].Status, recs[0].Actions)
	}
	w, err := st.GetWorkerSetting(ctx)
	if err != nil || w.Enabled {
		t.Fatalf("worker setting after the rollback: %+v, %v; want disabled", w, err)
	}
}

// adminPost posts body to path with the admin token; it answers the status
// and the body.
func adminPost(t *testing.T, base, path, body string) (int, string) {
	req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestRefusedRollforwardLeavesNoRecord: a roll-forward with no durable side
// is 409 rollforward_refused and leaves the history as it was, so the last
// rollback stays the latest record (it used to add a "failed" roll-forward
// that `scriptgen report` then showed instead).
func TestRefusedRollforwardLeavesNoRecord(t *testing.T) {
	ctx := context.Background()
	st := testenv.SQLite(t)
	svc := rollback.New(st, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	svc.FlagRefresh = 0
	srv := httptest.NewServer(api.New(api.Config{Store: st, Rollback: svc, AdminToken: testAdminToken}))
	t.Cleanup(srv.Close)
	post := func(path, body string) (int, string) { return adminPost(t, srv.URL, path, body) }
	if code, body := post("/api/admin/rollback", `{"reason":"redis down"}`); code != 200 {
		t.Fatalf("rollback: %d %s", code, body)
	}
	code, body := post("/api/admin/rollforward", `{"percent":10,"reason":"too early"}`)
	if code != http.StatusConflict || !strings.Contains(body, `"rollforward_refused"`) || strings.Contains(body, `"record"`) {
		t.Fatalf("roll-forward without Redis: %d %s, want 409 rollforward_refused without a record", code, body)
	}
	recs, err := st.ListAudits(ctx, 10)
	if err != nil || len(recs) != 1 || recs[0].Kind != "rollback" || recs[0].Status != "completed" {
		t.Fatalf("history after the refused roll-forward: %+v %v, want the rollback alone", recs, err)
	}
}

// TestRollforwardTooSoon: right after a rollback a roll-forward is 409
// rollforward_too_soon without a record; force needs a reason (400), and with
// one goes through.
func TestRollforwardTooSoon(t *testing.T) {
	ctx := context.Background()
	st := testenv.SQLite(t)
	opt, err := durable.RedisOpt(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	side := durable.NewSide(opt)
	t.Cleanup(func() { side.Close() })
	svc := rollback.New(st, side, slog.New(slog.NewTextHandler(io.Discard, nil)))
	svc.FlagRefresh, svc.CleanWindows, svc.CleanWindow = 0, 3, 5*time.Minute
	srv := httptest.NewServer(api.New(api.Config{Store: st, Rollback: svc, AdminToken: testAdminToken}))
	t.Cleanup(srv.Close)
	if code, body := adminPost(t, srv.URL, "/api/admin/rollback", `{"reason":"incident"}`); code != 200 {
		t.Fatalf("rollback: %d %s", code, body)
	}
	code, body := adminPost(t, srv.URL, "/api/admin/rollforward", `{"percent":10,"reason":"fixed"}`)
	if code != http.StatusConflict || !strings.Contains(body, `"rollforward_too_soon"`) || strings.Contains(body, `"record"`) {
		t.Fatalf("roll-forward right after the rollback: %d %s", code, body)
	}
	if code, body := adminPost(t, srv.URL, "/api/admin/rollforward", `{"percent":10,"force":true}`); code != 400 {
		t.Fatalf("forced roll-forward without a reason: %d %s", code, body)
	}
	if recs, _ := st.ListAudits(ctx, 10); len(recs) != 1 {
		t.Fatalf("refused roll-forwards left records: %+v", recs)
	}
	if code, body := adminPost(t, srv.URL, "/api/admin/rollforward", `{"percent":10,"force":true,"reason":"customer waits"}`); code != 200 || !strings.Contains(body, "Forced before the clean windows") {
		t.Fatalf("forced roll-forward: %d %s", code, body)
	}
}

// TestVerifyProjectIsHiddenAndRemoved: the reserved project of `scriptgen
// verify` stays out of job lists unless named, and DELETE
// /api/admin/verify-project removes all of it (jobs, events, episodes,
// documents) and nothing of any other project.
func TestVerifyProjectIsHiddenAndRemoved(t *testing.T) {
	ctx := context.Background()
	st := testenv.SQLite(t)
	srv := httptest.NewServer(api.New(api.Config{Store: st, AdminToken: testAdminToken}))
	t.Cleanup(srv.Close)
	mk := func(project string) string {
		j, _, err := st.CreateJob(ctx, store.NewJob{Kind: job.KindGeneration, ProjectID: project,
			Payload: json.RawMessage(`{"project_id":"` + project + `","episode_data":{"title":"t"}}`), Backend: job.BackendBackgroundTasks})
		if err != nil {
			t.Fatal(err)
		}
		return j.ID
	}
	writers, verifys := mk("p1"), mk(job.VerifyProject)
	get := func(path string) []string {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var body struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
		}
		json.NewDecoder(res.Body).Decode(&body)
		var ids []string
		for _, it := range body.Items {
			ids = append(ids, it.ID)
		}
		return ids
	}
	if ids := get("/api/generation"); len(ids) != 1 || ids[0] != writers {
		t.Fatalf("the list shows %v, want only the writer's job %s", ids, writers)
	}
	if ids := get("/api/generation?project_id=" + job.VerifyProject); len(ids) != 1 || ids[0] != verifys {
		t.Fatalf("the reserved project named: %v, want %s", ids, verifys)
	}
	testenv.Document(t, st, job.VerifyProject, "# bible\n\nsome text")
	req, _ := http.NewRequest("DELETE", srv.URL+"/api/admin/verify-project", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(b), `"jobs":2`) || !strings.Contains(string(b), `"documents":1`) {
		t.Fatalf("DELETE verify-project: %d %s, want 2 jobs (one the document's) and 1 document", res.StatusCode, b)
	}
	if _, err := st.GetJob(ctx, verifys); err == nil {
		t.Fatal("the reserved project's job is still there")
	}
	if evs, _ := st.ListEvents(ctx, verifys, 0, 10); len(evs) != 0 {
		t.Fatalf("its events are still there: %d", len(evs))
	}
	if _, err := st.GetJob(ctx, writers); err != nil {
		t.Fatalf("the writer's job went too: %v", err)
	}
}

// workersUp is a System whose durable workers up are n, as /health counts
// them.
type workersUp int

func (n workersUp) WorkerSystem(context.Context) api.WorkerSystem {
	return api.WorkerSystem{Type: "background_tasks", Redis: "up", WorkersUp: int(n)}
}
func (workersUp) BackgroundTasks(context.Context) api.BackgroundTasks {
	return api.BackgroundTasks{Max: 4}
}

// TestRollbackAnswersNextSteps: a completed rollback's answer lists what it
// leaves to the operator. While durable workers are up the first step is to
// stop them, with their number, in the words of verify's check; with none up
// the only step is to verify.
func TestRollbackAnswersNextSteps(t *testing.T) {
	for _, up := range []int{2, 0} {
		st := testenv.SQLite(t)
		svc := rollback.New(st, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
		svc.FlagRefresh = 0
		srv := httptest.NewServer(contract.Handler(t, api.New(api.Config{Store: st, Rollback: svc, System: workersUp(up), AdminToken: testAdminToken})))
		code, body := adminPost(t, srv.URL, "/api/admin/rollback", `{"reason":"workers crash-looping"}`)
		srv.Close()
		var answer struct {
			NextSteps []string `json:"next_steps"`
		}
		if err := json.Unmarshal([]byte(body), &answer); err != nil || code != 200 {
			t.Fatalf("rollback with %d workers up: %d %s (%v)", up, code, body, err)
		}
		want := []string{rollback.VerifyStep}
		if up > 0 {
			want = []string{"stop the durable workers: 2 still up (the rollback does not stop them, and scriptgen verify fails until they stop). " +
				rollback.StopWorkersHow, rollback.VerifyStep}
		}
		if !slices.Equal(answer.NextSteps, want) {
			t.Fatalf("next_steps with %d workers up:\n%q\nwant\n%q", up, answer.NextSteps, want)
		}
	}
}
