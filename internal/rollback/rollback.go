// Package rollback turns the runbook (docs/runbook.md) into commands: migrate
// queued jobs between backends, roll back (flag off, migrate, sync, verify,
// report), roll forward, and the automatic controller that rolls back once
// per incident.
// Every migration bumps the dispatch epoch (invariant 2), so a copy left in
// the old transport is dropped, never run; and every rollback and roll-forward
// leaves an audit record from which its report is written.
package rollback

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/durable"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// Store is what the rollback needs of the database.
type Store interface {
	GetWorkerSetting(ctx context.Context) (store.WorkerSetting, error)
	PutWorkerSetting(ctx context.Context, w store.WorkerSetting) (store.WorkerSetting, error)
	ListQueued(ctx context.Context, backend job.Backend, olderThan time.Time, limit int) ([]job.Job, error)
	CountJobs(ctx context.Context, f store.JobFilter) (int, error)
	GetJob(ctx context.Context, id string) (job.Job, error)
	MigrateQueued(ctx context.Context, from, to job.Backend, ids []string, limit int) ([]job.Job, error)
	ExpireLeases(ctx context.Context) ([]job.Job, error)
	InsertAudit(ctx context.Context, a store.AuditRecord) error
	AddMigrationFailure(ctx context.Context, f store.MigrationFailure) error
	ListMigrationFailures(ctx context.Context, limit int) ([]store.MigrationFailure, error)
	DeleteMigrationFailure(ctx context.Context, jobID string) error
	ListAudits(ctx context.Context, limit int) ([]store.AuditRecord, error)
	ListWorkers(ctx context.Context, role string, since time.Time) ([]store.WorkerProcess, error)
	MarkUnclean(ctx context.Context, at time.Time, detail string) error
	LastUnclean(ctx context.Context) (time.Time, string, error)
}

// Durable is the durable side, when REDIS_URL is set.
type Durable interface {
	Ping(ctx context.Context) error
	// DeleteTask removes a dispatch's copy from Redis (gone already is fine).
	DeleteTask(queue, taskID string) error
	Dispatch(ctx context.Context, j job.Job) error
	QueueFor(k job.Kind) string
	TaskID(d job.Dispatch) string
}

// Service runs migrations, rollbacks and roll-forwards.
type Service struct {
	st      Store
	durable Durable // nil without Redis
	log     *slog.Logger
	// FlagRefresh is how long replicas may take to see a changed flag; the
	// rollback sweeps once more after it for jobs routed by a lagging replica.
	FlagRefresh time.Duration
	// ReplicaWait is how much longer than FlagRefresh the sweep waits for
	// every live serving replica to report that it applied the new flag
	// (the registry's flag_revision): a replica whose reads of the setting
	// are slow routes by the old flag for as long.
	ReplicaWait time.Duration
	// KnownKinds are the kinds a backend can run; other jobs cannot migrate.
	KnownKinds map[job.Kind]bool
	// OnFlag, if set, runs right after the flag is written, so that the
	// replica serving the call switches at once.
	OnFlag func(ctx context.Context)
	// Clock tells the time of records, steps and sweeps (clock.Real{} from
	// New; the wall clock when nil).
	Clock clock.Clock
	// CleanWindows clean windows of CleanWindow must pass after a rollback
	// before a roll-forward is allowed without Force
	// (ROLLFORWARD_CLEAN_WINDOWS, ROLLFORWARD_CLEAN_WINDOW); 0 waits for
	// nothing. A window is clean when the controller noted no unclean
	// reading in it (MarkUnclean).
	CleanWindows int
	CleanWindow  time.Duration
	// OnRecord, if set, hears about every audit record saved (webhook
	// notifications).
	OnRecord func(store.AuditRecord)
}

// New builds the service; durable may be nil.
func New(st Store, durable Durable, log *slog.Logger) *Service {
	return &Service{
		st:          st,
		durable:     durable,
		log:         log.With("component", "rollback"),
		FlagRefresh: time.Second,
		ReplicaWait: 10 * time.Second,
		KnownKinds:  map[job.Kind]bool{job.KindGeneration: true, job.KindRAGDocument: true},
		Clock:       clock.Real{},
	}
}

// now is the service's clock's time.
func (s *Service) now() time.Time {
	if s.Clock == nil {
		return time.Now()
	}
	return s.Clock.Now()
}

