package e2e

import (
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/testenv"
)

// replicaCluster is the deployment docs/design.md describes for more than
// one host: serve replicas behind HAProxy, durable workers, PostgreSQL, and
// a Redis that Sentinel fails over, reached through a redis-sentinel:// URL.
type replicaCluster struct {
	t        *testing.T
	dbURL    string
	redis    *testenv.SentinelGroup
	env      []string
	replicas []*proc
	workers  []*proc
	lb       *haproxy
}

func startReplicaCluster(t *testing.T, replicas, workers int) *replicaCluster {
	t.Helper()
	// Five processes share one PostgreSQL that other tests use too: eight
	// connections each rather than the default 32 (docs/runbook.md sizes
	// max_connections for a fleet).
	c := &replicaCluster{t: t, dbURL: testenv.PostgresURL(t), redis: testenv.StartSentinelGroup(t)}
	c.env = []string{"DATABASE_URL=" + c.dbURL + "&pool_max_conns=8", "REDIS_URL=" + c.redis.URL(5), "ADMIN_TOKEN=" + adminToken,
		"GENERATOR_STEP_DELAY=20ms", "LEASE_DURATION=2s", "DRAIN_TIMEOUT=3s", "MAX_WORKERS=4", "POLL_INTERVAL=100ms"}
	var servers [][2]string
	for i := range replicas {
		p := startProc(t, fmt.Sprintf("serve-%d", i+1), serveEnv(t, c.env...), "serve")
		c.replicas = append(c.replicas, p)
		servers = append(servers, [2]string{fmt.Sprintf("r%d", i+1), strings.TrimPrefix(p.URL, "http://")})
	}
	for i := range workers {
		c.workers = append(c.workers, startProc(t, fmt.Sprintf("worker-%d", i+1), append(serveEnv(t, c.env...), "LISTEN_ADDR="), "worker"))
	}
	c.lb = startHAProxy(t, servers)
	for i := range replicas {
		c.lb.waitServer(fmt.Sprintf("r%d", i+1), "UP", 30*time.Second)
	}
	testenv.Eventually(t, 30*time.Second, func() bool { return c.workersUp() >= workers }, "the workers never came up")
	return c
}

func (c *replicaCluster) admin(method, url string, body any) (int, map[string]any) {
	return request(c.t, method, url, body, "Authorization", "Bearer "+adminToken)
}

func (c *replicaCluster) workersUp() int {
	_, h := c.admin("GET", c.lb.URL+"/health", nil)
	ws, _ := h["worker_system"].(map[string]any)
	up, _ := ws["workers_up"].(float64)
	return int(up)
}

// pid is the pid of the process serving at base.
func (c *replicaCluster) pid(base string) int {
	_, h := c.admin("GET", base+"/health", nil)
	p, _ := h["process"].(map[string]any)
	pid, _ := p["pid"].(float64)
	return int(pid)
}

// leaderPID is the pid in the rollback controller's lease (its holder is
// controller-<host>-<pid>-<hex>).
func (c *replicaCluster) leaderPID() int {
	db, err := sql.Open("pgx", c.dbURL)
	if err != nil {
		c.t.Fatal(err)
	}
	defer db.Close()
	var holder string
	testenv.Eventually(c.t, 30*time.Second, func() bool {
		return db.QueryRow(`SELECT holder FROM leader_leases WHERE name = 'rollback-controller' AND expires_at > $1`,
			time.Now().UnixMicro()).Scan(&holder) == nil
	}, "no replica leads the rollback controller")
	parts := strings.Split(holder, "-")
	var pid int
	fmt.Sscan(parts[len(parts)-2], &pid)
	return pid
}

// replicasView is GET /api/admin/replicas through the balancer.
func (c *replicaCluster) replicasView() map[string]any {
	_, v := c.admin("GET", c.lb.URL+"/api/admin/replicas", nil)
	return v
}

// allApplied: n replicas up and each applied the current flag revision.
func (c *replicaCluster) allApplied(n int) bool {
	v := c.replicasView()
	rev, _ := v["flag_revision"].(float64)
	up := 0
	items, _ := v["replicas"].([]any)
	for _, it := range items {
		r := it.(map[string]any)
		if r["state"] == "up" {
			if r["flag_revision"].(float64) != rev {
				return false
			}
			up++
		}
	}
	return up == n
}

// waitDone waits until the given jobs succeeded.
func (c *replicaCluster) waitDone(ids []string, what string) {
	c.t.Helper()
	var jobs []submitted
	for _, id := range ids {
		jobs = append(jobs, submitted{ID: id})
	}
	waitAllSucceeded(c.t, c.lb.URL, jobs, 60*time.Second)
}

