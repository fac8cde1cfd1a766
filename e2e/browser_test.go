package e2e

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/scriptgen/scriptgen/internal/testenv"
	"github.com/scriptgen/scriptgen/internal/testenv/contract"
)

// chromiumPath is Debian's chromium (apt-get install -y chromium).
const chromiumPath = "/usr/bin/chromium"

// newBrowser starts a headless Chromium of the test's own; without one the
// test skips locally and fails under CI=true. A test that points it at
// scriptgen serve opens contract.Proxy(t, srv.URL) instead of srv.URL, so
// that the pages' traffic is held against api/openapi.yaml.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		testenv.Require(t, "Chromium at "+chromiumPath+" (apt-get install -y chromium, or .ci/install-tools)", err)
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 1000),
	)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	if err := chromedp.Do(ctx); err != nil { // the first call starts the browser; no deadline on it
		t.Fatalf("start %s: %v", chromiumPath, err)
	}
	return ctx
}

// run runs browser steps with a deadline and fails the test on error.
func run(t *testing.T, ctx context.Context, limit time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	get(t, ctx, limit, what, chromedp.Steps(steps...))
}

// get runs one browser action with a deadline and returns its value.
func get[T any](t *testing.T, ctx context.Context, limit time.Duration, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("not within %s", limit)
		}
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// waitFor polls a JavaScript predicate on the page.
func waitFor(expr string, limit time.Duration) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(limit))
}

// screenshot saves the page to docs/ when UPDATE_SCREENSHOTS is set.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("UPDATE_SCREENSHOTS") == "" {
		return
	}
	png := get(t, ctx, 20*time.Second, "screenshot", chromedp.FullScreenshot(100))
	path := filepath.Join("..", "docs", name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("saved %s", path)
}

// writerState is what the writer's page exposes as window.scriptgenWriter.
type writerState struct {
	JobID      string    `json:"jobId"`
	Project    string    `json:"project"`
	Seqs       []int64   `json:"seqs"`
	Duplicates []int64   `json:"duplicates"`
	Gaps       [][]int64 `json:"gaps"`
	States     []string  `json:"states"`
	Done       bool      `json:"done"`
}

func readWriter(t *testing.T, ctx context.Context) writerState {
	t.Helper()
	return get(t, ctx, 10*time.Second, "read page state", chromedp.Evaluate[writerState](`window.scriptgenWriter`))
}

// submitOnPage fills in the writer's form and submits it.
func submitOnPage(t *testing.T, ctx context.Context, base, project string) {
	t.Helper()
	run(t, ctx, 30*time.Second, "fill in and submit the episode form",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#episode-form")),
		chromedp.SetValue(chromedp.CSS("#project"), project),
		chromedp.SendKeys(chromedp.CSS("#title"), "첫 만남 · The first meeting"),
		chromedp.SendKeys(chromedp.CSS("#synopsis"), "지수는 마감 전날 민호를 만난다. Jisu meets Minho the night before the deadline."),
		chromedp.SendKeys(chromedp.CSS("#characters"), "지수, 민호"),
		chromedp.Click(chromedp.CSS("#submit")),
		chromedp.WaitVisible(chromedp.CSS("#job-card")),
	)
}

func checkPageSeqs(t *testing.T, ctx context.Context, w writerState) {
	t.Helper()
	if len(w.Duplicates) > 0 || len(w.Gaps) > 0 {
		t.Fatalf("page saw repeated events %v and gaps %v", w.Duplicates, w.Gaps)
	}
	for i, s := range w.Seqs {
		if s != int64(i+1) {
			t.Fatalf("page's events %v: want 1..n with no gap or repeat", w.Seqs)
		}
	}
	logged := get(t, ctx, 10*time.Second, "read the event log",
		chromedp.Evaluate[[]string](`[...document.querySelectorAll('#event-log li')].map(li => li.dataset.seq)`))
	if len(logged) != len(w.Seqs) {
		t.Fatalf("event log shows %d events, the page received %d", len(logged), len(w.Seqs))
	}
	for i, s := range logged {
		if s != fmt.Sprint(i+1) {
			t.Fatalf("event log %v: want 1..n", logged)
		}
	}
}

