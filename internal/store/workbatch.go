package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
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
	s.creates = group[NewJob, createRes]{max: maxCreateBatch,
		apply: func(ctx context.Context, ex execer, qs []NewJob, as []createRes) error {
			return s.createAll(ctx, ex.(*Tx), qs, as)
		},
		one: func(ctx context.Context, nj NewJob) createRes {
			j, created, err := s.createOne(ctx, nj)
			return createRes{j, created, err}
		}}
	s.picks = group[pickReq, pickRes]{max: maxWorkBatch,
		apply: func(ctx context.Context, ex execer, qs []pickReq, as []pickRes) error {
			for i, q := range qs {
				jobs, err := s.pickInTx(ctx, ex.(*Tx), q)
				if err != nil {
					return err
				}
				as[i] = pickRes{jobs: jobs}
			}
			return nil
		},
		one: func(ctx context.Context, q pickReq) pickRes {
			var jobs []job.Job
			err := s.inTx(ctx, func(tx *Tx) error {
				var err error
				jobs, err = s.pickInTx(ctx, tx, q)
				return err
			})
			return pickRes{jobs, err}
		}}
	s.claims = group[claimReq, claimRes]{max: maxWorkBatch, autocommit: s.rb.d.WritableCTE && s.rb.d.Notify != nil,
		apply: func(ctx context.Context, ex execer, qs []claimReq, as []claimRes) error {
			return s.claimAll(ctx, ex, qs, as)
		},
		one: func(ctx context.Context, q claimReq) claimRes {
			j, err := s.claimDispatchOne(ctx, q.d, q.owner, q.leaseFor)
			return claimRes{j, err}
		}}
	s.completes = group[completeReq, completeRes]{max: maxWorkBatch,
		apply: func(ctx context.Context, ex execer, qs []completeReq, as []completeRes) error {
			return s.completeAll(ctx, ex.(*Tx), qs, as)
		},
		one: func(ctx context.Context, q completeReq) completeRes {
			j, err := s.completeOne(ctx, q.l, q.c)
			return completeRes{j, err}
		}}
}

var errSplitBatch = errors.New("batch holds the same job twice")

type claimReq struct {
	d        job.Dispatch
	owner    string
	leaseFor time.Duration
}

type claimRes struct {
	j   job.Job
	err error
}

// ClaimDispatch leases the job of a still-current dispatch.
func (s *SQL) ClaimDispatch(ctx context.Context, d job.Dispatch, owner string, leaseFor time.Duration) (job.Job, error) {
	r, err := s.claims.do(ctx, s, claimReq{d, owner, leaseFor})
	if err != nil {
		return job.Job{}, fmt.Errorf("claim job %s epoch %d: %w", d.JobID, d.Epoch, err)
	}
	return r.j, r.err
}

