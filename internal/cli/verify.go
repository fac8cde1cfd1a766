package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/workerflag"
)

// check is one line of the checklist of docs/runbook.md.
type check struct {
	Phase    string `json:"phase"`
	Name     string `json:"name"`
	OK       bool   `json:"ok"`
	Measured string `json:"measured"`
}

type verifier struct {
	base, token string
	client      *http.Client
	checks      []check
	stamp       string
}

func (v *verifier) add(phase, name string, ok bool, format string, args ...any) {
	v.checks = append(v.checks, check{Phase: phase, Name: name, OK: ok, Measured: fmt.Sprintf(format, args...)})
}

func (v *verifier) call(ctx context.Context, method, path string, body any, out any) (int, time.Duration, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, v.base+path, rd)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	// The admin token also serves the writer calls (an operator acts in the
	// namespace of no tenant) and shows /health's details.
	if v.token != "" {
		req.Header.Set("Authorization", "Bearer "+v.token)
	}
	if method == "POST" {
		req.Header.Set("Idempotency-Key", fmt.Sprintf("verify-%s-%d", v.stamp, time.Now().UnixNano()))
	}
	start := time.Now()
	resp, err := v.client.Do(req)
	took := time.Since(start)
	if err != nil {
		return 0, took, err
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	} else {
		io.Copy(io.Discard, resp.Body)
	}
	return resp.StatusCode, took, nil
}

// waitJob polls a job until it ends.
func (v *verifier) waitJob(ctx context.Context, id string, limit time.Duration) map[string]any {
	deadline := time.Now().Add(limit)
	var j map[string]any
	for time.Now().Before(deadline) {
		v.call(ctx, "GET", "/api/generation/"+id, nil, &j)
		if s, _ := j["status"].(string); s == "succeeded" || s == "failed" || s == "cancelled" {
			return j
		}
		time.Sleep(100 * time.Millisecond)
	}
	return j
}

func verifyCmd(ctx context.Context, c *command, args []string, stdout, stderr io.Writer) error {
	var base string
	var asJSON bool
	cfg, err := c.parse(args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&base, "url", "http://127.0.0.1:8002", "the service to verify")
		fs.BoolVar(&asJSON, "json", false, "print the checklist as JSON")
	})
	if err != nil {
		return err
	}
	if base, err = serviceURL(base); err != nil {
		return err
	}
	v := &verifier{base: base, token: cfg.AdminToken, client: &http.Client{Timeout: 15 * time.Second},
		stamp: fmt.Sprint(time.Now().Unix())}
	v.run(ctx)
	failed := 0
	if asJSON {
		json.NewEncoder(stdout).Encode(map[string]any{"checks": v.checks, "ok": v.ok()})
	} else {
		phase := ""
		for _, c := range v.checks {
			if c.Phase != phase {
				phase = c.Phase
				fmt.Fprintf(stdout, "\n## %s\n", phase)
			}
			mark := "✅"
			if !c.OK {
				mark = "❌"
			}
			fmt.Fprintf(stdout, "%s %-48s %s\n", mark, c.Name, c.Measured)
		}
	}
	for _, c := range v.checks {
		if !c.OK {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d checks missed", failed, len(v.checks))
	}
	return nil
}

func (v *verifier) ok() bool {
	for _, c := range v.checks {
		if !c.OK {
			return false
		}
	}
	return true
}

