package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/scriptgen/scriptgen/internal/httpx/response"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// The operator's per-job tools, beside the writers' own calls: retry a job
// that failed for good, and cancel many jobs by a filter. Listing failed jobs
// is the writers' list with ?status=failed, which an admin token sees whole.

// maxCancelMany bounds the jobs one cancel-by-filter call cancels; a larger
// set is cancelled by calling again.
const maxCancelMany = 1000

// retryJob queues a failed job again with its attempts given back (POST
// /api/admin/jobs/{id}/retry).
func (h *adminHandler) retryJob(w http.ResponseWriter, r *http.Request) {
	j, err := h.store.RetryJob(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, job.ErrNotFound):
		response.Error(w, http.StatusNotFound, "not_found", "no job with this id")
		return
	case errors.Is(err, store.ErrNotFailed):
		response.Error(w, http.StatusConflict, "not_failed", "only a job that failed for good can be retried")
		return
	case err != nil:
		response.ServerError(w, r, h.log, err)
		return
	}
	if h.dispatcher != nil {
		h.dispatcher.Dispatch(r.Context(), j)
	}
	response.OK(w, NewJobJSON(r, j))
}

// cancelJobs cancels the queued or running jobs that match a filter (POST
// /api/admin/jobs/cancel), up to maxCancelMany a call.
func (h *adminHandler) cancelJobs(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Status    string `json:"status"`
		ProjectID string `json:"project_id"`
		Kind      string `json:"kind"`
		Backend   string `json:"backend"`
	}
	if err := decodeAdminBody(r, &body); err != nil {
		writeValidation(w, err)
		return
	}
	f, err := cancelFilter(body.Status, body.ProjectID, body.Kind, body.Backend)
	if err != nil {
		writeValidation(w, err)
		return
	}
	var ids []string
	for _, status := range f.statuses {
		f.JobFilter.Status, f.JobFilter.Limit = status, maxCancelMany-len(ids)
		if f.JobFilter.Limit <= 0 {
			break
		}
		jobs, _, err := h.store.ListJobs(r.Context(), f.JobFilter)
		if err != nil {
			response.ServerError(w, r, h.log, fmt.Errorf("list the jobs to cancel: %w", err))
			return
		}
		for _, j := range jobs {
			if _, err := h.store.Cancel(operationContext(r), j.ID); err != nil {
				continue // finished meanwhile
			}
			if h.canceller != nil {
				h.canceller.CancelLocal(j.ID)
			}
			ids = append(ids, j.ID)
		}
	}
	response.OK(w, map[string]any{"cancelled": len(ids), "ids": append([]string{}, ids...), "limit": maxCancelMany})
}

type cancelSelection struct {
	store.JobFilter
	statuses []job.Status
}

// cancelFilter checks a cancel-by-filter request: at least one of project,
// kind or backend, so that one call cannot cancel everything by mistake.
func cancelFilter(status, project, kind, backend string) (cancelSelection, error) {
	var f cancelSelection
	switch status {
	case "":
		f.statuses = []job.Status{job.StatusQueued, job.StatusRunning}
	case "queued", "running":
		f.statuses = []job.Status{job.Status(status)}
	default:
		return f, &job.ValidationError{Field: "status", Message: "must be queued or running (or absent: both)"}
	}
	if project == "" && kind == "" && backend == "" {
		return f, &job.ValidationError{Field: "project_id", Message: "give project_id, kind or backend: a filter is required"}
	}
	if project != "" {
		if err := job.ValidateProjectID(project); err != nil {
			return f, err
		}
		f.ProjectID = project
	}
	switch kind {
	case "", string(job.KindGeneration), string(job.KindRAGDocument):
		f.Kind = job.Kind(kind)
	default:
		return f, &job.ValidationError{Field: "kind", Message: "must be generation or rag_document"}
	}
	switch backend {
	case "", string(job.BackendDurable), string(job.BackendBackgroundTasks):
		f.Backend = job.Backend(backend)
	default:
		return f, &job.ValidationError{Field: "backend", Message: "must be durable or background_tasks"}
	}
	return f, nil
}
