package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/httpx/response"
	"github.com/scriptgen/scriptgen/internal/testenv/contract"
	"github.com/scriptgen/scriptgen/internal/web"
)

// TestBrowserSubmitRetriesWhileInFlight: when the network loses a
// submission's answer, the page asks again with the same Idempotency-Key,
// and the service may still be handling the first request: it answers 409
// idempotency_key_in_flight. The page used to stop there and show "Submission
// failed" for a job that was accepted; it now asks again and watches the job.
// The API is a stand-in here (the page's logic is under test; the 409 itself
// is the API tests'), serving the real pages; the page's requests are held
// against api/openapi.yaml (contract.ProxyRequests).
func TestBrowserSubmitRetriesWhileInFlight(t *testing.T) {
	ctx := newBrowser(t)
	var mu sync.Mutex
	var keys []string
	mux := http.NewServeMux()
	pages := web.NewPages()
	mux.HandleFunc("GET /{$}", pages.Writer)
	mux.HandleFunc("GET /static/", pages.Static)
	mux.HandleFunc("POST /api/generation", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		first := len(keys) == 1
		mu.Unlock()
		if first {
			response.Error(w, http.StatusConflict, "idempotency_key_in_flight", "a request with this key is still being handled")
			return
		}
		response.JSON(w, http.StatusAccepted, map[string]any{"id": "job-in-flight", "status": "queued", "backend": "background_tasks"})
	})
	mux.HandleFunc("GET /api/generation/{id}", func(w http.ResponseWriter, r *http.Request) {
		response.JSON(w, http.StatusOK, map[string]any{"id": r.PathValue("id"), "status": "running", "backend": "background_tasks"})
	})
	mux.HandleFunc("GET /api/generation/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "id: 1\nevent: status\ndata: {\"seq\":1,\"type\":\"status\",\"status\":\"queued\",\"progress\":0,\"stage\":\"queued\"}\n\n")
	})
	mux.HandleFunc("GET /api/generation/system-info", func(w http.ResponseWriter, r *http.Request) {
		response.JSON(w, http.StatusOK, map[string]any{"worker_system": map[string]any{"type": "background_tasks"}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	submitOnPage(t, ctx, contract.ProxyRequests(t, srv.URL), "in-flight")
	run(t, ctx, 20*time.Second, "the page watches the job after the 409",
		waitFor(`window.scriptgenWriter.jobId === 'job-in-flight' && document.getElementById('form-error').hidden`, 20*time.Second))
	mu.Lock()
	defer mu.Unlock()
	if len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] {
		t.Fatalf("submissions with keys %q, want two with the same key", keys)
	}
}
