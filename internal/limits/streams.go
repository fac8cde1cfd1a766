// Package limits keeps one client from hurting the others: caps on open
// connections and event streams, and per-tenant rates and quotas. A request
// over a cap is answered at once (429 or 503 with Retry-After) instead of
// being queued, so that /health and every other client keep their answers.
package limits

import (
	"sync"
)

// StreamCaps counts open event streams: in all, per credential and per job.
type StreamCaps struct {
	Total, PerClient, PerJob int

	mu       sync.Mutex
	total    int
	byClient map[string]int
	byJob    map[string]int
}

// NewStreamCaps returns caps; 0 means no cap of that kind.
func NewStreamCaps(total, perClient, perJob int) *StreamCaps {
	return &StreamCaps{
		Total:     total,
		PerClient: perClient,
		PerJob:    perJob,
		byClient:  map[string]int{},
		byJob:     map[string]int{},
	}
}

// Over names the cap a new stream would exceed: "total", "client", "job".
type Over string

// Acquire takes a stream slot for client on job. It returns a release func,
// or the cap that is full.
func (c *StreamCaps) Acquire(client, jobID string) (release func(), over Over) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.Total > 0 && c.total >= c.Total:
		return nil, "total"
	case c.PerClient > 0 && c.byClient[client] >= c.PerClient:
		return nil, "client"
	case c.PerJob > 0 && c.byJob[jobID] >= c.PerJob:
		return nil, "job"
	}
	c.total++
	c.byClient[client]++
	c.byJob[jobID]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.total--
			if c.byClient[client]--; c.byClient[client] <= 0 {
				delete(c.byClient, client)
			}
			if c.byJob[jobID]--; c.byJob[jobID] <= 0 {
				delete(c.byJob, jobID)
			}
		})
	}, ""
}

// Open is the number of open streams.
func (c *StreamCaps) Open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}
