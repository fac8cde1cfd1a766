package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/scriptgen/scriptgen/internal/access"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// principalKey is the request context's key of the caller.
type principalKey struct{}

func withPrincipal(r *http.Request, p access.Principal) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
}

// principal is the caller of a writer route (the open principal for a
// route that had no authentication, such as a test's).
func principal(r *http.Request) access.Principal {
	if p, ok := r.Context().Value(principalKey{}).(access.Principal); ok {
		return p
	}
	return access.Open
}

// errNoProject is the answer for a project the caller may not use, whether
// or not it exists (another tenant's must not be revealed).
var errNoProject = fmt.Errorf("no such project: %w", job.ErrNotFound)

// errNoJob is errNoProject's twin for jobs.
var errNoJob = fmt.Errorf("no such job: %w", job.ErrNotFound)

// projectKey checks a project id the caller named (in a path, a body or a
// query) and returns the store's key of it in the caller's namespace.
func projectKey(r *http.Request, project string) (string, error) {
	if err := job.ValidateProjectID(project); err != nil {
		return "", err
	}
	p := principal(r)
	if !p.CanUse(project) {
		return "", errNoProject
	}
	return p.ProjectKey(project), nil
}

// pathProject is projectKey of the path's {project_id}.
func pathProject(r *http.Request) (string, error) {
	return projectKey(r, r.PathValue("project_id"))
}

// ownJob refuses a job that is not the caller's with the answer a missing
// job gets.
func ownJob(r *http.Request, j job.Job) error {
	if _, ok := principal(r).Owns(j.ProjectID); !ok {
		return errNoJob
	}
	return nil
}

// external is how the caller names a project the store keeps under key.
func external(r *http.Request, key string) string {
	return principal(r).External(key)
}

// scopeFilter narrows a list to what the caller may see, and to the project
// it asked for (a project outside its scope lists nothing, as an empty one
// would).
func scopeFilter(r *http.Request, f *store.JobFilter, project string) error {
	p := principal(r)
	if project != "" {
		if err := job.ValidateProjectID(project); err != nil {
			return err
		}
		if !p.CanUse(project) {
			f.ProjectIDs = []string{}
			return nil
		}
		f.ProjectID = p.ProjectKey(project)
	}
	if p.Everything() {
		return nil
	}
	tenant := p.Tenant
	f.Tenant = &tenant
	if p.Projects != nil && project == "" {
		f.ProjectIDs = make([]string, len(p.Projects))
		for i, name := range p.Projects {
			f.ProjectIDs[i] = p.ProjectKey(name)
		}
	}
	return nil
}
