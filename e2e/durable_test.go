package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/scriptgen/scriptgen/internal/testenv"
	"github.com/scriptgen/scriptgen/internal/testenv/contract"
)

const adminToken = "e2e-admin-token-0123456789"

// cluster is one serve process and its durable workers on a PostgreSQL schema
// and a redis-server of the test's own.
type cluster struct {
	t       *testing.T
	redis   *testenv.RedisServer
	dbURL   string
	serve   *proc
	workers []*proc
}

func newCluster(t *testing.T, workers int, extra ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, redis: testenv.StartRedis(t), dbURL: testenv.PostgresURL(t)}
	env := append([]string{"DATABASE_URL=" + c.dbURL, "REDIS_URL=" + c.redis.URL(5), "ADMIN_TOKEN=" + adminToken}, extra...)
	c.serve = startProc(t, "serve", serveEnv(t, env...), "serve")
	for i := range workers {
		c.addWorker(i, env)
	}
	c.waitWorkersUp(workers)
	return c
}

func (c *cluster) addWorker(i int, env []string) {
	wenv := append(serveEnv(c.t, env...), "LISTEN_ADDR=")
	c.workers = append(c.workers, startProc(c.t, fmt.Sprintf("worker-%d", i), wenv, "worker"))
}

func (c *cluster) health() map[string]any {
	// The worker system's details are the operators'.
	_, h := request(c.t, "GET", c.serve.URL+"/health", nil, "Authorization", "Bearer "+adminToken)
	ws, _ := h["worker_system"].(map[string]any)
	return ws
}

func (c *cluster) waitWorkersUp(n int) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if up, _ := c.health()["workers_up"].(float64); int(up) >= n {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("fewer than %d workers came up: %v", n, c.health())
}

func (c *cluster) setDurable(enabled bool) {
	c.t.Helper()
	code, body := request(c.t, "PUT", c.serve.URL+"/api/admin/worker-system",
		map[string]any{"enabled": enabled, "reason": "e2e"}, "Authorization", "Bearer "+adminToken)
	if code != 200 || body["enabled"] != enabled {
		c.t.Fatalf("switch to enabled=%v: %d %v", enabled, code, body)
	}
}