// claimAll claims every dispatch of batch that is still current, with one
// update per owner and lease length (one, in practice). With a writable CTE
// each update writes its events itself, a statement needing no transaction
// around it; ex is then the pool, else a transaction.
func (s *SQL) claimAll(ctx context.Context, ex execer, batch []claimReq, res []claimRes) error {
	type key struct {
		owner    string
		leaseFor time.Duration
	}
	groups := map[key][]int{}
	var order []key
	for i, r := range batch {
		k := key{r.owner, r.leaseFor}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	now := s.Clock.Now()
	claimed := map[job.Dispatch]job.Job{}
	for _, k := range order {
		idx := groups[k]
		ds := make([]job.Dispatch, len(idx))
		for n, i := range idx {
			ds[n] = batch[i].d
		}
		where, args := dispatchesWhere(ds)
		args = append([]any{k.owner, micros(now.Add(k.leaseFor)), micros(now), micros(now)}, args...)
		update := claimSet + ` WHERE status = 'queued' AND ` + where
		var jobs []job.Job
		var err error
		if tx, ok := ex.(*Tx); ok {
			jobs, err = s.transitionAll(ctx, tx, update, args, claimEvent)
		} else {
			jobs, err = s.claimWithEvents(ctx, update, args, now)
		}
		if err != nil {
			return err
		}
		for _, j := range jobs {
			claimed[job.Dispatch{JobID: j.ID, Epoch: j.DispatchEpoch}] = j
		}
	}
	// A dispatch delivered twice in one batch is claimed by its first request.
	for i, r := range batch {
		if j, ok := claimed[r.d]; ok {
			res[i] = claimRes{j: j}
			delete(claimed, r.d)
		} else {
			res[i] = claimRes{err: job.ErrStaleLease}
		}
	}
	return nil
}

func claimEvent(j job.Job) job.Event {
	return job.Event{Type: job.EventStatus, Status: job.StatusRunning, Stage: "started",
		Message: fmt.Sprintf("attempt %d of %d on %s", j.Attempt, j.MaxAttempts, j.Backend)}
}

// claimWithEvents runs a claim and appends the claimEvent of every job it
// took, in one statement. The statement also looks whether each job's project
// has document chunks, which spares the run of a job without them the query
// of its retrieval (job.Job.NoDocuments).
func (s *SQL) claimWithEvents(ctx context.Context, update string, args []any, now time.Time) ([]job.Job, error) {
	q := `WITH c AS (` + update + ` RETURNING event_seq, ` + jobColumns + `),
		ev AS (INSERT INTO job_events (job_id, seq, type, status, progress, stage, message, data, created_at)
			SELECT id, event_seq, '` + string(job.EventStatus) + `', '` + string(job.StatusRunning) + `', 0, 'started',
				'attempt ' || attempt || ' of ' || max_attempts || ' on ' || backend, 'null', ? FROM c RETURNING job_id),
		announced AS (SELECT ` + s.rb.d.Notify("job_id") + ` FROM ev)
		SELECT c.*, EXISTS (SELECT 1 FROM document_chunks d WHERE d.project_id = c.project_id)
		FROM c CROSS JOIN (SELECT COUNT(*) FROM announced) AS n`
	rows, err := s.W.QueryContext(ctx, s.Q(q), append(args, micros(now))...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var jobs []job.Job
	for rows.Next() {
		var seq int64
		var chunks bool
		j, err := scanJob(multiScanner{rows, &seq, []any{&chunks}})
		if err != nil {
			return nil, err
		}
		j.NoDocuments = !chunks
		jobs = append(jobs, j)
	}
	return jobs, rows.Err()
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
	r, err := s.completes.do(ctx, s, completeReq{l, c})
	if err == nil {
		err = r.err
	}
	if err != nil && !errors.Is(err, job.ErrStaleLease) {
		return r.j, fmt.Errorf("complete job %s: %w", l.JobID, err)
	}
	return r.j, err
}

// completeAll completes every job of batch whose lease is still held: it locks
// their rows, takes the episode numbers of each project with one counter
// update, saves the episodes, and marks the jobs succeeded with their events.
func (s *SQL) completeAll(ctx context.Context, tx *Tx, batch []completeReq, res []completeRes) error {
	now := s.Clock.Now()
	seen := map[string]bool{}
	for _, r := range batch {
		if seen[r.l.JobID] {
			return errSplitBatch
		}
		seen[r.l.JobID] = true
	}

	// Lock the rows first: a stale holder must not take a number.
	where, args := leasesWhere(batch)
	rows, err := tx.QueryContext(ctx, s.Q(`UPDATE jobs SET updated_at = ? WHERE status = 'running' AND `+where+` RETURNING id`),
		append([]any{micros(now)}, args...)...)
	if err != nil {
		return err
	}
	held := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		held[id] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var live []int
	for i, r := range batch {
		if held[r.l.JobID] {
			live = append(live, i)
		} else {
			res[i].err = job.ErrStaleLease
		}
	}
	if len(live) == 0 {
		return nil
	}

	results, err := s.saveEpisodes(ctx, tx, batch, live, now)
	if err != nil {
		return err
	}
	for _, i := range live {
		if c := batch[i].c.Chunks; c != nil {
			if err := s.saveChunks(ctx, tx, batch[i].l, c, now); err != nil {
				return err
			}
		}
	}

	var set strings.Builder
	set.WriteString(`UPDATE jobs SET status = 'succeeded', progress = 100, stage = 'done', result = CASE id`)
	setArgs := make([]any, 0, 2*len(live)+2)
	for _, i := range live {
		set.WriteString(` WHEN ? THEN ?`)
		setArgs = append(setArgs, batch[i].l.JobID, string(results[i]))
	}
	set.WriteString(` END, error = '', lease_owner = '', lease_expires_at = 0, finished_at = ?, updated_at = ?, event_seq = event_seq + 1
		WHERE status = 'running' AND `)
	liveReqs := make([]completeReq, len(live))
	for n, i := range live {
		liveReqs[n] = batch[i]
	}
	where, args = leasesWhere(liveReqs)
	set.WriteString(where)
	setArgs = append(setArgs, micros(now), micros(now))
	jobs, err := s.transitionAll(ctx, tx, set.String(), append(setArgs, args...), func(j job.Job) job.Event {
		return job.Event{Type: job.EventResult, Status: job.StatusSucceeded, Progress: 100, Stage: "done",
			Message: "succeeded", Data: j.Result}
	})
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
	for _, i := range live {
		res[i].j = done[batch[i].l.JobID]
	}
	return nil
}

// saveEpisodes numbers and saves the episodes of the live requests, and
// returns every live request's result (with "episode_number" where it saved
// one). Each project's counter moves once, by its number of episodes, in
// project order, so two batches never wait on each other's counters in a
// cycle.
func (s *SQL) saveEpisodes(ctx context.Context, tx *Tx, batch []completeReq, live []int, now time.Time) (map[int][]byte, error) {
	results := make(map[int][]byte, len(live))
	perProject := map[string][]int{}
	for _, i := range live {
		results[i] = batch[i].c.Result
		if ep := batch[i].c.Episode; ep != nil {
			perProject[ep.ProjectID] = append(perProject[ep.ProjectID], i)
		}
	}
	if len(perProject) == 0 {
		return results, nil
	}
	projects := make([]string, 0, len(perProject))
	for p := range perProject {
		projects = append(projects, p)
	}
	sort.Strings(projects)

	var q strings.Builder
	q.WriteString(`INSERT INTO project_counters (project_id, last_episode) VALUES `)
	args := make([]any, 0, 2*len(projects))
	for n, p := range projects {
		if n > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?)")
		args = append(args, p, len(perProject[p]))
	}
	q.WriteString(` ON CONFLICT (project_id) DO UPDATE SET last_episode = project_counters.last_episode + excluded.last_episode
		RETURNING project_id, last_episode`)
	rows, err := tx.QueryContext(ctx, s.Q(q.String()), args...)
	if err != nil {
		return nil, fmt.Errorf("next episode numbers: %w", err)
	}
	last := map[string]int{}
	for rows.Next() {
		var p string
		var n int
		if err := rows.Scan(&p, &n); err != nil {
			rows.Close()
			return nil, err
		}
		last[p] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}

	q.Reset()
	q.WriteString(`INSERT INTO episodes (project_id, number, title, script, job_id, created_at) VALUES `)
	args = args[:0]
	for _, p := range projects {
		idx := perProject[p]
		first := last[p] - len(idx) + 1
		for n, i := range idx {
			ep := batch[i].c.Episode
			if len(args) > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?, ?, ?, ?, ?)")
			args = append(args, ep.ProjectID, first+n, ep.Title, ep.Script, batch[i].l.JobID, micros(now))
			if results[i], err = withField(results[i], "episode_number", first+n); err != nil {
				return nil, err
			}
		}
	}
	if _, err := tx.ExecContext(ctx, s.Q(q.String()), args...); err != nil {
		return nil, fmt.Errorf("save %d episodes: %w", len(args)/6, err)
	}
	return results, nil
}

