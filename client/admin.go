package client

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"time"
)

// WorkerSetting is the persisted half of the worker-system flag.
type WorkerSetting struct {
	Enabled        bool      `json:"enabled"`
	RolloutPercent int       `json:"rollout_percent"`
	Reason         string    `json:"reason"`
	UpdatedBy      string    `json:"updated_by"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// WorkerSystem is the effective worker-system flag of the replica that
// answers. Anyone sees Enabled and Type; the rest is an operator's.
type WorkerSystem struct {
	Enabled        bool           `json:"enabled"`
	Type           string         `json:"type"` // durable, background_tasks
	RolloutPercent int            `json:"rollout_percent"`
	Reason         string         `json:"reason"`
	KillSwitch     bool           `json:"kill_switch"`
	Redis          string         `json:"redis"` // up, down, unconfigured
	WorkersUp      int            `json:"workers_up"`
	WorkersCrashed int            `json:"workers_crashed"`
	Setting        *WorkerSetting `json:"setting,omitempty"`
}

// WorkerSystemChange is a flag change: Enabled with RolloutPercent 0 means
// 100 when Enabled was false before (as a rollback leaves it).
type WorkerSystemChange struct {
	Enabled        bool   `json:"enabled"`
	RolloutPercent *int   `json:"rollout_percent,omitempty"`
	Reason         string `json:"reason,omitempty"`
}

// Percent is a RolloutPercent for WorkerSystemChange.
func Percent(n int) *int { return &n }

// WorkerSystem reads the flag (admin).
func (c *Client) WorkerSystem(ctx context.Context) (*WorkerSystem, error) {
	var w WorkerSystem
	_, err := c.do(ctx, call{method: "GET", path: "/api/admin/worker-system"}, &w)
	return ok(&w, err)
}

// SetWorkerSystem switches the mode (admin): the durable worker on, at a
// rollout share, or off.
func (c *Client) SetWorkerSystem(ctx context.Context, ch WorkerSystemChange) (*WorkerSystem, error) {
	var w WorkerSystem
	_, err := c.do(ctx, call{method: "PUT", path: "/api/admin/worker-system", body: ch}, &w)
	return ok(&w, err)
}

// Step is one step of a rollback or a roll-forward.
type Step struct {
	Name   string  `json:"name"`
	OK     bool    `json:"ok"`
	Detail string  `json:"detail"`
	TookMS float64 `json:"took_ms"`
}

// Audit is the record of a rollback or a roll-forward.
type Audit struct {
	ID               string          `json:"id"`
	Kind             string          `json:"kind"` // rollback, rollforward
	Trigger          string          `json:"trigger"`
	Reason           string          `json:"reason"`
	Actor            string          `json:"actor"`
	Status           string          `json:"status"` // completed, failed
	Evidence         json.RawMessage `json:"evidence,omitempty"`
	Actions          []string        `json:"actions"`
	JobsMigrated     int             `json:"jobs_migrated"`
	JobsFailed       int             `json:"jobs_failed"`
	AffectedProjects int             `json:"affected_projects"`
	StartedAt        time.Time       `json:"started_at"`
	FinishedAt       time.Time       `json:"finished_at"`
	DurationMS       int64           `json:"duration_ms"`
	Report           string          `json:"report"`
}

// OperationResult is a rollback's or roll-forward's answer: its steps and,
// once saved, its record. When the operation failed, the call returns it
// with an *Error (409 rollback_superseded / rollforward_refused, 500
// rollback_failed / rollforward_failed).
type OperationResult struct {
	Steps  []Step `json:"steps"`
	Record *Audit `json:"record,omitempty"`
	// NextSteps is what a completed rollback leaves to the operator: while
	// durable workers are up, "stop the durable workers: N still up …" first.
	NextSteps []string `json:"next_steps,omitempty"`
}

// Rollback switches every replica to background_tasks and moves the queued
// durable jobs there (admin).
func (c *Client) Rollback(ctx context.Context, reason string) (*OperationResult, error) {
	return c.operation(ctx, "/api/admin/rollback", map[string]any{"reason": reason})
}

// Rollforward steps the durable rollout up to percent (admin).
func (c *Client) Rollforward(ctx context.Context, percent int, reason string) (*OperationResult, error) {
	return c.operation(ctx, "/api/admin/rollforward", map[string]any{"percent": percent, "reason": reason})
}

// operation posts a rollback or roll-forward; its steps come back with a
// failure too.
func (c *Client) operation(ctx context.Context, p string, body any) (*OperationResult, error) {
	resp, b, err := c.send(ctx, call{method: "POST", path: p, body: body})
	if err != nil {
		return nil, err
	}
	var r OperationResult
	decodeErr := json.Unmarshal(b, &r)
	if resp.StatusCode != 200 {
		if decodeErr != nil || r.Steps == nil && r.Record == nil {
			return nil, apiError(resp, b)
		}
		return &r, apiError(resp, b)
	}
	return ok(&r, decodeErr)
}

// AuditList is the rollback history, newest first.
type AuditList struct {
	Items      []Audit `json:"items"`
	NextCursor string  `json:"next_cursor"`
}

// Rollbacks lists the last limit rollbacks and roll-forwards (admin); 0 is
// the server's default.
func (c *Client) Rollbacks(ctx context.Context, limit int) (*AuditList, error) {
	var l AuditList
	_, err := c.do(ctx, call{method: "GET", path: "/api/admin/rollbacks", query: limitQuery(limit)}, &l)
	return ok(&l, err)
}

// RollbackRecord reads one record (admin).
func (c *Client) RollbackRecord(ctx context.Context, id string) (*Audit, error) {
	var a Audit
	_, err := c.do(ctx, call{method: "GET", path: path("api", "admin", "rollbacks", id)}, &a)
	return ok(&a, err)
}

// RollbackReport is a record's incident report, YAML (admin).
func (c *Client) RollbackReport(ctx context.Context, id string) ([]byte, error) {
	resp, b, err := c.send(ctx, call{method: "GET", path: path("api", "admin", "rollbacks", id, "report")})
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, apiError(resp, b)
	}
	return b, nil
}

// MigrationFailure is a job of the migration_failed list.
type MigrationFailure struct {
	JobID     string    `json:"job_id"`
	Source    string    `json:"source"`
	Target    string    `json:"target"`
	Reason    string    `json:"reason"`
	AuditID   string    `json:"audit_id"`
	CreatedAt time.Time `json:"created_at"`
}

// MigrationResult is a migration's outcome.
type MigrationResult struct {
	Source   string             `json:"source"`
	Target   string             `json:"target"`
	Total    int                `json:"total"`
	Migrated int                `json:"migrated"`
	Failed   []MigrationFailure `json:"failed"`
	TookMS   int64              `json:"took_ms"`
}

// MigratePendingJobs moves the queued jobs of source to target (admin):
// durable or background_tasks.
func (c *Client) MigratePendingJobs(ctx context.Context, source, target string) (*MigrationResult, error) {
	var r MigrationResult
	_, err := c.do(ctx, call{method: "POST", path: "/api/admin/migrate-pending-jobs",
		body: map[string]string{"source": source, "target": target}}, &r)
	return ok(&r, err)
}

// MigrationFailures lists the migration_failed list (admin).
func (c *Client) MigrationFailures(ctx context.Context) ([]MigrationFailure, error) {
	var l struct {
		Items []MigrationFailure `json:"items"`
	}
	_, err := c.do(ctx, call{method: "GET", path: "/api/admin/migration-failed"}, &l)
	return l.Items, err
}

// RetryResult is a retried migration's outcome.
type RetryResult struct {
	JobID    string `json:"job_id"`
	Migrated int    `json:"migrated"`
	Target   string `json:"target"`
}

// RetryMigration migrates one job of the migration_failed list again (admin).
func (c *Client) RetryMigration(ctx context.Context, jobID string) (*RetryResult, error) {
	var r RetryResult
	_, err := c.do(ctx, call{method: "POST", path: path("api", "admin", "migration-failed", jobID, "retry")}, &r)
	return ok(&r, err)
}

// Memory is the process's memory.
type Memory struct {
	RSSBytes       int64   `json:"rss_bytes"`
	HeapBytes      int64   `json:"heap_bytes"`
	HostPercent    float64 `json:"host_percent"`
	ProcessPercent float64 `json:"process_percent"`
	Goroutines     int     `json:"goroutines"`
}

// BackgroundTasks is the in-process pool's load.
type BackgroundTasks struct {
	Active int `json:"active"`
	Queued int `json:"queued"`
	Max    int `json:"max"`
}

// Trigger is one trigger of the automatic rollback controller.
type Trigger struct {
	Name      string     `json:"name"`
	State     string     `json:"state"` // ok, pending, firing, unknown
	Since     *time.Time `json:"since,omitempty"`
	Value     string     `json:"value"`
	Threshold string     `json:"threshold"`
	Window    string     `json:"window"`
}

// Stats are the operator's figures (admin).
type Stats struct {
	WorkerSystem    WorkerSystem    `json:"worker_system"`
	BackgroundTasks BackgroundTasks `json:"background_tasks"`
	Memory          Memory          `json:"memory"`
	Durable         struct {
		Redis          string  `json:"redis"`
		WorkersUp      int     `json:"workers_up"`
		WorkersCrashed int     `json:"workers_crashed"`
		QueueDepth     int     `json:"queue_depth"`
		Active         int     `json:"active"`
		Archived       int     `json:"archived"`
		LatencySeconds float64 `json:"latency_seconds"`
	} `json:"durable"`
	AverageResponseTime float64   `json:"average_response_time"` // seconds
	P99ResponseTime     float64   `json:"p99_response_time"`     // seconds
	Triggers            []Trigger `json:"triggers"`
}

// Stats reads the operator's figures (admin).
func (c *Client) Stats(ctx context.Context) (*Stats, error) {
	var s Stats
	_, err := c.do(ctx, call{method: "GET", path: "/api/admin/stats"}, &s)
	return ok(&s, err)
}

// Replica is a serving replica as GET /api/admin/replicas shows it.
type Replica struct {
	ID              string  `json:"id"`
	Address         string  `json:"address"`
	Version         string  `json:"version"`
	State           string  `json:"state"` // up or gone
	FlagRevision    int64   `json:"flag_revision"`
	FlagStale       bool    `json:"flag_stale"`
	AgeSeconds      float64 `json:"age_seconds"`
	LastSeenSeconds float64 `json:"last_seen_seconds"`
}

// ReplicasView lists the replicas against the flag's current revision.
type ReplicasView struct {
	FlagRevision int64     `json:"flag_revision"`
	Up           int       `json:"up"`
	Stale        int       `json:"stale"`
	Replicas     []Replica `json:"replicas"`
}

// Replicas lists the serving replicas (admin); one that has not applied the
// current flag within staleAfter (0: the server's default) is FlagStale.
func (c *Client) Replicas(ctx context.Context, staleAfter time.Duration) (*ReplicasView, error) {
	var v ReplicasView
	k := call{method: "GET", path: "/api/admin/replicas"}
	if staleAfter > 0 {
		k.query = url.Values{"stale_after": {staleAfter.String()}}
	}
	_, err := c.do(ctx, k, &v)
	return ok(&v, err)
}

// DeleteVerifyProject removes everything `scriptgen verify` created in its
// reserved project (admin) and returns what the server counted as deleted.
func (c *Client) DeleteVerifyProject(ctx context.Context) (map[string]any, error) {
	var out struct {
		Deleted map[string]any `json:"deleted"`
	}
	_, err := c.do(ctx, call{method: "DELETE", path: "/api/admin/verify-project"}, &out)
	return out.Deleted, err
}

// CleanupResult is a cleanup's outcome.
type CleanupResult struct {
	Before  Memory   `json:"before"`
	After   Memory   `json:"after"`
	Actions []string `json:"actions"`
	TookMS  int64    `json:"took_ms"`
}

// Cleanup frees memory (admin): a GC, the caches.
func (c *Client) Cleanup(ctx context.Context, forceGC, clearCaches bool) (*CleanupResult, error) {
	var r CleanupResult
	_, err := c.do(ctx, call{method: "POST", path: "/api/admin/cleanup",
		body: map[string]bool{"force_gc": forceGC, "clear_caches": clearCaches}}, &r)
	return ok(&r, err)
}

// GracefulRestart asks the process to hand its socket to a new one and
// drain (admin); it answers before the restart.
func (c *Client) GracefulRestart(ctx context.Context) error {
	_, err := c.do(ctx, call{method: "POST", path: "/api/admin/graceful-restart"}, nil)
	return err
}

// KeyRequest asks for a new API key.
type KeyRequest struct {
	Tenant   string   `json:"tenant"`
	Name     string   `json:"name"`
	Projects []string `json:"projects,omitempty"` // none: all of the tenant's
}

// Key is an API key as the admin API shows it; Secret only in the answer
// that made it.
type Key struct {
	ID        string     `json:"id"`
	Prefix    string     `json:"prefix"`
	Tenant    string     `json:"tenant"`
	Projects  []string   `json:"projects"`
	Name      string     `json:"name"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at"`
	Secret    string     `json:"key,omitempty"`
}

