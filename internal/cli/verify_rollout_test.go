package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/workerflag"
)

// TestVerifyDuringAGradualRollout: the re-deployment of docs/runbook.md steps the
// rollout up (`scriptgen rollforward --percent 10`), and the service then
// routes a project to durable only when its bucket is below the percent
// (sticky by project). /health says type=durable (Type() is durable at any
// percent above 0), and verify expects its own fresh project's job on
// worker_system.type, so at 10 % it reported "❌ New job accepted on durable"
// for ~90 % of runs against a service that routed correctly, and exited 1.
// It now routes its project as the service does. Its project is the reserved
// one, so the test moves the percent around that project's bucket instead.
func TestVerifyDuringAGradualRollout(t *testing.T) {
	bucket := workerflag.Bucket(job.VerifyProject)
	for _, percent := range []int{bucket, bucket + 1} { // just outside, just inside
		verifyAtPercent(t, percent)
	}
}

func verifyAtPercent(t *testing.T, percent int) {
	flag := func(project string) job.Backend { // the service's routing at percent
		if workerflag.Bucket(project) < percent {
			return job.BackendDurable
		}
		return job.BackendBackgroundTasks
	}
	mux := http.NewServeMux()
	write := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		write(w, 200, map[string]any{"status": "ok", "worker_system": map[string]any{"enabled": true, "type": "durable",
			"rollout_percent": percent, "workers_up": 2, "setting": map[string]any{"enabled": true, "rollout_percent": percent}},
			"process": map[string]any{"rss_bytes": 10 << 20}})
	})
	mux.HandleFunc("POST /api/generation", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			ProjectID string `json:"project_id"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		write(w, 202, map[string]any{"id": "job-1", "status": "queued", "backend": flag(body.ProjectID)})
	})
	mux.HandleFunc("GET /api/generation/{id}", func(w http.ResponseWriter, r *http.Request) {
		write(w, 200, map[string]any{"id": r.PathValue("id"), "status": "succeeded"})
	})
	mux.HandleFunc("GET /api/generation/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: progress\ndata: {\"progress\":50}\n\nevent: status\ndata: {\"status\":\"succeeded\"}\n\n")
	})
	mux.HandleFunc("GET /api/generation", func(w http.ResponseWriter, r *http.Request) {
		write(w, 200, map[string]any{"items": []any{}, "next_cursor": ""})
	})
	mux.HandleFunc("GET /api/projects/{p}/episodes/{n}", func(w http.ResponseWriter, r *http.Request) {
		write(w, 200, map[string]any{"job_id": "job-1", "number": 1})
	})
	mux.HandleFunc("POST /api/projects/{p}/documents", func(w http.ResponseWriter, r *http.Request) {
		write(w, 202, map[string]any{"id": "doc-job"})
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	backend := flag(job.VerifyProject)
	{
		v := &verifier{base: srv.URL, client: &http.Client{Timeout: 5 * time.Second}, stamp: "1"}
		v.run(context.Background())
		found := false
		for _, c := range v.checks {
			if strings.HasPrefix(c.Name, "New job accepted on") {
				found = true
				if !c.OK || c.Name != "New job accepted on "+string(backend) {
					t.Fatalf("verify reported %q ok=%v (%s) against a service that routed the job to %s at %d%%",
						c.Name, c.OK, c.Measured, backend, percent)
				}
			}
		}
		if !found {
			t.Fatalf("verify made no check of the new job's backend: %+v", v.checks)
		}
	}
}
