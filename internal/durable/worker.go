package durable

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/runner"
	"github.com/scriptgen/scriptgen/internal/store"
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
}

// NewWorker builds a worker; Start runs it.
func NewWorker(st Store, exec *runner.Executor, disp *Dispatcher, cfg WorkerConfig, log *slog.Logger) *Worker {
	w := &Worker{store: st, exec: exec, disp: disp, cfg: cfg, log: log.With("backend", job.BackendDurable)}
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
		// A failed task is retried soon: a failure here is a database hiccup,
		// not the job's own failure, which the executor records in the row.
		RetryDelayFunc: func(n int, _ error, _ *asynq.Task) time.Duration { return time.Duration(min(n, 10)) * time.Second },
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			id, _ := asynq.GetTaskID(ctx)
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
	w.log.Info("Durable worker started", "concurrency", w.cfg.Concurrency, "queues", []string{QueueGeneration, QueueRAGProcessing})
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
	j, err := w.store.ClaimDispatch(ctx, d, w.cfg.ID, w.exec.LeaseFor())
	if errors.Is(err, job.ErrStaleLease) {
		w.log.Info("Dropped stale dispatch", "job_id", d.JobID, "epoch", d.Epoch)
		return nil
	}
	if err != nil {
		return fmt.Errorf("claim job %s epoch %d: %w", d.JobID, d.Epoch, err)
	}
	switch w.exec.Run(ctx, j) {
	case runner.OutcomeRetry, runner.OutcomeReleased:
		w.redispatch(j.ID)
	}
	return nil
}

// redispatch enqueues the job's next epoch at once rather than waiting for
// the reconciler.
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
