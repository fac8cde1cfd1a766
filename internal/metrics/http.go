package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Middleware times every request into scriptgen_http_request_duration_seconds
// and the response-time window. It wraps the ServeMux, which sets r.Pattern
// while routing, so the route label is read after the handler returns: a
// route pattern, never a raw path, which keeps the label's values bounded.
// Event streams (text/event-stream) last as long as the client listens and are
// left out, or they would swamp the average and p99.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, code: http.StatusOK}
		defer func() {
			if strings.HasPrefix(rec.Header().Get("Content-Type"), "text/event-stream") {
				return
			}
			took := time.Since(start)
			m.httpDuration.WithLabelValues(method(r.Method), route(r.Pattern), strconv.Itoa(rec.code)).Observe(took.Seconds())
			m.window.add(took)
		}()
		next.ServeHTTP(rec, r)
	})
}

// ResponseTimes is the average and p99 of the HTTP response times of the last
// windowSize requests within the last windowAge; zero without any.
func (m *Metrics) ResponseTimes() (avg, p99 time.Duration) { return m.window.stats() }

// route is the path part of a ServeMux pattern ("GET /api/generation/{id}" →
// "/api/generation/{id}"); "other" when no pattern matched.
func route(pattern string) string {
	if pattern == "" {
		return "other"
	}
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		pattern = strings.TrimLeft(pattern[i+1:], " \t")
	}
	return pattern
}

// method keeps the label bounded against made-up methods.
func method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// recorder remembers the status code; Unwrap lets http.ResponseController
// reach the connection's Flush, Hijack and deadlines.
type recorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.code, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	return r.ResponseWriter.Write(b)
}

// Flush serves handlers that assert http.Flusher rather than use a
// ResponseController.
func (r *recorder) Flush() { _ = http.NewResponseController(r.ResponseWriter).Flush() }

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