// TestBrowserWriterSubmit submits an episode on the writer's page and waits
// for its script to appear.
func TestBrowserWriterSubmit(t *testing.T) {
	ctx := newBrowser(t)
	srv := startProc(t, "serve", serveEnv(t, "GENERATOR_STEP_DELAY=150ms"), "serve")
	submitOnPage(t, ctx, contract.Proxy(t, srv.URL), "browser-writer")
	run(t, ctx, 60*time.Second, "wait for the script",
		waitFor(`window.scriptgenWriter.done && document.getElementById('script').textContent.length > 0`, 60*time.Second))
	script := get(t, ctx, 5*time.Second, "read the script", chromedp.Evaluate[string](`document.getElementById('script').textContent`))
	progressText := get(t, ctx, 5*time.Second, "read the progress", chromedp.Text(chromedp.CSS("#progress-text")))
	mode := get(t, ctx, 5*time.Second, "read the worker mode", chromedp.Text(chromedp.CSS("#worker-mode")))
	w := readWriter(t, ctx)
	checkPageSeqs(t, ctx, w)
	code, ep := request(t, "GET", srv.URL+"/api/projects/browser-writer/episodes/1", nil)
	if code != 200 || ep["job_id"] != w.JobID {
		t.Fatalf("episode 1: %d %v, want the page's job %s", code, ep, w.JobID)
	}
	if strings.TrimSpace(script) != strings.TrimSpace(ep["script"].(string)) {
		t.Fatalf("page shows a script other than episode 1's:\n%s", script)
	}
	if !strings.Contains(script, "지수") || progressText != "100%" || mode != "background_tasks" {
		t.Fatalf("script mentions no character, or progress %q, or mode %q", progressText, mode)
	}
	run(t, ctx, 20*time.Second, "browse the project's episodes",
		chromedp.Click(chromedp.CSS("#load-episodes")),
		chromedp.WaitVisible(chromedp.CSS("#episodes li button")))
	episodes := get(t, ctx, 5*time.Second, "read the episode list",
		chromedp.Evaluate[[]string](`[...document.querySelectorAll('#episodes li button')].map(b => b.textContent)`))
	if len(episodes) != 1 || !strings.Contains(episodes[0], "#1") {
		t.Fatalf("episode list %v, want episode #1", episodes)
	}
	screenshot(t, ctx, "screenshot-writer.png")
	checkExactlyOnce(t, srv.URL, []submitted{{ID: w.JobID, Project: "browser-writer"}})
}

// TestBrowserReconnectsAcrossRestart kills the server mid-job and restarts it
// on the same port: the page must reconnect, resume from its last event id
// and finish with every event exactly once.
func TestBrowserReconnectsAcrossRestart(t *testing.T) {
	ctx := newBrowser(t)
	srv := startProc(t, "serve", serveEnv(t, "GENERATOR_STEP_DELAY=400ms", "LEASE_DURATION=2s"), "serve")
	// The proxy stays up while serve is killed and restarted behind it:
	// the page's connections break as they would without it.
	submitOnPage(t, ctx, contract.Proxy(t, srv.URL), "browser-restart")
	run(t, ctx, 30*time.Second, "wait until the job is mid-way",
		waitFor(`document.querySelector('#event-log li[data-stage="scenes"]') !== null`, 30*time.Second))
	before := readWriter(t, ctx)
	srv.kill()
	run(t, ctx, 30*time.Second, "see the page notice the lost connection",
		waitFor(`window.scriptgenWriter.states.includes('reconnecting')`, 30*time.Second))
	indicator := get(t, ctx, 5*time.Second, "read the indicator", chromedp.AttributeValue(chromedp.CSS("#conn"), "data-state")).Value
	if indicator != "reconnecting" && indicator != "offline" {
		t.Fatalf("indicator shows %q while the server is down", indicator)
	}
	srv.restart()
	run(t, ctx, 90*time.Second, "wait for the job to finish on the page",
		waitFor(`window.scriptgenWriter.done && document.getElementById('script').textContent.length > 0`, 90*time.Second))
	w := readWriter(t, ctx)
	checkPageSeqs(t, ctx, w)
	if len(w.Seqs) <= len(before.Seqs) {
		t.Fatalf("no events after the restart: %v then %v", before.Seqs, w.Seqs)
	}
	// The page saw exactly the job's log.
	var replay []streamEvent
	for ev := range openStreamRetrying(t, context.Background(), srv.URL, w.JobID, 0) {
		replay = append(replay, ev)
	}
	if len(replay) != len(w.Seqs) || replay[len(replay)-1].Data.Status != "succeeded" {
		t.Fatalf("server has %d events ending %+v; the page saw %d", len(replay), replay[len(replay)-1].Data, len(w.Seqs))
	}
	stages := get(t, ctx, 10*time.Second, "read the stages",
		chromedp.Evaluate[[]string](`[...document.querySelectorAll('#event-log li')].map(li => li.dataset.stage)`))
	for i, ev := range replay {
		if stages[i] != ev.Data.Stage {
			t.Fatalf("event %d: page shows stage %q, server %q", i+1, stages[i], ev.Data.Stage)
		}
	}
	if last := w.States[len(w.States)-1]; last != "live" {
		t.Fatalf("indicator states %v: want live at the end", w.States)
	}
	t.Logf("page saw %d events (%d before the kill), indicator went %v", len(w.Seqs), len(before.Seqs), w.States)
	checkExactlyOnce(t, srv.URL, []submitted{{ID: w.JobID, Project: "browser-restart"}})
}

