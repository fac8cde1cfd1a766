package durable_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/scriptgen/scriptgen/internal/access"
	"github.com/scriptgen/scriptgen/internal/durable"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/runner"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/testenv"
)

// concurrency runs each job for a while and records how many of each
// tenant's ran at once, and when each started.
type concurrency struct {
	run     time.Duration
	mu      sync.Mutex
	now     map[string]int
	most    map[string]int
	started map[string]time.Time
}

func newConcurrency(run time.Duration) *concurrency {
	return &concurrency{run: run, now: map[string]int{}, most: map[string]int{}, started: map[string]time.Time{}}
}

func (c *concurrency) Handle(ctx context.Context, j job.Job, _ runner.ReportFunc) (store.Completion, error) {
	tenant, _ := access.Split(j.ProjectID)
	c.mu.Lock()
	c.now[tenant]++
	c.most[tenant] = max(c.most[tenant], c.now[tenant])
	c.started[j.ID] = time.Now()
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.now[tenant]--
		c.mu.Unlock()
	}()
	select {
	case <-time.After(c.run):
	case <-ctx.Done():
		return store.Completion{}, ctx.Err()
	}
	return store.Completion{Result: json.RawMessage(`{}`)}, nil
}

func (c *concurrency) startOf(id string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.started[id]
	return at, ok
}

// durableBacklog runs tenant A's jobs of run each, then tenant B's one, on
// a worker of concurrency 4 whose tenant cap is capN, and returns how long
// B's job waited to start, the most of A's that ran at once, and what the
// store and asynq saw of A's tasks meanwhile.
type durableRun struct {
	bWait      time.Duration
	aMost      int
	handedBack int // A's tasks seen waiting in asynq's retry set
	retried    int // of those, with asynq's retry count above 0
	archived   int
}

