package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
)

// The claims of dispatches and the completions of jobs are group-committed
// like submissions (group.go): the runs of one process that finish at the same
// moment share one transaction whose statements each cover the whole batch.
// Each caller's fencing is unchanged — a claim matches its dispatch epoch, a
// completion its lease.

const maxWorkBatch = 64

// initGroups sets what each group commit does.
func (s *SQL) initGroups() {
	standalone := s.rb.d.WritableCTE && s.rb.d.Notify != nil
	s.creates = group[createReq, createRes]{max: maxCreateBatch, autocommit: standalone,
		apply: func(ctx context.Context, ex execer, qs []createReq, as []createRes) error {
			return s.createAll(ctx, ex, qs, as)
		},
		failed: func(err error) createRes { return createRes{err: err} }}
	s.picks = group[pickReq, pickRes]{max: maxWorkBatch, autocommit: standalone,
		apply: func(ctx context.Context, ex execer, qs []pickReq, as []pickRes) error {
			_, inTx := ex.(*Tx)
			for i, q := range qs {
				var jobs []job.Job
				var err error
				if !inTx && s.takesTurns(q.opts) {
					// Its lock and its statement need a transaction.
					err = s.inTx(ctx, func(tx *Tx) error {
						jobs, err = s.pick(ctx, tx, q)
						return err
					})
				} else {
					jobs, err = s.pick(ctx, ex, q)
				}
				if err != nil && inTx {
					return err
				}
				// A pick that stands alone fails alone: the others committed.
				as[i] = pickRes{jobs: jobs, err: err}
			}
			return nil
		},
		failed: func(err error) pickRes { return pickRes{err: err} }}
	s.claims = group[claimReq, claimRes]{max: maxWorkBatch, autocommit: standalone,
		apply: func(ctx context.Context, ex execer, qs []claimReq, as []claimRes) error {
			return s.claimAll(ctx, ex, qs, as)
		},
		failed: func(err error) claimRes { return claimRes{err: err} }}
	s.completes = group[completeReq, completeRes]{max: maxWorkBatch,
		autocommit: standalone,
		apply: func(ctx context.Context, ex execer, qs []completeReq, as []completeRes) error {
			return s.completeAll(ctx, ex, qs, as)
		},
		failed: func(err error) completeRes { return completeRes{err: err} }}
	s.checkpoints = group[checkpointReq, checkpointRes]{max: maxCheckpointBatch,
		apply: func(ctx context.Context, ex execer, qs []checkpointReq, as []checkpointRes) error {
			return s.checkpointAll(ctx, ex, qs, as)
		},
		failed: func(err error) checkpointRes { return checkpointRes{err: err} }}
}

// errSplitBatch sends a batch the group commit cannot take as one back to be
// committed request by request.
var errSplitBatch = errors.New("batch to be committed request by request")

type claimReq struct {
	d        job.Dispatch
	owner    string
	leaseFor time.Duration
	opts     ClaimOptions
}

type claimRes struct {
	j   job.Job
	err error
}

// ClaimDispatch leases the job of a still-current dispatch; it refuses, with
// ErrNotDue and the job as it is, one whose backoff has not passed, and under
// a tenant cap, with ErrTenantAtCap, one whose tenant is at the cap.
func (s *SQL) ClaimDispatch(ctx context.Context, d job.Dispatch, owner string, leaseFor time.Duration, opts ...ClaimOptions) (job.Job, error) {
	r, err := s.claims.do(s, claimReq{d, owner, leaseFor, claimOptions(opts)})
	if err == nil {
		err = r.err
	}
	if err != nil && !errors.Is(err, job.ErrStaleLease) && !errors.Is(err, ErrTenantAtCap) && !errors.Is(err, ErrNotDue) {
		return job.Job{}, fmt.Errorf("claim job %s epoch %d: %w", d.JobID, d.Epoch, err)
	}
	return r.j, err
}