// Step is one line of a rollback's progress.
type Step struct {
	Name   string        `json:"name"`
	OK     bool          `json:"ok"`
	Detail string        `json:"detail"`
	Took   time.Duration `json:"-"`
	TookMS float64       `json:"took_ms"`
	// LeaderEpoch is the term of the controller's leadership the step ran
	// under (store.Fence); 0 for an operator's rollback, which is not fenced.
	LeaderEpoch int64 `json:"leader_epoch,omitempty"`
}

// ErrSuperseded is a rollback that found the worker setting enabled again
// when it verified: an operator (or a roll-forward) turned the durable worker
// back on while it ran, and that later decision stands.
var ErrSuperseded = errors.New("the worker setting was enabled again while the rollback ran")

// ErrForceWithoutReason is a forced roll-forward without a reason.
var ErrForceWithoutReason = errors.New("a forced roll-forward needs a reason")

// ErrNotRecorded is a rollback or roll-forward whose audit record could not
// be saved: it has no report to lead to.
var ErrNotRecorded = errors.New("the audit record could not be saved")

// ErrNoDurableSide is a roll-forward refused because there is no durable
// worker to roll forward to: no REDIS_URL, or Redis does not answer.
var ErrNoDurableSide = errors.New("no durable side to roll forward to")

// ErrTooSoon is a roll-forward refused because fewer clean windows than
// CleanWindows have passed since the last rollback; Request.Force (with a
// reason) overrides it.
var ErrTooSoon = errors.New("too soon after the rollback")

// StepFunc hears about each step as it finishes.
type StepFunc func(Step)

// Request says who rolls back and why.
type Request struct {
	Reason   string
	Actor    string
	Trigger  string // "manual" or the automatic trigger's name
	Evidence json.RawMessage
	// Fence, set by the controller, is its leadership's term: every write of
	// the rollback checks it, so a deposed leader's late step is refused
	// (store.ErrFenced) and the rest are skipped.
	Fence *store.Fence
	// Force rolls forward before the clean windows after a rollback have
	// passed; the reason says why, and the record says it was forced.
	Force bool
}

// ParseBackend reads a backend name; rq_queue is the runbook's name of durable.
func ParseBackend(s string) (job.Backend, error) {
	switch s {
	case "durable", "rq_queue", "rq":
		return job.BackendDurable, nil
	case "background_tasks":
		return job.BackendBackgroundTasks, nil
	}
	return "", fmt.Errorf("unknown backend %q: want durable (alias rq_queue) or background_tasks", s)
}

// MigrateResult is what a migration did.
type MigrateResult struct {
	Source   job.Backend              `json:"source"`
	Target   job.Backend              `json:"target"`
	Total    int                      `json:"total"`
	Migrated int                      `json:"migrated"`
	Failed   []store.MigrationFailure `json:"-"`
	Projects map[string]bool          `json:"-"`
	Took     time.Duration            `json:"-"`
}

const migratePage = 1000

// Migrate moves every queued job of source to target. Jobs that cannot move go
// to the migration_failed list with their reason and stay where they are.
// progress, if set, hears how far it got.
func (s *Service) Migrate(ctx context.Context, source, target job.Backend, auditID string, progress func(done, total int)) (MigrateResult, error) {
	start := s.now()
	res := MigrateResult{Source: source, Target: target, Projects: map[string]bool{}}
	if source == target {
		return res, fmt.Errorf("source and target are both %s", source)
	}
	queued, err := s.st.ListQueued(ctx, source, start.Add(time.Hour), 1<<30)
	if err != nil {
		return res, err
	}
	res.Total = len(queued)
	if progress != nil {
		progress(0, res.Total)
	}
	fail := func(j job.Job, reason string) error {
		f := store.MigrationFailure{
			JobID:   j.ID,
			Source:  source,
			Target:  target,
			Reason:  reason,
			AuditID: auditID,
		}
		res.Failed = append(res.Failed, f)
		res.Projects[j.ProjectID] = true
		return s.st.AddMigrationFailure(ctx, f)
	}
	var movable []string
	for _, j := range queued {
		if !s.KnownKinds[j.Kind] {
			if err := fail(j, fmt.Sprintf("no runner for kind %q", j.Kind)); err != nil {
				return res, err
			}
			continue
		}
		movable = append(movable, j.ID)
	}
	if target == job.BackendDurable && len(movable) > 0 {
		if s.durable == nil || s.durable.Ping(ctx) != nil {
			reason := "Redis is unreachable"
			if s.durable == nil {
				reason = "no durable worker configured (REDIS_URL unset)"
			}
			for _, j := range queued {
				if s.KnownKinds[j.Kind] {
					if err := fail(j, reason); err != nil {
						return res, err
					}
				}
			}
			res.Took = s.now().Sub(start)
			return res, nil
		}
	}
	done := len(res.Failed)
	for i := 0; i < len(movable); i += migratePage {
		page := movable[i:min(i+migratePage, len(movable))]
		moved, err := s.st.MigrateQueued(ctx, source, target, page, len(page))
		if err != nil {
			return res, err
		}
		res.Migrated += len(moved)
		for _, j := range moved {
			res.Projects[j.ProjectID] = true
		}
		s.afterMove(ctx, source, target, moved)
		done += len(page)
		if progress != nil {
			progress(done, res.Total)
		}
	}
	res.Took = s.now().Sub(start)
	return res, nil
}

