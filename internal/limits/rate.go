package limits

import (
	"context"
	"math"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
)

// Rate is a token bucket: PerSecond tokens a second, Burst at most. A
// Rate with PerSecond <= 0 allows everything.
type Rate struct {
	PerSecond float64
	Burst     int
}

// Interval is the time one token takes to come back.
func (r Rate) Interval() time.Duration {
	return time.Duration(float64(time.Second) / r.PerSecond)
}

// Buckets keeps the buckets where every replica sees them (the database), as
// GCRA's "theoretical arrival time": one number per key, moved forward by one
// interval per token taken, never more than Burst intervals ahead of now.
type Buckets interface {
	// TakeToken takes one token of key's bucket at now, or answers how long
	// until one is there.
	TakeToken(ctx context.Context, key string, interval time.Duration, burst int, now time.Time) (ok bool, retryAfter time.Duration, err error)
}

// RateLimiter limits calls per key (a tenant) at one Rate.
type RateLimiter struct {
	buckets Buckets
	rate    Rate
	clock   clock.Clock
}

// NewRateLimiter returns a limiter over buckets.
func NewRateLimiter(b Buckets, r Rate, c clock.Clock) *RateLimiter {
	if c == nil {
		c = clock.Real{}
	}
	return &RateLimiter{buckets: b, rate: r, clock: c}
}

// Allow takes a token for key; a refusal comes with the time to wait.
func (l *RateLimiter) Allow(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error) {
	if l == nil || l.rate.PerSecond <= 0 {
		return true, 0, nil
	}
	return l.buckets.TakeToken(ctx, "rate:"+key, l.rate.Interval(), max(l.rate.Burst, 1), l.clock.Now())
}

// GCRA is the rule the stores apply in one statement, here for reference
// and for the in-memory buckets: tat is the bucket's stored time (zero for a
// new bucket); it returns the new tat, or ok false with the wait.
func GCRA(tat, now time.Time, interval time.Duration, burst int) (newTAT time.Time, ok bool, retryAfter time.Duration) {
	if tat.Before(now) {
		tat = now
	}
	next := tat.Add(interval)
	allowAt := next.Add(-time.Duration(burst) * interval)
	if allowAt.After(now) {
		return tat, false, allowAt.Sub(now)
	}
	return next, true, 0
}

// RetryAfterSeconds rounds a wait up to whole seconds for a Retry-After
// header (at least 1).
func RetryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
