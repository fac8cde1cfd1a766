package limits

import (
	"context"
	"math"
	"sync"
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
	// TakeTokens takes count tokens of key's bucket at now, all or none, or
	// answers how long until they are there.
	TakeTokens(ctx context.Context, key string, count int, interval time.Duration, burst int, now time.Time) (ok bool, retryAfter time.Duration, err error)
}

// RateLimiter limits calls per key (a tenant) at one Rate. A busy key's
// tokens are leased from the shared bucket in blocks of about a tenth of a
// second of its rate (at most a tenth of its burst), so that a tenant at
// hundreds of submissions a second costs the database one write per block,
// not one per submission (one row updated per submission was a hot spot
// every submission of the tenant queued on). A lease unused within leaseFor
// is given up, so a replica holds at most a block's worth beyond the rate.
type RateLimiter struct {
	buckets Buckets
	rate    Rate
	clock   clock.Clock

	mu     sync.Mutex
	leases map[string]*lease
}

type lease struct {
	tokens  int
	expires time.Time
	// emptyUntil: the shared bucket had no token for this key until then,
	// so refusals until then cost the database nothing.
	emptyUntil time.Time
	// refilling is closed when the block being taken for this key has come
	// (or not): one caller takes a block, the others wait for it instead of
	// each writing the bucket's row.
	refilling chan struct{}
}

// leaseFor is how long a leased block may be spent.
const leaseFor = time.Second

// NewRateLimiter returns a limiter over buckets.
func NewRateLimiter(b Buckets, r Rate, c clock.Clock) *RateLimiter {
	if c == nil {
		c = clock.Real{}
	}
	return &RateLimiter{buckets: b, rate: r, clock: c, leases: map[string]*lease{}}
}

// block is how many tokens a lease takes: a tenth of a second of the rate,
// at most a tenth of the burst, at least one.
func (l *RateLimiter) block() int {
	return max(1, min(int(l.rate.PerSecond/10), l.rate.Burst/10))
}

// Allow takes a token for key; a refusal comes with the time to wait.
func (l *RateLimiter) Allow(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error) {
	if l == nil || l.rate.PerSecond <= 0 {
		return true, 0, nil
	}
	for attempt := 0; ; attempt++ {
		now := l.clock.Now()
		l.mu.Lock()
		ls := l.leases[key]
		if ls == nil {
			if len(l.leases) > 100000 {
				clear(l.leases)
			}
			ls = &lease{}
			l.leases[key] = ls
		}
		if ls.tokens > 0 && now.Before(ls.expires) {
			ls.tokens--
			l.mu.Unlock()
			return true, 0, nil
		}
		if now.Before(ls.emptyUntil) {
			l.mu.Unlock()
			return false, ls.emptyUntil.Sub(now), nil
		}
		if wait := ls.refilling; wait != nil && attempt == 0 {
			l.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return false, 0, ctx.Err()
			}
		}
		done := make(chan struct{})
		ls.refilling = done
		l.mu.Unlock()
		ok, wait, err := l.refill(ctx, key, ls, now)
		l.mu.Lock()
		ls.refilling = nil
		l.mu.Unlock()
		close(done)
		return ok, wait, err
	}
}

// refill takes a block (or, failing that, one token) of key's shared bucket
// for ls; it returns whether the caller got its token.
func (l *RateLimiter) refill(ctx context.Context, key string, ls *lease, now time.Time) (bool, time.Duration, error) {
	burst := max(l.rate.Burst, 1)
	if n := l.block(); n > 1 {
		ok, _, err := l.buckets.TakeTokens(ctx, "rate:"+key, n, l.rate.Interval(), burst, now)
		if err != nil {
			return false, 0, err
		}
		if ok {
			l.mu.Lock()
			ls.tokens, ls.expires = n-1, now.Add(leaseFor)
			l.mu.Unlock()
			return true, 0, nil
		}
	}
	// No block to be had: one token, as the bucket allows.
	ok, wait, err := l.buckets.TakeTokens(ctx, "rate:"+key, 1, l.rate.Interval(), burst, now)
	if err == nil && !ok {
		l.mu.Lock()
		ls.emptyUntil = now.Add(wait)
		l.mu.Unlock()
	}
	return ok, wait, err
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
