package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/testenv"
)

// runCLI runs `scriptgen args…` to completion with env and returns its output.
func runCLI(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = childEnv(cmd.Environ(), env)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestRollbackUnderLoad runs `scriptgen rollback` while jobs are submitted and
// processed on the durable path by several workers: every accepted job
// succeeds exactly once, and new jobs run as background tasks right after.
func TestRollbackUnderLoad(t *testing.T) {
	c := newCluster(t, 3, "GENERATOR_STEP_DELAY=60ms", "AUTO_ROLLBACK=false")
	ld := startLoad(t, c.serve.URL, 4, 0, 10*time.Millisecond, func(i int) string { return fmt.Sprintf("rb-%d", i%4) })
	waitRunning(t, c.serve.URL, 4)
	ld.reach(50, 30*time.Second)
	env := []string{"DATABASE_URL=" + c.dbURL, "REDIS_URL=" + c.redis.URL(5)}
	out, err := runCLI(t, env, "rollback", "--reason", "e2e under load")
	t.Log(out)
	if err != nil {
		t.Fatalf("rollback: %v", err)
	}
	m := regexp.MustCompile(`Switched in ([0-9.]+m?s)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatal("rollback did not report the time to switch")
	}
	switched, _ := time.ParseDuration(m[1])
	if switched > time.Second {
		t.Errorf("switched in %s, want ≤ 1s", switched)
	}
	// New jobs run as background tasks right after: serve applies the flag
	// at its next read of the setting.
	testenv.Eventually(t, 10*time.Second, func() bool { return c.health()["type"] == "background_tasks" },
		"serve did not apply the rollback's flag")
	after := submit(t, c.serve.URL, "rb-after", 0)
	_, got := request(t, "GET", c.serve.URL+"/api/generation/"+after.ID, nil)
	if got["backend"] != "background_tasks" {
		t.Fatalf("a job submitted after the rollback went to %v", got["backend"])
	}
	// The load goes on after the rollback, onto background tasks.
	ld.reach(ld.accepted()+20, 30*time.Second)
	jobs := append(ld.end(), after)
	waitAllSucceeded(t, c.serve.URL, jobs, 120*time.Second)
	checkExactlyOnce(t, c.serve.URL, jobs)
	by := backends(t, c.serve.URL, jobs)
	if by["durable"] == 0 || by["background_tasks"] == 0 {
		t.Fatalf("jobs by backend %v: the test must have run both", by)
	}

	// The report is the runbook's template, filled in.
	report, err := runCLI(t, env, "report")
	if err != nil || !strings.Contains(report, "rollback_report:") || !strings.Contains(report, "e2e under load") ||
		!strings.Contains(report, "Feature flag disabled") || !strings.Contains(report, "current_status: STABLE") {
		t.Fatalf("report (%v):\n%s", err, report)
	}
	// Running it twice is harmless.
	if out, err := runCLI(t, env, "rollback", "--reason", "again"); err != nil || !strings.Contains(out, "0 jobs migrated") {
		t.Fatalf("second rollback (%v):\n%s", err, out)
	}
	t.Logf("switched in %s; jobs by backend %v", switched, by)
}

// TestRollbackAPIAndMigrateBothWays drives the admin API: migrate pending jobs
// to background_tasks and back, roll forward, and read the history.
func TestRollbackAPIAndMigrateBothWays(t *testing.T) {
	c := newCluster(t, 0, "GENERATOR_STEP_DELAY=20ms", "AUTO_ROLLBACK=false", "MAX_WORKERS=1")
	auth := []string{"Authorization", "Bearer " + adminToken}
	var jobs []submitted
	for i := range 20 {
		jobs = append(jobs, submit(t, c.serve.URL, "api", i)) // durable, no worker: they wait
	}
	code, res := request(t, "POST", c.serve.URL+"/api/admin/migrate-pending-jobs", map[string]any{"source": "rq_queue", "target": "background_tasks"}, auth...)
	if code != 200 || res["migrated"] != float64(20) {
		t.Fatalf("migrate: %d %v", code, res)
	}
	if code, res := request(t, "POST", c.serve.URL+"/api/admin/migrate-pending-jobs", map[string]any{"source": "durable", "target": "durable"}, auth...); code != 400 {
		t.Fatalf("same source and target: %d %v", code, res)
	}
	waitAllSucceeded(t, c.serve.URL, jobs, 60*time.Second)

	// Reverse: pile up background jobs behind a stopped pool is not possible
	// here, so stop Redis and check that what cannot move is dead-lettered.
	c.setDurable(false)
	var more []submitted
	for i := 20; i < 26; i++ {
		more = append(more, submit(t, c.serve.URL, "api", i))
	}
	c.redis.Kill()
	code, res = request(t, "POST", c.serve.URL+"/api/admin/migrate-pending-jobs", map[string]any{"source": "background_tasks", "target": "durable"}, auth...)
	if code != 200 {
		t.Fatalf("reverse migrate: %d %v", code, res)
	}
	failed, _ := res["failed"].([]any)
	_, list := request(t, "GET", c.serve.URL+"/api/admin/migration-failed", nil, auth...)
	items, _ := list["items"].([]any)
	if len(failed) != len(items) {
		t.Fatalf("migrate reported %d failures, the list has %d", len(failed), len(items))
	}
	if len(items) > 0 {
		first := items[0].(map[string]any)
		if !strings.Contains(fmt.Sprint(first["reason"]), "Redis") {
			t.Fatalf("dead-letter reason %v", first["reason"])
		}
		c.redis.Start()
		code, body := request(t, "POST", c.serve.URL+"/api/admin/migration-failed/"+first["job_id"].(string)+"/retry", nil, auth...)
		if code != 200 && code != 404 {
			t.Fatalf("retry: %d %v", code, body)
		}
	} else {
		c.redis.Start()
	}
	waitAllSucceeded(t, c.serve.URL, append(jobs, more...), 60*time.Second)
	checkExactlyOnce(t, c.serve.URL, append(jobs, more...))

	code, rf := request(t, "POST", c.serve.URL+"/api/admin/rollforward", map[string]any{"percent": 25, "reason": "step up"}, auth...)
	if code != 200 {
		t.Fatalf("rollforward: %d %v", code, rf)
	}
	if h := c.health(); h["enabled"] != true || h["rollout_percent"] != float64(25) {
		t.Fatalf("after rollforward: %v", h)
	}
	code, rb := request(t, "POST", c.serve.URL+"/api/admin/rollback", map[string]any{"reason": "api"}, auth...)
	if code != 200 || c.health()["type"] != "background_tasks" {
		t.Fatalf("rollback: %d %v; health %v", code, rb, c.health())
	}
	_, hist := request(t, "GET", c.serve.URL+"/api/admin/rollbacks", nil, auth...)
	recs, _ := hist["items"].([]any)
	if len(recs) != 2 || recs[0].(map[string]any)["kind"] != "rollback" || recs[1].(map[string]any)["kind"] != "rollforward" {
		b, _ := json.Marshal(hist)
		t.Fatalf("history: %s", b)
	}

	// An operator enables the durable worker while a rollback runs (after its
	// flag off, during its one-second wait for lagging replicas): the
	// rollback answers 409, not 500, records itself as failed, and the later
	// enable stands.
	c.setDurable(true)
	type answer struct {
		code int
		body map[string]any
	}
	raced := make(chan answer, 1)
	go func() {
		code, body := request(t, "POST", c.serve.URL+"/api/admin/rollback", map[string]any{"reason": "raced"}, auth...)
		raced <- answer{code, body}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for c.health()["enabled"] != false && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	c.setDurable(true)
	got := <-raced
	errObj, _ := got.body["error"].(map[string]any)
	rec, _ := got.body["record"].(map[string]any)
	if got.code != 409 || errObj["code"] != "rollback_superseded" || rec["status"] != "failed" {
		t.Fatalf("rollback overridden while it ran: %d %v", got.code, got.body)
	}
	if h := c.health(); h["enabled"] != true {
		t.Fatalf("after the overridden rollback: %v", h)
	}
}

// TestRollbackTellsTheOperatorToStopTheWorkers: a rollback leaves the durable
// workers running, and `scriptgen verify` then fails its check "Durable
// workers stopped (rollback mode)". The rollback's answer — the API's
// next_steps and the CLI's output — says to stop them, with how many are up,
// in the words verify's failure uses; once they are stopped, neither asks it
// and verify's check passes.
func TestRollbackTellsTheOperatorToStopTheWorkers(t *testing.T) {
	c := newCluster(t, 2, "AUTO_ROLLBACK=false", "GENERATOR_STEP_DELAY=5ms")
	c.setDurable(true)
	const advice = "stop the durable workers: 2 still up"
	const how = "systemctl stop 'scriptgen-worker@*'"
	code, rb := request(t, "POST", c.serve.URL+"/api/admin/rollback", map[string]any{"reason": "e2e advice"}, "Authorization", "Bearer "+adminToken)
	steps, _ := rb["next_steps"].([]any)
	if code != 200 || len(steps) != 2 || !strings.HasPrefix(fmt.Sprint(steps[0]), advice) ||
		!strings.Contains(fmt.Sprint(steps[0]), how) || !strings.Contains(fmt.Sprint(steps[0]), "docs/runbook.md step 4") ||
		!strings.Contains(fmt.Sprint(steps[1]), "scriptgen verify") {
		t.Fatalf("API rollback with 2 workers up: %d, next_steps %q", code, steps)
	}
	env := []string{"DATABASE_URL=" + c.dbURL, "REDIS_URL=" + c.redis.URL(5), "ADMIN_TOKEN=" + adminToken}
	out, err := runCLI(t, env, "rollback", "--reason", "e2e advice, cli")
	if err != nil || !strings.Contains(out, "Next: "+advice) || !strings.Contains(out, how) {
		t.Fatalf("CLI rollback with 2 workers up (%v):\n%s", err, out)
	}
	out, err = runCLI(t, env, "verify", "--url", c.serve.URL)
	if err == nil || !strings.Contains(out, "❌ Durable workers stopped (rollback mode)") ||
		!strings.Contains(out, advice) || !strings.Contains(out, how) {
		t.Fatalf("verify with 2 workers up after a rollback (%v):\n%s", err, out)
	}

	for _, w := range c.workers {
		w.stop(30 * time.Second)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { up, _ := c.health()["workers_up"].(float64); return up == 0 },
		"the stopped workers still count as up")
	code, rb = request(t, "POST", c.serve.URL+"/api/admin/rollback", map[string]any{"reason": "e2e advice, stopped"}, "Authorization", "Bearer "+adminToken)
	if steps, _ := rb["next_steps"].([]any); code != 200 || len(steps) != 1 || strings.Contains(fmt.Sprint(steps), "stop the durable workers") {
		t.Fatalf("API rollback with the workers stopped: %d, next_steps %q", code, steps)
	}
	out, err = runCLI(t, env, "rollback", "--reason", "e2e advice, stopped, cli")
	if err != nil || strings.Contains(out, "stop the durable workers") || !strings.Contains(out, "Next: check the service: scriptgen verify") {
		t.Fatalf("CLI rollback with the workers stopped (%v):\n%s", err, out)
	}
	out, _ = runCLI(t, env, "verify", "--url", c.serve.URL)
	if !strings.Contains(out, "✅ Durable workers stopped (rollback mode)") {
		t.Fatalf("verify with the workers stopped:\n%s", out)
	}
}
