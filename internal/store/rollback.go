package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
)

// MigrateQueued moves up to limit queued jobs from one backend to another,
// each with the next dispatch epoch, so that any copy still in the old
// backend's transport is stale and dropped (invariant 2). It returns the jobs
// as they are now.
func (s *SQL) MigrateQueued(ctx context.Context, from, to job.Backend, ids []string, limit int) ([]job.Job, error) {
	now := s.Clock.Now()
	var out []job.Job
	err := s.inTx(ctx, func(tx *Tx) error {
		if err := s.checkFence(ctx, tx); err != nil {
			return err
		}
		where := `status = 'queued' AND backend = ?`
		args := []any{from}
		if ids != nil {
			if len(ids) == 0 {
				return nil
			}
			where += ` AND id IN (` + placeholders(len(ids)) + `)`
			for _, id := range ids {
				args = append(args, id)
			}
		}
		args = append(args, limit, to, micros(now))
		var err error
		out, err = s.transitionAll(ctx, tx, `WITH picked AS (SELECT id FROM jobs WHERE `+where+` ORDER BY id LIMIT ? `+
			s.rb.d.SkipLocked+`) UPDATE jobs SET backend = ?, dispatch_epoch = dispatch_epoch + 1,
			stage = 'migrated', updated_at = ?, event_seq = event_seq + 1
			WHERE id IN (SELECT id FROM picked) AND status = 'queued'`, args,
			func(job.Job) job.Event {
				return job.Event{Type: job.EventStatus, Status: job.StatusQueued, Stage: "migrated",
					Message: fmt.Sprintf("migrated from %s to %s", from, to)}
			})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("migrate queued %s jobs to %s: %w", from, to, err)
	}
	return out, nil
}

func placeholders(n int) string {
	b := make([]byte, 0, 2*n)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '?')
	}
	return string(b)
}

// AuditRecord is one rollback or roll-forward.
type AuditRecord struct {
	ID               string
	Kind             string // rollback | rollforward
	Trigger          string // manual, or the automatic trigger's name
	Reason           string
	Actor            string
	Status           string // completed | failed
	Evidence         json.RawMessage
	Actions          []string
	JobsMigrated     int
	JobsFailed       int
	AffectedProjects int
	StartedAt        time.Time
	FinishedAt       time.Time
	// LeaderEpoch is the term of the controller's leadership that wrote
	// the record (store.Fence); 0 for an operator's.
	LeaderEpoch int64
}

// InsertAudit records a rollback or roll-forward (fenced: WithFence).
func (s *SQL) InsertAudit(ctx context.Context, a AuditRecord) error {
	actions, _ := json.Marshal(a.Actions)
	evidence := string(a.Evidence)
	if evidence == "" {
		evidence = "null"
	}
	err := s.inTx(ctx, func(tx *Tx) error {
		if err := s.checkFence(ctx, tx); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.Q(`INSERT INTO audit_records (id, kind, trigger_name, reason, actor, status, evidence,
		actions, jobs_migrated, jobs_failed, affected_projects, started_at, finished_at, leader_epoch)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`), a.ID, a.Kind, a.Trigger, a.Reason, a.Actor, a.Status, evidence,
			string(actions), a.JobsMigrated, a.JobsFailed, a.AffectedProjects, micros(a.StartedAt), micros(a.FinishedAt), a.LeaderEpoch)
		return err
	})
	if err != nil {
		return fmt.Errorf("record %s %s: %w", a.Kind, a.ID, err)
	}
	return nil
}

const auditColumns = `id, kind, trigger_name, reason, actor, status, evidence, actions, jobs_migrated, jobs_failed,
	affected_projects, started_at, finished_at, leader_epoch`