func (v *verifier) run(ctx context.Context) {
	const immediate, functional, performance = "Immediate (2 min)", "Functional (10 min)", "Performance (30 min)"
	var health struct {
		WorkerSystem struct {
			Enabled        bool   `json:"enabled"`
			Type           string `json:"type"`
			RolloutPercent int    `json:"rollout_percent"`
			WorkersUp      int    `json:"workers_up"`
			Setting        struct {
				Enabled bool `json:"enabled"`
			} `json:"setting"`
		} `json:"worker_system"`
		Process struct {
			RSS int64 `json:"rss_bytes"`
		} `json:"process"`
	}
	code, took, err := v.call(ctx, "GET", "/health", nil, &health)
	v.add(immediate, "Generation service answers (< 2 s)", err == nil && code == 200 && took < 2*time.Second, "HTTP %d in %s %v", code, took.Round(time.Millisecond), errText(err))
	if err != nil {
		return
	}
	ws := health.WorkerSystem
	rollbackMode := !ws.Setting.Enabled
	v.add(immediate, "Worker system follows the setting", ws.Enabled == ws.Setting.Enabled || !ws.Enabled,
		"enabled=%v type=%s (setting enabled=%v)", ws.Enabled, ws.Type, ws.Setting.Enabled)
	if rollbackMode {
		// Worded as the rollback's output and the runbook's step 4 say it.
		hint := ""
		if ws.WorkersUp > 0 {
			hint = ": stop them (the rollback does not), runbook step 4"
		}
		v.add(immediate, "Durable workers stopped (rollback mode)", ws.WorkersUp == 0, "%d workers up%s", ws.WorkersUp, hint)
	}

	// One job end to end: runs on the expected backend, streams, saves an
	// episode. The checks work in one reserved project, hidden from writers'
	// lists and emptied at the end (and at the start, after a run that died).
	project := job.VerifyProject
	v.removeOwnData(ctx)
	defer v.reportRemoval(ctx, "Cleanup")
	var j map[string]any
	code, _, err = v.call(ctx, "POST", "/api/generation", map[string]any{"project_id": project,
		"episode_data": map[string]any{"title": "검증 에피소드", "synopsis": "A check of the checklist.", "characters": []string{"지수", "Minho"}}}, &j)
	id, _ := j["id"].(string)
	// Routed as the service routes it: during a partial rollout most
	// projects stay on background_tasks.
	want := string(workerflag.State{Enabled: ws.Enabled, RolloutPercent: ws.RolloutPercent}.BackendFor(project))
	v.add(immediate, "New job accepted on "+want, err == nil && code == 202 && j["backend"] == want, "HTTP %d backend=%v", code, j["backend"])
	if id == "" {
		return
	}
	sse := v.sse(ctx, id)
	done := v.waitJob(ctx, id, 90*time.Second)
	v.add(immediate, "SSE stream delivers the job's events", sse.err == nil && sse.events > 0 && sse.terminal,
		"%d events, terminal=%v %s", sse.events, sse.terminal, errText(sse.err))
	v.add(functional, "Script generation works", done["status"] == "succeeded", "status=%v %v", done["status"], done["error"])
	v.add(functional, "Live progress updates", sse.progress > 0, "%d progress events", sse.progress)
	// The number the job was given: another verify may share the project.
	number := 1
	if res, ok := done["result"].(map[string]any); ok {
		if n, ok := res["episode_number"].(float64); ok {
			number = int(n)
		}
	}
	var ep map[string]any
	code, _, _ = v.call(ctx, "GET", fmt.Sprintf("/api/projects/%s/episodes/%d", project, number), nil, &ep)
	v.add(functional, "Episode saved and numbered", code == 200 && ep["job_id"] == id, "episode %d → HTTP %d", number, code)

	// RAG document processing.
	var doc map[string]any
	code, _, _ = v.call(ctx, "POST", "/api/projects/"+project+"/documents", map[string]any{"title": "bible",
		"content": "# 세계관\n\n지수는 서울의 작은 카페에서 일한다. Minho is a barista.", "format": "markdown"}, &doc)
	docJob, _ := doc["id"].(string)
	rag := map[string]any{}
	if docJob != "" {
		rag = v.waitJob(ctx, docJob, 60*time.Second)
	}
	v.add(functional, "RAG document processing works", code == 202 && rag["status"] == "succeeded", "HTTP %d, job %v", code, rag["status"])

	// Ten jobs in a row without an error.
	okCount := 0
	for i := range 10 {
		var jj map[string]any
		v.call(ctx, "POST", "/api/generation", map[string]any{"project_id": project,
			"episode_data": map[string]any{"title": fmt.Sprintf("연속 %d", i)}}, &jj)
		if id, _ := jj["id"].(string); id != "" && v.waitJob(ctx, id, 60*time.Second)["status"] == "succeeded" {
			okCount++
		}
	}
	v.add(functional, "10 consecutive jobs without an error", okCount == 10, "%d of 10 succeeded", okCount)

	// ab -n 100 -c 10 http://localhost:8002/api/generation
	lat, failures := v.load(ctx, 100, 10)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	var sum time.Duration
	for _, l := range lat {
		sum += l
	}
	avg, p99 := time.Duration(0), time.Duration(0)
	if len(lat) > 0 {
		avg, p99 = sum/time.Duration(len(lat)), lat[min(len(lat)-1, len(lat)*99/100)]
	}
	v.add(performance, "Average response time < 3 s (100 req, c=10)", len(lat) > 0 && avg < 3*time.Second, "%s", avg.Round(time.Microsecond))
	v.add(performance, "99th percentile < 10 s", len(lat) > 0 && p99 < 10*time.Second, "%s", p99.Round(time.Microsecond))
	v.add(performance, "Failure rate < 1 %", failures < 1, "%d of 100 failed", failures)
	code, _, _ = v.call(ctx, "GET", "/health", nil, &health)
	v.add(performance, "RSS < 500 MB", code == 200 && health.Process.RSS > 0 && health.Process.RSS < 500<<20, "%.1f MB", float64(health.Process.RSS)/(1<<20))
}