// claimAll claims every dispatch of batch that is still current, with one
// update per owner, lease length and cap (one, in practice). With a writable
// CTE each update writes its events itself, a statement needing no
// transaction around it; ex is then the pool, else a transaction. A batch
// with a cap counted over every process takes its turn (takeTurn) in a
// transaction.
func (s *SQL) claimAll(ctx context.Context, ex execer, batch []claimReq, res []claimRes) error {
	type key struct {
		owner    string
		leaseFor time.Duration
		opts     ClaimOptions
	}
	groups := map[key][]int{}
	var order []key
	turns := false
	for i, r := range batch {
		k := key{r.owner, r.leaseFor, r.opts}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
		turns = turns || s.takesTurns(r.opts)
	}
	_, inTx := ex.(*Tx)
	if !inTx && turns {
		return s.inTx(ctx, func(tx *Tx) error { return s.claimAll(ctx, tx, batch, res) })
	}
	if !inTx && len(order) > 1 {
		// Statements of their own would commit one group and not the next.
		return errSplitBatch
	}
	if turns {
		if err := s.takeTurn(ctx, ex.(*Tx)); err != nil {
			return err
		}
	}
	now := s.Clock.Now()
	claimed := map[job.Dispatch]job.Job{}
	atCap := map[job.Dispatch]job.Job{}
	notDue := map[job.Dispatch]job.Job{}
	for _, k := range order {
		idx := groups[k]
		ds := make([]job.Dispatch, len(idx))
		for n, i := range idx {
			ds[n] = batch[i].d
		}
		where, whereArgs := dispatchesWhere(ds)
		where, whereArgs = `(`+where+`) AND retry_at <= ?`, append(whereArgs, micros(now))
		set := []any{k.owner, micros(now.Add(k.leaseFor)), micros(now), micros(now)}
		with, args := "", append(set, whereArgs...)
		if k.opts.TenantMaxRunning > 0 {
			with, args = claimFair(k.opts, k.owner, where, whereArgs)
			args = append(args, set...)
			where = `id IN (SELECT id FROM picked)`
		}
		update := claimSet + ` WHERE status = 'queued' AND ` + where
		var jobs []job.Job
		var err error
		if s.rb.d.WritableCTE && s.rb.d.Notify != nil {
			jobs, err = s.claimWithEvents(ctx, ex, with, update, args, now)
		} else if with != "" {
			jobs, err = s.transitionAll(ctx, ex.(*Tx), `WITH `+with+` `+update, args, claimEvent)
		} else {
			jobs, err = s.transitionAll(ctx, ex.(*Tx), update, args, claimEvent)
		}
		if err != nil {
			return err
		}
		for _, j := range jobs {
			claimed[j.Dispatch()] = j
		}
		if len(jobs) < len(ds) {
			if err := s.stillQueued(ctx, ex, ds, claimed, now, k.opts.TenantMaxRunning > 0, atCap, notDue); err != nil {
				return err
			}
		}
	}
	// A dispatch delivered twice in one batch is claimed by its first request.
	for i, r := range batch {
		if j, ok := claimed[r.d]; ok {
			res[i] = claimRes{j: j}
			delete(claimed, r.d)
		} else if j, ok := notDue[r.d]; ok {
			res[i] = claimRes{j: j, err: ErrNotDue}
		} else if j, ok := atCap[r.d]; ok {
			res[i] = claimRes{j: j, err: ErrTenantAtCap}
		} else {
			res[i] = claimRes{err: job.ErrStaleLease}
		}
	}
	return nil
}

// claimFair is pickFair for dispatches (the rows that where matches, with
// its args): of the queued ones, those that keep their tenant within the cap
// on their backend, oldest first. It returns the CTEs, ending with
// "picked", and their arguments.
func claimFair(o ClaimOptions, owner, where string, whereArgs []any) (string, []any) {
	running, args := runningByTenant(o, owner, "")
	return running + `,
		cand AS (SELECT id, tenant_id, backend FROM jobs WHERE status = 'queued' AND ` + where + `),
		picked AS (SELECT id FROM (SELECT cand.id, cand.tenant_id, COALESCE(running.n, 0) +
				ROW_NUMBER() OVER (PARTITION BY cand.tenant_id, cand.backend ORDER BY cand.id) AS load
				FROM cand LEFT JOIN running ON running.tenant_id = cand.tenant_id AND running.backend = cand.backend) AS l
			WHERE load <= ? OR tenant_id = '')`,
		append(append(args, whereArgs...), o.TenantMaxRunning)
}

