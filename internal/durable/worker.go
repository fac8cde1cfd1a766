package durable

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/trace"

	"github.com/scriptgen/scriptgen/internal/access"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/runner"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/tracing"
)

// Store is what the worker needs of the database.
type Store interface {
	ClaimDispatch(ctx context.Context, d job.Dispatch, owner string, leaseFor time.Duration, opts ...store.ClaimOptions) (job.Job, error)
	GetJob(ctx context.Context, id string) (job.Job, error)
}

// WorkerConfig sizes a worker process.
type WorkerConfig struct {
	Redis           asynq.RedisConnOpt
	ID              string
	Concurrency     int
	ShutdownTimeout time.Duration
	// TenantMaxRunning, above 0, caps the durable jobs of one tenant running
	// at once over every worker (TENANT_MAX_RUNNING): a task whose tenant is
	// at its cap goes back to asynq (tenantBusy) instead of holding a worker,
	// so that the queue behind it moves on, and comes back when one of the
	// tenant's runs ends here (pull) or after a delay. 0: no cap. The open
	// server's projects (no tenant) are not capped.
	TenantMaxRunning int
}

// A task refused for its tenant's cap goes to asynq's retry set. asynq
// schedules retries in whole seconds, so a delay alone would leave a worker
// that a tenant's run freed idle until the next second a task of it comes due
// (a third of the throughput with runs of 200 ms). So the worker remembers
// the tasks it handed back, by tenant, and when one of a tenant's runs ends
// it moves the oldest of that tenant's back to its queue at once (pull). The
// delay — a quarter of how long the job has waited, from busyMin to busyMax,
// jittered — is for the tasks no worker pulls: a long backlog of a tenant at
// its cap then costs each worker about backlog/busyMax refused claims a
// second. asynq moves a task whose delay has passed back to its queue every
// delayedCheck.
const (
	busyMin      = 250 * time.Millisecond
	busyMax      = 10 * time.Second
	delayedCheck = 250 * time.Millisecond
	// rememberMax bounds the handed-back tasks remembered per tenant.
	rememberMax = 1000
)

// tenantBusy is a task handed back to asynq because its job's tenant runs
// its cap of jobs. It is no failure: asynq does not count it against the
// task's retries (IsFailure), and the job's attempts are untouched.
type tenantBusy struct {
	delay time.Duration
}

func (e *tenantBusy) Error() string {
	return fmt.Sprintf("tenant at its cap of running jobs; again in %s", e.delay.Round(time.Millisecond))
}

func (e *tenantBusy) Unwrap() error { return store.ErrTenantAtCap }

// busyDelay is when a job refused for its tenant's cap, which has waited
// since queuedAt, is tried again unless pulled sooner.
func busyDelay(queuedAt, now time.Time) time.Duration {
	d := min(max(now.Sub(queuedAt)/4, busyMin), busyMax)
	return time.Duration(float64(d) * (0.5 + rand.Float64()))
}

// notDue is a task handed back to asynq because its job waits for its retry
// backoff: asynq moved it to its queue early (its times are whole seconds),
// or it was enqueued without its schedule. Like tenantBusy it is no failure.
type notDue struct {
	delay time.Duration
}

func (e *notDue) Error() string {
	return fmt.Sprintf("job waits for its retry backoff; again in %s", e.delay.Round(time.Millisecond))
}

func (e *notDue) Unwrap() error { return store.ErrNotDue }

// handedBackErr reports whether err hands a task back to asynq rather than
// failing it.
func handedBackErr(err error) bool {
	return errors.Is(err, store.ErrTenantAtCap) || errors.Is(err, store.ErrNotDue)
}

// retryDelay is asynq's delay before a task that failed the n-th time runs
// again.
func retryDelay(n int, err error, _ *asynq.Task) time.Duration {
	var busy *tenantBusy
	if errors.As(err, &busy) {
		return busy.delay
	}
	var wait *notDue
	if errors.As(err, &wait) {
		return wait.delay
	}
	// A failed task is retried soon: a failure here is a database hiccup,
	// not the job's own failure, which the executor records in the row.
	return time.Duration(min(n, 10)) * time.Second
}

// handedBack remembers, per tenant, the tasks this worker handed back for the
// tenant's cap, oldest job first (job ids sort by time).
type handedBack struct {
	mu    sync.Mutex
	tasks map[string][]backTask
}

