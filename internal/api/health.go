package api

import (
	"context"
	"net/http"
	"os"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/httpx/response"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/sysmem"
	"github.com/scriptgen/scriptgen/internal/version"
)

// statusHandler serves the state of the service: its health, its system
// information and a tenant's usage. What anyone may see is the status and
// the worker mode; the details (the setting's reason and author, the
// process, errors) are the operators'.
type statusHandler struct {
	domainErrors
	store     store.Store
	system    System
	generator string
	started   time.Time
	// isAdmin tells whether a request carries an admin token.
	isAdmin func(r *http.Request) bool
	// authMode names how writers are recognised (access.Authenticator.Mode).
	authMode func(ctx context.Context) string
	limits   Limits
}

// Degrader is what a System may also tell: why the service is degraded now
// (writes failing, Redis down while the durable worker is on, no worker).
type Degrader interface {
	Degraded(ctx context.Context) []string
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

// health answers GET /health: "ok", or "degraded" with its reasons; 503 with
// Retry-After only when the database does not answer (the replica cannot
// serve), 200 otherwise, so that a load balancer keeps a replica that can.
func (h *statusHandler) health(w http.ResponseWriter, r *http.Request) {
	reasons, dbDown := h.reasons(r.Context())
	status, code := "ok", http.StatusOK
	if len(reasons) > 0 {
		status = "degraded"
	}
	if dbDown {
		code = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "5")
	}
	ws := h.system.WorkerSystem(r.Context())
	body := map[string]any{
		"status":        status,
		"reasons":       reasons,
		"worker_system": map[string]any{"enabled": ws.Enabled, "type": ws.Type},
		"auth":          h.authMode(r.Context()),
	}
	if h.isAdmin(r) {
		body["version"] = version.String()
		body["uptime_seconds"] = int(time.Since(h.started).Seconds())
		body["worker_system"] = ws
		body["background_tasks"] = h.system.BackgroundTasks(r.Context())
		body["database"] = h.database(r.Context())
		body["process"] = processJSON()
	}
	response.JSON(w, code, body)
}

// dbUnreachable is the reason that makes /health 503.
const dbUnreachable = "database unreachable"

// reasons are why the service is degraded now: the System's own list when
// it keeps one (its database ping included), else the database's ping alone.
func (h *statusHandler) reasons(ctx context.Context) (reasons []string, dbDown bool) {
	reasons = []string{}
	if d, ok := h.system.(Degrader); ok {
		reasons = append(reasons, d.Degraded(ctx)...)
	} else if h.database(ctx).Status != "ok" {
		reasons = append(reasons, dbUnreachable)
	}
	for _, reason := range reasons {
		dbDown = dbDown || reason == dbUnreachable
	}
	return reasons, dbDown
}

func processJSON() map[string]any {
	rss, _ := sysmem.ProcessRSS(0)
	return map[string]any{"pid": os.Getpid(), "rss_bytes": rss}
}

// systemInfo answers GET /api/generation/system-info: the worker mode and
// the generator for anyone (a writer's page shows them), the rest for
// operators.
func (h *statusHandler) systemInfo(w http.ResponseWriter, r *http.Request) {
	ws := h.system.WorkerSystem(r.Context())
	body := map[string]any{
		"version":       version.String(),
		"worker_system": map[string]any{"enabled": ws.Enabled, "type": ws.Type},
		"generator":     h.generator,
		"queues":        []string{"generation", "rag_processing"},
	}
	if h.isAdmin(r) {
		body["worker_system"] = ws
		body["background_tasks"] = h.system.BackgroundTasks(r.Context())
		body["database"] = h.database(r.Context())
	}
	response.OK(w, body)
}

// usageJSON is a tenant's use in one period against its budget (0: none).
type usageJSON struct {
	Period   string `json:"period"`
	Tokens   int64  `json:"tokens"`
	Attempts int64  `json:"attempts"`
	Budget   int64  `json:"budget"`
}

// usage answers GET /api/usage: the caller's tenant's LLM tokens and
// generation attempts of today and of this month (UTC), with its budgets.
func (h *statusHandler) usage(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	tenant := p.Tenant
	if p.Everything() {
		tenant = r.URL.Query().Get("tenant")
	}
	c := h.limits.Clock
	if c == nil {
		c = clock.Real{}
	}
	day, month := UsagePeriods(c.Now())
	out := map[string]any{"tenant": tenant}
	for _, period := range []struct {
		name, key string
		budget    int64
	}{{"day", day, h.limits.TokensPerDay}, {"month", month, h.limits.TokensPerMonth}} {
		u, err := h.store.GetUsage(r.Context(), tenant, period.key)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		out[period.name] = usageJSON{Period: period.key, Tokens: u.Tokens, Attempts: u.Attempts, Budget: period.budget}
	}
	count, bytes, err := h.store.DocumentUsage(r.Context(), tenant)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out["documents"] = map[string]int64{"count": count, "bytes": bytes, "max_count": h.limits.MaxDocuments, "max_bytes": h.limits.MaxDocumentBytes}
	response.OK(w, out)
}
