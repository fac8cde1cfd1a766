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
	// Public routes answer anyone.
	Public Auth = iota
	// AdminOnly routes want "Authorization: Bearer <ADMIN_TOKEN>" and answer
	// 403 while no token is configured.
	AdminOnly
)

// registrar takes routes: an *http.ServeMux (a test records them instead).
type registrar interface {
	Handle(pattern string, handler http.Handler)
}

// register puts every route of the four tables below on mux, the admin-only
// ones behind the token. No route is registered anywhere else.
func (a *API) register(mux registrar) {
	for _, rt := range a.routes() {
		h := rt.Handler
		if rt.Auth == AdminOnly {
			h = requireToken(a.cfg.AdminToken, h)
		}
		mux.Handle(rt.Method+" "+rt.Pattern, h)
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
		{"POST", "/api/generation", jobs.submit, Public},
		{"GET", "/api/generation", jobs.list, Public},
		{"GET", "/api/generation/system-info", status.systemInfo, Public},
		{"GET", "/api/generation/{id}", jobs.get, Public},
		{"POST", "/api/generation/{id}/cancel", jobs.cancel, Public},
		{"GET", "/api/generation/{id}/events", a.cfg.Events.ServeHTTP, Public}, // Server-Sent Events (progress.Stream)

		{"GET", "/api/projects/{project_id}", projects.get, Public},
		{"GET", "/api/projects/{project_id}/episodes", projects.listEpisodes, Public},
		{"GET", "/api/projects/{project_id}/episodes/{number}", projects.getEpisode, Public},

		{"POST", "/api/projects/{project_id}/documents", docs.create, Public},
		{"GET", "/api/projects/{project_id}/documents", docs.list, Public},
		{"GET", "/api/projects/{project_id}/documents/{id}", docs.get, Public},
		{"DELETE", "/api/projects/{project_id}/documents/{id}", docs.delete, Public},
		{"POST", "/api/projects/{project_id}/documents/{id}/reprocess", docs.reprocess, Public},
		{"GET", "/api/projects/{project_id}/search", docs.search, Public},

		{"GET", "/health", status.health, Public},
	}
}

// adminRoutes is the operator's API: the worker-system flag, rollbacks and
// roll-forwards with their history and reports, job migration, and the
// process's stats, cleanup and graceful restart.
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
		{"POST", "/api/admin/cleanup", admin.cleanup, AdminOnly},
		{"POST", "/api/admin/graceful-restart", admin.gracefulRestart, AdminOnly},
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
		{"GET", "/metrics", debug.metrics, Public},
	}
}
