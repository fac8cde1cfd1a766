package api

import (
	"net/http"
	"slices"

	"github.com/scriptgen/scriptgen/internal/httpx/response"
)

// corsAllowHeaders are the request headers a listed origin's page may send.
const corsAllowHeaders = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID, X-Request-Id"

// corsExposeHeaders are the answer's headers such a page may read.
const corsExposeHeaders = "Location, Retry-After, Idempotent-Replayed, X-Request-Id"

// crossOrigin keeps other sites' pages from changing anything: a
// state-changing request a browser marks as cross-origin (Sec-Fetch-Site, or
// an Origin that is not this host) is refused with 403, unless its origin is
// listed in allowed (ALLOWED_ORIGINS), whose pages also get CORS answers,
// preflights included. Requests from programs (no such headers) pass.
func crossOrigin(allowed []string, next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	for _, o := range allowed {
		// The configuration was checked when it was read.
		_ = cop.AddTrustedOrigin(o)
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		response.Error(w, http.StatusForbidden, "cross_origin_refused",
			"a page of another origin may not call this; list its origin in ALLOWED_ORIGINS")
	}))
	protected := cop.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin != "" && slices.Contains(allowed, origin) {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE")
				h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		} else if origin != "" {
			w.Header().Add("Vary", "Origin")
		}
		protected.ServeHTTP(w, r)
	})
}
