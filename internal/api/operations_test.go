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
