package durable

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// DefaultRedisDB is the Redis database of a REDIS_URL that names none: the
// one the earlier system's deployment used for its queue (docs/runbook.md, appendix A).
const DefaultRedisDB = 5

// RedisOpt reads REDIS_URL as asynq does (redis://, rediss://,
// redis-socket://, redis-sentinel://), except that a redis:// or rediss://
// URL without a database path means DefaultRedisDB rather than 0.
func RedisOpt(raw string) (asynq.RedisConnOpt, error) {
	opt, err := asynq.ParseRedisURI(raw)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	if c, ok := opt.(asynq.RedisClientOpt); ok && (u.Scheme == "redis" || u.Scheme == "rediss") && strings.Trim(u.Path, "/") == "" {
		c.DB = DefaultRedisDB
		return c, nil
	}
	return opt, nil
}

// CheckRedisDB refuses a REDIS_URL whose database this Redis does not have:
// every command would fail ("DB index is out of range") while the process
// ran on as if healthy. Redis being down is no reason to refuse a start
// (invariant 4: the service waits for it), so any other error is nil.
func CheckRedisDB(ctx context.Context, opt asynq.RedisConnOpt) error {
	client := opt.MakeRedisClient().(redis.UniversalClient)
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil && strings.Contains(err.Error(), "DB index is out of range") {
		return fmt.Errorf("REDIS_URL: this Redis has no such database: %w", err)
	}
	return nil
}
