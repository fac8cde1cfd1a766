// Package backgroundtasks is the in-process runner: a bounded pool of
// goroutines in the serving process that claim queued background_tasks rows
// from the database. The database, not the pool, holds the queue, so a job
// left by a crashed or stopped process is resumed by whichever process claims
// it next (invariant 1).
//
// No tenant may hold every worker: each claim skips the tenants at their cap
// of running jobs (Config.TenantMaxRunning, by default all but one of the
// workers), so a tenant with a long queue always leaves a worker for the
// others, and a job of another tenant starts at the next claim.
package backgroundtasks

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/scriptgen/scriptgen/internal/access"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/runner"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/tracing"
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
	// TenantMaxRunning caps the jobs of one tenant running at once
	// (TENANT_MAX_RUNNING). 0, the default, is all but one of Workers (at
	// least one) counted in this pool alone: a tenant with a long queue then
	// always leaves a worker to the others, however many replicas run. Above
	// 0 it is counted over the background_tasks jobs of every process. Below
	// 0: no cap. The open server's projects (tenant "") are never capped.
	TenantMaxRunning int
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

	// caps is what each claim passes; tenants is this pool's view of its
	// tenants' running jobs, which decides when a claim is worth making.
	caps    store.ClaimOptions
	tenants tenantCounts
}

// tenantCounts is the pool's view of its tenants under a cap: the jobs each
// runs here, and which of them a claim need not look for now. A look past a
// capped tenant's queue walks all of it (store.SQL.pickFair), so the claimer
// makes one only when something it could take may have come.
type tenantCounts struct {
	mu      sync.Mutex
	max     int // 0: no cap
	running map[string]int
	// behind holds the tenants that were at their cap when a claim took jobs
	// of others: their queued jobs may sort below the claimer's last id.
	behind map[string]bool
	// rescan asks the claimer to look from the oldest at its next claim: a
	// tenant in behind went below its cap.
	rescan bool
	// dispatched holds the tenants whose jobs Dispatch announced since the
	// last claim began; stalled, those of them that a claim with room to
	// spare did not take: at their cap counted elsewhere (other processes'
	// runs), or taken by another process. A stalled tenant's Dispatch wakes
	// nobody until the poll, or until one of its runs here ends.
	dispatched, stalled map[string]bool
}

func newTenantCounts(max int) tenantCounts {
	return tenantCounts{max: max, running: map[string]int{}, behind: map[string]bool{},
		dispatched: map[string]bool{}, stalled: map[string]bool{}}
}

// tenantOf is the tenant of a job (jobs.tenant_id).
func tenantOf(j job.Job) string {
	tenant, _ := access.Split(j.ProjectID)
	return tenant
}

// capped reports whether tenant is subject to the cap (the open server's
// projects are not).
func (c *tenantCounts) capped(tenant string) bool { return c.max > 0 && tenant != "" }

