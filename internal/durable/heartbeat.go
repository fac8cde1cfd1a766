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
	HeartbeatWorker(ctx context.Context, id string) error
	StopWorker(ctx context.Context, id string) error
}

// Heartbeater registers a worker process and beats for it, so that the
// service knows how many workers are up and which died without a clean stop.
type Heartbeater struct {
	reg      Registry
	id       string
	interval time.Duration
	log      *slog.Logger

	loop loop.Loop
}

// NewHeartbeater builds a heartbeater for the process id.
func NewHeartbeater(reg Registry, id string, interval time.Duration, log *slog.Logger) *Heartbeater {
	return &Heartbeater{reg: reg, id: id, interval: interval, log: log}
}

// Start registers the process and beats until Stop.
func (h *Heartbeater) Start(ctx context.Context) error {
	host, _ := os.Hostname()
	if err := h.reg.RegisterWorker(ctx, store.WorkerProcess{ID: h.id, Role: RoleWorker, Host: host, PID: os.Getpid()}); err != nil {
		return err
	}
	// Each start forgets processes silent for a day, so the registry stays small.
	if err := h.reg.PruneWorkers(ctx, time.Now().Add(-pruneAfter)); err != nil {
		h.log.Warn("Could not prune the worker registry", "err", err)
	}
	h.loop.Start(ctx, h.interval, false, func(ctx context.Context) {
		if err := h.reg.HeartbeatWorker(ctx, h.id); err != nil && ctx.Err() == nil {
			h.log.Warn("Heartbeat failed", "worker", h.id, "err", err)
		}
	})
	return nil
}

// Stop records a clean stop.
func (h *Heartbeater) Stop(ctx context.Context) error {
	h.loop.Stop()
	return h.reg.StopWorker(context.WithoutCancel(ctx), h.id)
}

// pruneAfter is how long a silent process stays in the registry; the crash
// trigger looks back ten minutes.
const pruneAfter = 24 * time.Hour

// RoleWorker is the registry role of `scriptgen worker` processes.
const RoleWorker = "worker"

// HeartbeatInterval is how often workers beat; a worker silent for three
// intervals is counted as down.
const HeartbeatInterval = time.Second

// Census counts worker processes from the registry.
type Census struct {
	Up      int
	Crashed int // silent without a clean stop, within the window
	Stopped int
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
