package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/scriptgen/scriptgen/internal/httpx/response"
)

// Replica is one serving replica as GET /api/admin/replicas shows it.
type Replica struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Host    string `json:"host"`
	PID     int    `json:"pid"`
	Version string `json:"version"`
	// State is "up" (beating), "down" (silent without a clean stop) or
	// "stopped".
	State string `json:"state"`
	// FlagRevision is the revision of the worker setting it applied at its
	// last heartbeat; FlagStale marks a live replica still behind the
	// current revision longer than the view's stale_after.
	FlagRevision    int64     `json:"flag_revision"`
	FlagStale       bool      `json:"flag_stale"`
	StartedAt       time.Time `json:"started_at"`
	HeartbeatAt     time.Time `json:"heartbeat_at"`
	AgeSeconds      float64   `json:"age_seconds"`
	LastSeenSeconds float64   `json:"last_seen_seconds"`
}

// ReplicasView answers GET /api/admin/replicas.
type ReplicasView struct {
	// FlagRevision and FlagUpdatedAt are the current worker setting's.
	FlagRevision      int64     `json:"flag_revision"`
	FlagUpdatedAt     time.Time `json:"flag_updated_at"`
	StaleAfterSeconds float64   `json:"stale_after_seconds"`
	// Up counts the live replicas; Stale those of them marked flag_stale.
	Up       int       `json:"up"`
	Stale    int       `json:"stale"`
	Self     string    `json:"self"` // the id of the replica that answered
	Replicas []Replica `json:"replicas"`
}

// DefaultStaleAfter is how long a replica may take to apply a new flag before
// the view marks it: replicas re-read the setting every 500 ms and report it
// with their next heartbeat, a second later.
const DefaultStaleAfter = 10 * time.Second

// replicas answers every serving replica and the flag revision each applied;
// ?stale_after= (a Go duration, 1s to 1h) says when a replica behind the
// current revision is marked.
func (h *adminHandler) replicas(w http.ResponseWriter, r *http.Request) {
	staleAfter := DefaultStaleAfter
	if raw := r.URL.Query().Get("stale_after"); raw != "" {
		d, err := time.ParseDuration(raw)
		if err != nil || d < time.Second || d > time.Hour {
			response.Error(w, http.StatusBadRequest, "invalid_query", fmt.Sprintf("stale_after %q must be a duration from 1s to 1h, such as 10s", raw))
			return
		}
		staleAfter = d
	}
	view, err := h.admin.Replicas(r.Context(), staleAfter)
	if err != nil {
		response.ServerError(w, r, h.log, fmt.Errorf("list the replicas: %w", err))
		return
	}
	response.OK(w, view)
}
