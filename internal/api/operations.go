package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/scriptgen/scriptgen/internal/httpx/response"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/rollback"
	"github.com/scriptgen/scriptgen/internal/store"
)

// The runbook's admin calls beyond the flag: rollbacks and roll-forwards with
// their history and reports, job migration between the backends, and the
// process's stats, cleanup and graceful restart.

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
	// LeaderEpoch is the controller's term that wrote it; 0 for an operator's.
	LeaderEpoch int64 `json:"leader_epoch"`
}

func newAuditJSON(a store.AuditRecord) AuditJSON {
	return AuditJSON{
		ID:               a.ID,
		Kind:             a.Kind,
		Trigger:          a.Trigger,
		Reason:           a.Reason,
		Actor:            a.Actor,
		Status:           a.Status,
		Evidence:         a.Evidence,
		Actions:          append([]string{}, a.Actions...),
		JobsMigrated:     a.JobsMigrated,
		JobsFailed:       a.JobsFailed,
		AffectedProjects: a.AffectedProjects,
		StartedAt:        a.StartedAt,
		FinishedAt:       a.FinishedAt,
		DurationMS:       a.FinishedAt.Sub(a.StartedAt).Milliseconds(),
		Report:           "/api/admin/rollbacks/" + a.ID + "/report",
		LeaderEpoch:      a.LeaderEpoch,
	}
}

func failureJSON(f store.MigrationFailure) map[string]any {
	return map[string]any{
		"job_id":     f.JobID,
		"source":     f.Source,
		"target":     f.Target,
		"reason":     f.Reason,
		"audit_id":   f.AuditID,
		"created_at": f.CreatedAt,
	}
}

// writeOperation answers a rollback or roll-forward with its steps and, once
// saved, its record (whose id leads to its report). An error that Is
// conflict is the caller's 409 (conflictCode); any other is a 500 (failCode),
// whose error is logged and not shown: the steps and the record say which
// step failed.
func (h *adminHandler) writeOperation(w http.ResponseWriter, r *http.Request, rec store.AuditRecord, steps []rollback.Step, err error,
	conflict error, conflictCode, failCode string) {
	h.writeOperationBody(w, r, map[string]any{"steps": steps}, rec, err, conflict, conflictCode, failCode)
}

func (h *adminHandler) writeOperationBody(w http.ResponseWriter, r *http.Request, body map[string]any, rec store.AuditRecord, err error,
	conflict error, conflictCode, failCode string) {
	if !errors.Is(err, rollback.ErrNotRecorded) && rec.ID != "" {
		body["record"] = newAuditJSON(rec)
	}
	status := http.StatusOK
	switch {
	case err == nil:
	case errors.Is(err, conflict):
		status, body["error"] = http.StatusConflict, response.Problem{Code: conflictCode, Message: err.Error()}
	default:
		status, body["error"] = http.StatusInternalServerError, response.InternalProblem(w, r, h.log, failCode, err)
	}
	response.JSON(w, status, body)
}

// operationContext is the context of an operator's action: it runs to its end
// even when the client goes away (a closed terminal, a proxy's timeout), since
// a rollback stopped after its flag step, or a migration stopped halfway,
// leaves more to repair than either finished.
func operationContext(r *http.Request) context.Context { return context.WithoutCancel(r.Context()) }

// rollback turns the durable worker off and moves its queued jobs to
// background_tasks (POST /api/admin/rollback).
func (h *adminHandler) rollback(w http.ResponseWriter, r *http.Request) {
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
	req := rollback.Request{Reason: body.Reason, Actor: adminActor(r), Trigger: "manual"}
	rec, err := h.rollbacks.Rollback(operationContext(r), req, func(s rollback.Step) { steps = append(steps, s) })
	answer := map[string]any{"steps": steps}
	if err == nil {
		answer["next_steps"] = rollback.NextSteps(h.workersUp(r.Context()))
	}
	// Superseded: another operator enabled the durable worker meanwhile, a
	// conflict of two decisions, not a fault of the service.
	h.writeOperationBody(w, r, answer, rec, err, rollback.ErrSuperseded, "rollback_superseded", "rollback_failed")
}

// workersUp counts the durable workers up as /health shows them
// (worker_system.workers_up), the figure `scriptgen verify` checks after a
// rollback.
func (h *adminHandler) workersUp(ctx context.Context) int {
	if h.system == nil {
		return 0
	}
	return h.system.WorkerSystem(ctx).WorkersUp
}

// rollforward turns the durable worker on for a percentage of the projects
// (POST /api/admin/rollforward).
func (h *adminHandler) rollforward(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Percent *int   `json:"percent"`
		Reason  string `json:"reason"`
		Force   bool   `json:"force"`
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
	if body.Force && strings.TrimSpace(body.Reason) == "" {
		writeValidation(w, &job.ValidationError{Field: "reason", Message: "is required with force"})
		return
	}
	var steps []rollback.Step
	req := rollback.Request{Reason: body.Reason, Actor: adminActor(r), Force: body.Force}
	rec, err := h.rollbacks.Rollforward(operationContext(r), *body.Percent, req, func(s rollback.Step) { steps = append(steps, s) })
	if errors.Is(err, rollback.ErrTooSoon) {
		h.writeOperation(w, r, rec, steps, err, rollback.ErrTooSoon, "rollforward_too_soon", "rollforward_failed")
		return
	}
	h.writeOperation(w, r, rec, steps, err, rollback.ErrNoDurableSide, "rollforward_refused", "rollforward_failed")
}