type backTask struct{ jobID, queue, taskID string }

func (h *handedBack) add(tenant string, t backTask) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ts := h.tasks[tenant]
	i, found := slices.BinarySearchFunc(ts, t.jobID, func(b backTask, id string) int { return strings.Compare(b.jobID, id) })
	if found {
		ts[i] = t // a newer epoch's task of the same job
		return
	}
	if len(ts) >= rememberMax && i == len(ts) {
		return // its delay brings it back
	}
	ts = slices.Insert(ts, i, t)
	if len(ts) > rememberMax {
		ts = ts[:rememberMax]
	}
	h.tasks[tenant] = ts
}

// forget drops a job's task, claimed or stale.
func (h *handedBack) forget(tenant, jobID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ts := h.tasks[tenant]
	if i, found := slices.BinarySearchFunc(ts, jobID, func(b backTask, id string) int { return strings.Compare(b.jobID, id) }); found {
		ts = slices.Delete(ts, i, i+1)
	}
	if len(ts) == 0 {
		delete(h.tasks, tenant)
	} else {
		h.tasks[tenant] = ts
	}
}

// oldest takes the oldest remembered task of tenant.
func (h *handedBack) oldest(tenant string) (backTask, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ts := h.tasks[tenant]
	if len(ts) == 0 {
		return backTask{}, false
	}
	t := ts[0]
	if len(ts) == 1 {
		delete(h.tasks, tenant)
	} else {
		h.tasks[tenant] = ts[1:]
	}
	return t, true
}

// Worker is the asynq server of `scriptgen worker`: it turns each task into a
// fenced claim of its row and runs the job through the executor.
type Worker struct {
	store Store
	exec  *runner.Executor
	disp  *Dispatcher
	cfg   WorkerConfig
	log   *slog.Logger
	srv   *asynq.Server
	// running counts the handlers under way: asynq's Shutdown returns once
	// it has put back the tasks of its drain timeout, before their handlers
	// have released their jobs.
	running sync.WaitGroup
	// back and insp, under a tenant cap: the tasks handed back, and what
	// moves them back to their queue.
	back handedBack
	insp *asynq.Inspector
}

// NewWorker builds a worker; Start runs it.
func NewWorker(st Store, exec *runner.Executor, disp *Dispatcher, cfg WorkerConfig, log *slog.Logger) *Worker {
	w := &Worker{store: st, exec: exec, disp: disp, cfg: cfg, log: log.With("backend", job.BackendDurable),
		back: handedBack{tasks: map[string][]backTask{}}}
	if cfg.TenantMaxRunning > 0 {
		w.insp = asynq.NewInspector(cfg.Redis)
	}
	w.srv = asynq.NewServer(cfg.Redis, asynq.Config{
		Concurrency: cfg.Concurrency,
		// An idle worker looks for tasks every 50–150 ms instead of asynq's
		// 0.5–1.5 s, so that a job submitted to an idle system starts at once;
		// an empty look is one short script on Redis.
		TaskCheckInterval: 100 * time.Millisecond,
		Queues:            Queues,
		ShutdownTimeout:   cfg.ShutdownTimeout,
		Logger:            asynqLogger{w.log.With("component", "asynq")},
		LogLevel:          asynq.WarnLevel,
		RetryDelayFunc:    retryDelay,
		// A task refused for its tenant's cap or its job's backoff is not a
		// failure: it keeps its retries (which would otherwise run out and
		// archive it) and is not counted in the queue's failures.
		IsFailure:                func(err error) bool { return !handedBackErr(err) },
		DelayedTaskCheckInterval: delayedCheck,
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			id, _ := asynq.GetTaskID(ctx)
			if handedBackErr(err) {
				w.log.Debug("Task handed back", "task_id", id, "reason", err)
				return
			}
			w.log.Warn("Task failed", "task_id", id, "type", t.Type(), "err", err)
		}),
	})
	return w
}

// Start starts processing tasks.
func (w *Worker) Start(context.Context) error {
	if err := w.srv.Start(asynq.HandlerFunc(w.ProcessTask)); err != nil {
		return fmt.Errorf("start asynq server: %w", err)
	}
	w.log.Info("Durable worker started", "concurrency", w.cfg.Concurrency, "queues", []string{QueueGeneration, QueueRAGProcessing},
		"tenant_max_running", w.cfg.TenantMaxRunning)
	return nil
}

