package server

import (
	"context"
	"sync"
	"time"

	"github.com/scriptgen/scriptgen/internal/durable"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// What makes a serving process degraded, for /health.
const (
	// degradedPing is how long the database has to answer a ping.
	degradedPing = time.Second
	// writeFailureFor is how long a write that failed for want of the
	// database keeps the process degraded.
	writeFailureFor = 30 * time.Second
	// workerSilentFor is how far back the registry is read for workers
	// alive now (durable.Count: beaten within three heartbeats).
	workerSilentFor = time.Minute
)

// writeFailure is the last write that failed because the database could not
// take it (store.IsUnavailable).
type writeFailure struct {
	mu    sync.Mutex
	at    time.Time
	class string
}

func (s *Server) writeFailure() *writeFailure { return &s.lastWriteFailure }

// WriteFailed hears of a failed write (the API calls it with every error it
// answers 503 database_unavailable). An error that says the database is
// unavailable (disk full, read-only, unreachable…) makes the process
// degraded for 30 s; any other error is ignored.
func (s *Server) WriteFailed(err error) {
	class := store.UnavailableClass(err)
	if class == "" {
		return
	}
	w := s.writeFailure()
	w.mu.Lock()
	w.at, w.class = time.Now(), class
	w.mu.Unlock()
}

// recentWriteFailure is the class of the write failure of the last 30 s, or "".
func (s *Server) recentWriteFailure(now time.Time) string {
	w := s.writeFailure()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.at.IsZero() || now.Sub(w.at) > writeFailureFor {
		return ""
	}
	return w.class
}

// Degraded lists why the service is degraded now, or nothing:
//
//   - "database unreachable": the database does not answer a ping within 1 s;
//   - "database writes failing: <class>": a write failed in the last 30 s
//     because the database could not take it (WriteFailed);
//   - "redis unreachable while the durable worker is on": the effective flag
//     sends some share of the jobs to the durable worker and Redis does not
//     answer;
//   - "no durable worker alive": the same, and no worker process is alive
//     now (none beat within three heartbeats, or all stopped), so the jobs
//     sent there wait; the controller's workers_missing trigger rolls back
//     when it lasts ROLLBACK_WORKERS_MISSING_FOR.
//
// Its checks run at once; it takes about a second at most.
func (s *Server) Degraded(ctx context.Context) []string {
	now := time.Now()
	durableOn := s.flag != nil && s.flag.State().Type() == job.BackendDurable
	var dbDown, redisDown, noWorker bool
	var wg sync.WaitGroup
	wg.Go(func() {
		ctx, cancel := context.WithTimeout(ctx, degradedPing)
		defer cancel()
		dbDown = s.store.Ping(ctx) != nil
		if dbDown || !durableOn {
			return
		}
		ws, err := s.store.ListWorkers(ctx, durable.RoleWorker, now.Add(-workerSilentFor))
		noWorker = err == nil && durable.Count(ws, now).Up == 0
	})
	if durableOn {
		wg.Go(func() { redisDown = !s.RedisUp(ctx) })
	}
	wg.Wait()

	reasons := []string{}
	if dbDown {
		reasons = append(reasons, "database unreachable")
	}
	if class := s.recentWriteFailure(now); class != "" {
		reasons = append(reasons, "database writes failing: "+class)
	}
	if redisDown {
		reasons = append(reasons, "redis unreachable while the durable worker is on")
	}
	if noWorker {
		reasons = append(reasons, "no durable worker alive")
	}
	return reasons
}
