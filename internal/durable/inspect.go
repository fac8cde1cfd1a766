package durable

import (
	"context"
	"errors"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/scriptgen/scriptgen/internal/job"
)

// Inspector reads the state of the durable queues.
type Inspector struct {
	insp  *asynq.Inspector
	redis redis.UniversalClient
}

// NewInspector builds an inspector over a Redis connection.
func NewInspector(opt asynq.RedisConnOpt) *Inspector {
	return &Inspector{insp: asynq.NewInspector(opt), redis: opt.MakeRedisClient().(redis.UniversalClient)}
}

// QueueStats is the state of the durable queues together.
type QueueStats struct {
	// Depth counts tasks waiting (pending, scheduled or retrying).
	Depth int `json:"queue_depth"`
	// Active counts tasks being processed.
	Active int `json:"active"`
	// Archived counts dead-lettered tasks.
	Archived int `json:"archived"`
	// Latency is how long the oldest pending task has waited.
	Latency time.Duration `json:"-"`
}

// Ping checks that Redis answers.
func (i *Inspector) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	return i.redis.Ping(ctx).Err()
}

// Stats sums the queues. A queue that was never used is empty, not an error.
func (i *Inspector) Stats(ctx context.Context) (QueueStats, error) {
	var s QueueStats
	if err := i.Ping(ctx); err != nil {
		return s, err
	}
	// GetQueueInfo answers a queue never used yet with an error that is not
	// asynq.ErrQueueNotFound, so only the queues Redis knows are read: a
	// fresh Redis has a depth of 0, not an unreadable one.
	known, err := i.insp.Queues()
	if err != nil {
		return s, err
	}
	for _, q := range known {
		if _, ours := Queues[q]; !ours {
			continue
		}
		info, err := i.insp.GetQueueInfo(q)
		if errors.Is(err, asynq.ErrQueueNotFound) {
			continue
		}
		if err != nil {
			return s, err
		}
		s.Depth += info.Pending + info.Scheduled + info.Retry
		s.Active += info.Active
		s.Archived += info.Archived
		s.Latency = max(s.Latency, info.Latency)
	}
	return s, nil
}

// ArchivedTasks lists dead-lettered tasks of a queue (newest asynq order).
func (i *Inspector) ArchivedTasks(queue string, limit int) ([]*asynq.TaskInfo, error) {
	tasks, err := i.insp.ListArchivedTasks(queue, asynq.PageSize(limit))
	if errors.Is(err, asynq.ErrQueueNotFound) {
		return nil, nil
	}
	return tasks, err
}

// DeleteTask removes a dispatch's task from Redis, wherever it waits; a task
// that is gone already is success.
func (i *Inspector) DeleteTask(queue, taskID string) error {
	err := i.insp.DeleteTask(queue, taskID)
	if err == nil || errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return nil
	}
	return err
}

// Close closes the connections.
func (i *Inspector) Close() error {
	return errors.Join(i.insp.Close(), i.redis.Close())
}

// The states of a task that the reconciler acts on, as asynq writes them in
// the task's hash; TaskGone is a task that is not in Redis at all.
const (
	TaskGone      = ""
	TaskActive    = "active"
	TaskArchived  = "archived"
	TaskCompleted = "completed"
)

// TaskStates reports, for each dispatch of the given jobs, the state asynq
// keeps for its task — "pending", "active", "retry", "archived" and so on, or
// TaskGone — with one pipelined round trip. It reads asynq's task hashes
// ("asynq:{queue}:t:id", field "state"); were that layout to change, every
// task would look gone and be enqueued again, which is idempotent: slower,
// never wrong.
func (i *Inspector) TaskStates(ctx context.Context, jobs []job.Job) ([]string, error) {
	cmds := make([]*redis.StringCmd, len(jobs))
	_, err := i.redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for n, j := range jobs {
			cmds[n] = p.HGet(ctx, "asynq:{"+QueueFor(j.Kind)+"}:t:"+TaskID(j.Dispatch()), "state")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	states := make([]string, len(jobs))
	for n, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		states[n] = c.Val()
	}
	return states, nil
}
