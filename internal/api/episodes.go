package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// EpisodeJSON is an episode as the API shows it.
type EpisodeJSON struct {
	ProjectID string    `json:"project_id"`
	Number    int       `json:"number"`
	Title     string    `json:"title"`
	Script    string    `json:"script"`
	JobID     string    `json:"job_id"`
	CreatedAt time.Time `json:"created_at"`
}

func newEpisodeJSON(e job.Episode) EpisodeJSON {
	return EpisodeJSON{ProjectID: e.ProjectID, Number: e.Number, Title: e.Title, Script: e.Script, JobID: e.JobID, CreatedAt: e.CreatedAt}
}

func (a *API) listEpisodes(w http.ResponseWriter, r *http.Request) {
	project := r.PathValue("project_id")
	if err := job.ValidateProjectID(project); err != nil {
		a.writeDomainError(w, r, err)
		return
	}
	limit, err := limitParam(r, 50, 200)
	if err != nil {
		a.writeDomainError(w, r, err)
		return
	}
	after := 0
	if c := r.URL.Query().Get("cursor"); c != "" {
		var ok bool
		if after, ok = decimal(c); !ok {
			a.writeDomainError(w, r, &job.ValidationError{Field: "cursor", Message: "is not a cursor this API gave"})
			return
		}
	}
	eps, err := a.cfg.Store.ListEpisodes(r.Context(), project, after, limit+1)
	if err != nil {
		a.writeDomainError(w, r, err)
		return
	}
	next := ""
	if len(eps) > limit {
		eps = eps[:limit]
		next = strconv.Itoa(eps[len(eps)-1].Number)
	}
	items := make([]EpisodeJSON, len(eps))
	for i, e := range eps {
		items[i] = newEpisodeJSON(e)
	}
	WriteJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": next})
}

func (a *API) getEpisode(w http.ResponseWriter, r *http.Request) {
	project := r.PathValue("project_id")
	if err := job.ValidateProjectID(project); err != nil {
		a.writeDomainError(w, r, err)
		return
	}
	n, ok := decimal(r.PathValue("number"))
	if !ok || n < 1 {
		a.writeDomainError(w, r, &job.ValidationError{Field: "number", Message: "must be a positive integer"})
		return
	}
	e, err := a.cfg.Store.GetEpisode(r.Context(), project, n)
	if err != nil {
		a.writeDomainError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, newEpisodeJSON(e))
}

// getProject summarises a project: its jobs by status and its episodes.
func (a *API) getProject(w http.ResponseWriter, r *http.Request) {
	project := r.PathValue("project_id")
	if err := job.ValidateProjectID(project); err != nil {
		a.writeDomainError(w, r, err)
		return
	}
	byStatus, err := a.cfg.Store.CountByStatus(r.Context(), store.JobFilter{ProjectID: project})
	if err != nil {
		a.writeDomainError(w, r, err)
		return
	}
	counts := map[string]int{}
	for _, st := range []job.Status{job.StatusQueued, job.StatusRunning, job.StatusSucceeded, job.StatusFailed, job.StatusCancelled} {
		counts[string(st)] = byStatus[st]
	}
	WriteJSON(w, http.StatusOK, map[string]any{"project_id": project, "jobs": counts,
		"links": map[string]string{"episodes": "/api/projects/" + project + "/episodes"}})
}