func (c *cluster) redisClient() *redis.Client {
	cl := redis.NewClient(&redis.Options{Addr: c.redis.Addr(), DB: 5})
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// backends counts the accepted jobs by the backend that ran them.
func backends(t *testing.T, base string, jobs []submitted) map[string]int {
	out := map[string]int{}
	for _, j := range jobs {
		_, got := request(t, "GET", base+"/api/generation/"+j.ID, nil)
		out[fmt.Sprint(got["backend"])]++
	}
	return out
}

// TestDurableSwitchingUnderLoad switches durable → background_tasks and back
// repeatedly while 500 jobs are submitted and processed.
func TestDurableSwitchingUnderLoad(t *testing.T) {
	c := newCluster(t, 2, "GENERATOR_STEP_DELAY=5ms")
	// Paced, deliberately: the switches must come while it runs.
	ld := startLoad(t, c.serve.URL, 8, 500, 5*time.Millisecond, func(i int) string { return fmt.Sprintf("switch-%d", i%7) })
	switches := 0
	stop := ld.done()
	for enabled := false; ; enabled = !enabled {
		select {
		case <-stop:
		case <-time.After(250 * time.Millisecond):
			c.setDurable(enabled)
			switches++
			continue
		}
		break
	}
	jobs := ld.wait()
	c.setDurable(true)
	waitAllSucceeded(t, c.serve.URL, jobs, 120*time.Second)
	checkExactlyOnce(t, c.serve.URL, jobs)
	by := backends(t, c.serve.URL, jobs)
	if switches < 4 || by["durable"] == 0 || by["background_tasks"] == 0 {
		t.Fatalf("%d switches, jobs by backend %v: the test must exercise both sides", switches, by)
	}
	t.Logf("%d switches; jobs by backend %v", switches, by)
}

// TestDurableWorkerKill9 kills a worker process mid-job.
func TestDurableWorkerKill9(t *testing.T) {
	c := newCluster(t, 2, "GENERATOR_STEP_DELAY=150ms")
	var jobs []submitted
	for i := range 30 {
		jobs = append(jobs, submit(t, c.serve.URL, "wkill", i))
	}
	victim := c.workers[0]
	waitWorkerRunning(t, c.serve.URL, victim.cmd.Process.Pid)
	victim.kill()
	waitAllSucceeded(t, c.serve.URL, jobs, 120*time.Second)
	checkExactlyOnce(t, c.serve.URL, jobs)
	if !strings.Contains(c.serve.log.String()+c.workers[1].log.String(), "Lease expired") {
		t.Fatal("no lease expired: the killed worker held no job")
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if h := c.health(); h["workers_crashed"] == float64(1) && h["workers_up"] == float64(1) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the registry does not show the crash: %v", c.health())
}

// TestDurableRedisDown stops Redis while jobs are submitted: every submission
// is still accepted, and everything completes once Redis is back.
func TestDurableRedisDown(t *testing.T) {
	c := newCluster(t, 2, "GENERATOR_STEP_DELAY=20ms")
	var jobs []submitted
	for i := range 10 {
		jobs = append(jobs, submit(t, c.serve.URL, "redisdown", i))
	}
	c.redis.Kill()
	for i := 10; i < 40; i++ {
		jobs = append(jobs, submit(t, c.serve.URL, "redisdown", i)) // submit requires 202
	}
	if h := c.health(); h["redis"] != "down" {
		t.Fatalf("health with Redis stopped: %v", h)
	}
	time.Sleep(time.Second) // deliberately: the outage lasts a while, so the workers meet it too
	c.redis.Start()
	waitAllSucceeded(t, c.serve.URL, jobs, 120*time.Second)
	checkExactlyOnce(t, c.serve.URL, jobs)
}

// TestDurableFlushDB flushes the queue's Redis database mid-run.
func TestDurableFlushDB(t *testing.T) {
	c := newCluster(t, 2, "GENERATOR_STEP_DELAY=100ms")
	var jobs []submitted
	for i := range 40 {
		jobs = append(jobs, submit(t, c.serve.URL, "flush", i))
	}
	waitRunning(t, c.serve.URL, 2)
	if err := c.redisClient().FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	for i := 40; i < 50; i++ {
		jobs = append(jobs, submit(t, c.serve.URL, "flush", i))
	}
	waitAllSucceeded(t, c.serve.URL, jobs, 120*time.Second)
	checkExactlyOnce(t, c.serve.URL, jobs)
}

// TestDurableGarbageIsDeadLettered puts foreign and garbage messages in the
// queues: they are archived with a logged reason and the worker goes on.
func TestDurableGarbageIsDeadLettered(t *testing.T) {
	c := newCluster(t, 1, "GENERATOR_STEP_DELAY=5ms")
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: c.redis.Addr(), DB: 5})
	defer client.Close()
	for _, task := range []*asynq.Task{
		asynq.NewTask("scriptgen:job", []byte("not json")),
		asynq.NewTask("scriptgen:job", []byte(`{"job_id":"","epoch":0}`)),
		asynq.NewTask("rq:job", []byte(`{"id":"x"}`)),
	} {
		for _, q := range []string{"generation", "rag_processing"} {
			if _, err := client.Enqueue(task, asynq.Queue(q)); err != nil {
				t.Fatal(err)
			}
		}
	}
	jobs := []submitted{submit(t, c.serve.URL, "garbage", 0), submit(t, c.serve.URL, "garbage", 1)}
	waitAllSucceeded(t, c.serve.URL, jobs, 60*time.Second)
	checkExactlyOnce(t, c.serve.URL, jobs)
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: c.redis.Addr(), DB: 5})
	defer insp.Close()
	deadline := time.Now().Add(20 * time.Second)
	archived := 0
	for time.Now().Before(deadline) {
		archived = 0
		for _, q := range []string{"generation", "rag_processing"} {
			if info, err := insp.GetQueueInfo(q); err == nil {
				archived += info.Archived
			}
		}
		if archived == 6 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if archived != 6 {
		t.Fatalf("%d of 6 garbage tasks archived", archived)
	}
	if n := strings.Count(c.workers[0].log.String(), "Dead-lettered task"); n != 6 {
		t.Fatalf("%d dead-letter reasons logged, want 6", n)
	}
}

