package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// WorkerSetting is the persisted half of the worker-system flag.
type WorkerSetting struct {
	Enabled        bool
	RolloutPercent int
	Reason         string
	UpdatedBy      string
	UpdatedAt      time.Time
	// Revision counts the saves of the setting (0: never saved); every
	// replica reports the one it applied (WorkerProcess.FlagRevision).
	Revision int64
}

// DefaultWorkerSetting applies until an operator changes it: durable for every
// project, wherever the environment allows it.
var DefaultWorkerSetting = WorkerSetting{Enabled: true, RolloutPercent: 100, Reason: "default"}

// GetWorkerSetting reads the setting (the default when none was saved).
func (s *SQL) GetWorkerSetting(ctx context.Context) (WorkerSetting, error) {
	var w WorkerSetting
	var enabled int
	var updated int64
	err := s.R.QueryRowContext(ctx, `SELECT enabled, rollout_percent, reason, updated_by, updated_at, revision FROM worker_settings WHERE id = 1`).
		Scan(&enabled, &w.RolloutPercent, &w.Reason, &w.UpdatedBy, &updated, &w.Revision)
	if errors.Is(err, sql.ErrNoRows) {
		return DefaultWorkerSetting, nil
	}
	if err != nil {
		return w, fmt.Errorf("read worker setting: %w", err)
	}
	w.Enabled, w.UpdatedAt = enabled == 1, fromMicros(updated)
	return w, nil
}

// PutWorkerSetting saves the setting (fenced: WithFence) and moves its
// revision on by one; the answer carries the new revision.
func (s *SQL) PutWorkerSetting(ctx context.Context, w WorkerSetting) (WorkerSetting, error) {
	w.UpdatedAt = s.Clock.Now().UTC().Truncate(time.Microsecond)
	enabled := 0
	if w.Enabled {
		enabled = 1
	}
	err := s.inTx(ctx, func(tx *Tx) error {
		if err := s.checkFence(ctx, tx); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, s.Q(`INSERT INTO worker_settings (id, enabled, rollout_percent, reason, updated_by, updated_at, revision)
		VALUES (1, ?, ?, ?, ?, ?, 1) ON CONFLICT (id) DO UPDATE SET enabled = excluded.enabled,
		rollout_percent = excluded.rollout_percent, reason = excluded.reason, updated_by = excluded.updated_by,
		updated_at = excluded.updated_at, revision = worker_settings.revision + 1
		RETURNING revision`), enabled, w.RolloutPercent, w.Reason, w.UpdatedBy, micros(w.UpdatedAt)).Scan(&w.Revision)
	})
	if err != nil {
		return w, fmt.Errorf("save worker setting: %w", err)
	}
	return w, nil
}
