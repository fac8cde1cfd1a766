package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/scriptgen/scriptgen/internal/httpx/response"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// projectHandler serves a project's summary and its episodes.
type projectHandler struct {
	domainErrors
	store store.Store
}

// EpisodeJSON is an episode as the API shows it.
type EpisodeJSON struct {
	ProjectID string    `json:"project_id"`
	Number    int       `json:"number"`
	Title     string    `json:"title"`
	Script    string    `json:"script"`
	JobID     string    `json:"job_id"`
	CreatedAt time.Time `json:"created_at"`
}

func newEpisodeJSON(r *http.Request, e job.Episode) EpisodeJSON {
	return EpisodeJSON{
		ProjectID: external(r, e.ProjectID),
		Number:    e.Number,
		Title:     e.Title,
		Script:    e.Script,
		JobID:     e.JobID,
		CreatedAt: e.CreatedAt,
	}
}

// listEpisodes pages through a project's episodes in their order.
func (h *projectHandler) listEpisodes(w http.ResponseWriter, r *http.Request) {
	project, err := pathProject(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	limit, err := limitParam(r, store.DefaultPage, 200)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	after := 0
	if c := r.URL.Query().Get("cursor"); c != "" {
		var ok bool
		if after, ok = decimal(c); !ok {
			h.fail(w, r, &job.ValidationError{Field: "cursor", Message: "is not a cursor this API gave"})
			return
		}
	}
	eps, err := h.store.ListEpisodes(r.Context(), project, after, limit+1)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	next := ""
	if len(eps) > limit {
		eps = eps[:limit]
		next = strconv.Itoa(eps[len(eps)-1].Number)
	}
	items := make([]EpisodeJSON, len(eps))
	for i, e := range eps {
		items[i] = newEpisodeJSON(r, e)
	}
	response.OK(w, map[string]any{"items": items, "next_cursor": next})
}

// getEpisode answers one episode with its script.
func (h *projectHandler) getEpisode(w http.ResponseWriter, r *http.Request) {
	project, err := pathProject(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	n, ok := decimal(r.PathValue("number"))
	if !ok || n < 1 {
		h.fail(w, r, &job.ValidationError{Field: "number", Message: "must be a positive integer"})
		return
	}
	e, err := h.store.GetEpisode(r.Context(), project, n)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	response.OK(w, newEpisodeJSON(r, e))
}

// get summarises a project: its jobs by status and its episodes.
func (h *projectHandler) get(w http.ResponseWriter, r *http.Request) {
	project, err := pathProject(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	byStatus, err := h.store.CountByStatus(r.Context(), store.JobFilter{ProjectID: project})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	counts := map[string]int{}
	for _, st := range []job.Status{job.StatusQueued, job.StatusRunning, job.StatusSucceeded, job.StatusFailed, job.StatusCancelled} {
		counts[string(st)] = byStatus[st]
	}
	name := external(r, project)
	response.OK(w, map[string]any{"project_id": name, "jobs": counts,
		"links": map[string]string{"episodes": "/api/projects/" + name + "/episodes"}})
}
