// Package durable is the durable worker: jobs travel to `scriptgen worker`
// processes through hibiken/asynq on Redis. A task is only a transport that
// points at a row (invariant 1): its payload is the dispatch (job id, epoch)
// and its asynq task id is "job_id:epoch", so a re-dispatch of the same epoch
// is idempotent and a copy of an older epoch is dropped by the fenced claim
// (invariant 2).
package durable

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/scriptgen/scriptgen/internal/job"
)

// The queues, named as the earlier system's runbook named them (docs/runbook.md, appendix A).
const (
	QueueGeneration    = "generation"
	QueueRAGProcessing = "rag_processing"
)

// Queues lists every queue with its priority weight.
var Queues = map[string]int{QueueGeneration: 6, QueueRAGProcessing: 4}

// TaskType is the asynq type of every scriptgen task.
const TaskType = "scriptgen:job"

// QueueFor is the queue of a job's kind.
func QueueFor(k job.Kind) string {
	if k == job.KindRAGDocument {
		return QueueRAGProcessing
	}
	return QueueGeneration
}

// TaskID is the asynq task id of a dispatch.
func TaskID(d job.Dispatch) string { return fmt.Sprintf("%s:%d", d.JobID, d.Epoch) }

type payload struct {
	JobID string `json:"job_id"`
	Epoch int64  `json:"epoch"`
}

// NewTask builds the task of one dispatch. A job waiting for its retry
// backoff (RetryAt) is scheduled for then: asynq keeps scheduled tasks in
// whole seconds, so for the next whole second, which is never early.
func NewTask(j job.Job) *asynq.Task {
	b, _ := json.Marshal(payload{JobID: j.ID, Epoch: j.DispatchEpoch})
	opts := []asynq.Option{asynq.TaskID(TaskID(j.Dispatch())), asynq.Queue(QueueFor(j.Kind)), asynq.MaxRetry(10)}
	if !j.RetryAt.IsZero() {
		opts = append(opts, asynq.ProcessAt(wholeSecondAfter(j.RetryAt)))
	}
	return asynq.NewTask(TaskType, b, opts...)
}

// wholeSecondAfter is t, or the whole second after it: asynq compares the
// times of scheduled and retried tasks in whole seconds (Unix()), so a task
// due at t is moved to its queue no sooner than t only if t is whole.
func wholeSecondAfter(t time.Time) time.Time {
	w := t.Truncate(time.Second)
	if w.Equal(t) {
		return t
	}
	return w.Add(time.Second)
}

// ParseTask reads the dispatch out of a task, rejecting anything foreign.
func ParseTask(t *asynq.Task) (job.Dispatch, error) {
	if t.Type() != TaskType {
		return job.Dispatch{}, fmt.Errorf("foreign task type %q", t.Type())
	}
	var p payload
	if err := job.DecodeStrict(t.Payload(), &p); err != nil {
		return job.Dispatch{}, fmt.Errorf("undecodable payload: %v", err)
	}
	if p.JobID == "" || len(p.JobID) > 64 || p.Epoch < 1 {
		return job.Dispatch{}, fmt.Errorf("payload without a valid job id and epoch")
	}
	return job.Dispatch{JobID: p.JobID, Epoch: p.Epoch}, nil
}