// Stop stops taking tasks and waits up to the shutdown timeout for running
// ones; the executor releases what is still running then, and Stop waits for
// those releases (and the re-dispatches that follow them), so that the store
// is still open for them: a job cut short by a deploy is queued again at once,
// with its attempt given back, instead of waiting for its lease to expire.
func (w *Worker) Stop(ctx context.Context) error {
	w.srv.Shutdown()
	done := make(chan struct{})
	go func() {
		w.running.Wait()
		close(done)
	}()
	wait := time.NewTimer(runner.StopWait)
	defer wait.Stop()
	select {
	case <-done:
		if w.insp != nil {
			w.insp.Close()
		}
		return nil
	case <-wait.C:
	case <-ctx.Done():
	}
	return fmt.Errorf("durable worker: runs still finishing after shutdown; their leases will expire")
}

// ProcessTask runs the dispatch a task carries, if it is still current.
func (w *Worker) ProcessTask(ctx context.Context, t *asynq.Task) error {
	w.running.Add(1)
	defer w.running.Done()
	taskID, _ := asynq.GetTaskID(ctx)
	d, err := ParseTask(t)
	if err != nil {
		w.log.Error("Dead-lettered task", "task_id", taskID, "reason", err.Error())
		return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
	}
	_, claim := tracing.Start(ctx, d.JobID, tracing.SpanClaim, trace.WithAttributes(
		tracing.AttrBackend.String(string(job.BackendDurable)), tracing.AttrEpoch.Int64(d.Epoch), tracing.AttrOwner.String(w.cfg.ID)))
	j, err := w.store.ClaimDispatch(ctx, d, w.cfg.ID, w.exec.LeaseFor(), store.ClaimOptions{TenantMaxRunning: w.cfg.TenantMaxRunning})
	tracing.EndClaim(claim, err)
	if errors.Is(err, job.ErrStaleLease) {
		w.log.Info("Dropped stale dispatch", "job_id", d.JobID, "epoch", d.Epoch)
		return nil
	}
	if errors.Is(err, store.ErrTenantAtCap) {
		queue, _ := asynq.GetQueueName(ctx)
		w.back.add(tenantOf(j), backTask{jobID: j.ID, queue: queue, taskID: taskID})
		return &tenantBusy{delay: busyDelay(j.UpdatedAt, time.Now())}
	}
	if errors.Is(err, store.ErrNotDue) {
		now := time.Now()
		return &notDue{delay: wholeSecondAfter(j.RetryAt).Sub(now)}
	}
	if err != nil {
		return fmt.Errorf("claim job %s epoch %d: %w", d.JobID, d.Epoch, err)
	}
	if w.insp != nil {
		w.back.forget(tenantOf(j), j.ID)
		defer w.pull(tenantOf(j))
	}
	switch w.exec.Run(ctx, j) {
	case runner.OutcomeRetry, runner.OutcomeReleased:
		w.redispatch(j.ID)
	}
	return nil
}

// tenantOf is the tenant of a job (jobs.tenant_id).
func tenantOf(j job.Job) string {
	tenant, _ := access.Split(j.ProjectID)
	return tenant
}

// pull moves the oldest task this worker handed back for tenant's cap back
// to its queue, now that a run of the tenant has ended. A task no longer
// waiting in the retry set (its delay passed, or it is gone) is skipped for
// the next.
func (w *Worker) pull(tenant string) {
	for range 3 {
		t, ok := w.back.oldest(tenant)
		if !ok {
			return
		}
		if err := w.insp.RunTask(t.queue, t.taskID); err == nil {
			return
		}
	}
}

// redispatch enqueues the job's next epoch at once rather than waiting for
// the reconciler; a retry is scheduled for the end of its backoff (NewTask).
func (w *Worker) redispatch(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	j, err := w.store.GetJob(ctx, id)
	if err != nil || j.Status != job.StatusQueued || j.Backend != job.BackendDurable {
		return
	}
	if err := w.disp.Dispatch(ctx, j); err != nil {
		w.log.Warn("Re-dispatch failed; the reconciler will retry", "job_id", id, "err", err)
	}
}

type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)); panic(fmt.Sprint(args...)) }