// afterMove removes the old copies from Redis (durable → background_tasks), or
// enqueues the new dispatches (background_tasks → durable). Both are best
// effort: a stale copy is dropped by the fenced claim, and a missing one is
// enqueued by the reconciler.
func (s *Service) afterMove(ctx context.Context, source, target job.Backend, moved []job.Job) {
	if s.durable == nil || len(moved) == 0 {
		return
	}
	if err := s.durable.Ping(ctx); err != nil {
		s.log.Warn("Redis does not answer: old copies stay and will be dropped as stale", "count", len(moved))
		return
	}
	work := make(chan job.Job)
	var wg sync.WaitGroup
	var failures int
	var mu sync.Mutex
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				var err error
				if source == job.BackendDurable {
					old := job.Dispatch{JobID: j.ID, Epoch: j.DispatchEpoch - 1}
					err = s.durable.DeleteTask(s.durable.QueueFor(j.Kind), s.durable.TaskID(old))
				} else if target == job.BackendDurable {
					err = s.durable.Dispatch(ctx, j)
				}
				if err != nil {
					mu.Lock()
					failures++
					mu.Unlock()
				}
			}
		}()
	}
	for _, j := range moved {
		work <- j
	}
	close(work)
	wg.Wait()
	if failures > 0 {
		s.log.Warn("Some Redis copies were not updated; fencing and the reconciler cover them", "count", failures)
	}
}

// RetryFailed migrates one job of the migration_failed list again, to the
// target it was meant for.
func (s *Service) RetryFailed(ctx context.Context, jobID string) (MigrateResult, error) {
	fs, err := s.st.ListMigrationFailures(ctx, 100000)
	if err != nil {
		return MigrateResult{}, err
	}
	for _, f := range fs {
		if f.JobID != jobID {
			continue
		}
		j, err := s.st.GetJob(ctx, jobID)
		if err != nil {
			return MigrateResult{}, err
		}
		res := MigrateResult{
			Source:   f.Source,
			Target:   f.Target,
			Total:    1,
			Projects: map[string]bool{j.ProjectID: true},
		}
		if j.Status != job.StatusQueued || j.Backend != f.Source {
			// It moved or ran meanwhile: nothing is left to migrate.
			return res, s.st.DeleteMigrationFailure(ctx, jobID)
		}
		if !s.KnownKinds[j.Kind] {
			return res, fmt.Errorf("job %s still cannot migrate: no runner for kind %q", jobID, j.Kind)
		}
		if f.Target == job.BackendDurable && (s.durable == nil || s.durable.Ping(ctx) != nil) {
			return res, fmt.Errorf("job %s still cannot migrate: Redis is unreachable", jobID)
		}
		moved, err := s.st.MigrateQueued(ctx, f.Source, f.Target, []string{jobID}, 1)
		if err != nil {
			return res, err
		}
		s.afterMove(ctx, f.Source, f.Target, moved)
		res.Migrated = len(moved)
		return res, s.st.DeleteMigrationFailure(ctx, jobID)
	}
	return MigrateResult{}, fmt.Errorf("job %s is not on the migration_failed list: %w", jobID, job.ErrNotFound)
}

