// Package access decides who is calling and what they may touch. It keeps the
// access invariant: a writer sees and changes only what its credential allows.
//
// A writer's credential (an API key stored as a hash, or a JWT verified
// against a configured JWKS) names a tenant and, optionally, some of its
// projects. Projects live in a namespace of their tenant: the store keeps
// them under a tenant-qualified key (ProjectKey), so two tenants may both
// have a project "p1" and neither can reach, nor learn of, the other's.
// Idempotency keys are qualified the same way.
//
// Operators use named admin tokens (AdminTokens); the name goes into every
// audit record the call leaves. Failed attempts are limited per client
// address (Failures) and logged.
package access

import (
	"slices"
	"strings"
)

// Kind says how a caller was recognised.
type Kind string

const (
	// KindOpen is a caller of a server that runs without credentials: on a
	// loopback address with no key, or with AUTH=off.
	KindOpen Kind = "open"
	// KindKey is a writer with an API key.
	KindKey Kind = "key"
	// KindJWT is a writer with a verified JWT.
	KindJWT Kind = "jwt"
	// KindAdmin is an operator with an admin token.
	KindAdmin Kind = "admin"
)

// tenantSep separates a tenant from the name it qualifies. Project ids and
// tenant ids never contain it (job.ValidateProjectID, ValidateTenant).
const tenantSep = "/"

// Principal is the caller of a request.
type Principal struct {
	Kind Kind
	// Tenant owns the projects the caller may use; "" for open and admin
	// callers, whose projects are the unqualified ones.
	Tenant string
	// Projects, when not nil, are the only projects of Tenant the caller may
	// use; nil means all of them.
	Projects []string
	// Name names the credential for logs and audit records: the key's name
	// and prefix, the JWT's subject, the admin token's name.
	Name string
}

// Open is the principal of a server without credentials.
var Open = Principal{Kind: KindOpen, Name: "open"}

// Everything reports whether the caller sees every tenant's rows (an
// operator).
func (p Principal) Everything() bool { return p.Kind == KindAdmin }

// CanUse reports whether the caller may use the project with this external
// id (the id the caller itself names).
func (p Principal) CanUse(project string) bool {
	return p.Projects == nil || slices.Contains(p.Projects, project)
}

// ProjectKey is the store's key of the caller's project named project.
func (p Principal) ProjectKey(project string) string {
	return Qualify(p.Tenant, project)
}

// IdempotencyKey is the store's key of the caller's Idempotency-Key.
func (p Principal) IdempotencyKey(key string) string {
	if key == "" || p.Tenant == "" {
		return key
	}
	// An Idempotency-Key is printable ASCII without spaces, so a space
	// cannot be part of one: "t1 a/b" is tenant t1's key "a/b" and nothing
	// else.
	return p.Tenant + " " + key
}

// Owns reports whether a stored project key belongs to the caller, and if so
// gives the project's external id. An operator owns every key, and sees it
// as it is stored.
func (p Principal) Owns(projectKey string) (project string, ok bool) {
	if p.Everything() {
		return projectKey, true
	}
	tenant, project := Split(projectKey)
	if tenant != p.Tenant || !p.CanUse(project) {
		return "", false
	}
	return project, true
}

// External is how the caller sees a stored project key (the key itself for
// a key the caller does not own, which only an operator sees).
func (p Principal) External(projectKey string) string {
	if project, ok := p.Owns(projectKey); ok {
		return project
	}
	return projectKey
}

// Qualify puts name in tenant's namespace; the empty tenant's namespace is
// the unqualified one, so data from before tenants keeps its keys.
func Qualify(tenant, name string) string {
	if tenant == "" {
		return name
	}
	return tenant + tenantSep + name
}

// Split is the inverse of Qualify.
func Split(key string) (tenant, name string) {
	if t, n, ok := strings.Cut(key, tenantSep); ok {
		return t, n
	}
	return "", key
}
