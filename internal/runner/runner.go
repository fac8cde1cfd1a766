// Package runner runs jobs, whatever their backend. The Executor runs one
// claimed job under its lease: it renews the lease, reports progress, and
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

// ErrPermanent marks a failure that retrying cannot fix.
var ErrPermanent = errors.New("permanent failure")