func scanAudit(sc scanner) (AuditRecord, error) {
	var a AuditRecord
	var evidence, actions string
	var started, finished int64
	err := sc.Scan(&a.ID, &a.Kind, &a.Trigger, &a.Reason, &a.Actor, &a.Status, &evidence, &actions, &a.JobsMigrated,
		&a.JobsFailed, &a.AffectedProjects, &started, &finished, &a.LeaderEpoch)
	if errors.Is(err, sql.ErrNoRows) {
		return a, job.ErrNotFound
	}
	if err != nil {
		return a, err
	}
	if evidence != "null" {
		a.Evidence = json.RawMessage(evidence)
	}
	json.Unmarshal([]byte(actions), &a.Actions)
	a.StartedAt, a.FinishedAt = fromMicros(started), fromMicros(finished)
	return a, nil
}

// ListAudits lists rollbacks and roll-forwards, newest first.
func (s *SQL) ListAudits(ctx context.Context, limit int) ([]AuditRecord, error) {
	rows, err := s.query(ctx, `SELECT `+auditColumns+` FROM audit_records ORDER BY started_at DESC, id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("list audit records: %w", err)
	}
	defer rows.Close()
	out := []AuditRecord{}
	for rows.Next() {
		a, err := scanAudit(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// GetAudit reads one record.
func (s *SQL) GetAudit(ctx context.Context, id string) (AuditRecord, error) {
	return scanAudit(s.queryRow(ctx, `SELECT `+auditColumns+` FROM audit_records WHERE id = ?`, id))
}

// MigrationFailure is an entry of the migration_failed dead-letter list.
type MigrationFailure struct {
	JobID     string
	Source    job.Backend
	Target    job.Backend
	Reason    string
	AuditID   string
	CreatedAt time.Time
}

// AddMigrationFailure puts a job on the dead-letter list (or updates its
// entry); fenced: WithFence.
func (s *SQL) AddMigrationFailure(ctx context.Context, f MigrationFailure) error {
	err := s.inTx(ctx, func(tx *Tx) error {
		if err := s.checkFence(ctx, tx); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.Q(`INSERT INTO migration_failed (job_id, source, target, reason, audit_id, created_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job_id) DO UPDATE SET source = excluded.source, target = excluded.target,
		reason = excluded.reason, audit_id = excluded.audit_id, created_at = excluded.created_at`),
			f.JobID, f.Source, f.Target, f.Reason, f.AuditID, micros(s.Clock.Now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("dead-letter job %s: %w", f.JobID, err)
	}
	return nil
}

// ListMigrationFailures lists the dead-letter list, oldest first.
func (s *SQL) ListMigrationFailures(ctx context.Context, limit int) ([]MigrationFailure, error) {
	rows, err := s.query(ctx, `SELECT job_id, source, target, reason, audit_id, created_at
		FROM migration_failed ORDER BY created_at, job_id LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("list migration_failed: %w", err)
	}
	defer rows.Close()
	out := []MigrationFailure{}
	for rows.Next() {
		var f MigrationFailure
		var created int64
		if err := rows.Scan(&f.JobID, &f.Source, &f.Target, &f.Reason, &f.AuditID, &created); err != nil {
			return nil, err
		}
		f.CreatedAt = fromMicros(created)
		out = append(out, f)
	}
	return out, rows.Err()
}

// DeleteMigrationFailure takes a job off the dead-letter list.
func (s *SQL) DeleteMigrationFailure(ctx context.Context, jobID string) error {
	_, err := s.W.ExecContext(ctx, s.Q(`DELETE FROM migration_failed WHERE job_id = ?`), jobID)
	return err
}

// AcquireLeadership takes or renews the named leadership for holder until
// ttl from now; it reports whether holder is the leader (AcquireLease also
// gives the term's epoch).
func (s *SQL) AcquireLeadership(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	_, ok, err := s.AcquireLease(ctx, name, holder, ttl)
	return ok, err
}

// ReleaseLeadership gives up a leadership that holder has; another's is left
// alone. The row stays, expired, so that the next term's epoch follows this
// one's.
func (s *SQL) ReleaseLeadership(ctx context.Context, name, holder string) error {
	if _, err := s.W.ExecContext(ctx, s.Q(`UPDATE leader_leases SET expires_at = 0 WHERE name = ? AND holder = ?`), name, holder); err != nil {
		return fmt.Errorf("release leadership %s: %w", name, err)
	}
	return nil
}
