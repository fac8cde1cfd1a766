// Package runner runs jobs, whatever their backend. The Executor runs one
// claimed job under its lease: it renews the lease, reports progress and
// checkpoints the live script (Reporter), and
// finishes the job only while the lease is still its own (invariant 2), so a
// stale copy is dropped rather than run twice. The Adapter picks each new job's
// backend from the worker-system flag and hands the job to that backend's Runner.
package runner

import (
	"context"
	"errors"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// Runner is one backend: background_tasks in process, or the durable queue.
type Runner interface {
	Backend() job.Backend
	// Dispatch tells the backend that a committed job is waiting. It may fail
	// (Redis down); the row stays queued and the reconciler tries again.
	Dispatch(ctx context.Context, j job.Job) error
	Start(ctx context.Context) error
	// Stop stops taking work, lets running jobs finish within the drain
	// timeout, and releases the rest.
	Stop(ctx context.Context) error
}

// Handler runs one kind of job and returns its completion: the result and the
// effects that commit with the job's success.
type Handler interface {
	Handle(ctx context.Context, j job.Job, report ReportFunc) (store.Completion, error)
}

// ReportFunc records progress; it fails once the job's lease is lost.
type ReportFunc func(ctx context.Context, p store.Progress) error

// Reporter is what a run writes under its lease while it works: progress,
// and the live script (issue 18). Each write fails with job.ErrStaleLease
// once the lease is lost, and the run is then cancelled.
type Reporter interface {
	Progress(ctx context.Context, p store.Progress) error
	// Script appends text to the job's script at offset, in characters
	// (store.CheckpointScript).
	Script(ctx context.Context, offset int, text string) error
	// ScriptSoFar is the text earlier attempts checkpointed, which this one
	// continues.
	ScriptSoFar(ctx context.Context) (string, error)
}

// LiveHandler is a Handler that also writes a live script: the executor
// calls HandleLive, with a Reporter, instead of Handle.
type LiveHandler interface {
	Handler
	HandleLive(ctx context.Context, j job.Job, r Reporter) (store.Completion, error)
}

// Progress makes a ReportFunc a Reporter that keeps no script: Script writes
// nothing and ScriptSoFar is empty (a Handle called without the executor).
func (f ReportFunc) Progress(ctx context.Context, p store.Progress) error { return f(ctx, p) }

// Script writes nothing.
func (ReportFunc) Script(context.Context, int, string) error { return nil }

// ScriptSoFar is empty.
func (ReportFunc) ScriptSoFar(context.Context) (string, error) { return "", nil }

// ErrPermanent marks a failure that retrying cannot fix.
var ErrPermanent = errors.New("permanent failure")
