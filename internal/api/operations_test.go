package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/api"
	"github.com/scriptgen/scriptgen/internal/rollback"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/testenv"
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
	srv := httptest.NewServer(api.New(api.Config{Store: st, Rollback: svc, AdminToken: testAdminToken}))
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
	post := func(path, body string) (int, string) {
		req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
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
