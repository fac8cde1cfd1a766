package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/bench/livescript/scriptkit"
	"github.com/scriptgen/scriptgen/internal/testenv"
	"github.com/scriptgen/scriptgen/internal/testenv/contract"
)

// The live-script tests (issue 18) run the real processes with the
// OpenAI-compatible generator against a fake model in this process
// (scriptkit.Fake, 2,000 word tokens an answer), interrupt a generation
// mid-text, and end with every job's episode being the model's whole answer
// exactly once, byte for byte, and a client that followed the job's event
// stream — dropping its connection every few events and reconnecting with
// Last-Event-ID, as the server ending it makes it do too — having pieced
// together exactly that text from the script events: no character lost or
// repeated. An interrupted job must have continued its checkpoint (resumed
// from it, not started over), and the model must have served at most 250
// tokens more than the answer's 2,000 for it.

const (
	liveTokens = 2000
	// liveExtra bounds the tokens a job interrupted once may cost beyond
	// its answer's.
	liveExtra = 250
)

func liveModel(t *testing.T) (*scriptkit.Fake, []string) {
	fake, url := startFakeModel(t, scriptkit.FakeConfig{Tokens: liveTokens, FirstToken: 50 * time.Millisecond, Every: 2 * time.Millisecond})
	return fake, []string{"GENERATOR=openai", "OPENAI_BASE_URL=" + url, "OPENAI_MODEL=fake-model", "OPENAI_API_KEY="}
}

// liveJob is a submitted generation and the client following its stream.
type liveJob struct {
	submitted
	Title  string
	chars  atomic.Int64 // of the script the client holds
	done   chan struct{}
	got    scriptkit.Followed
	err    error
	answer *scriptkit.Answer
}

// submitLive submits episode i of project and follows its stream from base.
func submitLive(t *testing.T, ctx context.Context, fake *scriptkit.Fake, base, project string, i int) *liveJob {
	t.Helper()
	j := &liveJob{submitted: submit(t, base, project, i), Title: fmt.Sprintf("에피소드 %d", i), done: make(chan struct{})}
	j.answer = fake.Answer(j.Title)
	f := &scriptkit.Follower{Base: base, JobID: j.ID, DropEvery: 25, Chars: &j.chars,
		Client: &http.Client{Transport: contract.New(t).Transport(&http.Transport{})}}
	go func() {
		defer close(j.done)
		j.got, j.err = f.Run(ctx)
	}()
	return j
}

