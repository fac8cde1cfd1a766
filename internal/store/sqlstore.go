package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/job"
)

// SQL is the Store over database/sql shared by the drivers.
type SQL struct {
	// W takes every write; R serves reads. They are one pool on PostgreSQL and
	// a single-connection writer beside a reader pool on SQLite.
	W, R  *sql.DB
	Clock clock.Clock
	rb    rebinder
	stmts stmtCache
	reads readStmts

	groupsOnce  sync.Once
	creates     group[createReq, createRes]
	picks       group[pickReq, pickRes]
	claims      group[claimReq, claimRes]
	completes   group[completeReq, completeRes]
	checkpoints group[checkpointReq, checkpointRes]
	closing     chan struct{}
	stopped     chan struct{} // closed once every committer has returned
	batchers    sync.WaitGroup
	onEvents    eventHook // onevents.go
	backoff     atomic.Pointer[job.Backoff]
}

// NewSQL builds the shared store for a driver.
func NewSQL(w, r *sql.DB, d Dialect, clk clock.Clock) *SQL {
	if clk == nil {
		clk = clock.Real{}
	}
	return &SQL{W: w, R: r, Clock: clk, rb: rebinder{d: d}, closing: make(chan struct{}), stopped: make(chan struct{})}
}

// Q rebinds a '?' query to the driver's placeholders; driver packages use it for
// their own queries.
func (s *SQL) Q(q string) string { return s.rb.rebind(q) }

// Driver names the database driver.
func (s *SQL) Driver() string { return s.rb.d.Name }

// WarmConns is how many read connections serve opens as it starts (Warm):
// ten clients at once, the seed's own check of the list (ab -c 10).
const WarmConns = 10

// DefaultPage is a list's page when its caller names none (the API's
// default limit in api/openapi.yaml): the jobs', episodes', documents' and
// rollbacks'.
const DefaultPage = 50

// Warm opens up to n of the read pool's connections at once (never more than
// it holds) and runs the job list's first page on each (every job but
// verify's project, newest first: what GET /api/generation asks first),
// holding them all busy until each has its own, then leaves them idle in the
// pool. So the first requests after a start neither wait for a connection of
// their own nor pay for its first query: a new PostgreSQL backend reads the
// catalog and the planner's statistics, the list's statement is prepared on
// it, and a new SQLite connection reads the schema and the table's first
// pages. The first `ab -n 100 -c 10` on the list after a start, PostgreSQL
// with 100,000 jobs, ten starts of each: without Warm a mean of 3.9–4.7 ms
// and a p99 of 13–36 ms; with connections that only looked at the jobs
// 3.1–3.5 and 7–20 ms; with the list's own query 3.0–3.4 and 6–10 ms
// (bench/README.md, issue 21). It returns how many connections it warmed:
// one that fails is only not warmed, and the pool opens it again when needed.
func (s *SQL) Warm(ctx context.Context, n int) int {
	n = min(n, s.R.Stats().MaxOpenConnections)
	ctx, cancel := context.WithTimeout(ctx, warmTimeout)
	defer cancel()
	q, args := JobFilter{ExcludeProjectID: job.VerifyProject, Limit: DefaultPage}.listQuery()
	var open sync.WaitGroup
	open.Add(n)
	allOpen := make(chan struct{})
	go func() { open.Wait(); close(allOpen) }()
	var warmed atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			rows, err := s.query(ctx, q, args...)
			open.Done()
			if err != nil {
				return
			}
			defer rows.Close()
			// A connection whose rows are open is busy: until all n are,
			// none goes back to the pool for another to take.
			select {
			case <-allOpen:
			case <-ctx.Done():
				return
			}
			for rows.Next() {
				if _, err := scanJob(rows); err != nil {
					return
				}
			}
			if rows.Err() == nil {
				warmed.Add(1)
			}
		})
	}
	wg.Wait()
	return int(warmed.Load())
}

// warmTimeout bounds Warm: a start is not held up by a database that is slow
// to answer (the pool opens what Warm did not).
const warmTimeout = 5 * time.Second

// Ping checks that the database answers.
func (s *SQL) Ping(ctx context.Context) error { return s.R.PingContext(ctx) }