func runDurableBacklog(t *testing.T, nA int, run time.Duration, capN int) durableRun {
	t.Helper()
	opt, err := asynq.ParseRedisURI(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st := testenv.SQLite(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := newConcurrency(run)
	exec := runner.NewExecutor(st, map[job.Kind]runner.Handler{job.KindGeneration: h},
		runner.ExecutorConfig{LeaseFor: 30 * time.Second}, log, nil)
	disp := durable.NewDispatcher(opt)
	defer disp.Stop(ctx)
	w := durable.NewWorker(st, exec, disp, durable.WorkerConfig{Redis: opt, ID: "w1", Concurrency: 4,
		ShutdownTimeout: time.Second, TenantMaxRunning: capN}, log)
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop(ctx)
	raw := asynq.NewInspector(opt)
	defer raw.Close()

	submit := func(project string) job.Job {
		payload := json.RawMessage(`{"title":"x"}`)
		j, _, err := st.CreateJob(ctx, store.NewJob{Kind: job.KindGeneration, ProjectID: project, Payload: payload,
			RequestHash: job.RequestHash(job.KindGeneration, project, payload), Backend: job.BackendDurable})
		if err != nil {
			t.Fatal(err)
		}
		if err := disp.Dispatch(ctx, j); err != nil {
			t.Fatal(err)
		}
		return j
	}
	var a []job.Job
	for range nA {
		a = append(a, submit("a/series"))
	}
	submitted := time.Now()
	b := submit("b/pilot")

	var r durableRun
	seen := map[string]bool{}
	deadline := time.Now().Add(time.Duration(nA)*run + 30*time.Second)
	var looked time.Time
	for {
		// A look at asynq's retry set now and then (it costs Redis a
		// decoding of every task listed).
		if time.Since(looked) > 100*time.Millisecond {
			looked = time.Now()
			tasks, err := raw.ListRetryTasks(durable.QueueGeneration, asynq.PageSize(100))
			if err != nil {
				t.Fatal(err)
			}
			for _, ti := range tasks {
				if !seen[ti.ID] {
					seen[ti.ID] = true
					r.handedBack++
				}
				if ti.Retried > 0 {
					r.retried++
				}
			}
		}
		if _, ok := h.startOf(b.ID); ok && r.bWait == 0 {
			at, _ := h.startOf(b.ID)
			r.bWait = at.Sub(submitted)
		}
		done, err := st.CountJobs(ctx, store.JobFilter{Status: job.StatusSucceeded})
		if err != nil {
			t.Fatal(err)
		}
		if done == nA+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d jobs done after %s", done, nA+1, time.Since(submitted).Round(time.Millisecond))
		}
		time.Sleep(20 * time.Millisecond)
	}
	archived, err := raw.ListArchivedTasks(durable.QueueGeneration)
	if err != nil {
		t.Fatal(err)
	}
	r.archived = len(archived)
	for _, j := range a {
		got, err := st.GetJob(ctx, j.ID)
		if err != nil || got.Status != job.StatusSucceeded || got.Attempt != 1 || got.DispatchEpoch != 1 {
			t.Fatalf("A's job after the run: %+v %v; want it succeeded on its first attempt, first dispatch", got, err)
		}
	}
	h.mu.Lock()
	r.aMost = h.most["a"]
	h.mu.Unlock()
	return r
}

// TestWorkerHandsBackATenantAtItsCap: with TENANT_MAX_RUNNING=2 a worker of
// four runs at most two of tenant A's jobs at once; A's other tasks go back
// to asynq (the retry set) without using up their retries, so none is
// archived and every job runs once, on its first dispatch; tenant B's job,
// queued behind all of A's, starts within a second.
func TestWorkerHandsBackATenantAtItsCap(t *testing.T) {
	r := runDurableBacklog(t, 12, 300*time.Millisecond, 2)
	t.Logf("B waited %s; A ran at most %d at once; %d of A's tasks handed back (%d with asynq retries counted), %d archived",
		r.bWait.Round(time.Millisecond), r.aMost, r.handedBack, r.retried, r.archived)
	if r.aMost != 2 {
		t.Errorf("A ran at most %d jobs at once, want its cap, 2", r.aMost)
	}
	if r.handedBack == 0 {
		t.Error("no task of A's was ever handed back to asynq")
	}
	if r.retried != 0 || r.archived != 0 {
		t.Errorf("handing back counted as a failure: %d tasks with retries counted, %d archived", r.retried, r.archived)
	}
	if r.bWait <= 0 || r.bWait > time.Second {
		t.Errorf("B's job started %s after its submission, want within 1 s", r.bWait)
	}
}

// TestDurableFairnessAtScale is issue 17's scenario on the durable side:
// FAIRNESS_DURABLE_JOBS (200 in CI; 1000 for bench/README.md, "Issue 17:
// fairness") jobs of tenant A of 200 ms each, a cap of 3 on a worker of 4,
// then B's one job; FAIRNESS_REPEATS repeats.
func TestDurableFairnessAtScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("FAIRNESS_DURABLE_JOBS"))
	if n <= 0 {
		n = 200
	}
	repeats, _ := strconv.Atoi(os.Getenv("FAIRNESS_REPEATS"))
	var waits []time.Duration
	for i := range max(repeats, 1) {
		r := runDurableBacklog(t, n, 200*time.Millisecond, 3)
		t.Logf("repeat %d: B waited %s; A ran at most %d at once; %d of A's tasks handed back, %d archived",
			i, r.bWait.Round(time.Millisecond), r.aMost, r.handedBack, r.archived)
		waits = append(waits, r.bWait)
	}
	slices.Sort(waits)
	t.Logf("B's start over %d repeats: min %s, max %s", len(waits), waits[0].Round(time.Millisecond),
		waits[len(waits)-1].Round(time.Millisecond))
	if worst := waits[len(waits)-1]; worst > 2*time.Second {
		t.Errorf("B's job started %s after its submission behind %d of A's; want within 2 s", worst, n)
	}
}
