package api

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// recordingMux records what register registers.
type recordingMux struct{ patterns []string }

func (m *recordingMux) Handle(pattern string, _ http.Handler) {
	m.patterns = append(m.patterns, pattern)
}

// servedRoutes is every route the service serves; a route added to or lost
// from the tables is added here or noticed.
var servedRoutes = []string{
	"POST /api/generation",
	"GET /api/generation",
	"GET /api/generation/system-info",
	"GET /api/generation/{id}",
	"POST /api/generation/{id}/cancel",
	"GET /api/generation/{id}/events",
	"GET /api/projects/{project_id}",
	"GET /api/projects/{project_id}/episodes",
	"GET /api/projects/{project_id}/episodes/{number}",
	"POST /api/projects/{project_id}/documents",
	"GET /api/projects/{project_id}/documents",
	"GET /api/projects/{project_id}/documents/{id}",
	"DELETE /api/projects/{project_id}/documents/{id}",
	"POST /api/projects/{project_id}/documents/{id}/reprocess",
	"GET /api/projects/{project_id}/search",
	"GET /api/usage",
	"GET /api/openapi.yaml",
	"GET /health",
	"GET /api/admin/worker-system",
	"PUT /api/admin/worker-system",
	"POST /api/admin/rollback",
	"POST /api/admin/rollforward",
	"GET /api/admin/rollbacks",
	"GET /api/admin/rollbacks/{id}",
	"GET /api/admin/rollbacks/{id}/report",
	"POST /api/admin/migrate-pending-jobs",
	"GET /api/admin/migration-failed",
	"POST /api/admin/migration-failed/{job_id}/retry",
	"GET /api/admin/stats",
	"GET /api/admin/history",
	"GET /api/admin/replicas",
	"DELETE /api/admin/verify-project",
	"POST /api/admin/jobs/{id}/retry",
	"POST /api/admin/jobs/cancel",
	"POST /api/admin/cleanup",
	"POST /api/admin/graceful-restart",
	"POST /api/admin/keys",
	"GET /api/admin/keys",
	"POST /api/admin/keys/{id}/rotate",
	"DELETE /api/admin/keys/{id}",
	"GET /{$}",
	"GET /operator",
	"GET /static/",
	"GET /debug/pprof/",
	"GET /debug/pprof/profile",
	"GET /debug/pprof/trace",
	"GET /metrics",
}

var (
	wildcard = regexp.MustCompile(`\{[a-z_]+\}`)
	closure  = regexp.MustCompile(`\.func\d+(\.\d+)*$`)
)

// The route table lists every route once, each served by a named function or
// method (no closure), reachable on the mux at its own pattern; register
// registers the table and nothing else; the admin's and the profiles' routes
// are behind the token, the others are not.
func TestRouteTable(t *testing.T) {
	a := newAPI(Config{})
	routes := a.routes()
	var patterns []string
	for _, rt := range routes {
		patterns = append(patterns, rt.Method+" "+rt.Pattern)
	}
	for _, p := range patterns {
		if n := countOf(patterns, p); n > 1 {
			t.Errorf("%s is in the tables %d times", p, n)
		}
	}
	if got, want := sorted(patterns), sorted(servedRoutes); !slices.Equal(got, want) {
		t.Errorf("the tables list\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}

	rec := &recordingMux{}
	a.register(rec)
	if !slices.Equal(rec.patterns, patterns) {
		t.Errorf("register registered %q, want the tables' %q", rec.patterns, patterns)
	}

	mux := http.NewServeMux()
	a.register(mux)
	for _, rt := range routes {
		name := runtime.FuncForPC(reflect.ValueOf(rt.Handler).Pointer()).Name()
		if closure.MatchString(name) {
			t.Errorf("%s %s is served by a closure (%s), not a named handler", rt.Method, rt.Pattern, name)
		}
		path := wildcard.ReplaceAllString(strings.TrimSuffix(rt.Pattern, "{$}"), "x")
		if _, got := mux.Handler(httptest.NewRequest(rt.Method, path, nil)); got != rt.Method+" "+rt.Pattern {
			t.Errorf("%s %s reaches %q, want %s %s", rt.Method, path, got, rt.Method, rt.Pattern)
		}
		admin := strings.HasPrefix(rt.Pattern, "/api/admin/") || strings.HasPrefix(rt.Pattern, "/debug/")
		if admin != (rt.Auth == AdminOnly) {
			t.Errorf("%s %s: auth %d", rt.Method, rt.Pattern, rt.Auth)
		}
	}

	// Through the whole handler, without a token configured, every admin
	// route is refused before its handler runs.
	h := New(Config{})
	for _, rt := range routes {
		if rt.Auth != AdminOnly {
			continue
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(rt.Method, wildcard.ReplaceAllString(rt.Pattern, "x"), nil))
		if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "admin_disabled") {
			t.Errorf("%s %s without ADMIN_TOKEN: %d %s", rt.Method, rt.Pattern, w.Code, w.Body)
		}
	}
}

// The metrics middleware outside the API labels a request with the route
// pattern the mux set on it: no middleware of the API may copy the request.
func TestRoutePatternIsSeenOutside(t *testing.T) {
	h := New(Config{})
	for path, want := range map[string]string{
		"/operator":                 "GET /operator",
		"/api/generation/j1/events": "GET /api/generation/{id}/events",
		"/static/app.css":           "GET /static/",
		"/no/such/endpoint/9":       "",
	} {
		r := httptest.NewRequest("GET", path, nil)
		h.ServeHTTP(httptest.NewRecorder(), r)
		if r.Pattern != want {
			t.Errorf("GET %s: the request outside has pattern %q, want %q", path, r.Pattern, want)
		}
	}
}

func countOf(s []string, v string) (n int) {
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