// removeOwnData deletes what the checks created in the reserved project; it
// reports whether the service did.
func (v *verifier) removeOwnData(ctx context.Context) (int, error) {
	code, _, err := v.call(ctx, "DELETE", "/api/admin/verify-project", nil, nil)
	return code, err
}

// reportRemoval removes the check's data at the end and says so: without an
// admin token the service refuses, and the data stays in the reserved
// project, out of writers' lists, until a run with one.
func (v *verifier) reportRemoval(ctx context.Context, phase string) {
	code, err := v.removeOwnData(ctx)
	name := "Check data removed (project " + job.VerifyProject + ")"
	if v.token == "" {
		v.add(phase, name, true, "kept: removing it takes ADMIN_TOKEN (HTTP %d)", code)
		return
	}
	v.add(phase, name, err == nil && code == 200, "HTTP %d %s", code, errText(err))
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// load does what `ab -n N -c C` does against GET /api/generation.
func (v *verifier) load(ctx context.Context, n, c int) ([]time.Duration, int) {
	var mu sync.Mutex
	var lat []time.Duration
	failures := 0
	work := make(chan struct{}, n)
	for range n {
		work <- struct{}{}
	}
	close(work)
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				code, took, err := v.call(ctx, "GET", "/api/generation", nil, nil)
				mu.Lock()
				if err != nil || code != 200 {
					failures++
				} else {
					lat = append(lat, took)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return lat, failures
}

type sseResult struct {
	events, progress int
	terminal         bool
	err              error
}

// sse reads a job's event stream until its terminal event.
func (v *verifier) sse(ctx context.Context, id string) sseResult {
	var r sseResult
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", v.base+"/api/generation/"+id+"/events", nil)
	if v.token != "" {
		req.Header.Set("Authorization", "Bearer "+v.token)
	}
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		r.err = err
		return r
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		r.err = fmt.Errorf("content type %q, HTTP %d", ct, resp.StatusCode)
		return r
	}
	buf := make([]byte, 64<<10)
	var pending string
	for {
		n, err := resp.Body.Read(buf)
		pending += string(buf[:n])
		for {
			i := strings.Index(pending, "\n\n")
			if i < 0 {
				break
			}
			block := pending[:i]
			pending = pending[i+2:]
			if !strings.Contains(block, "data:") {
				continue
			}
			r.events++
			if strings.Contains(block, "event: progress") {
				r.progress++
			}
			if strings.Contains(block, `"succeeded"`) || strings.Contains(block, `"failed"`) || strings.Contains(block, `"cancelled"`) {
				r.terminal = true
			}
		}
		if err != nil {
			if err != io.EOF && !r.terminal {
				r.err = err
			}
			return r
		}
	}
}
