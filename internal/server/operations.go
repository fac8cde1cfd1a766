package server

import (
	"context"
	"errors"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/scriptgen/scriptgen/internal/sysmem"
)

// Stats answers GET /api/admin/stats with the runbook's figures
// (.background_tasks.active, .average_response_time in seconds, …).
func (s *Server) Stats(ctx context.Context) any {
	ws := s.WorkerSystem(ctx)
	out := map[string]any{
		"worker_system":    ws,
		"background_tasks": s.BackgroundTasks(ctx),
		"memory":           memoryJSON(),
	}
	durableJSON := map[string]any{"redis": ws.Redis, "workers_up": ws.WorkersUp, "workers_crashed": ws.WorkersCrashed}
	if s.insp != nil {
		if st, err := s.insp.Stats(ctx); err == nil {
			durableJSON["queue_depth"], durableJSON["active"], durableJSON["archived"] = st.Depth, st.Active, st.Archived
			durableJSON["latency_seconds"] = st.Latency.Seconds()
		}
	}
	out["durable"] = durableJSON
	avg, p99 := s.responseTimes()
	out["average_response_time"], out["p99_response_time"] = avg.Seconds(), p99.Seconds()
	if s.controller != nil {
		out["triggers"] = s.controller.Triggers()
	}
	return out
}

func memoryJSON() map[string]any {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss, _ := sysmem.ProcessRSS(0)
	// host_percent is the whole machine's memory in use, every process's;
	// process_percent is what the memory trigger reads (MemoryPercent).
	host, _ := sysmem.SystemUsedPercent()
	out := map[string]any{"rss_bytes": rss, "heap_bytes": ms.HeapAlloc, "host_percent": host, "goroutines": runtime.NumGoroutine()}
	if u, err := sysmem.ProcessUsage(); err == nil {
		out["process_percent"] = u.Percent()
	}
	return out
}

// Cleanup answers POST /api/admin/cleanup: it returns freed memory to the
// system and drops the prepared-statement caches when asked, reporting memory
// before and after.
func (s *Server) Cleanup(ctx context.Context, forceGC, clearCaches bool) any {
	before := memoryJSON()
	start := time.Now()
	actions := []string{} // a JSON list even when nothing was asked
	if clearCaches {
		if c, ok := s.store.(interface{ ClearCaches() }); ok {
			c.ClearCaches()
			actions = append(actions, "prepared statements cleared")
		}
	}
	if forceGC {
		debug.FreeOSMemory()
		actions = append(actions, "garbage collected and memory returned to the OS")
	}
	return map[string]any{"before": before, "after": memoryJSON(), "actions": actions, "took_ms": time.Since(start).Milliseconds()}
}

// GracefulRestart answers POST /api/admin/graceful-restart: it hands the
// listening socket to a new process (Restart), when there is a restarter.
func (s *Server) GracefulRestart() error {
	if s.Restart == nil {
		return errors.New("this process was not started by `scriptgen serve`'s restarter")
	}
	return s.Restart()
}
