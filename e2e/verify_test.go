package e2e

import (
	"encoding/json"
	"strings"
	"testing"
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
	for _, line := range []string{"SSE stream delivers", "RAG document processing works", "10 consecutive jobs", "Average response time < 3 s", "RSS < 500 MB"} {
		if !strings.Contains(out, "✅ "+line) {
			t.Fatalf("verify did not pass %q:\n%s", line, out)
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
	out, err = runCLI(t, env, "status", "--url", srv.URL)
	if err != nil || !strings.Contains(out, "Worker system:    enabled=false type=background_tasks") || !strings.Contains(out, "Active tasks:") {
		t.Fatalf("status (%v):\n%s", err, out)
	}
	srv.kill()
	if out, err := runCLI(t, env, "verify", "--url", srv.URL); err == nil || !strings.Contains(out, "❌") {
		t.Fatalf("verify against a stopped server exited 0:\n%s", out)
	}
}