// CreateKey issues a key (admin); its Secret is shown this once.
func (c *Client) CreateKey(ctx context.Context, r KeyRequest) (*Key, error) {
	var k Key
	_, err := c.do(ctx, call{method: "POST", path: "/api/admin/keys", body: r}, &k)
	return ok(&k, err)
}

// Keys lists the keys (admin).
func (c *Client) Keys(ctx context.Context) ([]Key, error) {
	var l struct {
		Items []Key `json:"items"`
	}
	_, err := c.do(ctx, call{method: "GET", path: "/api/admin/keys"}, &l)
	return l.Items, err
}

// RotateKey issues a key in place of id, which is revoked (admin).
func (c *Client) RotateKey(ctx context.Context, id string) (*Key, error) {
	var k Key
	_, err := c.do(ctx, call{method: "POST", path: path("api", "admin", "keys", id, "rotate")}, &k)
	return ok(&k, err)
}

// RevokeKey revokes a key (admin).
func (c *Client) RevokeKey(ctx context.Context, id string) (*Key, error) {
	var k Key
	_, err := c.do(ctx, call{method: "DELETE", path: path("api", "admin", "keys", id)}, &k)
	return ok(&k, err)
}

// ok is v, or nil with err.
func ok[T any](v *T, err error) (*T, error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}

func limitQuery(limit int) url.Values {
	if limit <= 0 {
		return nil
	}
	return url.Values{"limit": {strconv.Itoa(limit)}}
}
