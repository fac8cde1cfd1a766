// Package api is scriptgen's HTTP API. It is the only place where domain
// errors become HTTP statuses, and it keeps invariant 5: bad input gets a clear
// 4xx with a JSON error and changes nothing.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// Dispatcher routes and dispatches new jobs (the runner adapter).
type Dispatcher interface {
	BackendFor(projectID string) job.Backend
	Dispatch(ctx context.Context, j job.Job)
}

// Canceller stops a local run of a job at once.
type Canceller interface {
	CancelLocal(id string)
}

// WorkerSystem is the effective state of the worker-system flag.
type WorkerSystem struct {
	Enabled        bool   `json:"enabled"`
	Type           string `json:"type"`
	RolloutPercent int    `json:"rollout_percent"`
	Reason         string `json:"reason"`
	KillSwitch     bool   `json:"kill_switch"`
	Redis          string `json:"redis"`
	// WorkersUp counts durable worker processes with a fresh heartbeat;
	// WorkersCrashed those that went silent without a clean stop (last 10 min).
	WorkersUp      int `json:"workers_up"`
	WorkersCrashed int `json:"workers_crashed"`
	// Setting is the persisted half of the flag.
	Setting *WorkerSetting `json:"setting,omitempty"`
}

// BackgroundTasks describes the in-process pool.
type BackgroundTasks struct {
	Active int `json:"active"`
	Queued int `json:"queued"`
	Max    int `json:"max"`
}

// System reports the state of the worker system.
type System interface {
	WorkerSystem(ctx context.Context) WorkerSystem
	BackgroundTasks(ctx context.Context) BackgroundTasks
}

// Config is what the API needs.
type Config struct {
	Store      store.Store
	Dispatcher Dispatcher
	Canceller  Canceller
	System     System
	Generator  string
	Log        *slog.Logger
	// Extra registers more routes on the same mux (admin, metrics, UI…).
	Extra []func(mux *http.ServeMux)
	// BodyTimeout is how long a request may take to deliver its body
	// (0: no limit).
	BodyTimeout time.Duration
}

// API serves the HTTP endpoints.
type API struct {
	cfg      Config
	inFlight sync.Map // idempotency keys being processed by this replica
	started  time.Time
}

// New builds the API's handler.
func New(cfg Config) http.Handler {
	a := &API{cfg: cfg, started: time.Now()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/generation", a.submitGeneration)
	mux.HandleFunc("GET /api/generation", a.listJobs)
	mux.HandleFunc("GET /api/generation/system-info", a.systemInfo)
	mux.HandleFunc("GET /api/generation/{id}", a.getJob)
	mux.HandleFunc("POST /api/generation/{id}/cancel", a.cancelJob)
	mux.HandleFunc("GET /api/projects/{project_id}", a.getProject)
	mux.HandleFunc("GET /api/projects/{project_id}/episodes", a.listEpisodes)
	mux.HandleFunc("GET /api/projects/{project_id}/episodes/{number}", a.getEpisode)
	mux.HandleFunc("GET /health", a.health)
	for _, extra := range cfg.Extra {
		extra(mux)
	}
	return Recover(cfg.Log, guardInput(bodyDeadline(cfg.BodyTimeout, routed(mux))))
}

// routed serves a request through mux, and answers in JSON what the mux
// itself would answer in text: no route (404) and a route without this
// method (405, with its Allow header). Redirects to a path's canonical form
// pass as the mux writes them.
func routed(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		probe := &muxAnswer{header: http.Header{}}
		h.ServeHTTP(probe, r)
		switch probe.status {
		case http.StatusMethodNotAllowed:
			allow := probe.header.Get("Allow")
			w.Header().Set("Allow", allow)
			WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed on "+r.URL.Path+"; allowed: "+allow)
		case http.StatusNotFound:
			WriteError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
		default:
			h.ServeHTTP(w, r)
		}
	})
}

// muxAnswer records the status and headers of the mux's own answer.
type muxAnswer struct {
	header http.Header
	status int
}

func (m *muxAnswer) Header() http.Header         { return m.header }
func (m *muxAnswer) Write(b []byte) (int, error) { return len(b), nil }
func (m *muxAnswer) WriteHeader(status int)      { m.status = status }

// WriteJSON writes v with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field,omitempty"`
	} `json:"error"`
}

// WriteError writes the error shape of DESIGN.md.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	var b errorBody
	b.Error.Code, b.Error.Message = code, message
	WriteJSON(w, status, b)
}

// writeDomainError maps domain errors to statuses.
func (a *API) writeDomainError(w http.ResponseWriter, r *http.Request, err error) {
	var ve *job.ValidationError
	switch {
	case errors.As(err, &ve):
		writeValidation(w, ve)
	case errors.Is(err, job.ErrNotFound):
		WriteError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, job.ErrIdempotencyMismatch):
		WriteError(w, http.StatusUnprocessableEntity, "idempotency_key_reused", err.Error())
	case errors.Is(err, job.ErrIdempotencyInFlight):
		WriteError(w, http.StatusConflict, "idempotency_key_in_flight", err.Error())
	case errors.Is(err, job.ErrNotCancellable):
		WriteError(w, http.StatusConflict, "not_cancellable", err.Error())
	case errors.Is(err, r.Context().Err()) && r.Context().Err() != nil:
		WriteError(w, 499, "client_closed", "request cancelled")
	default:
		a.cfg.Log.Error("Request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		WriteError(w, http.StatusInternalServerError, "internal", "internal error")
	}
}

// Recover turns a handler's panic into a 500 instead of a dropped connection.
func Recover(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("Handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v)
				WriteError(w, http.StatusInternalServerError, "internal", "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}
