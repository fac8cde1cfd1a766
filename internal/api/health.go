package api

import (
	"context"
	"net/http"
	"os"
	"time"

	"github.com/scriptgen/scriptgen/internal/httpx/response"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/sysmem"
	"github.com/scriptgen/scriptgen/internal/version"
)

// statusHandler serves the state of the service: its health and its system
// information.
type statusHandler struct {
	store     store.Store
	system    System
	generator string
	started   time.Time
}

type databaseJSON struct {
	Status string `json:"status"`
	Driver string `json:"driver"`
	Error  string `json:"error,omitempty"`
}

func (h *statusHandler) database(ctx context.Context) databaseJSON {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	d := databaseJSON{Status: "ok", Driver: h.store.Driver()}
	if err := h.store.Ping(ctx); err != nil {
		d.Status, d.Error = "unavailable", err.Error()
	}
	return d
}

// health answers GET /health: 200, or 503 and "degraded" when the database
// does not answer.
func (h *statusHandler) health(w http.ResponseWriter, r *http.Request) {
	db := h.database(r.Context())
	status, code := "ok", http.StatusOK
	if db.Status != "ok" {
		status, code = "degraded", http.StatusServiceUnavailable
	}
	response.JSON(w, code, map[string]any{
		"status":           status,
		"version":          version.String(),
		"uptime_seconds":   int(time.Since(h.started).Seconds()),
		"worker_system":    h.system.WorkerSystem(r.Context()),
		"background_tasks": h.system.BackgroundTasks(r.Context()),
		"database":         db,
		"process":          processJSON(),
	})
}

func processJSON() map[string]any {
	rss, _ := sysmem.ProcessRSS(0)
	return map[string]any{"pid": os.Getpid(), "rss_bytes": rss}
}

// systemInfo answers GET /api/generation/system-info.
func (h *statusHandler) systemInfo(w http.ResponseWriter, r *http.Request) {
	response.OK(w, map[string]any{
		"version":          version.String(),
		"worker_system":    h.system.WorkerSystem(r.Context()),
		"background_tasks": h.system.BackgroundTasks(r.Context()),
		"database":         h.database(r.Context()),
		"generator":        h.generator,
		"queues":           []string{"generation", "rag_processing"},
	})
}