// firstDoneAfter waits until a durable job accepted after t0 has succeeded
// and returns how long after t0 that was seen.
func (c *replicaCluster) firstDoneAfter(load *replicaLoad, t0 time.Time) time.Duration {
	c.t.Helper()
	var took time.Duration
	testenv.Eventually(c.t, 60*time.Second, func() bool {
		for _, id := range load.acceptedAfter(t0, 20) {
			if _, j := request(c.t, "GET", c.lb.URL+"/api/generation/"+id, nil); j["status"] == "succeeded" && j["backend"] == "durable" {
				took = time.Since(t0)
				return true
			}
		}
		return false
	}, "no durable job accepted after %s succeeded", t0.Format(time.TimeOnly))
	return took
}

// TestReplicasBehindHAProxyWithSentinel is issue 20's end-to-end test: three
// serve replicas behind HAProxy, two workers, PostgreSQL, and Redis as a
// master, a replica and three sentinels, under a steady load of submissions
// with SSE followers. One replica is killed with SIGKILL, another restarted
// gracefully, a worker killed; Sentinel fails the master over on command and
// then after the new master is killed; the flag is flipped; a rollback and a
// roll-forward run on replicas that do not lead the controller. Every
// accepted job finishes exactly once, episodes are numbered without gaps,
// every follower sees every event of its job once, and the only 5xx (or
// broken connections) are the killed replica's requests in flight — at least
// one, held there on purpose, and any of the load's that a backend without
// retries of requests in flight left to the client — whose retries with the
// same Idempotency-Key succeed, each key mapping to exactly one job.
func TestReplicasBehindHAProxyWithSentinel(t *testing.T) {
	start := time.Now()
	c := startReplicaCluster(t, 3, 2)
	t.Logf("cluster up in %s", time.Since(start).Round(time.Millisecond))
	load := startReplicaLoad(t, c.lb.URL, 3, 300*time.Millisecond)
	load.waitMore(20, "load before the faults")

	// 1. kill -9 one replica while a submission is in flight on it (held
	// there, half its body sent, through a backend that does not send it
	// again): the client sees it fail and retries with the same key.
	// HAProxy takes the replica out, the load goes on; then it comes back.
	r1 := c.replicas[0]
	killedAt := load.submitHeldOnKill(c.lb, "r1", r1.kill)
	c.lb.waitServer("r1", "DOWN", 20*time.Second)
	load.waitMore(10, "load after the kill of r1")
	r1.restart()
	c.lb.waitServer("r1", "UP", 30*time.Second)
	t.Logf("r1 killed and back at %s", time.Since(start).Round(time.Millisecond))

	// 2. graceful restart of another: a new process takes over its socket.
	r2 := c.replicas[1]
	oldPID := c.pid(r2.URL)
	if code, body := c.admin("POST", r2.URL+"/api/admin/graceful-restart", nil); code != http.StatusAccepted {
		t.Fatalf("graceful restart of r2: %d %v", code, body)
	}
	select {
	case <-r2.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the old r2 did not exit after handing over")
	}
	var newPID int
	testenv.Eventually(t, 30*time.Second, func() bool { newPID = c.pid(r2.URL); return newPID != 0 && newPID != oldPID },
		"r2 has no new process")
	t.Cleanup(func() {
		if p, err := os.FindProcess(newPID); err == nil {
			p.Signal(syscall.SIGKILL)
		}
	})
	load.waitMore(10, "load after the graceful restart")

	// 3. kill -9 a worker; its jobs are run again by the other (their
	// leases expire) and it comes back.
	c.workers[0].kill()
	load.waitMore(10, "load after the kill of a worker")
	c.workers[0].restart()
	t.Logf("worker killed and back at %s", time.Since(start).Round(time.Millisecond))

	// 4. SENTINEL FAILOVER: jobs accepted after it complete on the new
	// master.
	failoverAt := time.Now()
	promoted := c.redis.Failover()
	first := c.firstDoneAfter(load, failoverAt)
	load.waitMore(5, "load after SENTINEL FAILOVER")
	c.waitDone(load.acceptedAfter(failoverAt, 10), "after SENTINEL FAILOVER")
	t.Logf("SENTINEL FAILOVER to %s: the first job accepted after it done %s later, the first ten %s later", promoted.Addr(),
		first.Round(time.Millisecond), time.Since(failoverAt).Round(time.Millisecond))

	// 5. kill -9 the master: Sentinel promotes the replica.
	c.redis.WaitReplicaSynced()
	masterKilledAt := time.Now()
	promoted.Kill()
	survivor := c.redis.WaitNewMaster(promoted.Addr())
	promotedIn := time.Since(masterKilledAt)
	first = c.firstDoneAfter(load, masterKilledAt)
	load.waitMore(5, "load after the kill of the master")
	c.waitDone(load.acceptedAfter(masterKilledAt, 10), "after the kill of the master")
	t.Logf("master killed, %s promoted in %s: the first job accepted after the kill done %s later, the first ten %s later", survivor.Addr(),
		promotedIn.Round(time.Millisecond), first.Round(time.Millisecond), time.Since(masterKilledAt).Round(time.Millisecond))

	// 6. flip the flag off and on; every replica applies each flip.
	for _, on := range []bool{false, true} {
		code, body := c.admin("PUT", c.lb.URL+"/api/admin/worker-system", map[string]any{"enabled": on, "reason": fmt.Sprintf("e2e flip %v", on)})
		if code != 200 {
			t.Fatalf("flip to %v: %d %v", on, code, body)
		}
		testenv.Eventually(t, 10*time.Second, func() bool { return c.allApplied(3) }, "the replicas did not all apply the flip to %v: %v", on, c.replicasView())
		load.waitMore(5, "load after a flip")
	}

	// 7. a rollback and a roll-forward, each on a replica that does not
	// lead the controller.
	leader := c.leaderPID()
	var others []*proc
	for _, r := range c.replicas {
		if c.pid(r.URL) != leader {
			others = append(others, r)
		}
	}
	if len(others) < 2 {
		t.Fatalf("leader pid %d: want two replicas besides it, have %d", leader, len(others))
	}
	if code, body := c.admin("POST", others[0].URL+"/api/admin/rollback", map[string]any{"reason": "e2e rollback on a follower"}); code != 200 {
		t.Fatalf("rollback on a replica that does not lead: %d %v", code, body)
	}
	load.waitMore(5, "load after the rollback")
	if code, body := c.admin("POST", others[1].URL+"/api/admin/rollforward", map[string]any{"percent": 100, "reason": "e2e roll-forward on a follower", "force": true}); code != 200 {
		t.Fatalf("roll-forward on a replica that does not lead: %d %v", code, body)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return c.allApplied(3) }, "the replicas did not all apply the roll-forward")
	load.waitMore(10, "load after the roll-forward")

	// The end: every accepted job exactly once, every follower complete.
	load.end()
	waitAllSucceeded(t, c.lb.URL, load.jobs, 90*time.Second)
	checkExactlyOnce(t, c.lb.URL, load.jobs)
	followed, resumed := load.checkFollowers()
	inFlight, other := load.inFlightAt([]time.Time{killedAt})
	if len(other) > 0 {
		t.Fatalf("%d failed calls besides the killed replica's in-flight ones, first %+v", len(other), other[0])
	}
	load.checkRetriedKeys()
	for _, f := range inFlight {
		t.Logf("in flight on the killed replica: %s answered %d %s, retried by its client", f.What, f.Code, f.Err)
	}
	_, audits := c.admin("GET", c.lb.URL+"/api/admin/rollbacks", nil)
	kinds := map[string]int{}
	for _, it := range audits["items"].([]any) {
		a := it.(map[string]any)
		kinds[fmt.Sprint(a["kind"], "/", a["status"])]++
	}
	if kinds["rollback/completed"] != 1 || kinds["rollforward/completed"] != 1 {
		t.Fatalf("audit records %v: want one completed rollback and one completed roll-forward", kinds)
	}
	// The replicas view: three up on the current flag, the killed r1 down
	// and the old r2 stopped.
	states := map[string]int{}
	for _, it := range c.replicasView()["replicas"].([]any) {
		states[it.(map[string]any)["state"].(string)]++
	}
	if states["up"] != 3 || states["down"] != 1 || states["stopped"] != 1 {
		t.Fatalf("replica states %v: want 3 up, the killed one down, the restarted one's old process stopped", states)
	}
	t.Logf("%d jobs accepted, all finished once; %d followers (%d resumed after a cut) saw every event once; "+
		"%d failed calls (5xx or no answer), all in flight on the killed replica, their client's retries with the same key accepted, one job a key (%d keys); "+
		"HAProxy itself sent %d requests again to another replica; %s in all",
		len(load.jobs), followed, resumed, len(inFlight), len(load.retried), c.lb.retried(), time.Since(start).Round(time.Millisecond))
}