// wakes reports whether a newly queued job of tenant is worth a claim, and
// notes the tenant for the next claim.
func (c *tenantCounts) wakes(tenant string) bool {
	if !c.capped(tenant) {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running[tenant] >= c.max || c.stalled[tenant] {
		return false
	}
	c.dispatched[tenant] = true
	return true
}

// begin is called as a claim begins; polled says the poll asked for it,
// which gives the stalled tenants another look. It reports whether the claim
// should look from the oldest, and returns the tenants dispatched since the
// last claim, whose jobs this claim sees.
func (c *tenantCounts) begin(polled bool) (rescan bool, announced map[string]bool) {
	if c.max <= 0 {
		return false, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if polled {
		clear(c.stalled)
	}
	rescan, c.rescan = c.rescan, false
	announced, c.dispatched = c.dispatched, map[string]bool{}
	return rescan, announced
}

// claimed counts the jobs a claim for n took. When it took any while tenants
// were at their cap, those are behind; when it took fewer than n, the
// announced tenants it took none of are stalled.
func (c *tenantCounts) claimed(jobs []job.Job, n int, announced map[string]bool) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(jobs) > 0 {
		for t, k := range c.running {
			if k >= c.max && c.capped(t) {
				c.behind[t] = true
			}
		}
	}
	for _, j := range jobs {
		t := tenantOf(j)
		c.running[t]++
		delete(announced, t)
	}
	if len(jobs) < n {
		for t := range announced {
			c.stalled[t] = true
		}
	}
}

// finished counts a run's end, and reports whether its tenant was at its cap:
// a claim may now take its queued jobs.
func (c *tenantCounts) finished(j job.Job) bool {
	if c.max <= 0 {
		return false
	}
	t := tenantOf(j)
	c.mu.Lock()
	defer c.mu.Unlock()
	wasAtCap := c.capped(t) && c.running[t] >= c.max
	if c.running[t]--; c.running[t] <= 0 {
		delete(c.running, t)
	}
	delete(c.stalled, t)
	if c.behind[t] {
		delete(c.behind, t)
		c.rescan = true
	}
	return wasAtCap
}

// needless reports whether a claim for n can do without the cap: counted in
// the pool alone (local), it runs nothing of any capped tenant and n is
// within the cap, so that no tenant can pass it. A plain claim costs the
// database less (the open server's jobs, which no cap holds, take that way
// as before).
func (c *tenantCounts) needless(n int, local bool) bool {
	if !local || n > c.max {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for t := range c.running {
		if c.capped(t) {
			return false
		}
	}
	return true
}

// anyAtCap reports whether the pool runs any tenant's cap of jobs.
func (c *tenantCounts) anyAtCap() bool {
	if c.max <= 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for t, k := range c.running {
		if k >= c.max && c.capped(t) {
			return true
		}
	}
	return false
}

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
	var caps store.ClaimOptions
	switch {
	case cfg.TenantMaxRunning == 0:
		caps = store.ClaimOptions{TenantMaxRunning: max(1, cfg.Workers-1), PerOwner: true}
	case cfg.TenantMaxRunning > 0:
		caps = store.ClaimOptions{TenantMaxRunning: cfg.TenantMaxRunning}
	}
	return &Pool{claimer: c, exec: exec, cfg: cfg, log: log.With("backend", job.BackendBackgroundTasks),
		wake: make(chan struct{}, 1), stopping: make(chan struct{}),
		slots: make(chan struct{}, cfg.Workers), work: make(chan job.Job),
		caps:    caps,
		tenants: newTenantCounts(caps.TenantMaxRunning)}
}

// Backend is background_tasks.
func (p *Pool) Backend() job.Backend { return job.BackendBackgroundTasks }

// Max is the number of workers.
func (p *Pool) Max() int { return p.cfg.Workers }

// Dispatch wakes an idle worker; the job itself is already in the database.
// A job whose tenant is at its cap wakes nobody: no claim could take it now.
func (p *Pool) Dispatch(_ context.Context, j job.Job) error {
	if p.tenants.wakes(tenantOf(j)) {
		p.signal()
	}
	return nil
}

// signal wakes the claimer, or leaves it a wake-up.
func (p *Pool) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
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
		wasAtCap := p.tenants.finished(j)
		<-p.slots
		if wasAtCap {
			// The claimer may be waiting with idle workers while this
			// tenant's jobs were all it could not take.
			p.signal()
		}
	}
}

// claim waits for an idle worker, claims a job for every idle worker at once,
// and hands them over; with nothing queued it waits for a wake-up or the poll.
//
// Ids grow with time, so a claimer looks after the last id it took: the
// index entries of the jobs claimed before, which PostgreSQL keeps until a
// VACUUM, are then not walked again by every claim. Once per Rescan it looks
// from the oldest, for the jobs queued again below that id — and at once when
// a tenant whose jobs a claim passed over at its cap goes below it.
//
// Under a tenant cap a claim may take fewer jobs than there are idle workers
// while jobs are queued: those of tenants at their cap. The claimer then
// waits, as with nothing queued, for a job that a claim can take (Dispatch
// wakes it for a tenant below its cap), for a run of a tenant at its cap to
// end, or for the poll: each look past a capped tenant's queue walks it
// (tenantCounts).
func (p *Pool) claim() {
	defer p.claiming.Done()
	poll := time.NewTimer(0)
	defer poll.Stop()
	var last string
	var rescanned time.Time
	polled := true
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
		rescan, announced := p.tenants.begin(polled)
		if rescan || time.Since(rescanned) >= p.cfg.Rescan {
			after, rescanned = "", time.Now()
		}
		caps := p.caps
		if p.tenants.needless(n, caps.PerOwner) {
			caps = store.ClaimOptions{}
		}
		claimStart := time.Now()
		jobs, err := p.claimer.ClaimBatch(p.runCtx, job.BackendBackgroundTasks, p.cfg.Owner, p.exec.LeaseFor(), n, after, caps)
		if err == nil {
			p.tenants.claimed(jobs, n, announced)
			recordClaims(p.runCtx, claimStart, p.cfg.Owner, jobs)
		}
		if len(jobs) > 0 {
			last = jobs[len(jobs)-1].ID // oldest first
		}
		for _, j := range jobs {
			p.work <- j // an idle worker holds its slot until the job is done
		}
		for range n - len(jobs) {
			<-p.slots
		}
		polled = false
		if err == nil && (len(jobs) == n || len(jobs) > 0 && !p.tenants.anyAtCap()) {
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
			polled = true
		}
	}
}

// recordClaims records each claimed job's claim span in its trace, when
// tracing is on.
func recordClaims(ctx context.Context, start time.Time, owner string, jobs []job.Job) {
	if !tracing.Enabled() {
		return
	}
	claimed := make([]tracing.ClaimedJob, len(jobs))
	for i, j := range jobs {
		claimed[i] = tracing.ClaimedJob{ID: j.ID, Epoch: j.DispatchEpoch}
	}
	tracing.RecordClaims(ctx, start, string(job.BackendBackgroundTasks), owner, claimed...)
}
