package cli

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestJobsAgainstAServe: `scriptgen jobs` lists a real service's jobs by
// status, refuses to retry one that did not fail (the service's 409), and
// cancels a project's queued jobs.
func TestJobsAgainstAServe(t *testing.T) {
	cleanEnv(t)
	const token = "the-right-admin-token-1234"
	base := startServe(t, token)
	// The serve runs them at once; the cancel catches those still queued
	// or running, and the lists show each of p9's jobs as it ended.
	for range 3 {
		req, _ := http.NewRequest("POST", base+"/api/generation", strings.NewReader(`{"project_id":"p9","episode_data":{"title":"t"}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 202 {
			t.Fatalf("submit: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	code, out, errs := run("jobs", "--url", base, "--admin-token", token, "--cancel-project", "p9")
	if code != 0 || !strings.Contains(out, "jobs of p9 cancelled") {
		t.Fatalf("jobs --cancel-project exited %d: %s%s", code, out, errs)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out, errs = run("jobs", "--url", base, "--admin-token", token, "--status", "succeeded")
		if code != 0 {
			t.Fatalf("jobs --status succeeded exited %d: %s%s", code, out, errs)
		}
		code2, out2, _ := run("jobs", "--url", base, "--admin-token", token, "--status", "cancelled")
		if code2 == 0 && (strings.Contains(out, "p9") || strings.Contains(out2, "p9")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no job of p9 listed:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, out, errs = run("jobs", "--url", base, "--admin-token", token, "--retry", "no-such-job")
	if code != 1 || !strings.Contains(errs, "HTTP 404") {
		t.Fatalf("jobs --retry of no job exited %d: %s%s", code, out, errs)
	}
	if code, _, errs := run("jobs", "--url", base, "--retry", "x", "--cancel-project", "p"); code != 2 || !strings.Contains(errs, "exclude each other") {
		t.Fatalf("--retry with --cancel-project exited %d: %s", code, errs)
	}
}
