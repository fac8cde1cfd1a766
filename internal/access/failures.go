package access

import (
	"sync"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
)

// Failures counts failed authentication attempts per client address in a
// sliding window, and blocks an address that reached the limit until its
// oldest failure leaves the window.
type Failures struct {
	clock  clock.Clock
	limit  int
	window time.Duration

	mu   sync.Mutex
	seen map[string][]time.Time
}

// maxFailureClients bounds the memory a spread of addresses can take; past
// it the oldest records are forgotten first.
const maxFailureClients = 100000

// NewFailures allows limit failures per window from one address.
func NewFailures(c clock.Clock, limit int, window time.Duration) *Failures {
	return &Failures{clock: c, limit: limit, window: window, seen: map[string][]time.Time{}}
}

// Add records a failure of client.
func (f *Failures) Add(client string) {
	now := f.clock.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.seen) >= maxFailureClients {
		f.prune(now)
	}
	times := f.recent(client, now)
	if len(times) >= f.limit {
		times = times[1:]
	}
	f.seen[client] = append(times, now)
}

// Blocked returns how long client must wait, or 0.
func (f *Failures) Blocked(client string) time.Duration {
	now := f.clock.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	times := f.recent(client, now)
	if len(times) < f.limit {
		return 0
	}
	return times[0].Add(f.window).Sub(now)
}

func (f *Failures) recent(client string, now time.Time) []time.Time {
	times := f.seen[client]
	i := 0
	for i < len(times) && now.Sub(times[i]) >= f.window {
		i++
	}
	times = times[i:]
	if len(times) == 0 {
		delete(f.seen, client)
		return nil
	}
	f.seen[client] = times
	return times
}

func (f *Failures) prune(now time.Time) {
	for client := range f.seen {
		f.recent(client, now)
	}
	if len(f.seen) >= maxFailureClients {
		clear(f.seen)
	}
}
