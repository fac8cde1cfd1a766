package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/scriptgen/scriptgen/internal/access"
	"github.com/scriptgen/scriptgen/internal/httpx/response"
	"github.com/scriptgen/scriptgen/internal/limits"
	"github.com/scriptgen/scriptgen/internal/store"
)

// adminNameKey is the request context's key of the admin token's name.
type adminNameKey struct{}

// adminActor names the operator of an admin call in audit records: the
// name of the token it used and the address it came from.
func adminActor(r *http.Request) string {
	name, _ := r.Context().Value(adminNameKey{}).(string)
	if name == "" {
		name = "admin"
	}
	return name + "@" + clientAddr(r)
}

// guard puts a route behind the check its Auth names.
func (a *API) guard(rt Route) http.Handler {
	h := rt.Handler
	switch rt.Auth {
	case Writer:
		return a.writerOnly(h, false)
	case WriterStream:
		return a.writerOnly(h, true)
	case AdminOnly:
		return a.adminOnly(h)
	case MetricsOnly:
		return a.metricsOnly(h)
	}
	return h
}

// writerOnly recognises the caller and puts it in the request's context;
// the handler then sees only what the caller's scope holds.
func (a *API) writerOnly(next http.HandlerFunc, query bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := a.auth.Writer(r, query)
		if err != nil {
			a.denied(w, r, err)
			return
		}
		next(w, withPrincipal(r, p))
	}
}

// adminOnly lets operators through, and logs every call with its token's
// name (the audit of calls that leave no record of their own).
func (a *API) adminOnly(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, err := a.auth.AdminName(r)
		if err != nil {
			a.denied(w, r, err)
			return
		}
		a.cfg.Log.Info("Admin call", "admin", name, "client", access.ClientIP(r), "method", r.Method, "path", r.URL.Path,
			"request_id", response.RequestID(r))
		next(w, r.WithContext(context.WithValue(r.Context(), adminNameKey{}, name)))
	}
}

// metricsOnly wants METRICS_TOKEN (or an admin token) when one is set.
func (a *API) metricsOnly(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.MetricsToken == "" {
			next(w, r)
			return
		}
		if a.auth.MetricsToken(r, a.cfg.MetricsToken) {
			next(w, r)
			return
		}
		a.denied(w, r, &access.Denied{Code: access.CodeUnauthorized, Message: "GET /metrics wants Authorization: Bearer <METRICS_TOKEN>"})
	}
}

// denied answers a refused call.
func (a *API) denied(w http.ResponseWriter, r *http.Request, err error) {
	var d *access.Denied
	if !errors.As(err, &d) {
		if store.IsUnavailable(err) {
			unavailable503(w)
			return
		}
		response.ServerError(w, r, a.cfg.Log, err)
		return
	}
	switch d.Code {
	case access.CodeTooManyFailures:
		w.Header().Set("Connection", "close")
		w.Header().Set("Retry-After", strconv.Itoa(limits.RetryAfterSeconds(d.RetryAfter)))
		response.Error(w, http.StatusTooManyRequests, d.Code, d.Message)
	case access.CodeAdminDisabled, access.CodeWrongAdminToken:
		response.Error(w, http.StatusForbidden, d.Code, d.Message)
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="scriptgen"`)
		response.Error(w, http.StatusUnauthorized, d.Code, d.Message)
	}
}

// unavailable503 answers a call the database cannot serve right now.
func unavailable503(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "5")
	response.Error(w, http.StatusServiceUnavailable, "database_unavailable", "the database does not answer; try again shortly")
}
