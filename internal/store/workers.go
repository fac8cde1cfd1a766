package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// WorkerProcess is a registered process: a `scriptgen worker` (role
// "worker") or a serving replica (role "serve").
type WorkerProcess struct {
	ID          string
	Role        string
	Host        string
	PID         int
	StartedAt   time.Time
	HeartbeatAt time.Time
	StoppedAt   time.Time
	// A replica's: the address it listens on, its build, and the revision
	// of the worker setting it applied at its last heartbeat.
	Address      string
	Version      string
	FlagRevision int64
}

// RegisterWorker records a starting process.
func (s *SQL) RegisterWorker(ctx context.Context, w WorkerProcess) error {
	now := micros(s.Clock.Now())
	_, err := s.W.ExecContext(ctx, s.Q(`INSERT INTO workers (id, role, host, pid, started_at, heartbeat_at, stopped_at, address, version, flag_revision)
		VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?)`), w.ID, w.Role, w.Host, w.PID, now, now, w.Address, w.Version, w.FlagRevision)
	if err != nil {
		return fmt.Errorf("register worker %s: %w", w.ID, err)
	}
	return nil
}

// RunCounts are the runs of jobs a process finished since it started, by
// outcome (runner.Outcome's values: succeeded, failed, ...). They only grow
// while the process lives.
type RunCounts map[string]uint64

// encodeRuns is the finished_runs column's JSON object; nil is {}.
func encodeRuns(runs RunCounts) string {
	if len(runs) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(runs) // a map of strings to integers always encodes
	return string(b)
}

// HeartbeatWorker says a process is still alive and how many runs it has
// finished so far.
func (s *SQL) HeartbeatWorker(ctx context.Context, id string, runs RunCounts) error {
	_, err := s.W.ExecContext(ctx, s.Q(`UPDATE workers SET heartbeat_at = ?, finished_runs = ? WHERE id = ?`),
		micros(s.Clock.Now()), encodeRuns(runs), id)
	if err != nil {
		return fmt.Errorf("heartbeat of worker %s: %w", id, err)
	}
	return nil
}

// HeartbeatReplica says a serving replica is still alive, which revision of
// the worker setting it has applied and how many runs it has finished so far.
func (s *SQL) HeartbeatReplica(ctx context.Context, id string, flagRevision int64, runs RunCounts) error {
	_, err := s.W.ExecContext(ctx, s.Q(`UPDATE workers SET heartbeat_at = ?, flag_revision = ?, finished_runs = ? WHERE id = ?`),
		micros(s.Clock.Now()), flagRevision, encodeRuns(runs), id)
	if err != nil {
		return fmt.Errorf("heartbeat of replica %s: %w", id, err)
	}
	return nil
}

// FinishedRuns reads, in one query, the finished-run counts of every process
// of either role that beat since a time, by process id: what the operator
// page's jobs/s chart differences to show the cluster's rate.
func (s *SQL) FinishedRuns(ctx context.Context, since time.Time) (map[string]RunCounts, error) {
	rows, err := s.query(ctx, `SELECT id, finished_runs FROM workers WHERE heartbeat_at >= ?`, micros(since))
	if err != nil {
		return nil, fmt.Errorf("read finished runs: %w", err)
	}
	defer rows.Close()
	out := map[string]RunCounts{}
	for rows.Next() {
		var id, raw string
		if err := rows.Scan(&id, &raw); err != nil {
			return nil, fmt.Errorf("read finished runs: %w", err)
		}
		runs := RunCounts{}
		if err := json.Unmarshal([]byte(raw), &runs); err != nil {
			return nil, fmt.Errorf("finished runs of process %s: %w", id, err)
		}
		out[id] = runs
	}
	return out, rows.Err()
}

// StopWorker records a clean stop.
func (s *SQL) StopWorker(ctx context.Context, id string) error {
	_, err := s.W.ExecContext(ctx, s.Q(`UPDATE workers SET stopped_at = ? WHERE id = ?`), micros(s.Clock.Now()), id)
	if err != nil {
		return fmt.Errorf("stop worker %s: %w", id, err)
	}
	return nil
}

// ListWorkers lists the processes of a role seen since a time, newest first.
func (s *SQL) ListWorkers(ctx context.Context, role string, since time.Time) ([]WorkerProcess, error) {
	rows, err := s.query(ctx, `SELECT id, role, host, pid, started_at, heartbeat_at, stopped_at, address, version, flag_revision
		FROM workers WHERE role = ? AND heartbeat_at >= ? ORDER BY started_at DESC`, role, micros(since))
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	defer rows.Close()
	var out []WorkerProcess
	for rows.Next() {
		var w WorkerProcess
		var started, hb, stopped int64
		if err := rows.Scan(&w.ID, &w.Role, &w.Host, &w.PID, &started, &hb, &stopped, &w.Address, &w.Version, &w.FlagRevision); err != nil {
			return nil, err
		}
		w.StartedAt, w.HeartbeatAt, w.StoppedAt = fromMicros(started), fromMicros(hb), fromMicros(stopped)
		out = append(out, w)
	}
	return out, rows.Err()
}

// PruneWorkers forgets processes not seen since a time.
func (s *SQL) PruneWorkers(ctx context.Context, before time.Time) error {
	_, err := s.W.ExecContext(ctx, s.Q(`DELETE FROM workers WHERE heartbeat_at < ?`), micros(before))
	return err
}
