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
	mux := http.NewServeMux()
	api.OperationRoutes(api.Operations{Rollback: svc, Store: st})(mux, func(h http.HandlerFunc) http.HandlerFunc { return h })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	clientCtx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(clientCtx, "POST", srv.URL+"/api/admin/rollback", strings.NewReader(`{"reason":"redis down"}`))
	req.Header.Set("Content-Type", "application/json")
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
		t.Fatalf("the rollback answered %d within 150 ms; the test needs it to outlast its client", res.StatusCode)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		recs, err := st.ListAudits(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 1 {
			if recs[0].Status != "completed" {
				t.Fatalf("rollback whose client left: %s (%v), want completed", recs[0].Status, recs[0].Actions)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit record 10 s after the client left (%d records)", len(recs))
		}
	}
	w, err := st.GetWorkerSetting(ctx)
	if err != nil || w.Enabled {
		t.Fatalf("worker setting after the rollback: %+v, %v; want disabled", w, err)
	}
}
