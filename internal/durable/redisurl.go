package durable

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/hibiken/asynq"
)

// DefaultRedisDB is the Redis database of a REDIS_URL that names none: the
// one the runbook's deployment used for its queue.
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
