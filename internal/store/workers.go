package store

import (
	"context"
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

// HeartbeatWorker says a process is still alive.
func (s *SQL) HeartbeatWorker(ctx context.Context, id string) error {
	_, err := s.W.ExecContext(ctx, s.Q(`UPDATE workers SET heartbeat_at = ? WHERE id = ?`), micros(s.Clock.Now()), id)
	if err != nil {
		return fmt.Errorf("heartbeat of worker %s: %w", id, err)
	}
	return nil
}

// HeartbeatReplica says a serving replica is still alive and which revision
// of the worker setting it has applied.
func (s *SQL) HeartbeatReplica(ctx context.Context, id string, flagRevision int64) error {
	_, err := s.W.ExecContext(ctx, s.Q(`UPDATE workers SET heartbeat_at = ?, flag_revision = ? WHERE id = ?`),
		micros(s.Clock.Now()), flagRevision, id)
	if err != nil {
		return fmt.Errorf("heartbeat of replica %s: %w", id, err)
	}
	return nil
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
