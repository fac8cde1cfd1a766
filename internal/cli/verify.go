package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/scriptgen/scriptgen/client"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/rollback"
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
	api    *client.Client
	checks []check
	stamp  string
	// staleAfter is how long a replica may take to apply a new flag.
	staleAfter time.Duration
	admin      bool // an admin token was given: the admin checks run
}

func (v *verifier) add(phase, name string, ok bool, format string, args ...any) {
	v.checks = append(v.checks, check{Phase: phase, Name: name, OK: ok, Measured: fmt.Sprintf(format, args...)})
}

// timed runs one call and says how long it took.
func timed(f func() error) (time.Duration, error) {
	start := time.Now()
	err := f()
	return time.Since(start), err
}

// statusOf is a call's HTTP status as the checklist shows it: 200 when it
// succeeded, the API's status when it answered an error, 0 when it did not
// answer.
func statusOf(err error, ok int) int {
	if err == nil {
		return ok
	}
	return client.StatusOf(err)
}

// key is a fresh Idempotency-Key: each of verify's submissions is new.
func (v *verifier) key() string {
	return fmt.Sprintf("verify-%s-%d", v.stamp, time.Now().UnixNano())
}

// waitJob polls a job until it ends.
func (v *verifier) waitJob(ctx context.Context, id string, limit time.Duration) *client.Job {
	deadline := time.Now().Add(limit)
	j := &client.Job{}
	for time.Now().Before(deadline) {
		if got, err := v.api.Get(ctx, id); err == nil {
			j = got
		}
		if j.Finished() {
			return j
		}
		time.Sleep(100 * time.Millisecond)
	}
	return j
}