// stillQueued sorts the jobs of the dispatches of ds that a claim did not
// take though they are still current and queued: in notDue those whose
// backoff has not passed by now, in atCap, when capped, the others, which the
// tenant cap refused.
func (s *SQL) stillQueued(ctx context.Context, ex execer, ds []job.Dispatch, claimed map[job.Dispatch]job.Job, now time.Time,
	capped bool, atCap, notDue map[job.Dispatch]job.Job) error {
	var left []job.Dispatch
	for _, d := range ds {
		if _, ok := claimed[d]; !ok {
			left = append(left, d)
		}
	}
	where, args := dispatchesWhere(left)
	rows, err := ex.QueryContext(ctx, s.Q(`SELECT `+jobColumns+` FROM jobs WHERE status = 'queued' AND `+where), args...)
	if err != nil {
		return fmt.Errorf("look why claims were refused: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return err
		}
		if j.RetryAt.After(now) {
			notDue[j.Dispatch()] = j
		} else if capped {
			atCap[j.Dispatch()] = j
		}
	}
	return rows.Err()
}

func claimEvent(j job.Job) job.Event {
	return job.Event{Type: job.EventStatus, Status: job.StatusRunning, Stage: "started",
		Message: fmt.Sprintf("attempt %d of %d on %s", j.Attempt, j.MaxAttempts, j.Backend)}
}

// claimWithEvents runs a claim (after the CTE with, if set) and appends the
// claimEvent of every job it took, in one statement, in ex (the pool or a
// transaction). The statement also looks whether each job's project has
// document chunks, which spares the run of a job without them the query of
// its retrieval (job.Job.NoDocuments).
func (s *SQL) claimWithEvents(ctx context.Context, ex execer, with, update string, args []any, now time.Time) ([]job.Job, error) {
	return s.updateAnnounced(ctx, ex, with, update, `'`+string(job.EventStatus)+`', '`+string(job.StatusRunning)+`', 0, 'started',
		'attempt ' || attempt || ' of ' || max_attempts || ' on ' || backend, 'null', ?`, append(args, micros(now)), true)
}