// Rollback runs the runbook's rollback: flag off, migrate every queued durable
// job to background_tasks, sync statuses, verify, and record the report. It is
// safe to run twice and needs no server: only the database (and Redis where it
// answers).
func (s *Service) Rollback(ctx context.Context, req Request, onStep StepFunc) (store.AuditRecord, error) {
	if err := job.ValidateReason(req.Reason); err != nil {
		return store.AuditRecord{}, err // before any step: the emergency lever must not stop halfway
	}
	if req.Fence != nil {
		ctx = store.WithFence(ctx, *req.Fence)
	}
	r := s.startRollback(ctx, req, onStep)
	r.steps.run("flag off", r.flagOff)
	r.steps.run("migrate pending jobs", r.migrate)
	r.rec.Actions = append(r.rec.Actions, "Jobs migrated to BackgroundTasks")
	r.steps.run("sync statuses", r.syncStatuses)
	r.steps.run("sweep after flag refresh", r.sweepAfterFlagRefresh)
	r.steps.run("verify", r.verify)
	r.rec.AffectedProjects = len(r.projects)
	if errors.Is(r.steps.firstErr, store.ErrFenced) {
		// Its record would be refused too; the new leader decides afresh.
		return r.rec, fmt.Errorf("rollback %s: %w", r.rec.ID, r.steps.firstErr)
	}
	if err := s.record(ctx, &r.rec, r.steps); err != nil {
		return r.rec, err
	}
	r.steps.emit(Step{Name: "report", OK: true, Detail: "audit record " + r.rec.ID})
	if !r.steps.ok {
		return r.rec, fmt.Errorf("rollback %s: %w", r.rec.ID, r.steps.firstErr)
	}
	return r.rec, nil
}

// rollbackRun is one rollback under way: its record, filled in step by step, and
// what its two migration passes found.
type rollbackRun struct {
	s     *Service
	ctx   context.Context
	req   Request
	rec   store.AuditRecord
	steps *stepper
	// revision is the worker setting's revision the flag-off step saved.
	revision int64
	// projects are those whose jobs moved or could not.
	projects map[string]bool
	// failed are the jobs that could not move; one fails in both passes and
	// counts once.
	failed map[string]bool
}

func (s *Service) startRollback(ctx context.Context, req Request, onStep StepFunc) *rollbackRun {
	now := s.now()
	rec := store.AuditRecord{
		ID:        newID(now),
		Kind:      "rollback",
		Trigger:   req.Trigger,
		Reason:    req.Reason,
		Actor:     req.Actor,
		Evidence:  req.Evidence,
		StartedAt: now.UTC(),
	}
	if rec.Trigger == "" {
		rec.Trigger = "manual"
	}
	steps := &stepper{on: onStep, now: s.now}
	if req.Fence != nil {
		rec.LeaderEpoch, steps.epoch = req.Fence.Epoch, req.Fence.Epoch
	}
	return &rollbackRun{
		s:        s,
		ctx:      ctx,
		req:      req,
		rec:      rec,
		steps:    steps,
		projects: map[string]bool{},
		failed:   map[string]bool{},
	}
}

// flagOff sends every new job to background_tasks.
func (r *rollbackRun) flagOff() (string, error) {
	off := store.WorkerSetting{
		Enabled:        false,
		RolloutPercent: 0,
		Reason:         "rollback: " + r.req.Reason,
		UpdatedBy:      r.req.Actor,
	}
	saved, err := r.s.st.PutWorkerSetting(r.ctx, off)
	if err != nil {
		return "", err
	}
	r.revision = saved.Revision
	r.rec.Actions = append(r.rec.Actions, "Feature flag disabled")
	if r.s.OnFlag != nil {
		r.s.OnFlag(r.ctx)
	}
	return "worker system: background_tasks for every new job", nil
}

// migrate moves the queued durable jobs to background_tasks and counts what
// moved and what could not into the record.
func (r *rollbackRun) migrate() (string, error) {
	res, err := r.s.Migrate(r.ctx, job.BackendDurable, job.BackendBackgroundTasks, r.rec.ID, nil)
	r.rec.JobsMigrated += res.Migrated
	for _, f := range res.Failed {
		r.failed[f.JobID] = true
	}
	r.rec.JobsFailed = len(r.failed)
	for p := range res.Projects {
		r.projects[p] = true
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d queued durable jobs moved to background_tasks, %d dead-lettered, in %s",
		res.Migrated, len(res.Failed), res.Took.Round(time.Millisecond)), nil
}

