package durable

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
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
// URL without a database path means DefaultRedisDB rather than 0, and that
// a redis-sentinel:// URL is read by sentinelOpt.
func RedisOpt(raw string) (asynq.RedisConnOpt, error) {
	if strings.HasPrefix(raw, "redis-sentinel://") {
		return sentinelOpt(raw)
	}
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

// sentinelOpt reads redis-sentinel://[:password@]host1:port1,host2:port2[/db]?master=name
// (also ?db=N and ?sentinel_password=…). asynq's own parser drops the
// database (always 0, where a redis:// URL without one means
// DefaultRedisDB here), gives the URL's password to the sentinels only (a
// master with requirepass then refuses every command), and takes a missing
// master name, which fails only at the first command. Here the database
// defaults to DefaultRedisDB as for redis://, the password is the master's
// and, unless sentinel_password says otherwise, the sentinels' too, and the
// master name is required.
func sentinelOpt(raw string) (asynq.RedisConnOpt, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	q := u.Query()
	opt := asynq.RedisFailoverClientOpt{MasterName: q.Get("master"), DB: DefaultRedisDB}
	if opt.MasterName == "" {
		return nil, fmt.Errorf("REDIS_URL: a redis-sentinel:// URL needs ?master=<name>, the name the sentinels monitor")
	}
	for _, addr := range strings.Split(u.Host, ",") {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("REDIS_URL: sentinel address %q: want host:port", addr)
		}
		opt.SentinelAddrs = append(opt.SentinelAddrs, addr)
	}
	db := strings.Trim(u.Path, "/")
	if db == "" {
		db = q.Get("db")
	}
	if db != "" {
		if opt.DB, err = strconv.Atoi(db); err != nil || opt.DB < 0 {
			return nil, fmt.Errorf("REDIS_URL: database %q is not a number", db)
		}
	}
	if p, ok := u.User.Password(); ok {
		opt.Password, opt.SentinelPassword = p, p
	}
	if q.Has("sentinel_password") {
		opt.SentinelPassword = q.Get("sentinel_password")
	}
	return opt, nil
}
