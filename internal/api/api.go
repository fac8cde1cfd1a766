// Package api is scriptgen's HTTP surface: the writer API, the admin API,
// the web pages and the debug endpoints, every route of them listed in one
// place (routes.go) and served by named methods of handler structs. It is the
// only place where domain errors become HTTP statuses (errors.go), and it
// keeps invariant 5: bad input gets a clear 4xx with a JSON error and changes
// nothing. Answers are written with internal/httpx/response.
package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/scriptgen/scriptgen/internal/access"
	"github.com/scriptgen/scriptgen/internal/httpx/response"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/metrics"
	"github.com/scriptgen/scriptgen/internal/rag"
	"github.com/scriptgen/scriptgen/internal/rollback"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/web"
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

// Admin is what the admin API drives besides the rollback service.
type Admin interface {
	// SetWorkerSystem saves a new setting and applies it to this replica at once.
	SetWorkerSystem(ctx context.Context, change WorkerSystemChange, by string) error
	// Stats answers GET /api/admin/stats.
	Stats(ctx context.Context) any
	// Cleanup answers POST /api/admin/cleanup.
	Cleanup(ctx context.Context, forceGC, clearCaches bool) any
	// GracefulRestart hands the listening socket to a new process.
	GracefulRestart() error
	// Replicas answers GET /api/admin/replicas (replicas.go).
	Replicas(ctx context.Context, staleAfter time.Duration) (ReplicasView, error)
	// History answers GET /api/admin/history: the operator page's charts.
	History() metrics.HistoryView
}

// Config is what the API needs. A test may leave out what its routes do not
// reach.
type Config struct {
	Store      store.Store
	Dispatcher Dispatcher
	Canceller  Canceller
	System     System
	Generator  string
	Log        *slog.Logger
	// BodyTimeout is how long a request may take to deliver its body
	// (0: no limit).
	BodyTimeout time.Duration
	// MaxDocumentBytes bounds a document's content
	// (DefaultMaxDocumentBytes if 0).
	MaxDocumentBytes int
	// MaxAttempts is how often a new job is tried (JOB_MAX_ATTEMPTS;
	// job.DefaultMaxAttempts if 0).
	MaxAttempts int
	// Events serves GET /api/generation/{id}/events (progress.Stream).
	Events http.Handler
	// Metrics serves GET /metrics (the Prometheus registry).
	Metrics http.Handler

	// Auth recognises writers and operators. Without it (tests) writer
	// calls are open and AdminToken alone guards the admin API.
	Auth       *access.Authenticator
	AdminToken string
	// MetricsToken, when set, guards GET /metrics.
	MetricsToken string
	// AllowedOrigins are the web origins whose pages may call the API (CORS);
	// other sites' pages may not change anything.
	AllowedOrigins []string
	// Limits keep one client from hurting the others.
	Limits Limits
	// Search bounds the document searches (rag.DefaultSearchLimits for a
	// zero field).
	Search rag.SearchLimits
	// WriteFailed hears of every database error store.IsUnavailable (for
	// /health's reasons).
	WriteFailed func(error)
	Admin       Admin
	Rollback    *rollback.Service
}

// API holds the handlers of every route.
type API struct {
	cfg      Config
	auth     *access.Authenticator
	jobs     *jobHandler
	projects *projectHandler
	docs     *documentHandler
	status   *statusHandler
	admin    *adminHandler
	debug    *debugHandler
	pages    *web.Pages
}

// New builds the API's handler.
func New(cfg Config) http.Handler {
	a := newAPI(cfg)
	mux := http.NewServeMux()
	a.register(mux)
	return a.serve(mux)
}

func newAPI(cfg Config) *API {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxDocumentBytes <= 0 {
		cfg.MaxDocumentBytes = DefaultMaxDocumentBytes
	}
	if cfg.Events == nil {
		cfg.Events = unavailable("live progress")
	}
	if cfg.Metrics == nil {
		cfg.Metrics = unavailable("metrics")
	}
	if cfg.Auth == nil {
		tokens, err := access.ParseAdminTokens(cfg.AdminToken, "")
		if err != nil {
			panic("api: " + err.Error()) // only tests build an API without Auth
		}
		cfg.Auth = access.New(nil, access.Config{Off: true, Admin: tokens, Log: cfg.Log})
	}
	errs := domainErrors{log: cfg.Log, writeFailed: cfg.WriteFailed}
	lim := newTenantLimits(cfg.Limits, cfg.Store)
	auth := cfg.Auth
	return &API{
		cfg:  cfg,
		auth: auth,
		jobs: &jobHandler{
			domainErrors: errs,
			limits:       lim,
			stream:       cfg.Events,
			store:        cfg.Store,
			dispatcher:   cfg.Dispatcher,
			canceller:    cfg.Canceller,
			maxAttempts:  cfg.MaxAttempts,
		},
		projects: &projectHandler{
			domainErrors: errs,
			store:        cfg.Store,
		},
		docs: &documentHandler{
			domainErrors: errs,
			limits:       lim,
			searcher:     rag.NewSearcher(cfg.Store, cfg.Search),
			store:        cfg.Store,
			dispatcher:   cfg.Dispatcher,
			canceller:    cfg.Canceller,
			maxBytes:     cfg.MaxDocumentBytes,
			maxAttempts:  cfg.MaxAttempts,
		},
		status: &statusHandler{
			domainErrors: errs,
			store:        cfg.Store,
			system:       cfg.System,
			generator:    cfg.Generator,
			started:      time.Now(),
			isAdmin: func(r *http.Request) bool {
				if r.Header.Get("Authorization") == "" {
					return false
				}
				_, err := auth.AdminName(r)
				return err == nil
			},
			authMode: auth.Mode,
			limits:   cfg.Limits,
		},
		admin: &adminHandler{
			log:        cfg.Log,
			admin:      cfg.Admin,
			system:     cfg.System,
			rollbacks:  cfg.Rollback,
			store:      cfg.Store,
			dispatcher: cfg.Dispatcher,
			canceller:  cfg.Canceller,
		},
		debug: &debugHandler{scrape: cfg.Metrics},
		pages: web.NewPages(),
	}
}

// serve wraps the routes in what every request passes through, outermost
// first: its request id, the cross-origin rules, the panic guard, the input guard, the body's
// deadline, and JSON for the mux's own 404 and 405. None of them copies the
// request, so the route pattern the mux sets is seen outside (metrics).
func (a *API) serve(mux *http.ServeMux) http.Handler {
	inner := Recover(a.cfg.Log, guardInput(bodyDeadline(a.cfg.BodyTimeout, routed(mux))))
	return response.WithRequestID(crossOrigin(a.cfg.AllowedOrigins, inner))
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
			response.Error(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed on "+r.URL.Path+"; allowed: "+allow)
		case http.StatusNotFound:
			response.Error(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
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

// Recover turns a handler's panic into a 500 instead of a dropped connection.
func Recover(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				response.ServerError(w, r, log, fmt.Errorf("handler panicked: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// unavailable serves a route whose part this process was built without (a
// test's API without live progress): 503 naming the part.
type unavailable string

func (u unavailable) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	response.Error(w, http.StatusServiceUnavailable, "unavailable", string(u)+" is not served by this process")
}
