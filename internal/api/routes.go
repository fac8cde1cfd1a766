package api

import (
	"net/http"
	"net/http/pprof"
)

// Route is one endpoint: a method and a ServeMux path pattern, the named
// handler method that serves it, and who may call it.
type Route struct {
	Method  string
	Pattern string
	Handler http.HandlerFunc
	Auth    Auth
}

// Auth says who may call a route.
type Auth uint8

const (
	// Public routes answer anyone (what they show may depend on who asks).
	Public Auth = iota
	// Writer routes want a writer's credential (an API key, a JWT, or an
	// admin token), except on a server that runs open; the handler sees the
	// caller's scope (principal) and nothing beyond it.
	Writer
	// WriterStream is Writer for an event stream: the credential may also
	// come as ?access_token=, since a browser's EventSource sends no headers.
	WriterStream
	// AdminOnly routes want an admin token and answer 403 while none is
	// configured.
	AdminOnly
	// MetricsOnly wants METRICS_TOKEN (or an admin token) when it is set.
	MetricsOnly
)

// registrar takes routes: an *http.ServeMux (a test records them instead).
type registrar interface {
	Handle(pattern string, handler http.Handler)
}

// register puts every route of the four tables below on mux, each behind
// the check its Auth names (guard). No route is registered anywhere else.
func (a *API) register(mux registrar) {
	for _, rt := range a.routes() {
		mux.Handle(rt.Method+" "+rt.Pattern, a.guard(rt))
	}
}

// routes is every route, in the order of its tables.
func (a *API) routes() []Route {
	var all []Route
	for _, table := range [][]Route{a.writerRoutes(), a.adminRoutes(), a.pageRoutes(), a.debugRoutes()} {
		all = append(all, table...)
	}
	return all
}

// writerRoutes is the writer API: jobs and their live progress, projects and
// their episodes, documents and their search, the system's state and health.
func (a *API) writerRoutes() []Route {
	jobs, projects, docs, status := a.jobs, a.projects, a.docs, a.status
	return []Route{
		{"POST", "/api/generation", jobs.submit, Writer},
		{"GET", "/api/generation", jobs.list, Writer},
		{"GET", "/api/generation/system-info", status.systemInfo, Public},
		{"GET", "/api/generation/{id}", jobs.get, Writer},
		{"POST", "/api/generation/{id}/cancel", jobs.cancel, Writer},
		{"GET", "/api/generation/{id}/events", jobs.events, WriterStream}, // Server-Sent Events (progress.Stream)

		{"GET", "/api/projects/{project_id}", projects.get, Writer},
		{"GET", "/api/projects/{project_id}/episodes", projects.listEpisodes, Writer},
		{"GET", "/api/projects/{project_id}/episodes/{number}", projects.getEpisode, Writer},

		{"POST", "/api/projects/{project_id}/documents", docs.create, Writer},
		{"GET", "/api/projects/{project_id}/documents", docs.list, Writer},
		{"GET", "/api/projects/{project_id}/documents/{id}", docs.get, Writer},
		{"DELETE", "/api/projects/{project_id}/documents/{id}", docs.delete, Writer},
		{"POST", "/api/projects/{project_id}/documents/{id}/reprocess", docs.reprocess, Writer},
		{"GET", "/api/projects/{project_id}/search", docs.search, Writer},

		{"GET", "/api/usage", status.usage, Writer},
		{"GET", "/api/openapi.yaml", a.openAPI, Public}, // this API's description (api/openapi.yaml)

		{"GET", "/health", status.health, Public},
	}
}

// adminRoutes is the operator's API: the worker-system flag, rollbacks and
// roll-forwards with their history and reports, job migration, and the
// process's stats and their last hour, cleanup and graceful restart.
func (a *API) adminRoutes() []Route {
	admin := a.admin
	return []Route{
		{"GET", "/api/admin/worker-system", admin.workerSystem, AdminOnly},
		{"PUT", "/api/admin/worker-system", admin.setWorkerSystem, AdminOnly},

		{"POST", "/api/admin/rollback", admin.rollback, AdminOnly},
		{"POST", "/api/admin/rollforward", admin.rollforward, AdminOnly},
		{"GET", "/api/admin/rollbacks", admin.listRollbacks, AdminOnly},
		{"GET", "/api/admin/rollbacks/{id}", admin.getRollback, AdminOnly},
		{"GET", "/api/admin/rollbacks/{id}/report", admin.rollbackReport, AdminOnly},

		{"POST", "/api/admin/migrate-pending-jobs", admin.migratePendingJobs, AdminOnly},
		{"GET", "/api/admin/migration-failed", admin.listMigrationFailures, AdminOnly},
		{"POST", "/api/admin/migration-failed/{job_id}/retry", admin.retryMigrationFailure, AdminOnly},

		{"GET", "/api/admin/stats", admin.stats, AdminOnly},
		{"GET", "/api/admin/history", admin.history, AdminOnly},
		{"GET", "/api/admin/replicas", admin.replicas, AdminOnly},
		{"DELETE", "/api/admin/verify-project", admin.deleteVerifyProject, AdminOnly},
		{"POST", "/api/admin/jobs/{id}/retry", admin.retryJob, AdminOnly},
		{"POST", "/api/admin/jobs/cancel", admin.cancelJobs, AdminOnly},
		{"POST", "/api/admin/cleanup", admin.cleanup, AdminOnly},
		{"POST", "/api/admin/graceful-restart", admin.gracefulRestart, AdminOnly},

		{"POST", "/api/admin/keys", admin.createKey, AdminOnly},
		{"GET", "/api/admin/keys", admin.listKeys, AdminOnly},
		{"POST", "/api/admin/keys/{id}/rotate", admin.rotateKey, AdminOnly},
		{"DELETE", "/api/admin/keys/{id}", admin.revokeKey, AdminOnly},
	}
}

// pageRoutes is the web UI: the writer's page, the operator's page and their
// assets (internal/web), which talk only to the two APIs above.
func (a *API) pageRoutes() []Route {
	pages := a.pages
	return []Route{
		{"GET", "/{$}", pages.Writer, Public},
		{"GET", "/operator", pages.Operator, Public},
		{"GET", "/static/", pages.Static, Public},
	}
}

// debugRoutes is for whoever watches the process: Go's profiles (the
// operator's, behind the token) and the Prometheus scrape.
func (a *API) debugRoutes() []Route {
	debug := a.debug
	return []Route{
		{"GET", "/debug/pprof/", pprof.Index, AdminOnly}, // and the named profiles below it (heap, goroutine…)
		{"GET", "/debug/pprof/profile", debug.cpuProfile, AdminOnly},
		{"GET", "/debug/pprof/trace", debug.executionTrace, AdminOnly},
		{"GET", "/metrics", debug.metrics, MetricsOnly},
	}
}