// TestAdminTokenRequired: a wrong, missing or malformed token changes nothing.
func TestAdminTokenRequired(t *testing.T) {
	c := newCluster(t, 0)
	for _, auth := range []string{"", "Bearer wrong", "Basic " + adminToken, "Bearer", adminToken} {
		var headers []string
		if auth != "" {
			headers = []string{"Authorization", auth}
		}
		code, body := request(t, "PUT", c.serve.URL+"/api/admin/worker-system", map[string]any{"enabled": false}, headers...)
		if code != 401 && code != 403 {
			t.Fatalf("auth %q: %d %v, want 401 or 403", auth, code, body)
		}
	}
	if c.health()["enabled"] != true {
		t.Fatal("an unauthorised call changed the flag")
	}
	code, _ := request(t, "PUT", c.serve.URL+"/api/admin/worker-system", map[string]any{"enabled": false, "rollout_percent": 101}, contract.OffSpecHeader, "1",
		"Authorization", "Bearer "+adminToken)
	if code != 400 || c.health()["enabled"] != true {
		t.Fatalf("bad rollout: %d; flag %v", code, c.health())
	}

	// Text PostgreSQL cannot store (a NUL, broken UTF-8) is refused before
	// anything runs: the rollback used to fail after its first step.
	admin := []string{"Authorization", "Bearer " + adminToken}
	for _, reason := range []string{`x\u0000y`, `bell\u0007`, strings.Repeat("r", 1001)} {
		for _, call := range []struct{ method, path, body string }{
			{"PUT", "/api/admin/worker-system", `{"enabled":false,"reason":"` + reason + `"}`},
			{"POST", "/api/admin/rollback", `{"reason":"` + reason + `"}`},
			{"POST", "/api/admin/rollforward", `{"percent":10,"reason":"` + reason + `"}`},
		} {
			code, body := request(t, call.method, c.serve.URL+call.path, json.RawMessage(call.body), offSpec(admin)...)
			if code != 400 {
				t.Fatalf("%s %s with reason %.20q: %d %v, want 400", call.method, call.path, reason, code, body)
			}
		}
	}
	// Enabling without a percent after the rollout was 0 (as a rollback leaves
	// it) means every project; a percent given is kept (the setting keeps it
	// while disabled); enabled at 0 % is a contradiction, refused.
	for _, step := range []struct {
		body    string
		code    int
		percent float64
	}{
		{`{"enabled":false,"rollout_percent":0}`, 200, 0},
		{`{"enabled":true}`, 200, 100},
		{`{"enabled":true,"rollout_percent":25}`, 200, 25},
		{`{"enabled":false}`, 200, 25},
		{`{"enabled":true}`, 200, 25},
		{`{"enabled":true,"rollout_percent":0}`, 400, 25},
		{`{"enabled":true,"rollout_percent":100}`, 200, 100},
	} {
		code, res := request(t, "PUT", c.serve.URL+"/api/admin/worker-system", json.RawMessage(step.body), admin...)
		h := c.health()
		if setting, _ := h["setting"].(map[string]any); code != step.code || setting["rollout_percent"] != step.percent || h["reason"] != "" {
			t.Fatalf("PUT worker-system %s: %d %v; health %v, want %d and %v %%", step.body, code, res, h, step.code, step.percent)
		}
	}
	// A body whose meaning depends on which of two keys wins: encoding/json
	// took the last ("ENABLED" matched enabled) and switched the worker off.
	for _, body := range []string{`{"enabled":true,"ENABLED":false}`, `{"enabled":true,"enabled":false}`, `{"Enabled":false}`} {
		if code, res := request(t, "PUT", c.serve.URL+"/api/admin/worker-system", json.RawMessage(body), offSpec(admin)...); code != 400 {
			t.Fatalf("PUT worker-system %s: %d %v, want 400", body, code, res)
		}
	}
	// The runbook's memory cleanup: what it did, as a list even when nothing.
	for _, tc := range []struct {
		body    string
		actions int
	}{{`{"force_gc":true,"clear_caches":true}`, 2}, {`{"force_gc":true}`, 1}, {`{}`, 0}} {
		code, res := request(t, "POST", c.serve.URL+"/api/admin/cleanup", json.RawMessage(tc.body), admin...)
		actions, isList := res["actions"].([]any)
		if code != 200 || !isList || len(actions) != tc.actions || res["before"] == nil || res["after"] == nil {
			t.Fatalf("cleanup %s: %d %v, want %d actions", tc.body, code, res, tc.actions)
		}
	}
	if code, res := request(t, "POST", c.serve.URL+"/api/admin/cleanup", json.RawMessage(`{"force_gc":"yes"}`), offSpec(admin)...); code != 400 {
		t.Fatalf("cleanup with a string for a bool: %d %v, want 400", code, res)
	}
	for _, path := range []string{"/api/generation/a%00b", "/api/generation/a%FFb/events", "/api/generation?cursor=%00",
		"/api/admin/rollbacks/a%00b", "/api/projects/p1/documents/a%00b"} {
		if code, body := request(t, "GET", c.serve.URL+path, nil, offSpec(admin)...); code != 400 {
			t.Fatalf("GET %s: %d %v, want 400", path, code, body)
		}
	}
	if c.health()["enabled"] != true {
		t.Fatal("a refused call changed the flag")
	}
	if _, list := request(t, "GET", c.serve.URL+"/api/admin/rollbacks", nil, admin...); len(list["items"].([]any)) != 0 {
		t.Fatalf("refused calls left audit records: %v", list)
	}
}

// waitWorkerRunning waits until the worker process pid holds a running job.
func waitWorkerRunning(t *testing.T, base string, pid int) {
	t.Helper()
	marker := fmt.Sprintf("-%d-", pid)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		_, list := request(t, "GET", base+"/api/generation?status=running", nil)
		items, _ := list["items"].([]any)
		for _, it := range items {
			if w, _ := it.(map[string]any)["worker"].(string); strings.HasPrefix(w, "worker-") && strings.Contains(w, marker) {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("worker %d never ran a job", pid)
}
