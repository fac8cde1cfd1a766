package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/tracing"
)

// Outcome is how one run of a job ended.
type Outcome string

// The outcomes of a run.
const (
	OutcomeSucceeded Outcome = "succeeded"
	OutcomeRetry     Outcome = "retry"
	OutcomeFailed    Outcome = "failed"
	OutcomeReleased  Outcome = "released"
	// OutcomeDropped: the lease was lost (cancelled, expired, migrated) and the
	// run's work was thrown away.
	OutcomeDropped Outcome = "dropped"
)

// Observer hears about every finished run (metrics, logs).
type Observer interface {
	JobFinished(j job.Job, outcome Outcome, took time.Duration)
}

// ExecutorConfig sets lease timing.
type ExecutorConfig struct {
	LeaseFor time.Duration
	// Heartbeat is how often the lease is renewed, which also bounds how long a
	// cancel from another process takes to reach the run. Default: LeaseFor/3,
	// at most 2s.
	Heartbeat time.Duration
}

// Executor runs claimed jobs.
type Executor struct {
	store    store.Store
	handlers map[job.Kind]Handler
	cfg      ExecutorConfig
	log      *slog.Logger
	observer Observer

	mu sync.Mutex
	// running holds the runs under way by dispatch: a stale run of a job (its
	// lease lost, not noticed yet) and its fresh run may overlap in one
	// process, and the first to end must not take the other's entry.
	running map[job.Dispatch]context.CancelCauseFunc
}

// NewExecutor builds an executor for the given handlers.
func NewExecutor(st store.Store, handlers map[job.Kind]Handler, cfg ExecutorConfig, log *slog.Logger, obs Observer) *Executor {
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = min(cfg.LeaseFor/3, 2*time.Second)
	}
	return &Executor{store: st, handlers: handlers, cfg: cfg, log: log, observer: obs, running: map[job.Dispatch]context.CancelCauseFunc{}}
}

// LeaseFor is the lease a runner should ask for when it claims.
func (e *Executor) LeaseFor() time.Duration { return e.cfg.LeaseFor }

var errLeaseLost = errors.New("lease lost")

// FinishTimeout is how long a run's finishing writes (its completion, failure
// or release) may take, whatever ended the run. StopWait is how long a runner
// that stops waits for runs to finish after it has cut them short (their
// releases, and a re-dispatch after them): with the default DRAIN_TIMEOUT of
// 20 s a stop then ends within the 40 s systemd gives it (deploy/systemd).
const (
	FinishTimeout = 30 * time.Second
	StopWait      = 15 * time.Second
)

// finishTries bounds the tries of one finishing write: about five seconds of
// pauses, what a database restart takes, without letting a write that fails
// every time break one commit round after another for everybody else.
const finishTries = 8

// CancelLocal stops every run of job id in this process at once, if there is
// one; other processes learn of a cancel at their next lease renewal.
func (e *Executor) CancelLocal(id string) {
	var cancels []context.CancelCauseFunc
	e.mu.Lock()
	for d, cancel := range e.running {
		if d.JobID == id {
			cancels = append(cancels, cancel)
		}
	}
	e.mu.Unlock()
	for _, cancel := range cancels {
		cancel(errLeaseLost)
	}
}

// Active is the number of jobs running in this executor.
func (e *Executor) Active() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.running)
}

// Run runs j, which the caller has claimed. When ctx ends before the job does
// (shutdown), the job is released back to the queue.
func (e *Executor) Run(ctx context.Context, j job.Job) Outcome {
	start := time.Now()
	lease := j.Lease()
	log := e.log.With(append([]any{"job_id", j.ID, "epoch", j.DispatchEpoch, "backend", j.Backend, "worker", j.LeaseOwner}, tracing.LogAttrs(j.ID)...)...)
	ctx, span := tracing.Start(ctx, j.ID, tracing.SpanRun, trace.WithAttributes(tracing.AttrKind.String(string(j.Kind)),
		tracing.AttrBackend.String(string(j.Backend)), tracing.AttrEpoch.Int64(j.DispatchEpoch),
		tracing.AttrAttempt.Int(j.Attempt), tracing.AttrOwner.String(j.LeaseOwner)))
	defer span.End()
	runCtx, cancel := context.WithCancelCause(ctx)
	run := j.Dispatch()
	e.mu.Lock()
	e.running[run] = cancel
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.running, run)
		e.mu.Unlock()
		cancel(nil)
	}()

	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		e.heartbeat(runCtx, lease, cancel, log)
	}()

	log.Info("Processing job", "kind", j.Kind, "attempt", j.Attempt)
	outcome := e.run(ctx, runCtx, j, lease, cancel, log)
	span.SetAttributes(tracing.AttrOutcome.String(string(outcome)))
	cancel(nil)
	<-hbDone
	if e.observer != nil {
		e.observer.JobFinished(j, outcome, time.Since(start))
	}
	return outcome
}

