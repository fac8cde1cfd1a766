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

	"github.com/scriptgen/scriptgen/client"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/testenv/contract"
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
	// The fake answers in the shapes of api/openapi.yaml (the contract
	// checker holds it to them).
	const now = "2026-12-06T00:00:00Z"
	jobJSON := func(id, project, status string, backend job.Backend) map[string]any {
		return map[string]any{"id": id, "kind": "generation", "project_id": project, "status": status, "stage": "",
			"progress": 0, "attempt": 0, "max_attempts": 3, "backend": backend, "dispatch_epoch": 1,
			"payload": map[string]any{"title": "t"}, "result": nil, "error": "", "created_at": now, "started_at": nil,
			"finished_at": nil, "links": map[string]any{"self": "/api/generation/" + id, "events": "/api/generation/" + id + "/events",
				"cancel": "/api/generation/" + id + "/cancel"}}
	}
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		write(w, 200, map[string]any{"status": "ok", "reasons": []string{}, "auth": "open", "worker_system": map[string]any{
			"enabled": true, "type": "durable", "rollout_percent": percent, "reason": "", "kill_switch": false, "redis": "up",
			"workers_up": 2, "workers_crashed": 0, "setting": map[string]any{"enabled": true, "rollout_percent": percent,
				"reason": "", "updated_by": "test", "updated_at": now, "revision": 3}},
			"process": map[string]any{"pid": 1, "rss_bytes": 10 << 20}})
	})
	mux.HandleFunc("POST /api/generation", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			ProjectID string `json:"project_id"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		write(w, 202, jobJSON("job-1", body.ProjectID, "queued", flag(body.ProjectID)))
	})
	mux.HandleFunc("GET /api/generation/{id}", func(w http.ResponseWriter, r *http.Request) {
		write(w, 200, jobJSON(r.PathValue("id"), "p1", "succeeded", job.BackendBackgroundTasks))
	})
	mux.HandleFunc("GET /api/generation/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		event := func(seq int, name, status string, final bool) string {
			d := map[string]any{"seq": seq, "type": name, "status": status, "progress": 50, "stage": "", "message": "",
				"data": nil, "created_at": now}
			if final {
				d["final"] = true
			}
			b, _ := json.Marshal(d)
			return fmt.Sprintf("id: %d\nevent: %s\ndata: %s\n\n", seq, name, b)
		}
		fmt.Fprint(w, event(1, "progress", "running", false)+event(2, "result", "succeeded", true))
	})
	mux.HandleFunc("GET /api/generation", func(w http.ResponseWriter, r *http.Request) {
		write(w, 200, map[string]any{"items": []any{}, "next_cursor": ""})
	})
	mux.HandleFunc("GET /api/projects/{p}/episodes/{n}", func(w http.ResponseWriter, r *http.Request) {
		write(w, 200, map[string]any{"project_id": r.PathValue("p"), "job_id": "job-1", "number": 1, "title": "t",
			"script": "s", "created_at": now})
	})
	mux.HandleFunc("POST /api/projects/{p}/documents", func(w http.ResponseWriter, r *http.Request) {
		d := jobJSON("doc-job", r.PathValue("p"), "queued", job.BackendBackgroundTasks)
		d["kind"] = "rag_document"
		d["payload"] = map[string]any{"document_id": "d1", "title": "bible", "format": "markdown", "size_bytes": 10}
		d["document_id"] = "d1"
		d["document"] = map[string]any{"id": "d1", "project_id": r.PathValue("p"), "title": "bible", "format": "markdown",
			"size_bytes": 10, "status": "processing", "job_id": "doc-job", "chunk_count": 0, "created_at": now, "updated_at": now,
			"links": map[string]any{"self": "/d1", "job": "/api/generation/doc-job", "events": "/api/generation/doc-job/events"}}
		write(w, 202, d)
	})
	mux.HandleFunc("DELETE /api/admin/verify-project", func(w http.ResponseWriter, r *http.Request) {
		write(w, 401, map[string]any{"error": map[string]any{"code": "unauthorized", "message": "this call needs an admin token"}})
	})
	srv := httptest.NewServer(contract.Handler(t, mux))
	defer srv.Close()

	backend := flag(job.VerifyProject)
	{
		v := &verifier{api: client.New(srv.URL, client.WithHTTPClient(&http.Client{Timeout: 5 * time.Second})), stamp: "1"}
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
