package api

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/scriptgen/scriptgen/internal/httpx/response"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/rollback"
	"github.com/scriptgen/scriptgen/internal/store"
)

// adminHandler serves the operator's API (/api/admin/*): the worker-system
// flag here, rollbacks, migrations and the process's upkeep in
// operations.go. Every route is behind the admin token (routes.go).
type adminHandler struct {
	log       *slog.Logger
	admin     Admin
	system    System
	rollbacks *rollback.Service
	store     store.Store
	// dispatcher and canceller serve the per-job tools (jobtools.go).
	dispatcher Dispatcher
	canceller  Canceller
}

// WorkerSetting is the persisted flag as the admin API shows it.
type WorkerSetting struct {
	Enabled        bool      `json:"enabled"`
	RolloutPercent int       `json:"rollout_percent"`
	Reason         string    `json:"reason"`
	UpdatedBy      string    `json:"updated_by"`
	UpdatedAt      time.Time `json:"updated_at"`
	Revision       int64     `json:"revision"`
}

// WorkerSystemChange is the body of PUT /api/admin/worker-system.
type WorkerSystemChange struct {
	Enabled        *bool  `json:"enabled"`
	RolloutPercent *int   `json:"rollout_percent"`
	Reason         string `json:"reason"`
}

// workerSystem answers the effective worker-system flag of this replica.
func (h *adminHandler) workerSystem(w http.ResponseWriter, r *http.Request) {
	response.OK(w, h.system.WorkerSystem(r.Context()))
}

// setWorkerSystem saves an operator's change of the flag, applies it here at
// once and answers the flag as it is now.
func (h *adminHandler) setWorkerSystem(w http.ResponseWriter, r *http.Request) {
	var change WorkerSystemChange
	if err := decodeAdminBody(r, &change); err != nil {
		writeValidation(w, err)
		return
	}
	if change.Enabled == nil {
		writeValidation(w, &job.ValidationError{Field: "enabled", Message: "is required"})
		return
	}
	if p := change.RolloutPercent; p != nil && (*p < 0 || *p > 100) {
		writeValidation(w, &job.ValidationError{Field: "rollout_percent", Message: "must be from 0 to 100"})
		return
	}
	if p := change.RolloutPercent; p != nil && *p == 0 && *change.Enabled {
		writeValidation(w, &job.ValidationError{Field: "rollout_percent", Message: "0 with enabled true would route no job to the durable worker: give 1 to 100, or enabled false"})
		return
	}
	if err := job.ValidateReason(change.Reason); err != nil {
		writeValidation(w, err)
		return
	}
	if err := h.admin.SetWorkerSystem(r.Context(), change, adminActor(r)); err != nil {
		response.ServerError(w, r, h.log, fmt.Errorf("set the worker system: %w", err))
		return
	}
	response.OK(w, h.system.WorkerSystem(r.Context()))
}

func clientAddr(r *http.Request) string {
	if i := strings.LastIndexByte(r.RemoteAddr, ':'); i > 0 {
		return r.RemoteAddr[:i]
	}
	return r.RemoteAddr
}

// decodeAdminBody strictly decodes a small JSON body; an empty body is {}.
func decodeAdminBody(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, job.MaxBodyBytes+1))
	if err != nil {
		return &job.ValidationError{Message: "could not read body"}
	}
	if len(body) > job.MaxBodyBytes {
		return &job.ValidationError{Message: fmt.Sprintf("body is larger than %d bytes", job.MaxBodyBytes), TooLarge: true}
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		body = []byte("{}")
	}
	return job.DecodeStrict(body, v)
}