func (e *Executor) run(ctx, runCtx context.Context, j job.Job, lease job.Lease, cancel context.CancelCauseFunc, log *slog.Logger) Outcome {
	report := leaseReporter{store: e.store, lease: lease, cancel: cancel}
	var completion store.Completion
	var err error
	if h, ok := e.handlers[j.Kind]; ok {
		completion, err = e.safeHandle(runCtx, h, j, report)
	} else {
		err = fmt.Errorf("%w: no handler for kind %q", ErrPermanent, j.Kind)
	}

	// The run is over; what remains are the finishing writes, which must not be
	// cut short by a shutdown that began meanwhile.
	finishCtx, done := context.WithTimeout(context.WithoutCancel(ctx), FinishTimeout)
	defer done()
	switch {
	case errors.Is(context.Cause(runCtx), errLeaseLost):
		log.Warn("Dropped job: lease lost (cancelled, expired or migrated)")
		return OutcomeDropped
	case err == nil:
		completeCtx, span := tracing.Tracer().Start(finishCtx, tracing.SpanComplete)
		err := finish(completeCtx, func(ctx context.Context) error {
			_, err := e.store.Complete(ctx, lease, completion)
			return err
		})
		tracing.End(span, err)
		if err != nil {
			if errors.Is(err, job.ErrStaleLease) {
				log.Warn("Dropped result: lease lost before completion")
				return OutcomeDropped
			}
			log.Error("Could not record success; the lease will expire and the job run again", "err", err)
			return OutcomeRetry
		}
		log.Info("Job succeeded")
		return OutcomeSucceeded
	case ctx.Err() != nil:
		if err := finish(finishCtx, func(ctx context.Context) error {
			return e.store.Release(ctx, lease, "released on shutdown")
		}); err != nil && !errors.Is(err, job.ErrStaleLease) {
			log.Error("Could not release job; its lease will expire", "err", err)
		}
		log.Info("Released job on shutdown")
		return OutcomeReleased
	default:
		var f job.Job
		ferr := finish(finishCtx, func(ctx context.Context) error {
			var err2 error
			f, err2 = e.store.Fail(ctx, lease, err.Error(), !errors.Is(err, ErrPermanent))
			return err2
		})
		if errors.Is(ferr, job.ErrStaleLease) {
			// Lost, or an earlier try landed and its answer did not.
			log.Warn("Failure not recorded: the lease is no longer held", "cause", err)
			return OutcomeRetry
		}
		if ferr != nil {
			log.Error("Could not record failure; the lease will expire", "err", ferr, "cause", err)
			return OutcomeRetry
		}
		if f.Status == job.StatusQueued {
			log.Warn("Job attempt failed, will retry", "err", err)
			return OutcomeRetry
		}
		log.Error("Job failed", "err", err)
		return OutcomeFailed
	}
}

// finish runs a finishing write until it lands, the lease turns out lost, the
// store is closed, ctx ends or finishTries have failed, waiting a little longer
// after each failure: a database that blinks for a few seconds must not cost
// the job an attempt, and a second run of its effect, once its lease expires.
// A write that landed but whose answer was lost is found stale on the next
// try, and the job is then dropped here, done.
func finish(ctx context.Context, write func(context.Context) error) error {
	wait := 50 * time.Millisecond
	for try := 1; ; try++ {
		err := write(ctx)
		if err == nil || errors.Is(err, job.ErrStaleLease) || errors.Is(err, store.ErrClosed) || try == finishTries {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// safeHandle turns a handler's panic into a permanent failure of the job
// rather than a crash of the runner.
func (e *Executor) safeHandle(ctx context.Context, h Handler, j job.Job, report Reporter) (c store.Completion, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: handler panicked: %v", ErrPermanent, r)
		}
	}()
	if lh, ok := h.(LiveHandler); ok {
		return lh.HandleLive(ctx, j, report)
	}
	return h.Handle(ctx, j, report.Progress)
}

// leaseReporter writes a run's progress and script under its lease, and
// cancels the run when a write finds the lease lost.
type leaseReporter struct {
	store  store.Store
	lease  job.Lease
	cancel context.CancelCauseFunc
}

func (r leaseReporter) Progress(ctx context.Context, p store.Progress) error {
	return r.lost(r.store.ReportProgress(ctx, r.lease, p))
}

func (r leaseReporter) Script(ctx context.Context, offset int, text string) error {
	return r.lost(r.store.CheckpointScript(ctx, r.lease, offset, text))
}

func (r leaseReporter) ScriptSoFar(ctx context.Context) (string, error) {
	return r.store.ScriptSoFar(ctx, r.lease.JobID)
}

func (r leaseReporter) lost(err error) error {
	if errors.Is(err, job.ErrStaleLease) {
		r.cancel(errLeaseLost)
	}
	return err
}

func (e *Executor) heartbeat(ctx context.Context, lease job.Lease, cancel context.CancelCauseFunc, log *slog.Logger) {
	t := time.NewTicker(e.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			err := e.store.ExtendLease(ctx, lease, e.cfg.LeaseFor)
			if errors.Is(err, job.ErrStaleLease) {
				cancel(errLeaseLost)
				return
			}
			if err != nil && ctx.Err() == nil {
				log.Warn("Could not renew lease", "err", err)
			}
		}
	}
}