// syncStatuses requeues the jobs whose lease ran out and counts the durable
// jobs still running.
func (r *rollbackRun) syncStatuses() (string, error) {
	expired, err := r.s.st.ExpireLeases(r.ctx)
	if err != nil {
		return "", err
	}
	running, err := r.s.st.CountJobs(r.ctx, store.JobFilter{Backend: job.BackendDurable, Status: job.StatusRunning})
	if err != nil {
		return "", err
	}
	r.rec.Actions = append(r.rec.Actions, "Job statuses synced")
	return fmt.Sprintf("%d expired leases requeued; %d durable jobs still running finish under their lease or run again",
		len(expired), running), nil
}

// sweepAfterFlagRefresh migrates once more when every replica has seen the
// flag: until then a replica may route a job to durable. It waits
// FlagRefresh, then up to ReplicaWait for the live serving replicas still
// on an older revision; one that stays behind is named, and the sweeps of
// the replicas that did apply the flag move what it routes.
func (r *rollbackRun) sweepAfterFlagRefresh() (string, error) {
	if err := clock.Sleep(r.ctx, r.s.FlagRefresh); err != nil {
		return "", err
	}
	behind, err := r.replicasBehind()
	deadline := time.Now().Add(r.s.ReplicaWait)
	for err == nil && len(behind) > 0 && time.Now().Before(deadline) {
		if err = clock.Sleep(r.ctx, replicaPoll); err == nil {
			behind, err = r.replicasBehind()
		}
	}
	if err != nil {
		return "", err
	}
	detail, err := r.migrate()
	if len(behind) > 0 {
		detail += fmt.Sprintf("; still routing by a flag older than revision %d after %s: serving replica %s",
			r.revision, (r.s.FlagRefresh + r.s.ReplicaWait).Round(time.Millisecond), strings.Join(behind, ", "))
	}
	return detail, err
}

// replicaPoll is how often the sweep reads the registry while a replica is
// behind.
const replicaPoll = 100 * time.Millisecond

// replicasBehind names the live serving replicas (registry role "serve",
// not stopped, beating) that report a revision older than the flag-off
// step's.
func (r *rollbackRun) replicasBehind() ([]string, error) {
	procs, err := r.s.st.ListWorkers(r.ctx, durable.RoleReplica, r.s.now().Add(-3*durable.HeartbeatInterval))
	if err != nil {
		return nil, fmt.Errorf("read the replica registry: %w", err)
	}
	var behind []string
	for _, p := range procs {
		if p.StoppedAt.IsZero() && p.FlagRevision < r.revision {
			behind = append(behind, p.Address)
		}
	}
	return behind, nil
}

// verify checks that the flag is still off (no one enabled the durable
// worker meanwhile) and that no queued durable job is left but those that
// cannot move.
func (r *rollbackRun) verify() (string, error) {
	w, err := r.s.st.GetWorkerSetting(r.ctx)
	if err != nil {
		return "", err
	}
	if w.Enabled {
		return "", fmt.Errorf("%w: updated by %q, reason %q", ErrSuperseded, w.UpdatedBy, w.Reason)
	}
	left, err := r.queuedDurable()
	// A job is left when a sweep passed it over, held by another transaction
	// at that moment (SKIP LOCKED), or when a replica routed it just after:
	// it is swept again, a few times, before the rollback calls it left.
	for pass := 0; err == nil && left > r.rec.JobsFailed && pass < verifySweeps; pass++ {
		if err = clock.Sleep(r.ctx, verifyPause); err == nil {
			if _, err = r.migrate(); err == nil {
				left, err = r.queuedDurable()
			}
		}
	}
	if err != nil {
		return "", err
	}
	if left > r.rec.JobsFailed {
		return "", fmt.Errorf("%d queued durable jobs left (%d dead-lettered) after %d more sweeps: %s",
			left, r.rec.JobsFailed, verifySweeps, r.describeQueued())
	}
	if left == 0 {
		return "flag off; no queued durable job left", nil
	}
	return fmt.Sprintf("flag off; %d queued durable jobs left, all on the migration_failed list", left), nil
}

// verifySweeps and verifyPause are how often, and how far apart, the verify
// step sweeps again while a queued durable job is left.
const (
	verifySweeps = 3
	verifyPause  = 200 * time.Millisecond
)

// queuedDurable counts the queued durable jobs.
func (r *rollbackRun) queuedDurable() (int, error) {
	return r.s.st.CountJobs(r.ctx, store.JobFilter{Backend: job.BackendDurable, Status: job.StatusQueued})
}

