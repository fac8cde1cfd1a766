package job

import "time"

// Backoff is the delay between a failed attempt of a job and the next
// (JOB_BACKOFF_BASE, JOB_BACKOFF_CAP): Base before the second attempt,
// doubling for each one after, never more than Cap. A zero Base retries at
// once. There is no jitter: the delay is a function of the attempt alone,
// so that it can be tested exactly; jobs that failed together retry a claim
// interval apart anyway, each claimed by whichever runner polls first.
type Backoff struct {
	Base, Cap time.Duration
}

// Bounds of the backoff's settings (internal/config checks them).
const (
	MaxBackoffBase = time.Hour
	MaxBackoffCap  = 24 * time.Hour
)

// Delay is the wait before attempt n+1 once attempt n (from 1) failed:
// min(Base·2^(n-1), Cap).
func (b Backoff) Delay(n int) time.Duration {
	if b.Base <= 0 {
		return 0
	}
	d := b.Base
	for i := 1; i < n && d < b.Cap; i++ {
		d *= 2
	}
	return min(d, b.Cap)
}

// Steps lists the distinct delays by failed attempt: Steps()[i] is Delay(i+1),
// and every attempt past the list waits Cap. Empty for a zero Base. The store
// turns it into SQL, since one statement fails the jobs of many attempts.
func (b Backoff) Steps() []time.Duration {
	if b.Base <= 0 {
		return nil
	}
	var out []time.Duration
	for n := 1; ; n++ {
		d := b.Delay(n)
		out = append(out, d)
		if d >= b.Cap {
			return out
		}
	}
}
