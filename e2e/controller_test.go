package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/testenv"
)

// audits reads the rollback history.
func (c *cluster) audits() []map[string]any {
	_, hist := request(c.t, "GET", c.serve.URL+"/api/admin/rollbacks", nil, "Authorization", "Bearer "+adminToken)
	items, _ := hist["items"].([]any)
	out := make([]map[string]any, len(items))
	for i, it := range items {
		out[i] = it.(map[string]any)
	}
	return out
}

// waitRollback waits for the first automatic rollback and checks its trigger
// and evidence.
func (c *cluster) waitRollback(trigger string, within time.Duration) map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if as := c.audits(); len(as) > 0 {
			a := as[0]
			ev, _ := a["evidence"].(map[string]any)
			if a["kind"] != "rollback" || a["trigger"] != trigger || a["status"] != "completed" || ev["fired"] != trigger || ev["triggers"] == nil {
				c.t.Fatalf("automatic rollback %v, want trigger %s with evidence", a, trigger)
			}
			return a
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("no automatic rollback for %s within %s", trigger, within)
	return nil
}

// trigger is the controller's last reading of one trigger, from the stats.
func (c *cluster) trigger(name string) map[string]any {
	_, stats := request(c.t, "GET", c.serve.URL+"/api/admin/stats", nil, "Authorization", "Bearer "+adminToken)
	ts, _ := stats["triggers"].([]any)
	for _, tr := range ts {
		if tr, _ := tr.(map[string]any); tr["name"] == name {
			return tr
		}
	}
	return nil
}

// requireOneRollback checks, a while later, that no second rollback happened.
func (c *cluster) requireOneRollback(wait time.Duration) {
	c.t.Helper()
	time.Sleep(wait) // deliberately: a second rollback would come within this window
	if as := c.audits(); len(as) != 1 {
		c.t.Fatalf("%d rollbacks, want exactly one per incident: %v", len(as), as)
	}
	if c.health()["enabled"] != false {
		c.t.Fatal("the controller rolled forward by itself")
	}
}

var fastTriggers = []string{"AUTO_ROLLBACK=true", "ROLLBACK_INTERVAL=200ms", "ROLLBACK_REDIS_DOWN_FOR=1s",
	"ROLLBACK_QUEUE_DELAY=1h", "ROLLBACK_MEMORY_PERCENT=100", "ROLLBACK_MAX_WORKER_CRASHES=1000"}

func TestAutoRollbackRedisUnreachable(t *testing.T) {
	c := newCluster(t, 1, append(fastTriggers, "GENERATOR_STEP_DELAY=50ms")...)
	var jobs []submitted
	for i := range 10 {
		jobs = append(jobs, submit(t, c.serve.URL, "auto-redis", i))
	}
	c.redis.Kill()
	for i := 10; i < 20; i++ {
		jobs = append(jobs, submit(t, c.serve.URL, "auto-redis", i))
	}
	c.waitRollback("redis_unreachable", 20*time.Second)
	waitAllSucceeded(t, c.serve.URL, jobs, 60*time.Second)
	// The condition clears and returns: still one rollback, no roll-forward.
	c.redis.Start()
	testenv.Eventually(t, 10*time.Second, func() bool { return c.trigger("redis_unreachable")["value"] == "up" },
		"the controller never saw Redis back")
	c.redis.Kill()
	c.requireOneRollback(3 * time.Second)
	checkExactlyOnce(t, c.serve.URL, jobs)
}

func TestAutoRollbackWorkerCrashes(t *testing.T) {
	c := newCluster(t, 4, "AUTO_ROLLBACK=true", "ROLLBACK_INTERVAL=200ms", "ROLLBACK_MAX_WORKER_CRASHES=3",
		"ROLLBACK_CRASH_WINDOW=1m", "ROLLBACK_QUEUE_DELAY=1h", "ROLLBACK_MEMORY_PERCENT=100", "GENERATOR_STEP_DELAY=50ms")
	var jobs []submitted
	for i := range 20 {
		jobs = append(jobs, submit(t, c.serve.URL, "auto-crash", i))
	}
	for _, w := range c.workers {
		w.kill()
	}
	for i := 20; i < 30; i++ {
		jobs = append(jobs, submit(t, c.serve.URL, "auto-crash", i))
	}
	// Silent for three heartbeats, then counted for the trigger's 10 s.
	a := c.waitRollback("worker_crashes", 60*time.Second)
	t.Logf("rollback: %v", a["reason"])
	waitAllSucceeded(t, c.serve.URL, jobs, 60*time.Second)
	c.requireOneRollback(2 * time.Second)
	checkExactlyOnce(t, c.serve.URL, jobs)
}