// describeQueued names a few queued durable jobs with their stage and how
// long ago they last changed, for the operator (and the test) that reads
// why a rollback failed.
func (r *rollbackRun) describeQueued() string {
	jobs, err := r.s.st.ListQueued(r.ctx, job.BackendDurable, r.s.now().Add(time.Hour), 5)
	if err != nil {
		return err.Error()
	}
	var parts []string
	for _, j := range jobs {
		parts = append(parts, fmt.Sprintf("%s (stage %q, changed %s ago)", j.ID, j.Stage, r.s.now().Sub(j.UpdatedAt).Round(time.Millisecond)))
	}
	return strings.Join(parts, ", ")
}

// record finishes rec as its steps went and saves it, even when ctx has
// ended; a record that cannot be saved is ErrNotRecorded, joined with the
// first failed step's error.
func (s *Service) record(ctx context.Context, rec *store.AuditRecord, steps *stepper) error {
	rec.Status = "completed"
	if !steps.ok {
		rec.Status = "failed"
	}
	rec.FinishedAt = s.now().UTC()
	if err := s.st.InsertAudit(context.WithoutCancel(ctx), *rec); err != nil {
		return errors.Join(fmt.Errorf("%w: %v", ErrNotRecorded, err), steps.firstErr)
	}
	if s.OnRecord != nil {
		s.OnRecord(*rec)
	}
	return nil
}

// Rollforward steps the durable rollout back up to percent. It never runs by
// itself: an operator decides. A roll-forward refused for want of a durable
// side (ErrNoDurableSide) changes nothing and leaves no record.
func (s *Service) Rollforward(ctx context.Context, percent int, req Request, onStep StepFunc) (store.AuditRecord, error) {
	if percent < 0 || percent > 100 {
		return store.AuditRecord{}, fmt.Errorf("percent %d: must be from 0 to 100", percent)
	}
	if err := job.ValidateReason(req.Reason); err != nil {
		return store.AuditRecord{}, err
	}
	if req.Force && strings.TrimSpace(req.Reason) == "" {
		return store.AuditRecord{}, &job.ValidationError{Field: "reason", Message: ErrForceWithoutReason.Error()}
	}
	now := s.now()
	rec := store.AuditRecord{
		ID:        newID(now),
		Kind:      "rollforward",
		Trigger:   "manual",
		Reason:    req.Reason,
		Actor:     req.Actor,
		StartedAt: now.UTC(),
	}
	steps := &stepper{on: onStep, now: s.now}
	steps.run("check durable side", func() (string, error) {
		if s.durable == nil {
			return "", fmt.Errorf("%w: REDIS_URL is not set", ErrNoDurableSide)
		}
		if err := s.durable.Ping(ctx); err != nil {
			return "", fmt.Errorf("%w: Redis is unreachable: %v", ErrNoDurableSide, err)
		}
		return "Redis answers", nil
	})
	if steps.ok {
		steps.run("clean windows since the rollback", func() (string, error) { return s.checkCleanWindows(ctx, req, &rec) })
	}
	if !steps.ok {
		// Refused, nothing changed: no record, which would stand in front of
		// the last real rollback in `scriptgen report` and the history.
		return store.AuditRecord{}, fmt.Errorf("rollforward: %w", steps.firstErr)
	}
	if steps.ok {
		steps.run("flag on", func() (string, error) {
			on := store.WorkerSetting{
				Enabled:        percent > 0,
				RolloutPercent: percent,
				Reason:         "rollforward: " + req.Reason,
				UpdatedBy:      req.Actor,
			}
			if _, err := s.st.PutWorkerSetting(ctx, on); err != nil {
				return "", err
			}
			rec.Actions = append(rec.Actions, fmt.Sprintf("Durable rollout set to %d%%", percent))
			if s.OnFlag != nil {
				s.OnFlag(ctx)
			}
			return fmt.Sprintf("durable rollout %d%% of projects (sticky by project)", percent), nil
		})
	}
	if err := s.record(ctx, &rec, steps); err != nil {
		return rec, err
	}
	if !steps.ok {
		return rec, fmt.Errorf("rollforward: %w", steps.firstErr)
	}
	return rec, nil
}

type stepper struct {
	on       StepFunc
	now      func() time.Time
	ok       bool
	firstErr error // the first step's failure, named by its step
	started  bool
	epoch    int64 // the leader's term every step carries (0: an operator's)
}

