package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/database"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/testenv"
)

// TestVerifyAndStatus runs docs/runbook.md's checklist and the status view against
// a real server, and checks that a miss makes verify exit non-zero.
func TestVerifyAndStatus(t *testing.T) {
	srv := startProc(t, "serve", serveEnv(t, "ADMIN_TOKEN="+adminToken, "GENERATOR_STEP_DELAY=5ms"), "serve")
	env := []string{"ADMIN_TOKEN=" + adminToken}
	out, err := runCLI(t, env, "verify", "--url", srv.URL)
	if err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	for _, line := range []string{"SSE stream delivers", "RAG document processing works", "10 consecutive jobs", "Average response time < 3 s", "RSS < 500 MB",
		"Check data removed (project scriptgen-verify)"} {
		if !strings.Contains(out, "✅ "+line) {
			t.Fatalf("verify did not pass %q:\n%s", line, out)
		}
	}
	for _, line := range []string{"✅ Replicas up", "applied the flag"} {
		if !strings.Contains(out, line) {
			t.Fatalf("verify did not list this replica (%q):\n%s", line, out)
		}
	}
	out, err = runCLI(t, env, "verify", "--url", srv.URL, "--json")
	var res struct {
		OK     bool `json:"ok"`
		Checks []struct {
			OK       bool   `json:"ok"`
			Measured string `json:"measured"`
		} `json:"checks"`
	}
	if err != nil || json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res) != nil || !res.OK || len(res.Checks) < 10 {
		t.Fatalf("verify --json (%v):\n%s", err, out)
	}
	// Nothing of the checks is left: not in the lists, not under the
	// reserved project's own name (verify-<timestamp> projects piled up).
	auth := []string{"Authorization", "Bearer " + adminToken}
	for _, path := range []string{"/api/generation?limit=200", "/api/generation?project_id=scriptgen-verify"} {
		code, body := request(t, "GET", srv.URL+path, nil, auth...)
		if items, _ := body["items"].([]any); code != 200 || len(items) != 0 {
			t.Fatalf("GET %s after verify: %d, %d jobs left", path, code, len(items))
		}
	}
	out, err = runCLI(t, env, "status", "--url", srv.URL)
	if err != nil || !strings.Contains(out, "Worker system:    enabled=false type=background_tasks") || !strings.Contains(out, "Active tasks:") {
		t.Fatalf("status (%v):\n%s", err, out)
	}
	verifyFailsAStaleReplica(t, srv, env)
	srv.kill()
	if out, err := runCLI(t, env, "verify", "--url", srv.URL); err == nil || !strings.Contains(out, "❌") {
		t.Fatalf("verify against a stopped server exited 0:\n%s", out)
	}
}

// verifyFailsAStaleReplica registers, in the server's own database, a replica
// that keeps beating on the flag revision before a flip (a process whose
// setting reads fail while its heartbeat works), flips the flag, and checks
// that verify fails that replica's line, names the revision it lacks, and
// passes the live server's.
func verifyFailsAStaleReplica(t *testing.T, srv *proc, env []string) {
	t.Helper()
	var dbURL string
	for _, e := range srv.env {
		if u, ok := strings.CutPrefix(e, "DATABASE_URL="); ok {
			dbURL = u
		}
	}
	st, err := database.OpenExisting(t.Context(), dbURL, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cur, err := st.GetWorkerSetting(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ghost := store.WorkerProcess{ID: "serve-ghost-1-abcdef", Role: "serve", Host: "ghost", PID: 1, Address: "10.9.9.9:8002", Version: "old", FlagRevision: cur.Revision}
	if err := st.RegisterWorker(t.Context(), ghost); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // beats as a live replica would, on the old revision
		defer close(done)
		for {
			st.HeartbeatReplica(context.Background(), ghost.ID, cur.Revision, nil)
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stop); <-done }()
	if code, body := request(t, "PUT", srv.URL+"/api/admin/worker-system", map[string]any{"enabled": false, "reason": "e2e stale replica"},
		"Authorization", "Bearer "+adminToken); code != 200 {
		t.Fatalf("flip: %d %v", code, body)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		_, v := request(t, "GET", srv.URL+"/api/admin/replicas?stale_after=1s", nil, "Authorization", "Bearer "+adminToken)
		stale, _ := v["stale"].(float64)
		return stale == 1
	}, "the ghost replica was never marked stale")
	out, err := runCLI(t, env, "verify", "--url", srv.URL, "--flag-stale-after", "1s")
	if err == nil || !strings.Contains(out, "❌ Replica serve-ghost-1-abcdef applied the flag") ||
		!strings.Contains(out, fmt.Sprintf("has not applied r%d within 1s", cur.Revision+1)) {
		t.Fatalf("verify with a replica behind the flag (%v):\n%s", err, out)
	}
	if strings.Count(out, "✅ Replica serve-") != 1 {
		t.Fatalf("verify did not pass the live replica:\n%s", out)
	}
}
