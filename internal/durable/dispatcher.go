package durable

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/scriptgen/scriptgen/internal/job"
)

// Dispatcher enqueues committed durable jobs on Redis; it is the durable
// Runner of the serving process (the work itself runs in `scriptgen worker`).
type Dispatcher struct {
	client  *asynq.Client
	timeout time.Duration
}

// NewDispatcher builds a dispatcher over a Redis connection.
func NewDispatcher(redis asynq.RedisConnOpt) *Dispatcher {
	return &Dispatcher{client: asynq.NewClient(redis), timeout: time.Second}
}

// Backend is durable.
func (d *Dispatcher) Backend() job.Backend { return job.BackendDurable }

// Dispatch enqueues the job's current dispatch. An existing task of the same
// dispatch is success: the transport is already there.
func (d *Dispatcher) Dispatch(ctx context.Context, j job.Job) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.timeout)
	defer cancel()
	_, err := d.client.EnqueueContext(ctx, NewTask(j))
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) && !errors.Is(err, asynq.ErrDuplicateTask) {
		return fmt.Errorf("enqueue job %s epoch %d: %w", j.ID, j.DispatchEpoch, err)
	}
	return nil
}

// Start does nothing: enqueueing needs no background duty.
func (d *Dispatcher) Start(context.Context) error { return nil }

// Stop closes the Redis connection.
func (d *Dispatcher) Stop(context.Context) error { return d.client.Close() }
