// Package workerflag is the worker-system flag: the effective state is the
// environment's kill switch AND the persisted setting. The kill switch
// (USE_DURABLE_WORKER=false or WORKER_SYSTEM_ENABLED=false) forces
// background_tasks with no API and no database; otherwise the setting row
// decides, and every replica re-reads it about every half second, so a change
// reaches all of them within a second and without a restart.
package workerflag

import (
	"context"
	"hash/fnv"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/loop"
	"github.com/scriptgen/scriptgen/internal/store"
)

// Source reads the persisted setting.
type Source interface {
	GetWorkerSetting(ctx context.Context) (store.WorkerSetting, error)
}

// Config says what the environment allows.
type Config struct {
	// KillSwitchOff: the environment forces background_tasks.
	KillSwitchOff bool
	// DurableAvailable: REDIS_URL is set, so there is a durable side at all.
	DurableAvailable bool
	Refresh          time.Duration
}

// State is the flag as this replica sees it.
type State struct {
	// Enabled: new jobs may go to the durable worker.
	Enabled          bool
	RolloutPercent   int
	KillSwitchOff    bool
	DurableAvailable bool
	Setting          store.WorkerSetting
}

// Type names the worker system new jobs mostly go to.
func (s State) Type() job.Backend {
	if s.Enabled && s.RolloutPercent > 0 {
		return job.BackendDurable
	}
	return job.BackendBackgroundTasks
}

// Flag holds the latest state and refreshes it.
type Flag struct {
	src   Source
	cfg   Config
	log   *slog.Logger
	state atomic.Pointer[State]

	loop loop.Loop
}

// New builds a flag; call Refresh or Start before use.
func New(src Source, cfg Config, log *slog.Logger) *Flag {
	if cfg.Refresh <= 0 {
		cfg.Refresh = 500 * time.Millisecond
	}
	f := &Flag{src: src, cfg: cfg, log: log.With("component", "workerflag")}
	f.set(store.DefaultWorkerSetting)
	return f
}

func (f *Flag) set(w store.WorkerSetting) {
	st := &State{Setting: w, KillSwitchOff: f.cfg.KillSwitchOff, DurableAvailable: f.cfg.DurableAvailable}
	st.Enabled = w.Enabled && !f.cfg.KillSwitchOff && f.cfg.DurableAvailable
	if st.Enabled {
		st.RolloutPercent = w.RolloutPercent
	}
	if old := f.state.Swap(st); old != nil && (old.Enabled != st.Enabled || old.RolloutPercent != st.RolloutPercent) {
		f.log.Info("Worker system changed", "enabled", st.Enabled, "type", st.Type(), "rollout_percent", st.RolloutPercent,
			"reason", w.Reason, "by", w.UpdatedBy)
	}
}

// Refresh reads the setting now.
func (f *Flag) Refresh(ctx context.Context) error {
	w, err := f.src.GetWorkerSetting(ctx)
	if err != nil {
		return err
	}
	f.set(w)
	return nil
}

// State returns the current state.
func (f *Flag) State() State { return *f.state.Load() }

// BackendFor routes a new job of a project by the current state.
func (f *Flag) BackendFor(projectID string) job.Backend { return f.state.Load().BackendFor(projectID) }

// BackendFor routes a new job of a project: durable for the rollout's share of
// projects (sticky: the same project always lands on the same side), else
// background_tasks.
func (s State) BackendFor(projectID string) job.Backend {
	if !s.Enabled || s.RolloutPercent <= 0 {
		return job.BackendBackgroundTasks
	}
	if s.RolloutPercent >= 100 || Bucket(projectID) < s.RolloutPercent {
		return job.BackendDurable
	}
	return job.BackendBackgroundTasks
}

// Bucket places a project in 0..99 for the rollout.
func Bucket(projectID string) int {
	h := fnv.New32a()
	h.Write([]byte(projectID))
	return int(h.Sum32() % 100)
}

// Start refreshes the flag every Refresh until Stop. A failed read keeps the
// last known state; a read gets ten refresh intervals, so that a connection
// that hangs does not freeze the flag for good.
func (f *Flag) Start(ctx context.Context) error {
	refresh := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 10*f.cfg.Refresh)
		defer cancel()
		return f.Refresh(ctx)
	}
	if err := refresh(ctx); err != nil {
		f.log.Warn("Could not read the worker setting; using the last known state", "err", err)
	}
	f.loop.Start(ctx, f.cfg.Refresh, false, func(ctx context.Context) {
		if err := refresh(ctx); err != nil && ctx.Err() == nil {
			f.log.Warn("Could not refresh the worker setting", "err", err)
		}
	})
	return nil
}

// Stop stops refreshing.
func (f *Flag) Stop(context.Context) error {
	f.loop.Stop()
	return nil
}