// waitChars waits until the client of j holds n characters of its script.
func waitChars(t *testing.T, j *liveJob, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for j.chars.Load() < int64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("job %s: the client holds %d characters of its script after a minute, want %d", j.ID, j.chars.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// holder is the pid of the process whose lease j holds (its owner's id is
// role-host-pid-random), or 0.
func holder(t *testing.T, base string, j *liveJob) (pid int, owner string) {
	_, got := request(t, "GET", base+"/api/generation/"+j.ID, nil)
	owner, _ = got["worker"].(string)
	parts := strings.Split(owner, "-")
	if len(parts) >= 3 {
		fmt.Sscan(parts[len(parts)-2], &pid)
	}
	return pid, owner
}

// jobView is what GET /api/generation/{id}?include=script tells.
type jobView struct {
	Status      string `json:"status"`
	Backend     string `json:"backend"`
	Attempt     int    `json:"attempt"`
	Script      string `json:"script"`
	ScriptSoFar int    `json:"script_so_far"`
	Result      struct {
		EpisodeNumber int    `json:"episode_number"`
		ResumedFrom   int    `json:"resumed_from"`
		Restarted     bool   `json:"restarted"`
		Attempt       int    `json:"attempt"`
		Chars         int    `json:"script_chars"`
		Model         string `json:"model"`
	} `json:"result"`
}

func getJob(t *testing.T, base, id string) jobView {
	t.Helper()
	resp, err := contract.Client(t).Get(base + "/api/generation/" + id + "?include=script")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v jobView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET job %s: %d %v", id, resp.StatusCode, err)
	}
	return v
}

// checkLive waits for every job and its client, then checks that each
// episode is its model's whole answer once, that each client pieced that
// text together, and the tokens served. interrupted names the jobs that must
// have resumed a checkpoint. It returns the jobs' views.
func checkLive(t *testing.T, base string, fake *scriptkit.Fake, jobs []*liveJob, interrupted ...*liveJob) map[string]jobView {
	t.Helper()
	var subs []submitted
	for _, j := range jobs {
		subs = append(subs, j.submitted)
	}
	waitAllSucceeded(t, base, subs, 90*time.Second)
	checkExactlyOnce(t, base, subs)
	views := map[string]jobView{}
	for _, j := range jobs {
		select {
		case <-j.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("job %s succeeded but its client has not seen the final event (it holds %d characters)", j.ID, j.chars.Load())
		}
		want := j.answer.Text
		v := getJob(t, base, j.ID)
		views[j.ID] = v
		if v.Script != want || v.ScriptSoFar != j.answer.Chars() || v.Result.Restarted {
			t.Errorf("job %s: the script so far (%d characters, restarted %v) is not the model's answer (%d)%s",
				j.ID, v.ScriptSoFar, v.Result.Restarted, j.answer.Chars(), firstDiff(v.Script, want))
		}
		_, ep := request(t, "GET", fmt.Sprintf("%s/api/projects/%s/episodes/%d", base, j.Project, v.Result.EpisodeNumber), nil)
		if ep["script"] != want || ep["job_id"] != j.ID {
			got, _ := ep["script"].(string)
			t.Errorf("job %s: episode %d is not the model's answer%s", j.ID, v.Result.EpisodeNumber, firstDiff(got, want))
		}
		if j.err != nil || len(j.got.Problems) > 0 || !j.got.Final || j.got.Status != "succeeded" || j.got.Script != want {
			t.Errorf("job %s: the client's stream: err %v, problems %q, final %v (%s), script is the answer: %v%s",
				j.ID, j.err, j.got.Problems, j.got.Final, j.got.Status, j.got.Script == want, firstDiff(j.got.Script, want))
		}
		served := fake.ServedFor(j.Title)
		if served < liveTokens || served > liveTokens+liveExtra {
			t.Errorf("job %s: the model served %d tokens for an answer of %d (requests %+v), want at most %d more",
				j.ID, served, liveTokens, fake.RequestsFor(j.Title), liveExtra)
		}
		t.Logf("job %s: attempt %d on %s, resumed from %d characters; model requests %+v; client: %d events (%d script) over %d streams (%d ended by the server, %d dropped by the client, %d × 204)",
			j.ID, v.Result.Attempt, v.Backend, v.Result.ResumedFrom, fake.RequestsFor(j.Title), j.got.Events, j.got.ScriptEvents,
			j.got.Connections, j.got.ServerEnds, j.got.Drops, j.got.NoContent)
	}
	for _, j := range interrupted {
		v := views[j.ID]
		reqs := fake.RequestsFor(j.Title)
		resumed := false
		for _, r := range reqs {
			resumed = resumed || (r.From > 0 && r.Partial == v.Result.ResumedFrom)
		}
		// (A released job gets its attempt back: only a crash costs one.)
		if v.Result.ResumedFrom == 0 || !resumed {
			t.Errorf("job %s was interrupted but did not resume its checkpoint: attempt %d, resumed from %d; requests %+v",
				j.ID, v.Result.Attempt, v.Result.ResumedFrom, reqs)
		}
	}
	if n := fake.Mismatches(); n > 0 {
		t.Errorf("%d requests continued a text that is not the start of the model's answer", n)
	}
	return views
}

// firstDiff tells where got departs from want.
func firstDiff(got, want string) string {
	if got == want {
		return ""
	}
	g, w := []rune(got), []rune(want)
	i := 0
	for i < len(g) && i < len(w) && g[i] == w[i] {
		i++
	}
	from := max(i-30, 0)
	return fmt.Sprintf("; %d vs %d characters, first difference at %d: got %q, want %q",
		len(g), len(w), i, string(g[from:min(i+30, len(g))]), string(w[from:min(i+30, len(w))]))
}

// TestLiveScriptWorkerKill9 kills the durable worker writing a script with
// SIGKILL after its client holds a third of the text; the other worker
// takes the job once its lease expires and continues the checkpoint.
func TestLiveScriptWorkerKill9(t *testing.T) {
	fake, model := liveModel(t)
	c := newCluster(t, 2, append(model, "MAX_WORKERS=1")...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	j := submitLive(t, ctx, fake, c.serve.URL, "live-kill", 1)
	waitChars(t, j, j.answer.Chars()/3)
	pid, owner := holder(t, c.serve.URL, j)
	var victim *proc
	for _, w := range c.workers {
		if w.cmd.Process.Pid == pid {
			victim = w
		}
	}
	if victim == nil {
		t.Fatalf("no worker of the cluster holds the job (owner %q)", owner)
	}
	servedAtKill := fake.ServedFor(j.Title)
	victim.kill()
	t.Logf("killed %s (pid %d) with %d tokens served and %d characters at the client", victim.name, pid, servedAtKill, j.chars.Load())
	views := checkLive(t, c.serve.URL, fake, []*liveJob{j}, j)
	if v := views[j.ID]; v.Backend != "durable" || v.Result.Attempt != 2 {
		t.Errorf("the job finished on %s at attempt %d: want the other worker's attempt 2", v.Backend, v.Result.Attempt)
	}
}

// TestLiveScriptGracefulRestart restarts serve (background tasks) through
// the admin API while it writes a script: the old process drains for a
// short while and releases the job, the new one continues the checkpoint,
// and the client, whose stream the old process ends, reconnects to the new.
func TestLiveScriptGracefulRestart(t *testing.T) {
	fake, model := liveModel(t)
	srv := startProc(t, "serve", serveEnv(t, append(model, "ADMIN_TOKEN="+adminToken, "DRAIN_TIMEOUT=300ms")...), "serve")
	_, h := request(t, "GET", srv.URL+"/health", nil, "Authorization", "Bearer "+adminToken)
	oldPID := int(h["process"].(map[string]any)["pid"].(float64))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	j := submitLive(t, ctx, fake, srv.URL, "live-restart", 1)
	waitChars(t, j, j.answer.Chars()/4)
	code, body := request(t, "POST", srv.URL+"/api/admin/graceful-restart", nil, "Authorization", "Bearer "+adminToken)
	if code != http.StatusAccepted {
		t.Fatalf("graceful restart: %d %v", code, body)
	}
	t.Logf("restarting with %d tokens served and %d characters at the client", fake.ServedFor(j.Title), j.chars.Load())
	select {
	case <-srv.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the old process did not exit after handing over")
	}
	newPID := 0
	testenv.Eventually(t, 10*time.Second, func() bool {
		_, h := request(t, "GET", srv.URL+"/health", nil, "Authorization", "Bearer "+adminToken)
		if p, ok := h["process"].(map[string]any); ok {
			newPID = int(p["pid"].(float64))
		}
		return newPID != 0 && newPID != oldPID
	}, "no new process after the graceful restart")
	t.Cleanup(func() {
		if p, err := os.FindProcess(newPID); err == nil {
			p.Signal(syscall.SIGKILL)
		}
	})
	// The old process is gone: the continuation checkLive asks for ran in
	// the new one.
	checkLive(t, srv.URL, fake, []*liveJob{j}, j)
	if j.got.ServerEnds == 0 {
		t.Errorf("the old process never ended the client's stream: %+v", j.got)
	}
}

// TestLiveScriptRollback runs `scriptgen rollback` while a durable worker
// writes a script, then stops the worker as the runbook says: it releases
// the job, serve's sweep moves it to background tasks, and serve's pool
// continues the checkpoint.
func TestLiveScriptRollback(t *testing.T) {
	fake, model := liveModel(t)
	c := newCluster(t, 1, append(model, "AUTO_ROLLBACK=false", "DRAIN_TIMEOUT=300ms")...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	j := submitLive(t, ctx, fake, c.serve.URL, "live-rollback", 1)
	waitChars(t, j, j.answer.Chars()/4)
	if v := getJob(t, c.serve.URL, j.ID); v.Backend != "durable" || v.Status != "running" {
		t.Fatalf("the job is %s on %s, want running on durable", v.Status, v.Backend)
	}
	out, err := runCLI(t, []string{"DATABASE_URL=" + c.dbURL, "REDIS_URL=" + c.redis.URL(5)}, "rollback", "--reason", "e2e live script")
	if err != nil {
		t.Fatalf("rollback: %v\n%s", err, out)
	}
	if !strings.Contains(out, "1 durable jobs still running") {
		t.Logf("rollback:\n%s", out)
	}
	c.workers[0].stop(30 * time.Second)
	t.Logf("rolled back and stopped the worker with %d tokens served and %d characters at the client", fake.ServedFor(j.Title), j.chars.Load())
	views := checkLive(t, c.serve.URL, fake, []*liveJob{j}, j)
	if views[j.ID].Backend != "background_tasks" {
		t.Errorf("the job finished on %s, want background_tasks", views[j.ID].Backend)
	}
}

// TestLiveScriptFlushDB flushes the queue's Redis database while two durable
// workers (one job at a time each) write two scripts and a third job waits
// in the queue, then kills the worker of the first job. The running jobs do
// not notice the flush (asynq renews their leases regardless); the reconciler
// re-dispatches the waiting job, whose task is gone, and the first job once
// its lease expires, and a worker continues its checkpoint.
func TestLiveScriptFlushDB(t *testing.T) {
	fake, model := liveModel(t)
	extra := append(model, "MAX_WORKERS=1")
	c := newCluster(t, 2, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var jobs []*liveJob
	for i := range 3 {
		jobs = append(jobs, submitLive(t, ctx, fake, c.serve.URL, "live-flush", i+1))
	}
	waitRunning(t, c.serve.URL, 2)
	var first *liveJob
	testenv.Eventually(t, 60*time.Second, func() bool {
		for _, j := range jobs {
			if j.chars.Load() >= int64(j.answer.Chars()/4) {
				first = j
				return true
			}
		}
		return false
	}, "no job got a quarter of its text to its client")
	if err := c.redisClient().FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	pid, owner := holder(t, c.serve.URL, first)
	var victim *proc
	for _, w := range c.workers {
		if w.cmd.Process.Pid == pid {
			victim = w
		}
	}
	if victim == nil {
		t.Fatalf("no worker of the cluster holds job %s (owner %q)", first.ID, owner)
	}
	victim.kill()
	t.Logf("flushed Redis and killed %s with %d tokens of job %s served and %d characters at its client", victim.name, fake.ServedFor(first.Title), first.ID, first.chars.Load())
	c.addWorker(len(c.workers), append([]string{"DATABASE_URL=" + c.dbURL, "REDIS_URL=" + c.redis.URL(5), "ADMIN_TOKEN=" + adminToken}, extra...))
	checkLive(t, c.serve.URL, fake, jobs, first)
}
