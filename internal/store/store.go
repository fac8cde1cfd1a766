// Package store is the system of record (invariant 1): jobs, their event logs,
// episodes and settings live here and nowhere else. Every state change of a job
// is one conditional update fenced by its dispatch epoch and lease (invariant 2),
// and a job's effects commit in the same transaction as its success
// (invariant 3). The SQL is shared by the drivers; each driver package
// (sqlite, postgres) opens its database, owns its migrations and fills in the
// few places where the dialects differ.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/scriptgen/scriptgen/internal/access"
	"github.com/scriptgen/scriptgen/internal/job"
)

// Store is what the rest of scriptgen knows of the database.
type Store interface {
	DocumentStore
	KeyStore
	LimitStore
	// CreateJob commits a new queued job, or returns the existing job of the same
	// idempotency key and request hash (created is then false).
	CreateJob(ctx context.Context, nj NewJob) (j job.Job, created bool, err error)
	GetJob(ctx context.Context, id string) (job.Job, error)
	ListJobs(ctx context.Context, f JobFilter) (jobs []job.Job, nextCursor string, err error)
	CountJobs(ctx context.Context, f JobFilter) (int, error)
	// CountByStatus counts the jobs that match f for each status, in one query
	// (f's status, cursor and limit are ignored).
	CountByStatus(ctx context.Context, f JobFilter) (map[job.Status]int, error)
	// ListQueued lists queued jobs of a backend last changed before olderThan,
	// oldest first.
	ListQueued(ctx context.Context, backend job.Backend, olderThan time.Time, limit int) ([]job.Job, error)
	// OldestQueuedAt is when the queued job of a backend that has waited
	// longest was queued (last changed), or the zero time when none waits.
	OldestQueuedAt(ctx context.Context, backend job.Backend) (time.Time, error)
	BumpEpoch(ctx context.Context, d job.Dispatch) (job.Job, error)
	// PurgeFinished deletes up to limit jobs that finished before cutoff,
	// oldest first, with their events and script (JOB_RETENTION); their
	// episodes and documents stay. It returns how many it deleted or
	// found deleted: fewer than limit means none older is left. A run of
	// batches shares one PurgeCursor, so each starts where the last ended.
	PurgeFinished(ctx context.Context, cutoff time.Time, limit int, from PurgeCursor) (int, error)

	// ClaimNext takes the oldest queued job of a backend and leases it to owner.
	// It returns job.ErrNotFound when nothing is queued.
	ClaimNext(ctx context.Context, backend job.Backend, owner string, leaseFor time.Duration) (job.Job, error)
	// ClaimBatch leases up to n queued jobs of a backend at once, oldest first,
	// leaving those whose backoff has not passed (RetryAt).
	// With after set, only jobs whose id sorts after it: a claimer that passes
	// the last id it took skips the index entries of the jobs claimed before
	// (PostgreSQL keeps them until VACUUM), and must look from the start ("")
	// now and then for jobs queued again below it. With a tenant cap (opts,
	// at most one) it takes no job of a tenant at its cap, and prefers the
	// tenants with the fewest running jobs among the oldest it looks at.
	ClaimBatch(ctx context.Context, backend job.Backend, owner string, leaseFor time.Duration, n int, after string, opts ...ClaimOptions) ([]job.Job, error)
	// ClaimDispatch leases the job of one dispatch to owner, if that dispatch is
	// still current and the job runnable; otherwise job.ErrStaleLease. A
	// current dispatch whose job waits for its backoff (RetryAt) is refused
	// with ErrNotDue and the job as it is. With a tenant cap (opts, at most
	// one), a current dispatch whose tenant is at its cap is refused with
	// ErrTenantAtCap (and the job as it is): it stays queued as it was.
	ClaimDispatch(ctx context.Context, d job.Dispatch, owner string, leaseFor time.Duration, opts ...ClaimOptions) (job.Job, error)
	ExtendLease(ctx context.Context, l job.Lease, leaseFor time.Duration) error
	ReportProgress(ctx context.Context, l job.Lease, p Progress) error
	// CheckpointScript appends text at offset (in characters) to the job's
	// script so far, with an EventScript event, while l is held (scripts.go).
	CheckpointScript(ctx context.Context, l job.Lease, offset int, text string) error
	// ScriptSoFar is the text the job's attempts have checkpointed.
	ScriptSoFar(ctx context.Context, jobID string) (string, error)
	Complete(ctx context.Context, l job.Lease, c Completion) (job.Job, error)
	// Fail records a failed attempt: queued again, not to be claimed before
	// its backoff has passed (SetBackoff; job.Job.RetryAt), while attempts
	// remain and the failure is retryable, else failed.
	Fail(ctx context.Context, l job.Lease, reason string, retryable bool) (job.Job, error)
	// SetBackoff sets the delay between a failed job's attempts (Fail,
	// ExpireLeases); call it before the store is used. The zero Backoff, the
	// default, queues a failed job again at once.
	SetBackoff(b job.Backoff)
	// Release gives a running job back to the queue with the next epoch.
	Release(ctx context.Context, l job.Lease, reason string) error
	// ExpireLeases requeues (or fails, when out of attempts) running jobs whose
	// lease has run out, each after its backoff like Fail, and returns them
	// as they are now.
	ExpireLeases(ctx context.Context) ([]job.Job, error)
	Cancel(ctx context.Context, id string) (job.Job, error)
	// RetryJob queues a failed job again with its attempts given back
	// (retry.go); ErrNotFailed for a job in another status.
	RetryJob(ctx context.Context, id string) (job.Job, error)

	ListEvents(ctx context.Context, jobID string, afterSeq int64, limit int) ([]job.Event, error)
	EventSeqs(ctx context.Context, ids []string) (map[string]int64, error) // eventseqs.go

	ListEpisodes(ctx context.Context, projectID string, afterNumber, limit int) ([]job.Episode, error)
	GetEpisode(ctx context.Context, projectID string, number int) (job.Episode, error)

	GetWorkerSetting(ctx context.Context) (WorkerSetting, error)
	PutWorkerSetting(ctx context.Context, w WorkerSetting) (WorkerSetting, error)

	RegisterWorker(ctx context.Context, w WorkerProcess) error
	HeartbeatWorker(ctx context.Context, id string, runs RunCounts) error
	HeartbeatReplica(ctx context.Context, id string, flagRevision int64, runs RunCounts) error
	FinishedRuns(ctx context.Context, since time.Time) (map[string]RunCounts, error)
	StopWorker(ctx context.Context, id string) error
	ListWorkers(ctx context.Context, role string, since time.Time) ([]WorkerProcess, error)
	PruneWorkers(ctx context.Context, before time.Time) error

	MigrateQueued(ctx context.Context, from, to job.Backend, ids []string, limit int) ([]job.Job, error)
	InsertAudit(ctx context.Context, a AuditRecord) error
	ListAudits(ctx context.Context, limit int) ([]AuditRecord, error)
	GetAudit(ctx context.Context, id string) (AuditRecord, error)
	AddMigrationFailure(ctx context.Context, f MigrationFailure) error
	ListMigrationFailures(ctx context.Context, limit int) ([]MigrationFailure, error)
	DeleteMigrationFailure(ctx context.Context, jobID string) error
	AcquireLeadership(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// DeleteProject removes all of one project (deleteproject.go): only the
	// reserved project of `scriptgen verify`.
	DeleteProject(ctx context.Context, projectID string) (ProjectDeletion, error)
	// MarkUnclean and LastUnclean keep when the controller's readings were
	// last not clean in rollback mode (fence.go).
	MarkUnclean(ctx context.Context, at time.Time, detail string) error
	LastUnclean(ctx context.Context) (time.Time, string, error)
	// AcquireLease is AcquireLeadership with the term's epoch (fence.go).
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (epoch int64, ok bool, err error)
	// ReleaseLeadership gives up a leadership that holder has, so that
	// another can take it at once rather than when it expires.
	ReleaseLeadership(ctx context.Context, name, holder string) error

	Ping(ctx context.Context) error
	// Warm opens up to n read connections and readies them, for a process
	// that is about to serve requests; it returns how many it opened.
	Warm(ctx context.Context, n int) int
	Driver() string
	Close() error
}

// KeyStore keeps the writers' API keys (hashes, never keys).
type KeyStore interface {
	CreateKey(ctx context.Context, k access.Key) error
	ListKeys(ctx context.Context, tenant string) ([]access.Key, error)
	GetKey(ctx context.Context, id string) (access.Key, error)
	KeyByPrefix(ctx context.Context, prefix string) (access.Key, error)
	HasActiveKeys(ctx context.Context) (bool, error)
	RevokeKey(ctx context.Context, id string, at time.Time) (access.Key, error)
	// RotateKey stores next and revokes old in one transaction, returning old
	// as it is now.
	RotateKey(ctx context.Context, old string, next access.Key) (access.Key, error)
}

// LimitStore keeps what the per-tenant limits count, where every replica
// sees it.
type LimitStore interface {
	TakeToken(ctx context.Context, key string, interval time.Duration, burst int, now time.Time) (ok bool, retryAfter time.Duration, err error)
	TakeTokens(ctx context.Context, key string, count int, interval time.Duration, burst int, now time.Time) (ok bool, retryAfter time.Duration, err error)
	AddUsage(ctx context.Context, tenant string, periods []string, tokens int64) error
	GetUsage(ctx context.Context, tenant, period string) (Usage, error)
	DocumentUsage(ctx context.Context, tenant string) (count, bytes int64, err error)
}

// ClaimOptions limit what a claim may take. The zero value limits nothing.
type ClaimOptions struct {
	// TenantMaxRunning, above 0, is how many jobs of one tenant (jobs.tenant_id)
	// may run at once on the claim's backend: a claim takes no job of a tenant
	// that has that many running, and of one tenant only as many as keep it
	// within. On PostgreSQL claims under a cap counted over every process take
	// turns (an advisory lock), so that two processes cannot both take a
	// tenant's last slot.
	TenantMaxRunning int
	// PerOwner counts only the running jobs leased to the claim's owner: the
	// cap is then a share of that owner's workers (a pool's), not of the
	// backend's.
	PerOwner bool
}

// claimOptions is the one ClaimOptions of a variadic argument.
func claimOptions(opts []ClaimOptions) ClaimOptions {
	if len(opts) == 0 || opts[0].TenantMaxRunning <= 0 {
		return ClaimOptions{}
	}
	return opts[0]
}

// ErrTenantAtCap is a claim refused because the job's tenant already runs
// as many jobs as ClaimOptions.TenantMaxRunning allows. The job is untouched:
// still queued under the same dispatch, its attempts not counted.
var ErrTenantAtCap = errors.New("tenant at its cap of running jobs")

// ErrNotDue refuses the claim of a dispatch whose job was queued again after
// a failed attempt and waits for its backoff (job.Job.RetryAt).
var ErrNotDue = errors.New("job waits for its retry backoff")

// NewJob is a job to be created.
type NewJob struct {
	Kind           job.Kind
	ProjectID      string
	Payload        json.RawMessage
	IdempotencyKey string
	RequestHash    string
	Backend        job.Backend
	MaxAttempts    int
}

// JobFilter narrows a list of jobs. Empty fields match everything.
type JobFilter struct {
	// Tenant, when set, keeps only that tenant's jobs ("" the jobs of the
	// open server's unqualified projects).
	Tenant *string
	// ProjectIDs, when not nil, keeps only the jobs of these projects.
	ProjectIDs []string
	ProjectID  string
	// ExcludeProjectID, when set, leaves that project's jobs out (the
	// reserved project of `scriptgen verify` in writers' lists).
	ExcludeProjectID string
	Status           job.Status
	Kind             job.Kind
	Backend          job.Backend
	Cursor           string
	Limit            int
}

// Progress is one progress report of a running job.
type Progress struct {
	Percent int
	Stage   string
	Message string
}

// Completion is the result of a job and the effects that commit with it.
type Completion struct {
	Result json.RawMessage
	// Episode, when set, is saved under the project's next number; the number is
	// written into the result as "episode_number".
	Episode *job.Episode
	// Chunks, when set, replace the chunks of a document (rag_document jobs).
	Chunks *DocumentChunks
}