// listRollbacks answers the history of rollbacks and roll-forwards, newest
// first.
func (h *adminHandler) listRollbacks(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r, store.DefaultPage, 500)
	if err != nil {
		writeValidation(w, err)
		return
	}
	recs, err := h.store.ListAudits(r.Context(), limit)
	if err != nil {
		response.ServerError(w, r, h.log, fmt.Errorf("list the audit records: %w", err))
		return
	}
	items := make([]AuditJSON, len(recs))
	for i, a := range recs {
		items[i] = newAuditJSON(a)
	}
	response.OK(w, map[string]any{"items": items, "next_cursor": ""})
}

// audit reads the record of the path's id; false once it has answered.
func (h *adminHandler) audit(w http.ResponseWriter, r *http.Request) (store.AuditRecord, bool) {
	a, err := h.store.GetAudit(r.Context(), r.PathValue("id"))
	if errors.Is(err, job.ErrNotFound) {
		response.Error(w, http.StatusNotFound, "not_found", "no rollback or roll-forward with this id")
		return a, false
	}
	if err != nil {
		response.ServerError(w, r, h.log, fmt.Errorf("read audit record %s: %w", r.PathValue("id"), err))
		return a, false
	}
	return a, true
}

// getRollback answers one rollback or roll-forward.
func (h *adminHandler) getRollback(w http.ResponseWriter, r *http.Request) {
	if a, ok := h.audit(w, r); ok {
		response.OK(w, newAuditJSON(a))
	}
}

// rollbackReport answers a rollback's or roll-forward's report in YAML.
func (h *adminHandler) rollbackReport(w http.ResponseWriter, r *http.Request) {
	a, ok := h.audit(w, r)
	if !ok {
		return
	}
	b, err := rollback.NewReport(a).YAML()
	if err != nil {
		response.ServerError(w, r, h.log, fmt.Errorf("report of audit record %s: %w", a.ID, err))
		return
	}
	w.Header().Set("Content-Type", "text/yaml; charset=utf-8")
	w.Write(b)
}

// migratePendingJobs moves the queued jobs of one backend to the other.
func (h *adminHandler) migratePendingJobs(w http.ResponseWriter, r *http.Request) {
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
	res, err := h.rollbacks.Migrate(operationContext(r), src, dst, "api", nil)
	if err != nil {
		response.Fail(w, http.StatusInternalServerError,
			response.InternalProblem(w, r, h.log, "migrate_failed", fmt.Errorf("migrate %s to %s: %w", src, dst, err)))
		return
	}
	failed := make([]map[string]any, len(res.Failed))
	for i, f := range res.Failed {
		failed[i] = failureJSON(f)
	}
	response.OK(w, map[string]any{
		"source":   src,
		"target":   dst,
		"total":    res.Total,
		"migrated": res.Migrated,
		"failed":   failed,
		"took_ms":  res.Took.Milliseconds(),
	})
}

// listMigrationFailures answers the jobs a migration could not move.
func (h *adminHandler) listMigrationFailures(w http.ResponseWriter, r *http.Request) {
	fs, err := h.store.ListMigrationFailures(r.Context(), 1000)
	if err != nil {
		response.ServerError(w, r, h.log, fmt.Errorf("list the migration failures: %w", err))
		return
	}
	items := make([]map[string]any, len(fs))
	for i, f := range fs {
		items[i] = failureJSON(f)
	}
	response.OK(w, map[string]any{"items": items, "next_cursor": ""})
}

// retryMigrationFailure tries to move a job of the failure list again.
func (h *adminHandler) retryMigrationFailure(w http.ResponseWriter, r *http.Request) {
	res, err := h.rollbacks.RetryFailed(operationContext(r), r.PathValue("job_id"))
	switch {
	case errors.Is(err, job.ErrNotFound):
		response.Error(w, http.StatusNotFound, "not_found", err.Error())
	case err != nil:
		response.Error(w, http.StatusConflict, "still_failing", err.Error())
	default:
		response.OK(w, map[string]any{"job_id": r.PathValue("job_id"), "migrated": res.Migrated, "target": res.Target})
	}
}

// stats answers the runbook's figures of this process.
func (h *adminHandler) stats(w http.ResponseWriter, r *http.Request) {
	response.OK(w, h.admin.Stats(r.Context()))
}

// history answers the last hour of the operator page's charts, as this
// replica sampled it.
func (h *adminHandler) history(w http.ResponseWriter, r *http.Request) {
	response.OK(w, h.admin.History())
}

// cleanup returns freed memory to the system and drops caches, as asked.
func (h *adminHandler) cleanup(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ForceGC     bool `json:"force_gc"`
		ClearCaches bool `json:"clear_caches"`
	}
	if err := decodeAdminBody(r, &body); err != nil {
		writeValidation(w, err)
		return
	}
	response.OK(w, h.admin.Cleanup(r.Context(), body.ForceGC, body.ClearCaches))
}

// gracefulRestart hands the listening socket to a new process; this one
// drains and exits.
func (h *adminHandler) gracefulRestart(w http.ResponseWriter, r *http.Request) {
	if err := h.admin.GracefulRestart(); err != nil {
		response.Error(w, http.StatusConflict, "restart_failed", err.Error())
		return
	}
	response.Accepted(w, map[string]any{
		"status":  "restarting",
		"message": "a new process takes over the listening socket; this one drains and exits",
	})
}

// deleteVerifyProject removes everything of the reserved project `scriptgen
// verify` works in (job.VerifyProject), so that no check's jobs, episodes or
// documents stay in the real data.
func (h *adminHandler) deleteVerifyProject(w http.ResponseWriter, r *http.Request) {
	d, err := h.store.DeleteProject(operationContext(r), job.VerifyProject)
	if err != nil {
		response.ServerError(w, r, h.log, err)
		return
	}
	response.OK(w, map[string]any{"project_id": job.VerifyProject, "deleted": d})
}
