package durable

import (
	"context"

	"github.com/hibiken/asynq"

	"github.com/scriptgen/scriptgen/internal/job"
)

// Side is the durable side as the rollback drives it: enqueue, delete, ping.
type Side struct {
	*Dispatcher
	*Inspector
}

// NewSide connects to the durable side's Redis.
func NewSide(opt asynq.RedisConnOpt) *Side {
	return &Side{Dispatcher: NewDispatcher(opt), Inspector: NewInspector(opt)}
}

// QueueFor is the queue of a job's kind.
func (*Side) QueueFor(k job.Kind) string { return QueueFor(k) }

// TaskID is the task id of a dispatch.
func (*Side) TaskID(d job.Dispatch) string { return TaskID(d) }

// Close closes both connections.
func (s *Side) Close() error {
	s.Dispatcher.Stop(context.Background())
	return s.Inspector.Close()
}
