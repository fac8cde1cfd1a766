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
	for _, line := range []string{"SSE stream delivers", "RAG document processing works", "10 consecutive jobs", "Average response time < 3 s", "RSS < 500 MB",
		"Check data removed (project scriptgen-verify)"} {
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
	srv.kill()
	if out, err := runCLI(t, env, "verify", "--url", srv.URL); err == nil || !strings.Contains(out, "❌") {
		t.Fatalf("verify against a stopped server exited 0:\n%s", out)
	}
}