// TestBrowserOperatorSwitch turns the durable worker on and off from the
// operator's page and checks /health, then rolls back with the button.
func TestBrowserOperatorSwitch(t *testing.T) {
	ctx := newBrowser(t)
	const token = "browser-admin-token"
	env := serveEnv(t, "REDIS_URL="+testenv.RedisURL(t), "ADMIN_TOKEN="+token, "AUTO_ROLLBACK=false")
	srv := startProc(t, "serve", env, "serve")
	// A durable worker beside it, which the rollback leaves running: the page
	// must then say to stop it.
	startProc(t, "worker", append(env, "LISTEN_ADDR="), "worker")
	page := contract.Proxy(t, srv.URL)
	for _, path := range []string{"/api/admin/worker-system", "/api/admin/stats", "/api/admin/rollbacks", "/api/admin/replicas"} {
		if code, body := request(t, "GET", srv.URL+path, nil, "Authorization", "Bearer "+token); code != 200 {
			t.Fatalf("the operator page needs GET %s, which answers %d %v", path, code, body)
		}
	}
	healthType := func() string {
		_, h := request(t, "GET", srv.URL+"/health", nil)
		ws, _ := h["worker_system"].(map[string]any)
		s, _ := ws["type"].(string)
		return s
	}
	waitHealth := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for healthType() != want {
			if time.Now().After(deadline) {
				errs, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('.error')].filter(e => !e.hidden).map(e => e.textContent)`))
				t.Fatalf("/health worker_system.type is %q, want %q; page errors: %v", healthType(), want, errs)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	run(t, ctx, 30*time.Second, "open the operator page without a token",
		chromedp.Navigate(page+"/operator"),
		chromedp.WaitVisible(chromedp.CSS("#token-form")),
		waitFor(`!document.getElementById('ws-error').hidden && !document.getElementById('st-error').hidden`, 20*time.Second))
	if msg := get(t, ctx, 5*time.Second, "read the error", chromedp.Text(chromedp.CSS("#ws-error"))); !strings.Contains(msg, "401") {
		t.Fatalf("without a token the page says %q, want a clear 401", msg)
	}
	run(t, ctx, 30*time.Second, "give the page the token",
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)),
		waitFor(`document.querySelector('#ws-type .state') !== null && document.getElementById('ws-error').hidden`, 20*time.Second),
	)
	stored := get(t, ctx, 5*time.Second, "read sessionStorage", chromedp.Evaluate[string](`sessionStorage.getItem('scriptgen.adminToken')`))
	if stored != token {
		t.Fatalf("token kept as %q", stored)
	}

	flip := func(on bool, reason string) {
		t.Helper()
		run(t, ctx, 20*time.Second, fmt.Sprintf("switch the durable worker %v", on),
			chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
				const s = document.getElementById('ws-switch'); s.checked = %v; s.dispatchEvent(new Event('input'));
				const p = document.getElementById('ws-percent'); p.value = 100; p.dispatchEvent(new Event('input'));
				const r = document.getElementById('ws-reason'); r.value = %q; r.dispatchEvent(new Event('input'));
				return true })()`, on, reason)),
			chromedp.Click(chromedp.CSS("#ws-apply")),
		)
	}
	if healthType() != "background_tasks" {
		flip(false, "browser test: start from background_tasks")
		waitHealth("background_tasks")
		run(t, ctx, 10*time.Second, "see background_tasks on the page",
			waitFor(`document.getElementById('ws-type').textContent === 'background_tasks' && !window.scriptgenOperator.dirty`, 10*time.Second))
	}
	flip(true, "브라우저 테스트 · browser test: durable on")
	waitHealth("durable")
	run(t, ctx, 10*time.Second, "see durable on the page",
		waitFor(`document.getElementById('ws-type').textContent === 'durable'`, 10*time.Second))
	// The replicas table shows this replica, up, at the revision just saved.
	_, flag := request(t, "GET", srv.URL+"/api/admin/worker-system", nil, "Authorization", "Bearer "+token)
	rev := flag["setting"].(map[string]any)["revision"]
	run(t, ctx, 15*time.Second, "see this replica at the current flag revision",
		waitFor(fmt.Sprintf(`[...document.querySelectorAll('#replicas tr[data-id]')].some(tr => tr.textContent.includes('(this)') &&
			tr.textContent.includes('r%v') && tr.querySelector('.state-up') !== null)`, rev), 15*time.Second))
	shown := get(t, ctx, 5*time.Second, "read the setting", chromedp.Text(chromedp.CSS("#ws-setting")))
	if !strings.Contains(shown, "durable on") {
		t.Fatalf("setting line %q does not show the reason", shown)
	}

	testenv.Eventually(t, 30*time.Second, func() bool {
		_, h := request(t, "GET", srv.URL+"/health", nil, "Authorization", "Bearer "+token)
		ws, _ := h["worker_system"].(map[string]any)
		return ws["workers_up"] == float64(1)
	}, "the durable worker never came up")
	run(t, ctx, 60*time.Second, "roll back with the button and its confirmation",
		chromedp.Click(chromedp.CSS("#rollback")),
		chromedp.WaitVisible(chromedp.CSS("#rollback-confirm")),
		chromedp.SendKeys(chromedp.CSS("#rollback-reason"), "브라우저 테스트 롤백 · browser test rollback"),
		chromedp.Click(chromedp.CSS("#rollback-go")),
		waitFor(`document.querySelector('#history tr[data-id]') !== null`, 60*time.Second),
	)
	waitHealth("background_tasks")
	next := get(t, ctx, 10*time.Second, "read the rollback's next steps",
		chromedp.Evaluate[string](`document.getElementById('rollback-next').hidden ? "" : document.getElementById('rollback-next').textContent`))
	if !strings.Contains(next, "stop the durable workers: 1 still up") || !strings.Contains(next, "scriptgen verify") {
		t.Fatalf("after a rollback with a worker up the page says %q, want the advice to stop it", next)
	}
	run(t, ctx, 20*time.Second, "open the rollback report",
		chromedp.Click(chromedp.CSS("#history tr[data-id] button")),
		waitFor(`document.getElementById('report').textContent.length > 0`, 20*time.Second))
	report := get(t, ctx, 5*time.Second, "read the report", chromedp.Evaluate[string](`document.getElementById('report').textContent`))
	if !strings.Contains(report, "browser test rollback") {
		t.Fatalf("report does not carry the reason:\n%s", report)
	}
	// The failed jobs' table loads with the token (none failed here).
	run(t, ctx, 20*time.Second, "see the failed jobs' table",
		waitFor(`document.getElementById('failed').textContent.includes('no failed job')`, 20*time.Second))
	errs := get(t, ctx, 5*time.Second, "read the page's errors",
		chromedp.Evaluate[[]string](`[...document.querySelectorAll('.error')].filter(e => !e.hidden).map(e => e.textContent)`))
	if len(errs) > 0 {
		t.Fatalf("operator page shows errors: %v", errs)
	}
	screenshot(t, ctx, "screenshot-operator.png")
}

