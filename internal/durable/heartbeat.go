package durable

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/scriptgen/scriptgen/internal/loop"
	"github.com/scriptgen/scriptgen/internal/store"
)

// Registry is what the heartbeater needs of the database.
type Registry interface {
	RegisterWorker(ctx context.Context, w store.WorkerProcess) error
	PruneWorkers(ctx context.Context, before time.Time) error
	HeartbeatWorker(ctx context.Context, id string, runs store.RunCounts) error
	HeartbeatReplica(ctx context.Context, id string, flagRevision int64, runs store.RunCounts) error
	StopWorker(ctx context.Context, id string) error
}

// Heartbeater registers a worker process and beats for it, so that the
// service knows how many workers are up and which died without a clean stop.
// A serving replica registers the same way (NewReplicaHeartbeater), and its
// beats also carry the flag revision it has applied. Every beat carries the
// runs the process has finished so far, so that the operator page's jobs/s
// is the cluster's.
type Heartbeater struct {
	reg      Registry
	proc     store.WorkerProcess
	interval time.Duration
	log      *slog.Logger
	// flagRevision is what a replica's beats report; nil for a worker.
	flagRevision func() int64
	// runs reads the process's finished-run counts for each beat.
	runs func() store.RunCounts

	loop loop.Loop
}

// NewHeartbeater builds a heartbeater for the worker process id, whose beats
// report runs' counts.
func NewHeartbeater(reg Registry, id string, runs func() store.RunCounts, interval time.Duration, log *slog.Logger) *Heartbeater {
	return &Heartbeater{reg: reg, proc: store.WorkerProcess{ID: id, Role: RoleWorker}, interval: interval, log: log, runs: runs}
}

// NewReplicaHeartbeater builds a heartbeater for the serving replica id,
// which listens on address, runs build version and reports flagRevision and
// runs' counts.
func NewReplicaHeartbeater(reg Registry, id, address, version string, flagRevision func() int64, runs func() store.RunCounts, interval time.Duration, log *slog.Logger) *Heartbeater {
	p := store.WorkerProcess{ID: id, Role: RoleReplica, Address: address, Version: version}
	return &Heartbeater{reg: reg, proc: p, interval: interval, log: log, flagRevision: flagRevision, runs: runs}
}

// Start registers the process and beats until Stop.
func (h *Heartbeater) Start(ctx context.Context) error {
	p := h.proc
	p.Host, _ = os.Hostname()
	p.PID = os.Getpid()
	if h.flagRevision != nil {
		p.FlagRevision = h.flagRevision()
	}
	if err := h.reg.RegisterWorker(ctx, p); err != nil {
		return err
	}
	// Each start forgets processes silent for a day, so the registry stays small.
	if err := h.reg.PruneWorkers(ctx, time.Now().Add(-pruneAfter)); err != nil {
		h.log.Warn("Could not prune the worker registry", "err", err)
	}
	h.loop.Start(ctx, h.interval, false, func(ctx context.Context) {
		if err := h.beat(ctx); err != nil && ctx.Err() == nil {
			h.log.Warn("Heartbeat failed", "process", h.proc.ID, "err", err)
		}
	})
	return nil
}

func (h *Heartbeater) beat(ctx context.Context) error {
	var runs store.RunCounts
	if h.runs != nil {
		runs = h.runs()
	}
	if h.flagRevision != nil {
		return h.reg.HeartbeatReplica(ctx, h.proc.ID, h.flagRevision(), runs)
	}
	return h.reg.HeartbeatWorker(ctx, h.proc.ID, runs)
}

// Stop records a clean stop.
func (h *Heartbeater) Stop(ctx context.Context) error {
	h.loop.Stop()
	return h.reg.StopWorker(context.WithoutCancel(ctx), h.proc.ID)
}

// pruneAfter is how long a silent process stays in the registry; the crash
// trigger looks back ten minutes.
const pruneAfter = 24 * time.Hour

// RoleWorker is the registry role of `scriptgen worker` processes.
const RoleWorker = "worker"

// RoleReplica is the registry role of `scriptgen serve` replicas.
const RoleReplica = "serve"

// HeartbeatInterval is how often workers beat; a worker silent for three
// intervals is counted as down.
const HeartbeatInterval = time.Second

// Census counts worker processes from the registry.
type Census struct {
	Up      int
	Crashed int // silent without a clean stop, within the window
	Stopped int
}

// WorkerLister reads the registry.
type WorkerLister interface {
	ListWorkers(ctx context.Context, role string, since time.Time) ([]store.WorkerProcess, error)
}

// WorkersUp counts the durable worker processes that beat in the last three
// heartbeats: the figure /health shows as workers_up.
func WorkersUp(ctx context.Context, st WorkerLister, now time.Time) (int, error) {
	ws, err := st.ListWorkers(ctx, RoleWorker, now.Add(-time.Minute))
	if err != nil {
		return 0, err
	}
	return Count(ws, now).Up, nil
}

// Count classifies processes seen since the window began.
func Count(ws []store.WorkerProcess, now time.Time) Census {
	var c Census
	for _, w := range ws {
		switch {
		case !w.StoppedAt.IsZero():
			c.Stopped++
		case now.Sub(w.HeartbeatAt) <= 3*HeartbeatInterval:
			c.Up++
		default:
			c.Crashed++
		}
	}
	return c
}
