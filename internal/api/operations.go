package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/rollback"
	"github.com/scriptgen/scriptgen/internal/store"
)

// Operations are the runbook's admin calls beyond the flag.
type Operations struct {
	Rollback *rollback.Service
	Store    store.Store
	// Stats answers GET /api/admin/stats.
	Stats func(ctx context.Context) any
	// Cleanup answers POST /api/admin/cleanup.
	Cleanup func(ctx context.Context, forceGC, clearCaches bool) any
	// Restart hands the listening socket to a new process (graceful restart).
	Restart func() error
}

// AuditJSON is a rollback or roll-forward as the API shows it.
type AuditJSON struct {
	ID               string          `json:"id"`
	Kind             string          `json:"kind"`
	Trigger          string          `json:"trigger"`
	Reason           string          `json:"reason"`
	Actor            string          `json:"actor"`
	Status           string          `json:"status"`
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

func newAuditJSON(a store.AuditRecord) AuditJSON {
	return AuditJSON{ID: a.ID, Kind: a.Kind, Trigger: a.Trigger, Reason: a.Reason, Actor: a.Actor, Status: a.Status,
		Evidence: a.Evidence, Actions: append([]string{}, a.Actions...), JobsMigrated: a.JobsMigrated, JobsFailed: a.JobsFailed,
		AffectedProjects: a.AffectedProjects, StartedAt: a.StartedAt, FinishedAt: a.FinishedAt,
		DurationMS: a.FinishedAt.Sub(a.StartedAt).Milliseconds(), Report: "/api/admin/rollbacks/" + a.ID + "/report"}
}

func failureJSON(f store.MigrationFailure) map[string]any {
	return map[string]any{"job_id": f.JobID, "source": f.Source, "target": f.Target, "reason": f.Reason,
		"audit_id": f.AuditID, "created_at": f.CreatedAt}
}

// writeOperation answers a rollback or roll-forward with its steps and, once
// saved, its record (whose id leads to its report). An error that Is
// conflict is the caller's 409 (conflictCode), any other a 500 (failCode).
func writeOperation(w http.ResponseWriter, rec store.AuditRecord, steps []rollback.Step, err error,
	conflict error, conflictCode, failCode string) {
	body := map[string]any{"steps": steps}
	if !errors.Is(err, rollback.ErrNotRecorded) && rec.ID != "" {
		body["record"] = newAuditJSON(rec)
	}
	status := http.StatusOK
	switch {
	case err == nil:
	case errors.Is(err, conflict):
		status, body["error"] = http.StatusConflict, map[string]string{"code": conflictCode, "message": err.Error()}
	default:
		status, body["error"] = http.StatusInternalServerError, map[string]string{"code": failCode, "message": err.Error()}
	}
	WriteJSON(w, status, body)
}

// operationContext is the context of an operator's action: it runs to its end
// even when the client goes away (a closed terminal, a proxy's timeout), since
// a rollback stopped after its flag step, or a migration stopped halfway,
// leaves more to repair than either finished.
func operationContext(r *http.Request) context.Context { return context.WithoutCancel(r.Context()) }

// OperationRoutes registers the rollback, migration, stats, cleanup and
// restart calls; AdminRoutes puts them behind the token.
func OperationRoutes(ops Operations) func(mux *http.ServeMux, auth func(http.HandlerFunc) http.HandlerFunc) {
	return func(mux *http.ServeMux, auth func(http.HandlerFunc) http.HandlerFunc) {
		mux.HandleFunc("POST /api/admin/rollback", auth(func(w http.ResponseWriter, r *http.Request) {
			var body struct {
				Reason string `json:"reason"`
			}
			if err := decodeAdminBody(r, &body); err != nil {
				writeValidation(w, err)
				return
			}
			if err := job.ValidateReason(body.Reason); err != nil {
				writeValidation(w, err)
				return
			}
			var steps []rollback.Step
			rec, err := ops.Rollback.Rollback(operationContext(r), rollback.Request{Reason: body.Reason, Actor: "admin@" + clientAddr(r), Trigger: "manual"},
				func(s rollback.Step) { steps = append(steps, s) })
			// Superseded: another operator enabled the durable worker
			// meanwhile, a conflict of two decisions, not a fault of the service.
			writeOperation(w, rec, steps, err, rollback.ErrSuperseded, "rollback_superseded", "rollback_failed")
		}))
		mux.HandleFunc("POST /api/admin/rollforward", auth(func(w http.ResponseWriter, r *http.Request) {
			var body struct {
				Percent *int   `json:"percent"`
				Reason  string `json:"reason"`
			}
			if err := decodeAdminBody(r, &body); err != nil {
				writeValidation(w, err)
				return
			}
			if body.Percent == nil || *body.Percent < 0 || *body.Percent > 100 {
				writeValidation(w, &job.ValidationError{Field: "percent", Message: "is required, from 0 to 100"})
				return
			}
			if err := job.ValidateReason(body.Reason); err != nil {
				writeValidation(w, err)
				return
			}
			var steps []rollback.Step
			rec, err := ops.Rollback.Rollforward(operationContext(r), *body.Percent, rollback.Request{Reason: body.Reason, Actor: "admin@" + clientAddr(r)},
				func(s rollback.Step) { steps = append(steps, s) })
			writeOperation(w, rec, steps, err, rollback.ErrNoDurableSide, "rollforward_refused", "rollforward_failed")
		}))
		mux.HandleFunc("GET /api/admin/rollbacks", auth(func(w http.ResponseWriter, r *http.Request) {
			limit, err := limitParam(r, 50, 500)
			if err != nil {
				writeValidation(w, err)
				return
			}
			recs, err := ops.Store.ListAudits(r.Context(), limit)
			if err != nil {
				WriteError(w, http.StatusInternalServerError, "internal", err.Error())
				return
			}
			items := make([]AuditJSON, len(recs))
			for i, a := range recs {
				items[i] = newAuditJSON(a)
			}
			WriteJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": ""})
		}))
		getAudit := func(w http.ResponseWriter, r *http.Request) (store.AuditRecord, bool) {
			a, err := ops.Store.GetAudit(r.Context(), r.PathValue("id"))
			if errors.Is(err, job.ErrNotFound) {
				WriteError(w, http.StatusNotFound, "not_found", "no rollback or roll-forward with this id")
				return a, false
			}
			if err != nil {
				WriteError(w, http.StatusInternalServerError, "internal", err.Error())
				return a, false
			}
			return a, true
		}
		mux.HandleFunc("GET /api/admin/rollbacks/{id}", auth(func(w http.ResponseWriter, r *http.Request) {
			if a, ok := getAudit(w, r); ok {
				WriteJSON(w, http.StatusOK, newAuditJSON(a))
			}
		}))
		mux.HandleFunc("GET /api/admin/rollbacks/{id}/report", auth(func(w http.ResponseWriter, r *http.Request) {
			a, ok := getAudit(w, r)
			if !ok {
				return
			}
			b, err := rollback.NewReport(a).YAML()
			if err != nil {
				WriteError(w, http.StatusInternalServerError, "internal", err.Error())
				return
			}
			w.Header().Set("Content-Type", "text/yaml; charset=utf-8")
			w.Write(b)
		}))
		mux.HandleFunc("POST /api/admin/migrate-pending-jobs", auth(func(w http.ResponseWriter, r *http.Request) {
			var body struct {
				Source string `json:"source"`
				Target string `json:"target"`
			}
			if err := decodeAdminBody(r, &body); err != nil {
				writeValidation(w, err)
				return
			}
			src, err := rollback.ParseBackend(body.Source)
			if err != nil {
				writeValidation(w, &job.ValidationError{Field: "source", Message: err.Error()})
				return
			}
			dst, err := rollback.ParseBackend(body.Target)
			if err != nil || dst == src {
				writeValidation(w, &job.ValidationError{Field: "target", Message: "must be the other backend: durable (alias rq_queue) or background_tasks"})
				return
			}
			res, err := ops.Rollback.Migrate(operationContext(r), src, dst, "api", nil)
			if err != nil {
				WriteError(w, http.StatusInternalServerError, "migrate_failed", err.Error())
				return
			}
			failed := make([]map[string]any, len(res.Failed))
			for i, f := range res.Failed {
				failed[i] = failureJSON(f)
			}
			WriteJSON(w, http.StatusOK, map[string]any{"source": src, "target": dst, "total": res.Total, "migrated": res.Migrated,
				"failed": failed, "took_ms": res.Took.Milliseconds()})
		}))
		mux.HandleFunc("GET /api/admin/migration-failed", auth(func(w http.ResponseWriter, r *http.Request) {
			fs, err := ops.Store.ListMigrationFailures(r.Context(), 1000)
			if err != nil {
				WriteError(w, http.StatusInternalServerError, "internal", err.Error())
				return
			}
			items := make([]map[string]any, len(fs))
			for i, f := range fs {
				items[i] = failureJSON(f)
			}
			WriteJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": ""})
		}))
		mux.HandleFunc("POST /api/admin/migration-failed/{job_id}/retry", auth(func(w http.ResponseWriter, r *http.Request) {
			res, err := ops.Rollback.RetryFailed(operationContext(r), r.PathValue("job_id"))
			switch {
			case errors.Is(err, job.ErrNotFound):
				WriteError(w, http.StatusNotFound, "not_found", err.Error())
			case err != nil:
				WriteError(w, http.StatusConflict, "still_failing", err.Error())
			default:
				WriteJSON(w, http.StatusOK, map[string]any{"job_id": r.PathValue("job_id"), "migrated": res.Migrated, "target": res.Target})
			}
		}))
		mux.HandleFunc("GET /api/admin/stats", auth(func(w http.ResponseWriter, r *http.Request) {
			WriteJSON(w, http.StatusOK, ops.Stats(r.Context()))
		}))
		mux.HandleFunc("POST /api/admin/cleanup", auth(func(w http.ResponseWriter, r *http.Request) {
			var body struct {
				ForceGC     bool `json:"force_gc"`
				ClearCaches bool `json:"clear_caches"`
			}
			if err := decodeAdminBody(r, &body); err != nil {
				writeValidation(w, err)
				return
			}
			WriteJSON(w, http.StatusOK, ops.Cleanup(r.Context(), body.ForceGC, body.ClearCaches))
		}))
		mux.HandleFunc("POST /api/admin/graceful-restart", auth(func(w http.ResponseWriter, r *http.Request) {
			if ops.Restart == nil {
				WriteError(w, http.StatusConflict, "restart_unavailable", "graceful restart is not available in this process")
				return
			}
			if err := ops.Restart(); err != nil {
				WriteError(w, http.StatusConflict, "restart_failed", err.Error())
				return
			}
			WriteJSON(w, http.StatusAccepted, map[string]any{"status": "restarting",
				"message": "a new process takes over the listening socket; this one drains and exits"})
		}))
	}
}