func TestAutoRollbackQueueStalled(t *testing.T) {
	c := newCluster(t, 0, "AUTO_ROLLBACK=true", "ROLLBACK_INTERVAL=200ms", "ROLLBACK_QUEUE_DELAY=1s", "ROLLBACK_QUEUE_DELAY_FOR=1s",
		"ROLLBACK_MEMORY_PERCENT=100", "GENERATOR_STEP_DELAY=20ms")
	var jobs []submitted
	for i := range 15 {
		jobs = append(jobs, submit(t, c.serve.URL, "auto-stall", i)) // durable, no worker: the queue stalls
	}
	c.waitRollback("queue_delay", 20*time.Second)
	waitAllSucceeded(t, c.serve.URL, jobs, 60*time.Second)
	// The stall returns (jobs routed to durable again would wait), but the flag
	// is off: the controller does not roll back twice nor forward.
	for i := 15; i < 20; i++ {
		jobs = append(jobs, submit(t, c.serve.URL, "auto-stall", i))
	}
	c.requireOneRollback(3 * time.Second)
	waitAllSucceeded(t, c.serve.URL, jobs, 60*time.Second)
	checkExactlyOnce(t, c.serve.URL, jobs)
}

func TestAutoRollbackMemory(t *testing.T) {
	c := newCluster(t, 1, "AUTO_ROLLBACK=true", "ROLLBACK_INTERVAL=200ms", "ROLLBACK_MEMORY_PERCENT=0.01", "ROLLBACK_MEMORY_FOR=1s",
		"ROLLBACK_QUEUE_DELAY=1h", "GENERATOR_STEP_DELAY=20ms")
	jobs := []submitted{submit(t, c.serve.URL, "auto-mem", 0)}
	a := c.waitRollback("system_memory", 20*time.Second)
	if fmt.Sprint(a["reason"]) == "" {
		t.Fatal("no reason recorded")
	}
	c.requireOneRollback(2 * time.Second)
	waitAllSucceeded(t, c.serve.URL, jobs, 60*time.Second)
	checkExactlyOnce(t, c.serve.URL, jobs)
}

// TestAutoRollbackWorkersMissing: the durable worker is on and its only
// worker stops (cleanly, so no crash is counted): /health says degraded with
// the reason at once, and after ROLLBACK_WORKERS_MISSING_FOR the controller
// rolls back; the jobs that waited for a worker run as background_tasks.
func TestAutoRollbackWorkersMissing(t *testing.T) {
	c := newCluster(t, 1, "AUTO_ROLLBACK=true", "ROLLBACK_INTERVAL=200ms", "ROLLBACK_WORKERS_MISSING_FOR=3s",
		"ROLLBACK_QUEUE_DELAY=1h", "ROLLBACK_MEMORY_PERCENT=100", "ROLLBACK_MAX_WORKER_CRASHES=1000", "GENERATOR_STEP_DELAY=20ms")
	var jobs []submitted
	for i := range 5 {
		jobs = append(jobs, submit(t, c.serve.URL, "auto-missing", i))
	}
	c.workers[0].stop(30 * time.Second)
	for i := 5; i < 15; i++ {
		jobs = append(jobs, submit(t, c.serve.URL, "auto-missing", i))
	}
	// Meanwhile, /health names the reason (it said ok while jobs waited).
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, h := request(t, "GET", c.serve.URL+"/health", nil)
		reasons, _ := h["reasons"].([]any)
		if h["status"] == "degraded" && fmt.Sprint(reasons) == "[no durable worker alive]" {
			break
		}
		if c.health()["enabled"] == false {
			t.Fatal("rolled back before /health said degraded")
		}
		if time.Now().After(deadline) {
			t.Fatalf("/health with no worker alive: %v", h)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.waitRollback("workers_missing", 30*time.Second)
	waitAllSucceeded(t, c.serve.URL, jobs, 60*time.Second)
	c.requireOneRollback(2 * time.Second)
	checkExactlyOnce(t, c.serve.URL, jobs)
}