// Close closes both pools.
func (s *SQL) Close() error {
	// No committer may start once Close waits for them.
	s.groupsOnce.Do(func() {})
	close(s.closing)
	s.batchers.Wait()
	close(s.stopped)
	s.closeStatements()
	err := s.W.Close()
	if s.R != s.W {
		err = errors.Join(err, s.R.Close())
	}
	return err
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

const jobColumns = `id, kind, project_id, payload, COALESCE(idempotency_key, ''), request_hash, status, backend,
	dispatch_epoch, attempt, max_attempts, lease_owner, lease_expires_at, progress, stage,
	result, error, created_at, updated_at, started_at, finished_at, retry_at`

type scanner interface{ Scan(dest ...any) error }

func scanJob(sc scanner) (job.Job, error) {
	var j job.Job
	var payload, result string
	var leaseExp, created, updated, started, finished, retryAt int64
	err := sc.Scan(&j.ID, &j.Kind, &j.ProjectID, &payload, &j.IdempotencyKey, &j.RequestHash,
		&j.Status, &j.Backend, &j.DispatchEpoch, &j.Attempt, &j.MaxAttempts, &j.LeaseOwner,
		&leaseExp, &j.Progress, &j.Stage, &result, &j.Error, &created, &updated, &started, &finished, &retryAt)
	if errors.Is(err, sql.ErrNoRows) {
		return j, job.ErrNotFound
	}
	if err != nil {
		return j, err
	}
	j.Payload = json.RawMessage(payload)
	if result != "" {
		j.Result = json.RawMessage(result)
	}
	j.LeaseExpiresAt = fromMicros(leaseExp)
	j.CreatedAt, j.UpdatedAt = fromMicros(created), fromMicros(updated)
	j.StartedAt, j.FinishedAt = fromMicros(started), fromMicros(finished)
	j.RetryAt = fromMicros(retryAt)
	return j, nil
}

// execer is a *sql.Tx or *sql.DB.
type execer interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

// inTx runs fn in a write transaction.
func (s *SQL) inTx(ctx context.Context, fn func(tx *Tx) error) error {
	sqlTx, err := s.W.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	tx := &Tx{Tx: sqlTx, s: s}
	err = fn(tx)
	if err == nil {
		if err = tx.Commit(); err != nil {
			err = fmt.Errorf("commit: %w", err)
		} else {
			s.committed(tx)
		}
	} else {
		tx.Rollback()
	}
	s.prepareWanted(ctx)
	return err
}

// appendEvent writes the event of a transition whose update returned seq.
func (s *SQL) appendEvent(ctx context.Context, ex execer, e job.Event) error {
	_, err := ex.ExecContext(ctx, s.Q(s.announced(`INSERT INTO job_events (job_id, seq, type, status, progress, stage, message, data, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)), eventArgs(e)...)
	if err != nil {
		return fmt.Errorf("append event to job %s: %w", e.JobID, err)
	}
	s.appended(ex, e)
	return nil
}

// appendEvents writes many events with multi-row statements (migrations of
// thousands of jobs), announcing them like appendEvent does.
func (s *SQL) appendEvents(ctx context.Context, tx *Tx, evs []job.Event) error {
	const chunk = 200
	for start := 0; start < len(evs); start += chunk {
		part := evs[start:min(start+chunk, len(evs))]
		q := `INSERT INTO job_events (job_id, seq, type, status, progress, stage, message, data, created_at) VALUES ` +
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?), ", len(part)), ", ")
		args := make([]any, 0, 9*len(part))
		for _, e := range part {
			args = append(args, eventArgs(e)...)
		}
		if _, err := tx.ExecContext(ctx, s.Q(s.announced(q)), args...); err != nil {
			return fmt.Errorf("append %d events: %w", len(part), err)
		}
		for _, e := range part {
			s.appended(tx, e)
		}
	}
	return nil
}

// announced is an insert of events that also announces them, where the
// dialect can: once per job of the inserted rows, not once per row. A batch
// of checkpoints appends several events of a job; PostgreSQL would fold the
// job's identical notifications into one at commit anyway, but only after a
// pg_notify call and a lookup in the transaction's pending list for each.
func (s *SQL) announced(insert string) string {
	if s.rb.d.Notify == nil {
		return insert
	}
	return `WITH ev AS (` + insert + ` RETURNING job_id) SELECT ` + s.rb.d.Notify("job_id") + ` FROM (SELECT DISTINCT job_id FROM ev) AS ev`
}

func eventArgs(e job.Event) []any {
	data := "null"
	if len(e.Data) > 0 {
		data = string(e.Data)
	}
	return []any{e.JobID, e.Seq, e.Type, e.Status, e.Progress, e.Stage, e.Message, data, micros(e.CreatedAt)}
}

var errExisting = errors.New("idempotency key exists")

func (s *SQL) sameRequest(existing job.Job, nj NewJob) (job.Job, bool, error) {
	if existing.RequestHash != nj.RequestHash {
		return job.Job{}, false, job.ErrIdempotencyMismatch
	}
	return existing, false, nil
}

// GetJob reads one job.
func (s *SQL) GetJob(ctx context.Context, id string) (job.Job, error) {
	j, err := scanJob(s.queryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = ?`, id))
	if err != nil && !errors.Is(err, job.ErrNotFound) {
		return j, fmt.Errorf("get job %s: %w", id, err)
	}
	return j, err
}

func (f JobFilter) where() (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, v any) {
		conds = append(conds, cond)
		args = append(args, v)
	}
	if f.Tenant != nil {
		add("tenant_id = ?", *f.Tenant)
	}
	if f.ProjectIDs != nil {
		if len(f.ProjectIDs) == 0 {
			conds = append(conds, "1 = 0")
		} else {
			conds = append(conds, "project_id IN (?"+strings.Repeat(", ?", len(f.ProjectIDs)-1)+")")
			for _, p := range f.ProjectIDs {
				args = append(args, p)
			}
		}
	}
	if f.ProjectID != "" {
		add("project_id = ?", f.ProjectID)
	}
	if f.ExcludeProjectID != "" {
		add("project_id <> ?", f.ExcludeProjectID)
	}
	if f.Status != "" {
		add("status = ?", f.Status)
	}
	if f.Kind != "" {
		add("kind = ?", f.Kind)
	}
	if f.Backend != "" {
		add("backend = ?", f.Backend)
	}
	if f.Cursor != "" {
		add("id < ?", f.Cursor)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// listQuery is ListJobs' statement and its arguments: a page of f.Limit and
// one more, to tell whether another page follows.
func (f JobFilter) listQuery() (string, []any) {
	where, args := f.where()
	return `SELECT ` + jobColumns + ` FROM jobs` + where + ` ORDER BY id DESC LIMIT ?`, append(args, f.Limit+1)
}

// ListJobs lists jobs newest first, a page at a time.
func (s *SQL) ListJobs(ctx context.Context, f JobFilter) ([]job.Job, string, error) {
	if f.Limit <= 0 {
		f.Limit = DefaultPage
	}
	q, args := f.listQuery()
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list jobs: %w", err)
	}
	defer rows.Close()
	jobs := []job.Job{}
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, "", err
		}
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if len(jobs) > f.Limit {
		jobs = jobs[:f.Limit]
		next = jobs[len(jobs)-1].ID
	}
	return jobs, next, nil
}

// CountJobs counts the jobs that match f (its cursor and limit are ignored).
func (s *SQL) CountJobs(ctx context.Context, f JobFilter) (int, error) {
	f.Cursor = ""
	where, args := f.where()
	var n int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM jobs`+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count jobs: %w", err)
	}
	return n, nil
}

// CountByStatus counts the jobs that match f for each status.
func (s *SQL) CountByStatus(ctx context.Context, f JobFilter) (map[job.Status]int, error) {
	f.Cursor, f.Status = "", ""
	where, args := f.where()
	rows, err := s.query(ctx, `SELECT status, COUNT(*) FROM jobs`+where+` GROUP BY status`, args...)
	if err != nil {
		return nil, fmt.Errorf("count jobs by status: %w", err)
	}
	defer rows.Close()
	counts := map[job.Status]int{}
	for rows.Next() {
		var st job.Status
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		counts[st] = n
	}
	return counts, rows.Err()
}

// transition applies one fenced update that returns the job, and appends the
// event it makes. update must bump event_seq; the event's Seq is filled from
// it. No row matched is job.ErrStaleLease.
func (s *SQL) transition(ctx context.Context, tx *Tx, update string, args []any, ev func(j job.Job) job.Event) (job.Job, error) {
	jobs, err := s.transitionAll(ctx, tx, update, args, ev)
	if err != nil {
		return job.Job{}, err
	}
	if len(jobs) == 0 {
		return job.Job{}, job.ErrStaleLease
	}
	return jobs[0], nil
}

// transitionAll is transition for an update that may match many jobs.
func (s *SQL) transitionAll(ctx context.Context, tx *Tx, update string, args []any, ev func(j job.Job) job.Event) ([]job.Job, error) {
	rows, err := tx.QueryContext(ctx, s.Q(update+` RETURNING event_seq, `+jobColumns), args...)
	if err != nil {
		return nil, err
	}
	var jobs []job.Job
	var evs []job.Event
	now := s.Clock.Now()
	for rows.Next() {
		var seq int64
		j, err := scanJob(multiScanner{rows, &seq, nil})
		if err != nil {
			rows.Close()
			return nil, err
		}
		e := ev(j)
		e.JobID, e.Seq, e.CreatedAt = j.ID, seq, now
		jobs, evs = append(jobs, j), append(evs, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(evs) == 1 {
		return jobs, s.appendEvent(ctx, tx, evs[0]) // the hot path, as a prepared statement
	}
	return jobs, s.appendEvents(ctx, tx, evs)
}

// multiScanner scans a leading column before the job's columns, and any
// trailing ones after them.
type multiScanner struct {
	rows  *sql.Rows
	first *int64
	last  []any
}

func (m multiScanner) Scan(dest ...any) error {
	return m.rows.Scan(append(append([]any{m.first}, dest...), m.last...)...)
}

func statusEvent(msg string) func(j job.Job) job.Event {
	return func(j job.Job) job.Event {
		return job.Event{Type: job.EventStatus, Status: j.Status, Progress: j.Progress, Stage: j.Stage, Message: msg}
	}
}

const claimSet = `UPDATE jobs SET status = 'running', attempt = attempt + 1, lease_owner = ?, lease_expires_at = ?,
	started_at = CASE WHEN started_at = 0 THEN ? ELSE started_at END, stage = 'started', error = '',
	retry_at = 0, updated_at = ?, event_seq = event_seq + 1`

// ClaimNext leases the oldest queued job of a backend.
func (s *SQL) ClaimNext(ctx context.Context, backend job.Backend, owner string, leaseFor time.Duration) (job.Job, error) {
	jobs, err := s.ClaimBatch(ctx, backend, owner, leaseFor, 1, "")
	if err != nil {
		return job.Job{}, err
	}
	if len(jobs) == 0 {
		return job.Job{}, job.ErrNotFound
	}
	return jobs[0], nil
}

// ClaimBatch leases up to n of the oldest queued jobs of a backend in one
// transaction, oldest first; with after set, of those whose id sorts after it;
// with a tenant cap, none of a tenant at its cap (pickFair).
func (s *SQL) ClaimBatch(ctx context.Context, backend job.Backend, owner string, leaseFor time.Duration, n int, after string, opts ...ClaimOptions) ([]job.Job, error) {
	r, err := s.picks.do(s, pickReq{backend, owner, leaseFor, n, after, claimOptions(opts)})
	if err == nil {
		err = r.err
	}
	if err != nil {
		return nil, fmt.Errorf("claim %s jobs: %w", backend, err)
	}
	sort.Slice(r.jobs, func(a, b int) bool { return r.jobs[a].ID < r.jobs[b].ID })
	return r.jobs, nil
}

type pickReq struct {
	backend  job.Backend
	owner    string
	leaseFor time.Duration
	n        int
	after    string
	opts     ClaimOptions
}

type pickRes struct {
	jobs []job.Job
	err  error
}

// pick leases up to r.n of the oldest queued jobs of a backend. ex is a
// transaction, or with a writable CTE the pool: the pick, its events and their
// announcement are then one statement (claimWithEvents).
func (s *SQL) pick(ctx context.Context, ex execer, r pickReq) ([]job.Job, error) {
	now := s.Clock.Now()
	// The pick is a CTE: PostgreSQL materialises it once, where an IN
	// subquery with SKIP LOCKED may be run again and pick more than n. Its
	// rows are queued and locked (PostgreSQL rechecks a locked row's
	// condition on its latest version), so the update finds them by id alone:
	// a status condition there let the planner, without statistics on a young
	// table, scan every queued row for each claim.
	picked := `picked AS (SELECT id FROM jobs WHERE status = 'queued' AND backend = ? AND id > ? AND retry_at <= ?
		ORDER BY id LIMIT ? ` + s.rb.d.SkipLocked + `)`
	args := []any{r.backend, r.after, micros(now), r.n}
	if r.opts.TenantMaxRunning > 0 {
		picked, args = s.pickFair(r, now)
	}
	if s.takesTurns(r.opts) {
		if err := s.takeTurn(ctx, ex.(*Tx)); err != nil {
			return nil, err
		}
	}
	update := claimSet + ` WHERE id IN (SELECT id FROM picked)`
	args = append(args, r.owner, micros(now.Add(r.leaseFor)), micros(now), micros(now))
	if s.rb.d.WritableCTE && s.rb.d.Notify != nil {
		return s.claimWithEvents(ctx, ex, picked, update, args, now)
	}
	return s.transitionAll(ctx, ex.(*Tx), `WITH `+picked+` `+update, args, claimEvent)
}

// pickFair is the pick under a tenant cap: an index-ordered scan of the queued
// jobs (after r.after) that skips the tenants at their cap takes a window of
// the oldest others (cand), a few more than asked for; each of those gets its
// tenant's load if it ran — the tenant's running jobs plus its rank among the
// tenant's jobs in the window — and the n of least load that keep their tenant
// within the cap are picked, oldest first among equals. So a batch never takes
// a tenant past its cap, and a free slot goes to the tenant with the fewest
// running jobs among the oldest queued. The open server's projects (the
// empty tenant) are one namespace rather than a tenant among others, and are
// not capped. It returns the CTEs and their arguments.
func (s *SQL) pickFair(r pickReq, now time.Time) (string, []any) {
	running, args := runningByTenant(r.opts, r.owner, r.backend)
	window := min(4*r.n, r.n+64)
	return running + `,
		cand AS (SELECT id, tenant_id FROM jobs WHERE status = 'queued' AND backend = ? AND id > ? AND retry_at <= ?
			AND tenant_id NOT IN (SELECT tenant_id FROM running WHERE n >= ? AND tenant_id <> '')
			ORDER BY id LIMIT ? ` + s.rb.d.SkipLocked + `),
		picked AS (SELECT id FROM (SELECT cand.id, cand.tenant_id,
				COALESCE(running.n, 0) + ROW_NUMBER() OVER (PARTITION BY cand.tenant_id ORDER BY cand.id) AS load
				FROM cand LEFT JOIN running ON running.tenant_id = cand.tenant_id) AS l
			WHERE load <= ? OR tenant_id = '' ORDER BY load, id LIMIT ?)`,
		append(args, r.backend, r.after, micros(now), r.opts.TenantMaxRunning, window, r.opts.TenantMaxRunning, r.n)
}

// runningByTenant is the CTE "running": the running jobs of each tenant and
// backend — of one backend when backend is set; every process's, or with
// PerOwner the owner's — and its arguments.
func runningByTenant(o ClaimOptions, owner string, backend job.Backend) (string, []any) {
	q := `running AS (SELECT tenant_id, backend, COUNT(*) AS n FROM jobs WHERE status = 'running'`
	var args []any
	if backend != "" {
		q += ` AND backend = ?`
		args = append(args, backend)
	}
	if o.PerOwner {
		q += ` AND lease_owner = ?`
		args = append(args, owner)
	}
	return q + ` GROUP BY tenant_id, backend)`, args
}

// tenantTurnLock makes claims under a cap counted over every process take
// turns on PostgreSQL, where several processes claim at once: each claim
// counts the running jobs with a snapshot taken after the last one
// committed, so that two cannot both take a tenant's last slot. The lock is
// the transaction's and ends with it. SQLite has one writer, and a
// per-owner cap is counted by its one claimer.
const tenantTurnLock = `SELECT pg_advisory_xact_lock(727225)`

// takesTurns reports whether a claim under o needs tenantTurnLock, and so a
// transaction of its own.
func (s *SQL) takesTurns(o ClaimOptions) bool {
	return o.TenantMaxRunning > 0 && !o.PerOwner && !s.rb.d.SingleWriter
}

// takeTurn waits for tenantTurnLock in tx.
func (s *SQL) takeTurn(ctx context.Context, tx *Tx) error {
	if _, err := tx.ExecContext(ctx, tenantTurnLock); err != nil {
		return fmt.Errorf("wait for the turn to claim under a tenant cap: %w", err)
	}
	return nil
}

const leaseHeld = ` WHERE id = ? AND dispatch_epoch = ? AND lease_owner = ? AND status = 'running'`

func leaseArgs(l job.Lease) []any { return []any{l.JobID, l.Epoch, l.Owner} }

// ExtendLease pushes the lease's expiry forward while the holder still has it.
func (s *SQL) ExtendLease(ctx context.Context, l job.Lease, leaseFor time.Duration) error {
	now := s.Clock.Now()
	res, err := s.W.ExecContext(ctx, s.Q(`UPDATE jobs SET lease_expires_at = ?, updated_at = ?`+leaseHeld),
		append([]any{micros(now.Add(leaseFor)), micros(now)}, leaseArgs(l)...)...)
	if err != nil {
		return fmt.Errorf("extend lease of job %s: %w", l.JobID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return job.ErrStaleLease
	}
	return nil
}

// ReportProgress records progress and appends its event.
func (s *SQL) ReportProgress(ctx context.Context, l job.Lease, p Progress) error {
	now := s.Clock.Now()
	return s.inTx(ctx, func(tx *Tx) error {
		_, err := s.transition(ctx, tx, `UPDATE jobs SET progress = ?, stage = ?, updated_at = ?, event_seq = event_seq + 1`+leaseHeld,
			append([]any{p.Percent, p.Stage, micros(now)}, leaseArgs(l)...),
			func(j job.Job) job.Event {
				return job.Event{Type: job.EventProgress, Status: job.StatusRunning, Progress: p.Percent, Stage: p.Stage, Message: p.Message}
			})
		return err
	})
}

// SetBackoff sets the delay between a failed job's attempts.
func (s *SQL) SetBackoff(b job.Backoff) { s.backoff.Store(&b) }

// retryAt is the SQL of a failed attempt's retry_at and its arguments: now
// plus the backoff of the row's attempt where requeued (with its arguments
// condArgs) holds, else 0. The delays are literals, one per attempt up to
// the cap's, so that one statement gives each row its own.
func (s *SQL) retryAt(requeued string, condArgs []any, now time.Time) (string, []any) {
	var steps []time.Duration
	if b := s.backoff.Load(); b != nil {
		steps = b.Steps()
	}
	if len(steps) == 0 {
		return `0`, nil
	}
	delay := fmt.Sprint(steps[len(steps)-1].Microseconds())
	if len(steps) > 1 {
		var b strings.Builder
		b.WriteString(`CASE`)
		for i, d := range steps[:len(steps)-1] {
			fmt.Fprintf(&b, ` WHEN attempt <= %d THEN %d`, i+1, d.Microseconds())
		}
		b.WriteString(` ELSE ` + delay + ` END`)
		delay = b.String()
	}
	return `CASE WHEN ` + requeued + ` THEN CAST(? AS BIGINT) + ` + delay + ` ELSE 0 END`, append(condArgs, micros(now))
}

// retryMessage tells when a job queued again after a failed attempt runs
// next: "attempt 2 of 3 in 2s".
func retryMessage(j job.Job, now time.Time) string {
	when := "at once"
	if d := j.RetryAt.Sub(now); d > 0 {
		when = "in " + d.Round(time.Millisecond).String()
	}
	return fmt.Sprintf("attempt %d of %d %s", j.Attempt+1, j.MaxAttempts, when)
}

// Fail records a failed attempt: the job is queued again with the next epoch
// while attempts remain and the failure is retryable, not to be claimed
// before its backoff has passed (retry_at), else it is failed.
func (s *SQL) Fail(ctx context.Context, l job.Lease, reason string, retryable bool) (job.Job, error) {
	now := s.Clock.Now()
	var j job.Job
	retry := 0
	if retryable {
		retry = 1
	}
	retryAt, retryArgs := s.retryAt(`? = 1 AND attempt < max_attempts`, []any{retry}, now)
	args := append([]any{retry, reason, retry, retry, micros(now)}, retryArgs...)
	err := s.inTx(ctx, func(tx *Tx) error {
		var err error
		j, err = s.transition(ctx, tx, `UPDATE jobs SET
			status = CASE WHEN ? = 1 AND attempt < max_attempts THEN 'queued' ELSE 'failed' END,
			dispatch_epoch = dispatch_epoch + 1, error = ?, lease_owner = '', lease_expires_at = 0,
			stage = CASE WHEN ? = 1 AND attempt < max_attempts THEN 'retrying' ELSE 'failed' END,
			finished_at = CASE WHEN ? = 1 AND attempt < max_attempts THEN 0 ELSE CAST(? AS BIGINT) END,
			retry_at = `+retryAt+`, updated_at = ?, event_seq = event_seq + 1`+leaseHeld,
			append(append(args, micros(now)), leaseArgs(l)...),
			func(j job.Job) job.Event {
				if j.Status == job.StatusFailed {
					return job.Event{Type: job.EventError, Status: job.StatusFailed, Progress: j.Progress, Stage: j.Stage, Message: reason}
				}
				return job.Event{Type: job.EventStatus, Status: job.StatusQueued, Progress: j.Progress, Stage: j.Stage,
					Message: "attempt failed, will retry: " + reason + "; " + retryMessage(j, now)}
			})
		return err
	})
	if err != nil && !errors.Is(err, job.ErrStaleLease) {
		return j, fmt.Errorf("fail job %s: %w", l.JobID, err)
	}
	return j, err
}

// Release gives a running job back to the queue with the next epoch; the
// attempt it used is given back too, since the job did not fail.
func (s *SQL) Release(ctx context.Context, l job.Lease, reason string) error {
	now := s.Clock.Now()
	err := s.inTx(ctx, func(tx *Tx) error {
		_, err := s.transition(ctx, tx, `UPDATE jobs SET status = 'queued', dispatch_epoch = dispatch_epoch + 1,
			attempt = attempt - 1, lease_owner = '', lease_expires_at = 0, stage = 'released', updated_at = ?,
			event_seq = event_seq + 1`+leaseHeld,
			append([]any{micros(now)}, leaseArgs(l)...), statusEvent(reason))
		return err
	})
	if err != nil && !errors.Is(err, job.ErrStaleLease) {
		return fmt.Errorf("release job %s: %w", l.JobID, err)
	}
	return err
}

// ExpireLeases requeues running jobs whose holder stopped renewing its lease.
func (s *SQL) ExpireLeases(ctx context.Context) ([]job.Job, error) {
	now := s.Clock.Now()
	var out []job.Job
	retryAt, retryArgs := s.retryAt(`attempt < max_attempts`, nil, now)
	args := append(append([]any{micros(now)}, retryArgs...), micros(now), micros(now))
	err := s.inTx(ctx, func(tx *Tx) error {
		var err error
		out, err = s.transitionAll(ctx, tx, `UPDATE jobs SET
			status = CASE WHEN attempt >= max_attempts THEN 'failed' ELSE 'queued' END,
			stage = CASE WHEN attempt >= max_attempts THEN 'failed' ELSE 'lease_expired' END,
			error = 'lease of ' || lease_owner || ' expired',
			finished_at = CASE WHEN attempt >= max_attempts THEN CAST(? AS BIGINT) ELSE 0 END,
			retry_at = `+retryAt+`,
			dispatch_epoch = dispatch_epoch + 1, lease_owner = '', lease_expires_at = 0, updated_at = ?,
			event_seq = event_seq + 1
			WHERE status = 'running' AND lease_expires_at < ?`, args,
			func(j job.Job) job.Event {
				if j.Status == job.StatusFailed {
					return job.Event{Type: job.EventError, Status: j.Status, Progress: j.Progress, Stage: j.Stage, Message: j.Error}
				}
				return job.Event{Type: job.EventStatus, Status: j.Status, Progress: j.Progress, Stage: j.Stage,
					Message: j.Error + "; " + retryMessage(j, now)}
			})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("expire leases: %w", err)
	}
	return out, nil
}

// Cancel stops a queued or running job; its holder loses the lease.
func (s *SQL) Cancel(ctx context.Context, id string) (job.Job, error) {
	now := s.Clock.Now()
	var j job.Job
	err := s.inTx(ctx, func(tx *Tx) error {
		var err error
		j, err = s.transition(ctx, tx, `UPDATE jobs SET status = 'cancelled', stage = 'cancelled', retry_at = 0,
			dispatch_epoch = dispatch_epoch + 1, lease_owner = '', lease_expires_at = 0, finished_at = ?, updated_at = ?,
			event_seq = event_seq + 1 WHERE id = ? AND status IN ('queued', 'running')`,
			[]any{micros(now), micros(now), id}, statusEvent("cancelled"))
		return err
	})
	if errors.Is(err, job.ErrStaleLease) {
		if _, gerr := s.GetJob(ctx, id); gerr != nil {
			return job.Job{}, gerr
		}
		return job.Job{}, job.ErrNotCancellable
	}
	if err != nil {
		return j, fmt.Errorf("cancel job %s: %w", id, err)
	}
	return j, nil
}

// ListEvents returns a job's events after a sequence number, in order.
func (s *SQL) ListEvents(ctx context.Context, jobID string, afterSeq int64, limit int) ([]job.Event, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.query(ctx, `SELECT job_id, seq, type, status, progress, stage, message, data, created_at
		FROM job_events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?`, jobID, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("list events of job %s: %w", jobID, err)
	}
	defer rows.Close()
	var out []job.Event
	for rows.Next() {
		var e job.Event
		var data string
		var created int64
		if err := rows.Scan(&e.JobID, &e.Seq, &e.Type, &e.Status, &e.Progress, &e.Stage, &e.Message, &data, &created); err != nil {
			return nil, err
		}
		if data != "null" && data != "" {
			e.Data = json.RawMessage(data)
		}
		e.CreatedAt = fromMicros(created)
		out = append(out, e)
	}
	return out, rows.Err()
}

// ListEpisodes lists a project's episodes by number.
func (s *SQL) ListEpisodes(ctx context.Context, projectID string, afterNumber, limit int) ([]job.Episode, error) {
	if limit <= 0 {
		limit = DefaultPage
	}
	rows, err := s.query(ctx, `SELECT project_id, number, title, script, job_id, created_at
		FROM episodes WHERE project_id = ? AND number > ? ORDER BY number LIMIT ?`, projectID, afterNumber, limit)
	if err != nil {
		return nil, fmt.Errorf("list episodes of %s: %w", projectID, err)
	}
	defer rows.Close()
	out := []job.Episode{}
	for rows.Next() {
		e, err := scanEpisode(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// GetEpisode reads one episode.
func (s *SQL) GetEpisode(ctx context.Context, projectID string, number int) (job.Episode, error) {
	e, err := scanEpisode(s.queryRow(ctx, `SELECT project_id, number, title, script, job_id, created_at
		FROM episodes WHERE project_id = ? AND number = ?`, projectID, number))
	if errors.Is(err, sql.ErrNoRows) {
		return e, job.ErrNotFound
	}
	return e, err
}

func scanEpisode(sc scanner) (job.Episode, error) {
	var e job.Episode
	var created int64
	err := sc.Scan(&e.ProjectID, &e.Number, &e.Title, &e.Script, &e.JobID, &created)
	e.CreatedAt = fromMicros(created)
	return e, err
}
