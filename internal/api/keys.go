package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/scriptgen/scriptgen/internal/access"
	"github.com/scriptgen/scriptgen/internal/httpx/response"
	"github.com/scriptgen/scriptgen/internal/job"
)

// keyRequest is the body of POST /api/admin/keys.
type keyRequest struct {
	Tenant   string   `json:"tenant"`
	Name     string   `json:"name"`
	Projects []string `json:"projects"`
}

// createKey issues a writer's API key: 201 with the key, shown this once.
func (h *adminHandler) createKey(w http.ResponseWriter, r *http.Request) {
	if err := requireJSON(r); err != nil {
		writeMedia(w, err)
		return
	}
	var req keyRequest
	if err := decodeAdminBody(r, &req); err != nil {
		writeValidation(w, err)
		return
	}
	if err := access.ValidateTenant(req.Tenant); err != nil {
		writeValidation(w, &job.ValidationError{Field: "tenant", Message: err.Error()})
		return
	}
	if req.Name == "" || len(req.Name) > 100 {
		writeValidation(w, &job.ValidationError{Field: "name", Message: "must be 1-100 characters"})
		return
	}
	plain, k, err := access.Issue(r.Context(), h.store, req.Tenant, req.Name, req.Projects, time.Now())
	if err != nil {
		var ve *job.ValidationError
		if errors.As(err, &ve) {
			writeValidation(w, ve)
			return
		}
		response.ServerError(w, r, h.log, err)
		return
	}
	h.log.Info("API key created", "admin", adminActor(r), "key_id", k.ID, "prefix", k.Prefix, "tenant", k.Tenant)
	w.Header().Set("Location", "/api/admin/keys/"+k.ID)
	response.JSON(w, http.StatusCreated, k.Info(plain))
}

// listKeys lists the keys (?tenant= narrows), never their secrets.
func (h *adminHandler) listKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := h.store.ListKeys(r.Context(), r.URL.Query().Get("tenant"))
	if err != nil {
		response.ServerError(w, r, h.log, err)
		return
	}
	items := make([]access.KeyInfo, len(keys))
	for i, k := range keys {
		items[i] = k.Info("")
	}
	response.OK(w, map[string]any{"items": items, "next_cursor": ""})
}

// rotateKey replaces a key by a new one of the same scope: 201 with the new
// key; the old one stops at once (on every replica within 2 s).
func (h *adminHandler) rotateKey(w http.ResponseWriter, r *http.Request) {
	plain, next, old, err := access.Rotate(r.Context(), h.store, r.PathValue("id"), time.Now())
	switch {
	case errors.Is(err, access.ErrNoKey):
		response.Error(w, http.StatusNotFound, "not_found", "no such key")
		return
	case err != nil && old.ID != "":
		response.Error(w, http.StatusConflict, "key_revoked", err.Error())
		return
	case err != nil:
		response.ServerError(w, r, h.log, err)
		return
	}
	h.log.Info("API key rotated", "admin", adminActor(r), "old_key_id", old.ID, "key_id", next.ID, "prefix", next.Prefix, "tenant", next.Tenant)
	w.Header().Set("Location", "/api/admin/keys/"+next.ID)
	response.JSON(w, http.StatusCreated, next.Info(plain))
}

// revokeKey ends a key (on every replica within 2 s).
func (h *adminHandler) revokeKey(w http.ResponseWriter, r *http.Request) {
	k, err := h.store.RevokeKey(r.Context(), r.PathValue("id"), time.Now())
	if errors.Is(err, access.ErrNoKey) {
		response.Error(w, http.StatusNotFound, "not_found", "no such key")
		return
	}
	if err != nil {
		response.ServerError(w, r, h.log, err)
		return
	}
	h.log.Info("API key revoked", "admin", adminActor(r), "key_id", k.ID, "prefix", k.Prefix, "tenant", k.Tenant)
	response.OK(w, k.Info(""))
}

// writeMedia answers a body of the wrong type with 415.
func writeMedia(w http.ResponseWriter, err error) {
	response.Error(w, http.StatusUnsupportedMediaType, "unsupported_media_type", err.Error())
}
