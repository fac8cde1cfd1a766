package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
)

// WorkerSetting is the persisted flag as the admin API shows it.
type WorkerSetting struct {
	Enabled        bool      `json:"enabled"`
	RolloutPercent int       `json:"rollout_percent"`
	Reason         string    `json:"reason"`
	UpdatedBy      string    `json:"updated_by"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// WorkerSystemChange is the body of PUT /api/admin/worker-system.
type WorkerSystemChange struct {
	Enabled        *bool  `json:"enabled"`
	RolloutPercent *int   `json:"rollout_percent"`
	Reason         string `json:"reason"`
}

// Admin is what the admin API drives.
type Admin interface {
	// SetWorkerSystem saves a new setting and applies it to this replica at once.
	SetWorkerSystem(ctx context.Context, change WorkerSystemChange, by string) error
}

// AdminConfig configures the admin routes.
type AdminConfig struct {
	Token  string
	Admin  Admin
	System System
	// More registers further admin routes behind the same authentication.
	More []func(mux *http.ServeMux, auth func(http.HandlerFunc) http.HandlerFunc)
}

// AdminRoutes registers /api/admin/*, every route behind the Bearer token.
// With no token configured the admin API is off and answers 403.
func AdminRoutes(cfg AdminConfig) func(mux *http.ServeMux) {
	return func(mux *http.ServeMux) {
		auth := func(next http.HandlerFunc) http.HandlerFunc { return requireToken(cfg.Token, next) }
		mux.HandleFunc("GET /api/admin/worker-system", auth(func(w http.ResponseWriter, r *http.Request) {
			WriteJSON(w, http.StatusOK, cfg.System.WorkerSystem(r.Context()))
		}))
		mux.HandleFunc("PUT /api/admin/worker-system", auth(func(w http.ResponseWriter, r *http.Request) {
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
			if err := cfg.Admin.SetWorkerSystem(r.Context(), change, "admin@"+clientAddr(r)); err != nil {
				WriteError(w, http.StatusInternalServerError, "internal", err.Error())
				return
			}
			WriteJSON(w, http.StatusOK, cfg.System.WorkerSystem(r.Context()))
		}))
		// Profiles of the running process, for the operator chasing a slowdown.
		mux.HandleFunc("GET /debug/pprof/", auth(pprof.Index))
		mux.HandleFunc("GET /debug/pprof/profile", auth(oneAtATime("CPU profile", pprof.Profile)))
		mux.HandleFunc("GET /debug/pprof/trace", auth(oneAtATime("execution trace", pprof.Trace)))
		for _, more := range cfg.More {
			more(mux, auth)
		}
	}
}

// oneAtATime serves a profile that the Go runtime takes once at a time: a
// second request while one runs gets a clear 409 instead of pprof's text 500.
func oneAtATime(what string, next http.HandlerFunc) http.HandlerFunc {
	var busy atomic.Bool
	return func(w http.ResponseWriter, r *http.Request) {
		if !busy.CompareAndSwap(false, true) {
			WriteError(w, http.StatusConflict, "profile_busy", "another "+what+" is being taken; try again when it ends")
			return
		}
		defer busy.Store(false)
		next(w, r)
	}
}

func clientAddr(r *http.Request) string {
	if i := strings.LastIndexByte(r.RemoteAddr, ':'); i > 0 {
		return r.RemoteAddr[:i]
	}
	return r.RemoteAddr
}

// requireToken checks "Authorization: Bearer <token>" in constant time.
func requireToken(token string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if token == "" {
			WriteError(w, http.StatusForbidden, "admin_disabled", "the admin API is off: set ADMIN_TOKEN to enable it")
			return
		}
		hs := r.Header.Values("Authorization")
		if len(hs) == 0 || hs[0] == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="scriptgen-admin"`)
			WriteError(w, http.StatusUnauthorized, "unauthorized", "missing Authorization: Bearer <ADMIN_TOKEN>")
			return
		}
		if len(hs) > 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="scriptgen-admin", error="invalid_request"`)
			WriteError(w, http.StatusUnauthorized, "unauthorized", "Authorization must be sent once")
			return
		}
		// The scheme's name is case-insensitive (RFC 9110, section 11.1).
		scheme, given, ok := strings.Cut(hs[0], " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || given == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="scriptgen-admin", error="invalid_request"`)
			WriteError(w, http.StatusUnauthorized, "unauthorized", "malformed Authorization header: want 'Bearer <ADMIN_TOKEN>'")
			return
		}
		if subtle.ConstantTimeCompare([]byte(given), []byte(token)) != 1 {
			WriteError(w, http.StatusForbidden, "forbidden", "wrong admin token")
			return
		}
		next(w, r)
	}
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

func writeValidation(w http.ResponseWriter, err error) {
	var ve *job.ValidationError
	if !errors.As(err, &ve) {
		WriteError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	status, code := http.StatusBadRequest, "invalid_request"
	if ve.TooLarge {
		status, code = http.StatusRequestEntityTooLarge, "too_large"
	}
	var b errorBody
	b.Error.Code, b.Error.Message, b.Error.Field = code, ve.Error(), ve.Field
	WriteJSON(w, status, b)
}