// updateAnnounced runs update, which must bump event_seq, and writes and
// announces the event of each row it changed, in one statement (a writable
// CTE; with, if set, is a CTE of its own to run first). event lists the event's
// columns after job_id and seq — type, status, progress, stage, message, data,
// created_at — over the updated row; args are those of with, update and event,
// in that order. With chunks, each job learns whether its project has document
// chunks (NoDocuments).
func (s *SQL) updateAnnounced(ctx context.Context, ex execer, with, update, event string, args []any, chunks bool) ([]job.Job, error) {
	if with != "" {
		with += ", "
	}
	look := ""
	if chunks {
		look = `, EXISTS (SELECT 1 FROM document_chunks d WHERE d.project_id = u.project_id)`
	}
	q := `WITH ` + with + `u AS (` + update + ` RETURNING event_seq, ` + jobColumns + `), ` +
		s.announcing("u", `event_seq, `+event, look)
	rows, err := ex.QueryContext(ctx, s.Q(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var jobs []job.Job
	for rows.Next() {
		var seq int64
		var has bool
		var last []any
		if chunks {
			last = []any{&has}
		}
		j, err := scanJob(multiScanner{rows, &seq, last})
		if err != nil {
			return nil, err
		}
		j.NoDocuments = chunks && !has
		jobs = append(jobs, j)
	}
	return jobs, rows.Err()
}

// announcing ends a statement whose CTE src returns jobs: it inserts an event
// for each (cols are the event's columns after job_id — seq, type, status,
// progress, stage, message, data, created_at — over src's row), announces
// them, and selects src's rows with extra columns.
func (s *SQL) announcing(src, cols, extra string) string {
	return `ev AS (INSERT INTO job_events (job_id, seq, type, status, progress, stage, message, data, created_at)
			SELECT id, ` + cols + ` FROM ` + src + ` RETURNING job_id),
		announced AS (SELECT ` + s.rb.d.Notify("job_id") + ` FROM ev)
		SELECT ` + src + `.*` + extra + ` FROM ` + src + ` CROSS JOIN (SELECT COUNT(*) FROM announced) AS n`
}

type completeReq struct {
	l job.Lease
	c Completion
}

type completeRes struct {
	j   job.Job
	err error
}

// Complete marks the job succeeded and commits its effects with it.
func (s *SQL) Complete(ctx context.Context, l job.Lease, c Completion) (job.Job, error) {
	r, err := s.completes.do(s, completeReq{l, c})
	if err == nil {
		err = r.err
	}
	if err != nil && !errors.Is(err, job.ErrStaleLease) {
		return r.j, fmt.Errorf("complete job %s: %w", l.JobID, err)
	}
	return r.j, err
}

// completeAll completes every job of batch whose lease is still held: it locks
// their rows, moves each project's episode counter once by its number of
// episodes, numbers and saves the episodes, and marks the jobs succeeded with
// their events. On PostgreSQL that is one statement (completeInOne), else two
// in the transaction tx (lockAndCount, finishCompletes).
func (s *SQL) completeAll(ctx context.Context, ex execer, batch []completeReq, res []completeRes) error {
	now := s.Clock.Now()
	seen := map[string]bool{}
	for _, r := range batch {
		if seen[r.l.JobID] { // two holders of one job: each decides alone
			return errSplitBatch
		}
		seen[r.l.JobID] = true
	}
	if s.rb.d.WritableCTE && s.rb.d.Notify != nil {
		return s.completeInOne(ctx, ex, batch, res, now)
	}
	tx := ex.(*Tx)
	held, last, err := s.lockAndCount(ctx, tx, batch, now)
	if err != nil {
		return err
	}
	var live []completeReq
	var liveAt []int
	for i, r := range batch {
		if held[r.l.JobID] {
			live, liveAt = append(live, r), append(liveAt, i)
		} else {
			res[i].err = job.ErrStaleLease
		}
	}
	if len(live) == 0 {
		return nil
	}

	// The episodes of a project take the numbers its counter moved past, in
	// batch order.
	results := make([]string, len(live))
	var episodes []any
	next := map[string]int{}
	for _, r := range live {
		if ep := r.c.Episode; ep != nil {
			next[ep.ProjectID]--
		}
	}
	for p, minus := range next {
		next[p] = last[p] + minus + 1
	}
	for n, r := range live {
		results[n] = string(r.c.Result)
		ep := r.c.Episode
		if ep == nil {
			continue
		}
		number := next[ep.ProjectID]
		next[ep.ProjectID]++
		episodes = append(episodes, ep.ProjectID, number, ep.Title, ep.Script, r.l.JobID, micros(now))
		before, after, err := around(r.c.Result, episodeNumber)
		if err != nil {
			return err
		}
		results[n] = before + strconv.Itoa(number) + after
	}
	for _, r := range live {
		if c := r.c.Chunks; c != nil {
			if err := s.saveChunks(ctx, tx, r.l, c, now); err != nil {
				return err
			}
		}
	}
	jobs, err := s.finishCompletes(ctx, tx, live, results, episodes, now)
	if err != nil {
		return err
	}
	if len(jobs) != len(live) {
		return fmt.Errorf("completed %d of %d locked jobs", len(jobs), len(live))
	}
	done := make(map[string]job.Job, len(jobs))
	for _, j := range jobs {
		done[j.ID] = j
	}
	for n, i := range liveAt {
		res[i].j = done[live[n].l.JobID]
	}
	return nil
}

// episodeNumber is the field of a result that holds its episode's number.
const episodeNumber = "episode_number"

// completeInOne completes a batch in one statement (a writable CTE; ex is the
// pool, or a transaction when the batch saves document chunks, whose
// statements must commit with it). It locks the rows of the leases still held
// (a stale holder must not take a number), moves the counter of each of their
// projects by its episodes in project order (two batches never wait on each
// other's counters in a cycle), numbers the episodes from the counter in batch
// order, saves them, and marks the jobs succeeded with their events. A result
// with an episode comes as the two halves around its number (c_result before
// it, c_after after it), which the statement joins. The update finds every
// locked row: the lock keeps anyone else from changing it before the
// statement ends.
func (s *SQL) completeInOne(ctx context.Context, ex execer, batch []completeReq, res []completeRes, now time.Time) error {
	tx, inTx := ex.(*Tx)
	var values strings.Builder
	var args []any
	var in []completeReq
	for i, r := range batch {
		if r.c.Chunks != nil {
			if !inTx {
				return errSplitBatch // their statements need a transaction
			}
			if err := s.saveChunks(ctx, tx, r.l, r.c.Chunks, now); errors.Is(err, job.ErrStaleLease) {
				res[i].err = err
				continue
			} else if err != nil {
				return err
			}
		}
		in = append(in, r)
		if values.Len() > 0 {
			values.WriteString(", ")
		}
		values.WriteString(`(CAST(? AS TEXT), CAST(? AS INT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT),
			CAST(? AS TEXT), CAST(? AS TEXT))`)
		if ep := r.c.Episode; ep != nil {
			before, after, err := around(r.c.Result, episodeNumber)
			if err != nil {
				return err
			}
			args = append(args, r.l.JobID, i, ep.ProjectID, ep.Title, ep.Script, before, after)
		} else {
			args = append(args, r.l.JobID, i, nil, nil, nil, string(r.c.Result), nil)
		}
	}
	if len(in) == 0 {
		return nil
	}
	where, wargs := leasesWhere(in)
	args = append(append(args, wargs...), micros(now), micros(now), micros(now), micros(now))
	with := `v (c_job, c_ord, c_project, c_title, c_script, c_result, c_after) AS (VALUES ` + values.String() + `),
		held AS MATERIALIZED (SELECT id FROM jobs WHERE status = 'running' AND ` + where + ` FOR UPDATE),
		counted AS (INSERT INTO project_counters (project_id, last_episode)
			SELECT c_project, COUNT(*) FROM held JOIN v ON c_job = held.id WHERE c_project IS NOT NULL
			GROUP BY c_project ORDER BY c_project
			ON CONFLICT (project_id) DO UPDATE SET last_episode = project_counters.last_episode + excluded.last_episode
			RETURNING project_id, last_episode),
		numbered AS (SELECT v.*, last_episode - COUNT(*) OVER (PARTITION BY c_project)
				+ ROW_NUMBER() OVER (PARTITION BY c_project ORDER BY c_ord) AS c_number
			FROM held JOIN v ON c_job = held.id LEFT JOIN counted ON counted.project_id = c_project),
		ep AS (INSERT INTO episodes (project_id, number, title, script, job_id, created_at)
			SELECT c_project, c_number, c_title, c_script, c_job, ? FROM numbered WHERE c_project IS NOT NULL)`
	update := `UPDATE jobs SET status = 'succeeded', progress = 100, stage = 'done',
			result = CASE WHEN c_project IS NULL THEN c_result ELSE c_result || c_number || c_after END,
			error = '', lease_owner = '', lease_expires_at = 0, finished_at = ?, updated_at = ?, event_seq = event_seq + 1
		FROM numbered WHERE jobs.id = c_job`
	jobs, err := s.updateAnnounced(ctx, ex, with, update, `'`+string(job.EventResult)+`', '`+string(job.StatusSucceeded)+`',
		100, 'done', 'succeeded', result, ?`, args, false)
	if err != nil {
		return err
	}
	done := make(map[string]job.Job, len(jobs))
	for _, j := range jobs {
		done[j.ID] = j
	}
	for i, r := range batch {
		if j, ok := done[r.l.JobID]; ok {
			res[i].j = j
		} else if res[i].err == nil {
			res[i].err = job.ErrStaleLease
		}
	}
	return nil
}

// around splits the JSON object obj with the field key added as two halves,
// such that before + the field's value + after is that object, encoded as
// json.Marshal encodes it (fields in key order).
func around(obj json.RawMessage, key string) (before, after string, err error) {
	m := map[string]json.RawMessage{}
	if len(obj) > 0 {
		if err := json.Unmarshal(obj, &m); err != nil {
			return "", "", fmt.Errorf("result is not a JSON object: %w", err)
		}
	}
	delete(m, key)
	keys := make([]string, 0, len(m)+1)
	for k := range m {
		keys = append(keys, k)
	}
	keys = append(keys, key)
	sort.Strings(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(k)
		b.Write(name)
		b.WriteByte(':')
		if k == key {
			before = b.String()
			b.Reset()
			continue
		}
		v, err := json.Marshal(m[k])
		if err != nil {
			return "", "", err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return before, b.String(), nil
}

// lockAndCount locks the rows of the leases still held (a stale holder must
// not take a number) and moves the counter of each project by the episodes of
// its held jobs, in project order, so that two batches never wait on each
// other's counters in a cycle. It returns the held job ids and each counted
// project's last number.
func (s *SQL) lockAndCount(ctx context.Context, tx *Tx, batch []completeReq, now time.Time) (map[string]bool, map[string]int, error) {
	where, args := leasesWhere(batch)
	lock := `UPDATE jobs SET updated_at = ? WHERE status = 'running' AND ` + where + ` RETURNING `
	args = append([]any{micros(now)}, args...)
	var values strings.Builder // (job id, episode project) of the requests with an episode
	var vargs []any
	for _, r := range batch {
		if r.c.Episode != nil {
			if len(vargs) > 0 {
				values.WriteString(", ")
			}
			values.WriteString("(CAST(? AS TEXT), CAST(? AS TEXT))")
			vargs = append(vargs, r.l.JobID, r.c.Episode.ProjectID)
		}
	}
	held := map[string]bool{}
	last := map[string]int{}
	scan := func(q string, args []any) error {
		rows, err := tx.QueryContext(ctx, s.Q(q), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var kind, id string
			var n int
			if err := rows.Scan(&kind, &id, &n); err != nil {
				return err
			}
			if kind == "held" {
				held[id] = true
			} else {
				last[id] = n
			}
		}
		return rows.Err()
	}
	const counted = ` ON CONFLICT (project_id) DO UPDATE SET last_episode = project_counters.last_episode + excluded.last_episode
		RETURNING `
	if s.rb.d.WritableCTE {
		q := `WITH held AS (` + lock + `id)`
		if len(vargs) > 0 {
			q += `, counted AS (INSERT INTO project_counters (project_id, last_episode)
				SELECT v.project_id, COUNT(*) FROM held JOIN (VALUES ` + values.String() + `) AS v(job_id, project_id) ON v.job_id = held.id
				GROUP BY v.project_id ORDER BY v.project_id` + counted + `project_id, last_episode)
				SELECT 'counted', project_id, last_episode FROM counted UNION ALL`
			args = append(args, vargs...)
		}
		return held, last, scan(q+` SELECT 'held', id, 0 FROM held`, args)
	}
	if err := scan(lock+`'held', id, 0`, args); err != nil {
		return nil, nil, err
	}
	perProject := map[string]int{}
	for _, r := range batch {
		if r.c.Episode != nil && held[r.l.JobID] {
			perProject[r.c.Episode.ProjectID]++
		}
	}
	if len(perProject) == 0 {
		return held, last, nil
	}
	projects := make([]string, 0, len(perProject))
	for p := range perProject {
		projects = append(projects, p)
	}
	sort.Strings(projects)
	var cargs []any
	for _, p := range projects {
		cargs = append(cargs, p, perProject[p])
	}
	err := scan(`INSERT INTO project_counters (project_id, last_episode) VALUES `+
		strings.TrimSuffix(strings.Repeat("(?, ?), ", len(projects)), ", ")+counted+`'counted', project_id, last_episode`, cargs)
	if err != nil {
		return nil, nil, fmt.Errorf("next episode numbers: %w", err)
	}
	return held, last, nil
}

// finishCompletes saves the episodes (rows of six values) and marks the live
// jobs succeeded with their results, appending and announcing their events.
func (s *SQL) finishCompletes(ctx context.Context, tx *Tx, live []completeReq, results []string, episodes []any, now time.Time) ([]job.Job, error) {
	var set strings.Builder
	set.WriteString(`UPDATE jobs SET status = 'succeeded', progress = 100, stage = 'done', result = CASE id`)
	args := make([]any, 0, 2*len(live)+2+4*len(live))
	for n, r := range live {
		set.WriteString(` WHEN ? THEN ?`)
		args = append(args, r.l.JobID, results[n])
	}
	where, wargs := leasesWhere(live)
	set.WriteString(` END, error = '', lease_owner = '', lease_expires_at = 0, finished_at = ?, updated_at = ?, event_seq = event_seq + 1
		WHERE status = 'running' AND ` + where)
	args = append(append(args, micros(now), micros(now)), wargs...)
	insertEpisodes := `INSERT INTO episodes (project_id, number, title, script, job_id, created_at) VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?), ", len(episodes)/6), ", ")

	if s.rb.d.WritableCTE && s.rb.d.Notify != nil {
		with := ""
		if len(episodes) > 0 {
			with = `ep AS (` + insertEpisodes + `)`
			args = append(append([]any{}, episodes...), args...)
		}
		return s.updateAnnounced(ctx, tx, with, set.String(), `'`+string(job.EventResult)+`', '`+string(job.StatusSucceeded)+`',
			100, 'done', 'succeeded', result, ?`, append(args, micros(now)), false)
	}
	if len(episodes) > 0 {
		if _, err := tx.ExecContext(ctx, s.Q(insertEpisodes), episodes...); err != nil {
			return nil, fmt.Errorf("save %d episodes: %w", len(episodes)/6, err)
		}
	}
	return s.transitionAll(ctx, tx, set.String(), args, func(j job.Job) job.Event {
		return job.Event{Type: job.EventResult, Status: job.StatusSucceeded, Progress: 100, Stage: "done",
			Message: "succeeded", Data: j.Result}
	})
}

// dispatchesWhere matches the rows of the given dispatches.
func dispatchesWhere(ds []job.Dispatch) (string, []any) {
	return rowsWhere(len(ds), func(i int) []any { return []any{ds[i].JobID, ds[i].Epoch} },
		"id = ? AND dispatch_epoch = ?")
}

// leasesWhere matches the rows whose leases the requests hold.
func leasesWhere(reqs []completeReq) (string, []any) {
	return rowsWhere(len(reqs), func(i int) []any { return []any{reqs[i].l.JobID, reqs[i].l.Epoch, reqs[i].l.Owner} },
		"id = ? AND dispatch_epoch = ? AND lease_owner = ?")
}

// rowsWhere matches n rows by primary key, each also by its own condition:
// "id IN (…) AND ((cond) OR (cond) …)". args(i) are row i's arguments of
// cond, its id first.
func rowsWhere(n int, args func(i int) []any, cond string) (string, []any) {
	var ids, conds []string
	var idArgs, condArgs []any
	for i := range n {
		a := args(i)
		ids, idArgs = append(ids, "?"), append(idArgs, a[0])
		conds, condArgs = append(conds, "("+cond+")"), append(condArgs, a...)
	}
	return "id IN (" + strings.Join(ids, ", ") + ") AND (" + strings.Join(conds, " OR ") + ")", append(idArgs, condArgs...)
}
