package api

import (
	"net/http"
	"net/http/pprof"
	"sync/atomic"

	"github.com/scriptgen/scriptgen/internal/httpx/response"
)

// debugHandler serves what watches the process: the profiles that Go's
// runtime takes once at a time, and the Prometheus scrape.
type debugHandler struct {
	cpuBusy, traceBusy atomic.Bool
	scrape             http.Handler
}

// cpuProfile serves /debug/pprof/profile, one at a time.
func (h *debugHandler) cpuProfile(w http.ResponseWriter, r *http.Request) {
	oneAtATime(&h.cpuBusy, "CPU profile", pprof.Profile, w, r)
}

// executionTrace serves /debug/pprof/trace, one at a time.
func (h *debugHandler) executionTrace(w http.ResponseWriter, r *http.Request) {
	oneAtATime(&h.traceBusy, "execution trace", pprof.Trace, w, r)
}

// metrics serves the Prometheus scrape.
func (h *debugHandler) metrics(w http.ResponseWriter, r *http.Request) { h.scrape.ServeHTTP(w, r) }

// oneAtATime serves a profile that the Go runtime takes once at a time: a
// second request while one runs gets a clear 409 instead of pprof's text 500.
func oneAtATime(busy *atomic.Bool, what string, profile http.HandlerFunc, w http.ResponseWriter, r *http.Request) {
	if !busy.CompareAndSwap(false, true) {
		response.Error(w, http.StatusConflict, "profile_busy", "another "+what+" is being taken; try again when it ends")
		return
	}
	defer busy.Store(false)
	profile(w, r)
}