func (s *stepper) run(name string, fn func() (string, error)) {
	if !s.started {
		s.ok, s.started = true, true
	}
	if errors.Is(s.firstErr, store.ErrFenced) {
		// A deposed leader stops: its decision is no longer its own.
		s.emit(Step{Name: name, Detail: "skipped: this controller was deposed"})
		return
	}
	start := s.now()
	detail, err := fn()
	st := Step{
		Name:   name,
		OK:     err == nil,
		Detail: detail,
		Took:   s.now().Sub(start),
	}
	if err != nil {
		st.Detail = err.Error()
		if s.ok {
			s.firstErr = fmt.Errorf("%s: %w", name, err)
		}
		s.ok = false
	}
	s.emit(st)
}

func (s *stepper) emit(st Step) {
	st.LeaderEpoch = s.epoch
	st.TookMS = float64(st.Took.Microseconds()) / 1000
	if s.on != nil {
		s.on(st)
	}
}

// newID is a record's id; now makes one when no UUID can be had.
func newID(now time.Time) string {
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Sprintf("rb-%d", now.UnixNano())
	}
	return id.String()
}

// Sweep moves queued durable jobs that waited longer than grace to
// background_tasks. The reconciler runs it while the durable worker is off, so
// that a job routed by a replica that had not yet seen the flag, or requeued
// when a durable worker died after the rollback, never waits for a worker that
// is gone.
func (s *Service) Sweep(ctx context.Context, grace time.Duration) (int, error) {
	queued, err := s.st.ListQueued(ctx, job.BackendDurable, s.now().Add(-grace), migratePage)
	if err != nil || len(queued) == 0 {
		return 0, err
	}
	ids := make([]string, 0, len(queued))
	for _, j := range queued {
		if s.KnownKinds[j.Kind] {
			ids = append(ids, j.ID)
		}
	}
	moved, err := s.st.MigrateQueued(ctx, job.BackendDurable, job.BackendBackgroundTasks, ids, len(ids))
	if err != nil {
		return 0, err
	}
	s.afterMove(ctx, job.BackendDurable, job.BackendBackgroundTasks, moved)
	if len(moved) > 0 {
		s.log.Info("Swept queued durable jobs to background_tasks", "count", len(moved))
	}
	return len(moved), nil
}

// checkCleanWindows refuses a roll-forward (ErrTooSoon) until CleanWindows
// clean windows have passed since the last completed rollback, counted from
// the rollback's end or from the last unclean reading after it, whichever is
// later; a forced one goes on and says so in its record.
func (s *Service) checkCleanWindows(ctx context.Context, req Request, rec *store.AuditRecord) (string, error) {
	if s.CleanWindows <= 0 || s.CleanWindow <= 0 {
		return "no clean windows required (ROLLFORWARD_CLEAN_WINDOWS=0)", nil
	}
	recs, err := s.st.ListAudits(ctx, 100)
	if err != nil {
		return "", err
	}
	var last *store.AuditRecord
	for i := range recs {
		if recs[i].Kind == "rollback" && recs[i].Status == "completed" {
			last = &recs[i]
			break
		}
	}
	if last == nil {
		return "no rollback recorded", nil
	}
	from, why := last.FinishedAt, "the rollback"
	unclean, detail, err := s.st.LastUnclean(ctx)
	if err != nil {
		return "", err
	}
	if unclean.After(from) {
		from, why = unclean, "an unclean reading ("+detail+")"
	}
	passed := int(s.now().Sub(from) / s.CleanWindow)
	status := fmt.Sprintf("%d of %d clean windows of %s since %s at %s", min(passed, s.CleanWindows), s.CleanWindows,
		s.CleanWindow, why, from.UTC().Format(time.RFC3339))
	if passed >= s.CleanWindows {
		return status, nil
	}
	if !req.Force {
		return "", fmt.Errorf("%w: %s; wait, or force it with a reason", ErrTooSoon, status)
	}
	rec.Actions = append(rec.Actions, "Forced before the clean windows had passed: "+status)
	return "forced: " + status, nil
}

// MarkUnclean notes, under the controller's fence, that its readings were
// not clean while the durable worker was off.
func (s *Service) MarkUnclean(ctx context.Context, fence store.Fence, detail string) error {
	return s.st.MarkUnclean(store.WithFence(ctx, fence), s.now(), detail)
}