// TestBrowserOperatorCharts: after some jobs ran, the operator page draws its
// five charts of the last hour from GET /api/admin/history — each a path of
// more than one point, with its current value and the hour's maximum in
// text and in the SVG's label — and the jobs chart shows the successes.
func TestBrowserOperatorCharts(t *testing.T) {
	ctx := newBrowser(t)
	const token = "browser-charts-token"
	// Redis for the queue depth; the kill switch keeps the jobs in this
	// process, where the background_tasks chart counts them (jobs/s counts
	// them too, from this replica's heartbeats).
	srv := startProc(t, "serve", serveEnv(t, "REDIS_URL="+testenv.RedisURL(t), "ADMIN_TOKEN="+token,
		"AUTO_ROLLBACK=false", "USE_DURABLE_WORKER=false", "HISTORY_INTERVAL=200ms"), "serve")
	var jobs []submitted
	for i := 1; i <= 6; i++ {
		jobs = append(jobs, submit(t, srv.URL, "charts", i))
	}
	waitAllSucceeded(t, srv.URL, jobs, 60*time.Second)
	// The runs reach the history with this replica's next heartbeat (1 s):
	// wait for them there before the page reads it.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		peak, runs := historyJobs(t, srv.URL, token)
		if peak > 0 && math.Abs(runs-float64(len(jobs))) < 0.01 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("history: peak %.2f succeeded/s, %.3f runs in all; want above 0 and %d", peak, runs, len(jobs))
		}
	}

	run(t, ctx, 30*time.Second, "open the operator page with the token",
		chromedp.Navigate(srv.URL+"/operator"),
		chromedp.WaitVisible(chromedp.CSS("#token-form")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)),
		waitFor(`Number(document.getElementById('ch-jobs').dataset.points) > 1`, 20*time.Second))

	type chart struct {
		Paths  []string `json:"paths"`
		Label  string   `json:"label"`
		Values string   `json:"values"`
		Empty  bool     `json:"empty"`
	}
	charts := get(t, ctx, 5*time.Second, "read the charts", chromedp.Evaluate[map[string]chart](`(() => {
		const out = {};
		for (const id of ['ch-depth', 'ch-delay', 'ch-active', 'ch-jobs', 'ch-p99']) {
			const f = document.getElementById(id), svg = f.querySelector('svg');
			out[id] = { paths: [...f.querySelectorAll('svg path')].map(p => p.getAttribute('d')),
				label: svg ? svg.getAttribute('aria-label') : '', values: (f.querySelector('.values') || {}).textContent || '',
				empty: f.textContent.includes('no data yet') };
		}
		return out })()`))
	for id, c := range charts {
		if c.Empty || len(c.Paths) == 0 {
			_, h := request(t, "GET", srv.URL+"/api/admin/history", nil, "Authorization", "Bearer "+token)
			points, _ := h["points"].([]any)
			t.Errorf("%s: no chart drawn: %+v; the history's last point: %v", id, c, points[len(points)-1])
			continue
		}
		if n := strings.Count(c.Paths[0], "L") + 1; n < 2 {
			t.Errorf("%s: path %q has %d point, want more than one", id, c.Paths[0], n)
		}
		if !strings.Contains(c.Values, "now") || !strings.Contains(c.Values, "max") ||
			!strings.Contains(c.Label, "now") || !strings.Contains(c.Label, "max") {
			t.Errorf("%s: labels %q / %q do not give the current value and the maximum", id, c.Values, c.Label)
		}
	}
	if c := charts["ch-jobs"]; len(c.Paths) != 5 || strings.Contains(c.Values, "max 0.00/s") {
		t.Errorf("jobs chart: %d paths, values %q; want one per outcome and a maximum above 0 after 6 jobs", len(c.Paths), c.Values)
	}
	errs := get(t, ctx, 5*time.Second, "read the page's errors",
		chromedp.Evaluate[[]string](`[...document.querySelectorAll('.error')].filter(e => !e.hidden).map(e => e.textContent)`))
	if len(errs) > 0 {
		t.Fatalf("operator page shows errors: %v", errs)
	}
	screenshot(t, ctx, "screenshot-operator-charts.png")
}