// dispatchesWhere matches the rows of the given dispatches.
func dispatchesWhere(ds []job.Dispatch) (string, []any) {
	var w strings.Builder
	args := make([]any, 0, 3*len(ds))
	w.WriteString("id IN (")
	for n, d := range ds {
		if n > 0 {
			w.WriteString(", ")
		}
		w.WriteString("?")
		args = append(args, d.JobID)
	}
	w.WriteString(") AND (")
	for n, d := range ds {
		if n > 0 {
			w.WriteString(" OR ")
		}
		w.WriteString("(id = ? AND dispatch_epoch = ?)")
		args = append(args, d.JobID, d.Epoch)
	}
	w.WriteString(")")
	return w.String(), args
}

// leasesWhere matches the rows whose leases the requests hold.
func leasesWhere(reqs []completeReq) (string, []any) {
	var w strings.Builder
	args := make([]any, 0, 4*len(reqs))
	w.WriteString("id IN (")
	for n, r := range reqs {
		if n > 0 {
			w.WriteString(", ")
		}
		w.WriteString("?")
		args = append(args, r.l.JobID)
	}
	w.WriteString(") AND (")
	for n, r := range reqs {
		if n > 0 {
			w.WriteString(" OR ")
		}
		w.WriteString("(id = ? AND dispatch_epoch = ? AND lease_owner = ?)")
		args = append(args, r.l.JobID, r.l.Epoch, r.l.Owner)
	}
	w.WriteString(")")
	return w.String(), args
}