func verifyCmd(ctx context.Context, c *command, args []string, stdout, stderr io.Writer) error {
	var base string
	var asJSON bool
	var staleAfter time.Duration
	cfg, err := c.parse(args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&base, "url", "http://127.0.0.1:8002", "the service to verify")
		fs.BoolVar(&asJSON, "json", false, "print the checklist as JSON")
		fs.DurationVar(&staleAfter, "flag-stale-after", 10*time.Second, "fail a replica that has not applied the current worker-system flag this long after it changed")
	})
	if err != nil {
		return err
	}
	if base, err = serviceURL(base); err != nil {
		return err
	}
	// The admin token also serves the writer calls (an operator acts in the
	// namespace of no tenant) and shows /health's details.
	v := &verifier{api: client.New(base, client.WithToken(cfg.AdminToken), client.WithHTTPClient(&http.Client{Timeout: 15 * time.Second})),
		stamp: fmt.Sprint(time.Now().Unix()), staleAfter: staleAfter, admin: cfg.AdminToken != ""}
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
	var health *client.Health
	took, err := timed(func() (err error) { health, err = v.api.Health(ctx); return err })
	code := statusOf(err, 200)
	if health != nil && health.Status != "ok" {
		code = 503
	}
	v.add(immediate, "Generation service answers (< 2 s)", err == nil && code == 200 && took < 2*time.Second, "HTTP %d in %s %v", code, took.Round(time.Millisecond), errText(err))
	if err != nil {
		return
	}
	ws := health.WorkerSystem
	settingEnabled := ws.Setting != nil && ws.Setting.Enabled
	rollbackMode := !settingEnabled
	v.add(immediate, "Worker system follows the setting", ws.Enabled == settingEnabled || !ws.Enabled,
		"enabled=%v type=%s (setting enabled=%v)", ws.Enabled, ws.Type, settingEnabled)
	if rollbackMode {
		// Worded as the rollback's answer says it (rollback.NextSteps).
		detail := fmt.Sprintf("%d workers up", ws.WorkersUp)
		if ws.WorkersUp > 0 {
			detail = rollback.StopWorkers(ws.WorkersUp) + " (the rollback does not stop them). " + rollback.StopWorkersHow
		}
		v.add(immediate, "Durable workers stopped (rollback mode)", ws.WorkersUp == 0, "%s", detail)
	}
	if v.admin {
		v.checkReplicas(ctx, immediate, v.staleAfter)
	}

	// One job end to end: runs on the expected backend, streams, saves an
	// episode. The checks work in one reserved project, hidden from writers'
	// lists and emptied at the end (and at the start, after a run that died).
	project := job.VerifyProject
	v.removeOwnData(ctx)
	defer v.reportRemoval(ctx, "Cleanup")
	j, err := v.api.Submit(ctx, client.GenerationRequest{ProjectID: project, EpisodeData: client.EpisodeData{
		Title: "검증 에피소드", Synopsis: "A check of the checklist.", Characters: []client.Character{{Name: "지수"}, {Name: "Minho"}}}}, v.key())
	if j == nil {
		j = &client.Job{}
	}
	// Routed as the service routes it: during a partial rollout most
	// projects stay on background_tasks.
	want := string(workerflag.State{Enabled: ws.Enabled, RolloutPercent: ws.RolloutPercent}.BackendFor(project))
	v.add(immediate, "New job accepted on "+want, err == nil && j.Backend == want, "HTTP %d backend=%v %s", statusOf(err, 202), j.Backend, errText(err))
	if j.ID == "" {
		return
	}
	sse := v.sse(ctx, j.ID)
	done := v.waitJob(ctx, j.ID, 90*time.Second)
	v.add(immediate, "SSE stream delivers the job's events", sse.err == nil && sse.events > 0 && sse.terminal,
		"%d events, terminal=%v %s", sse.events, sse.terminal, errText(sse.err))
	v.add(functional, "Script generation works", done.Status == client.StatusSucceeded, "status=%v %v", done.Status, done.Error)
	v.add(functional, "Live progress updates", sse.progress > 0, "%d progress events", sse.progress)
	// The number the job was given: another verify may share the project.
	number := 1
	if res, err := done.GenerationResult(); err == nil && res != nil && res.EpisodeNumber > 0 {
		number = res.EpisodeNumber
	}
	ep, err := v.api.Episode(ctx, project, number)
	v.add(functional, "Episode saved and numbered", err == nil && ep.JobID == j.ID, "episode %d → HTTP %d", number, statusOf(err, 200))

	// RAG document processing.
	doc, err := v.api.CreateDocument(ctx, project, client.DocumentRequest{Title: "bible",
		Content: "# 세계관\n\n지수는 서울의 작은 카페에서 일한다. Minho is a barista.", Format: "markdown"}, v.key())
	rag := &client.Job{}
	if err == nil && doc.ID != "" {
		rag = v.waitJob(ctx, doc.ID, 60*time.Second)
	}
	v.add(functional, "RAG document processing works", err == nil && rag.Status == client.StatusSucceeded, "HTTP %d, job %v", statusOf(err, 202), rag.Status)

	// Ten jobs in a row without an error.
	okCount := 0
	for i := range 10 {
		jj, err := v.api.Submit(ctx, client.GenerationRequest{ProjectID: project, EpisodeData: client.EpisodeData{Title: fmt.Sprintf("연속 %d", i)}}, v.key())
		if err == nil && v.waitJob(ctx, jj.ID, 60*time.Second).Status == client.StatusSucceeded {
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
	var rss int64
	if health, err = v.api.Health(ctx); err == nil && health.Process != nil {
		rss = health.Process.RSSBytes
	}
	v.add(performance, "RSS < 500 MB", rss > 0 && rss < 500<<20, "%.1f MB", float64(rss)/(1<<20))
}

// removeOwnData deletes what the checks created in the reserved project; it
// reports whether the service did.
func (v *verifier) removeOwnData(ctx context.Context) (int, error) {
	_, err := v.api.DeleteVerifyProject(ctx)
	return statusOf(err, 200), err
}

// reportRemoval removes the check's data at the end and says so: without an
// admin token the service refuses, and the data stays in the reserved
// project, out of writers' lists, until a run with one.
func (v *verifier) reportRemoval(ctx context.Context, phase string) {
	code, err := v.removeOwnData(ctx)
	name := "Check data removed (project " + job.VerifyProject + ")"
	if !v.admin {
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
				took, err := timed(func() error { _, err := v.api.List(ctx, client.ListOptions{}); return err })
				mu.Lock()
				if err != nil {
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

// sse follows a job's event stream (resuming if it breaks) until its
// terminal event.
func (v *verifier) sse(ctx context.Context, id string) sseResult {
	var r sseResult
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	err := v.api.Follow(ctx, id, client.FollowOptions{MaxRetries: 3, OnEvent: func(e client.Event) {
		r.events++
		if e.Name == "progress" {
			r.progress++
		}
		r.terminal = r.terminal || e.Final
	}})
	var ended *client.JobEndedError
	if err != nil && !errors.As(err, &ended) {
		r.err = err
	}
	return r
}
