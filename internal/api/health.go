package api

import (
	"context"
	"net/http"
	"os"
	"time"

	"github.com/scriptgen/scriptgen/internal/sysmem"
	"github.com/scriptgen/scriptgen/internal/version"
)

type databaseJSON struct {
	Status string `json:"status"`
	Driver string `json:"driver"`
	Error  string `json:"error,omitempty"`
}

func (a *API) database(ctx context.Context) databaseJSON {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	d := databaseJSON{Status: "ok", Driver: a.cfg.Store.Driver()}
	if err := a.cfg.Store.Ping(ctx); err != nil {
		d.Status, d.Error = "unavailable", err.Error()
	}
	return d
}

func (a *API) health(w http.ResponseWriter, r *http.Request) {
	db := a.database(r.Context())
	status, code := "ok", http.StatusOK
	if db.Status != "ok" {
		status, code = "degraded", http.StatusServiceUnavailable
	}
	WriteJSON(w, code, map[string]any{
		"status":           status,
		"version":          version.String(),
		"uptime_seconds":   int(time.Since(a.started).Seconds()),
		"worker_system":    a.cfg.System.WorkerSystem(r.Context()),
		"background_tasks": a.cfg.System.BackgroundTasks(r.Context()),
		"database":         db,
		"process":          processJSON(),
	})
}

func processJSON() map[string]any {
	rss, _ := sysmem.ProcessRSS(0)
	return map[string]any{"pid": os.Getpid(), "rss_bytes": rss}
}

func (a *API) systemInfo(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]any{
		"version":          version.String(),
		"worker_system":    a.cfg.System.WorkerSystem(r.Context()),
		"background_tasks": a.cfg.System.BackgroundTasks(r.Context()),
		"database":         a.database(r.Context()),
		"generator":        a.cfg.Generator,
		"queues":           []string{"generation", "rag_processing"},
	})
}
