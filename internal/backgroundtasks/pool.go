// Package backgroundtasks is the in-process runner: a bounded pool of
// goroutines in the serving process that claim queued background_tasks rows
// from the database. The database, not the pool, holds the queue, so a job
// left by a crashed or stopped process is resumed by whichever process claims
// it next (invariant 1).
package backgroundtasks

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/runner"
	"github.com/scriptgen/scriptgen/internal/store"
)

// Claimer is the part of the store the pool needs.
type Claimer interface {
	ClaimBatch(ctx context.Context, backend job.Backend, owner string, leaseFor time.Duration, n int, after string, opts ...store.ClaimOptions) ([]job.Job, error)
}

// Config sizes the pool.
type Config struct {
	Workers      int
	Owner        string
	PollInterval time.Duration
	DrainTimeout time.Duration
	// StopWait bounds how long Stop waits, once it has cut the runs short,
	// for them to release their jobs (default runner.StopWait): a handler
	// that ignores its context must not hold the process up for ever.
	StopWait time.Duration
	// Rescan is how often a claimer looks for queued jobs from the oldest
	// rather than after the last one it took (default 1s): how long a job
	// queued again under that id — released, expired, retried, migrated —
	// may wait behind newer ones.
	Rescan time.Duration
}

// Pool is the background_tasks runner.
type Pool struct {
	claimer Claimer
	exec    *runner.Executor
	cfg     Config
	log     *slog.Logger

	wake      chan struct{}
	stopping  chan struct{}
	runCtx    context.Context
	cancelRun context.CancelFunc
	// One claimer takes as many jobs as there are idle workers in one
	// transaction and hands them over; slots counts the busy workers.
	slots    chan struct{}
	work     chan job.Job
	claiming sync.WaitGroup
	wg       sync.WaitGroup
	stopOnce sync.Once
}

var _ runner.Runner = (*Pool)(nil)

// New builds a pool; Start starts it.
func New(c Claimer, exec *runner.Executor, cfg Config, log *slog.Logger) *Pool {
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 500 * time.Millisecond
	}
	if cfg.Rescan <= 0 {
		cfg.Rescan = time.Second
	}
	return &Pool{claimer: c, exec: exec, cfg: cfg, log: log.With("backend", job.BackendBackgroundTasks),
		wake: make(chan struct{}, 1), stopping: make(chan struct{}),
		slots: make(chan struct{}, cfg.Workers), work: make(chan job.Job)}
}

// Backend is background_tasks.
func (p *Pool) Backend() job.Backend { return job.BackendBackgroundTasks }

// Max is the number of workers.
func (p *Pool) Max() int { return p.cfg.Workers }

// Dispatch wakes an idle worker; the job itself is already in the database.
func (p *Pool) Dispatch(context.Context, job.Job) error {
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return nil
}

// Start starts the workers and their claimer. Queued rows left by an earlier
// process are claimed like any other.
func (p *Pool) Start(ctx context.Context) error {
	p.runCtx, p.cancelRun = context.WithCancel(context.WithoutCancel(ctx))
	for range p.cfg.Workers {
		p.wg.Add(1)
		go p.run()
	}
	p.claiming.Add(1)
	go p.claim()
	p.log.Info("background_tasks started", "workers", p.cfg.Workers, "owner", p.cfg.Owner)
	return nil
}

// Stop stops claiming, waits up to the drain timeout (or ctx) for running jobs,
// then releases the rest back to the queue, waiting up to StopWait more for
// those releases.
func (p *Pool) Stop(ctx context.Context) error {
	p.stopOnce.Do(func() { close(p.stopping) })
	p.claiming.Wait()
	close(p.work)
	done := make(chan struct{})
	go func() {
		p.wg.Wait()
		close(done)
	}()
	timer := time.NewTimer(p.cfg.DrainTimeout)
	defer timer.Stop()
	select {
	case <-done:
		p.cancelRun()
		return nil
	case <-timer.C:
	case <-ctx.Done():
	}
	p.log.Warn("Drain timeout: releasing running jobs", "active", p.exec.Active())
	p.cancelRun()
	wait := p.cfg.StopWait
	if wait <= 0 {
		wait = runner.StopWait
	}
	// The releases get their time even when ctx has ended: closing the store
	// under them would leave their jobs to their leases.
	timer.Reset(wait)
	select {
	case <-done:
		return nil
	case <-timer.C:
	}
	return fmt.Errorf("background tasks: %d runs still under way after they were told to stop; their leases will expire", p.exec.Active())
}

// run is one worker: it runs the jobs the claimer hands it.
func (p *Pool) run() {
	defer p.wg.Done()
	for j := range p.work {
		p.exec.Run(p.runCtx, j)
		<-p.slots
	}
}

// claim waits for an idle worker, claims a job for every idle worker at once,
// and hands them over; with nothing queued it waits for a wake-up or the poll.
//
// Ids grow with time, so a claimer looks after the last id it took: the
// index entries of the jobs claimed before, which PostgreSQL keeps until a
// VACUUM, are then not walked again by every claim. Once per Rescan it looks
// from the oldest, for the jobs queued again below that id.
func (p *Pool) claim() {
	defer p.claiming.Done()
	poll := time.NewTimer(0)
	defer poll.Stop()
	var last string
	var rescanned time.Time
	for {
		select {
		case <-p.stopping:
			return
		case p.slots <- struct{}{}:
		}
		n := 1
	idle:
		for n < p.cfg.Workers {
			select {
			case p.slots <- struct{}{}:
				n++
			default:
				break idle
			}
		}
		after := last
		if time.Since(rescanned) >= p.cfg.Rescan {
			after, rescanned = "", time.Now()
		}
		jobs, err := p.claimer.ClaimBatch(p.runCtx, job.BackendBackgroundTasks, p.cfg.Owner, p.exec.LeaseFor(), n, after)
		if len(jobs) > 0 {
			last = jobs[len(jobs)-1].ID // oldest first
		}
		for _, j := range jobs {
			p.work <- j // an idle worker holds its slot until the job is done
		}
		for range n - len(jobs) {
			<-p.slots
		}
		if err == nil && len(jobs) > 0 {
			continue
		}
		if err != nil && p.runCtx.Err() == nil {
			p.log.Warn("Claim failed", "err", err)
		}
		poll.Reset(p.cfg.PollInterval)
		select {
		case <-p.stopping:
			return
		case <-p.wake:
		case <-poll.C:
		}
	}
}
