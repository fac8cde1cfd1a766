// Package e2e drives the real scriptgen binary as a user and an operator
// would: it starts processes on their own ports, injects faults with real
// signals and real servers, and ends every test by checking that each accepted
// job finished exactly once.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/client"
	"github.com/scriptgen/scriptgen/internal/testenv"
	"github.com/scriptgen/scriptgen/internal/testenv/contract"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "scriptgen-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "scriptgen")
	build := exec.Command("go", "build", "-race", "-o", binary, "../cmd/scriptgen")
	if os.Getenv("E2E_NO_RACE") != "" {
		build = exec.Command("go", "build", "-o", binary, "../cmd/scriptgen")
	}
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build scriptgen:", err)
		os.Exit(1)
	}
	// RunMain stops the package's redis-server (testenv.RedisURL's) when
	// the tests end.
	code := testenv.RunMain(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one scriptgen process started by a test.
type proc struct {
	t    *testing.T
	name string
	args []string
	env  []string
	cmd  *exec.Cmd
	log  *procLog
	done chan struct{}
	URL  string
}

// procLog is a process's output, written to a file rather than a pipe: a
// child handed the socket by a graceful restart inherits the file, and the
// parent's Wait does not hang on a pipe the child keeps open.
type procLog struct {
	f *os.File
}

func (l *procLog) String() string {
	b, _ := os.ReadFile(l.f.Name())
	return string(b)
}

// startProc starts `scriptgen args…` with env added to the test's environment.
func startProc(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), name+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, args: args, env: env, log: &procLog{f: f}}
	for _, e := range env { // the last LISTEN_ADDR wins, as in the process
		if addr, ok := strings.CutPrefix(e, "LISTEN_ADDR="); ok {
			p.URL = ""
			if addr != "" {
				p.URL = "http://" + addr
			}
		}
	}
	p.start()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- log of %s ---\n%s", p.name, failureLog(p.log.String()))
		}
	})
	return p
}

// failureLog is what a failed test shows of a process's log: 30 lines from
// a panic or a race report, else its last 5 lines that are not INFO or
// DEBUG (warnings, errors), or a line saying there are none. It stays short
// so that the test's own failure, logged before its processes are stopped,
// is still near the end of the output. E2E_LOGS=full shows the last 60 lines instead.
func failureLog(log string) string {
	if os.Getenv("E2E_LOGS") == "full" {
		return tail(log, 60)
	}
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	for i, l := range lines { // a crash shows from its first line
		if strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") || strings.HasPrefix(l, "WARNING: DATA RACE") {
			return fmt.Sprintf("%d lines; from line %d:\n%s", len(lines), i+1, strings.Join(lines[i:min(len(lines), i+30)], "\n"))
		}
	}
	var notable []string
	for _, l := range lines {
		if !strings.Contains(l, " level=INFO ") && !strings.Contains(l, " level=DEBUG ") {
			notable = append(notable, l)
		}
	}
	if len(notable) == 0 {
		return fmt.Sprintf("%d lines, none above INFO (E2E_LOGS=full shows them)", len(lines))
	}
	return fmt.Sprintf("%d lines; the last of the %d above INFO (E2E_LOGS=full shows all):\n%s",
		len(lines), len(notable), strings.Join(notable[max(0, len(notable)-5):], "\n"))
}

// childEnv is the environment of a scriptgen process the tests start: theirs,
// without a REDIS_URL it may hold (a developer's Redis is not the tests'), then
// env; the last value of a name wins.
func childEnv(inherited, env []string) []string {
	return append(append(inherited, "REDIS_URL="), env...)
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (p *proc) start() {
	p.t.Helper()
	p.cmd = exec.Command(binary, p.args...)
	p.cmd.Env = childEnv(os.Environ(), p.env)
	p.cmd.Stdout, p.cmd.Stderr = p.log.f, p.log.f
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		cmd.Wait()
		close(done)
	}(p.cmd, p.done)
	if p.URL != "" {
		p.waitHealthy()
	}
}

func (p *proc) waitHealthy() {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := contract.Client(p.t).Get(p.URL + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-p.done:
			p.t.Fatalf("%s exited before it was healthy:\n%s", p.name, tail(p.log.String(), 40))
		case <-time.After(50 * time.Millisecond):
		}
	}
	p.t.Fatalf("%s never became healthy", p.name)
}

// kill sends SIGKILL and waits.
func (p *proc) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Errorf("%s did not exit after SIGKILL", p.name)
	}
}

// stop sends SIGTERM and waits up to limit for the process to exit.
func (p *proc) stop(limit time.Duration) time.Duration {
	p.t.Helper()
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(limit):
		p.t.Fatalf("%s did not exit within %s of SIGTERM", p.name, limit)
	}
	return time.Since(start)
}

func (p *proc) restart() {
	p.t.Helper()
	p.start()
}

// api is a client of the service at base whose every exchange is held
// against api/openapi.yaml.
func api(t *testing.T, base string) *client.Client {
	return client.New(base, client.WithHTTPClient(contract.Client(t)))
}

// request does an HTTP call and decodes the JSON answer; the exchange is
// held against api/openapi.yaml. A test that sends bad input on purpose
// passes contract.OffSpecHeader, "1" among headers.
func request(t *testing.T, method, url string, body any, headers ...string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := contract.Client(t).Do(req.WithContext(ctx))
	if err != nil {
		return 0, map[string]any{"transport_error": err.Error()}
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// offSpec is headers with the mark of a request that breaks the
// description on purpose (bad input): its answer is still checked.
func offSpec(headers []string) []string {
	return append(append([]string(nil), headers...), contract.OffSpecHeader, "1")
}

func episodeBody(project string, i int) map[string]any {
	return map[string]any{"project_id": project, "episode_data": map[string]any{
		"title": fmt.Sprintf("에피소드 %d", i), "synopsis": "A writer meets a deadline.", "characters": []string{"지수", "Minho"}}}
}

// episode is episodeBody for the client.
func episode(project string, i int) client.GenerationRequest {
	return client.GenerationRequest{ProjectID: project, EpisodeData: client.EpisodeData{
		Title: fmt.Sprintf("에피소드 %d", i), Synopsis: "A writer meets a deadline.",
		Characters: []client.Character{{Name: "지수"}, {Name: "Minho"}}}}
}

// submitted is one accepted job.
type submitted struct {
	ID      string
	Project string
}

// submit posts one generation job and requires a 202.
func submit(t *testing.T, base, project string, i int) submitted {
	t.Helper()
	j, err := trySubmit(t, base, project, i)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// trySubmit posts one generation job; an answer other than 202 is an error.
// Unlike submit it may run on a goroutine of the test's own.
func trySubmit(t *testing.T, base, project string, i int) (submitted, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	j, err := api(t, base).Submit(ctx, episode(project, i), fmt.Sprintf("%s-%d", project, i))
	if err != nil {
		return submitted{}, fmt.Errorf("submit %d: %w", i, err)
	}
	return submitted{ID: j.ID, Project: project}, nil
}

// load is generation jobs submitted by goroutines of the test while it
// does something else. It stops at the limit, at stop, or when the test
// ends, before the test's processes are killed, so that a failure of the
// test is reported as itself, not as a flood of refused submissions.
type load struct {
	t    *testing.T
	n    atomic.Int64
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
	mu   sync.Mutex
	jobs []submitted
	err  error
}

// startLoad starts goroutines that each submit, then sleep pace, until
// limit jobs (0: no limit) were submitted; job i goes to project(i).
func startLoad(t *testing.T, base string, goroutines, limit int, pace time.Duration, project func(i int) string) *load {
	l := &load{t: t, stop: make(chan struct{})}
	for range goroutines {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				i := int(l.n.Add(1)) - 1
				if limit > 0 && i >= limit {
					return
				}
				j, err := trySubmit(t, base, project(i), i)
				l.mu.Lock()
				if err != nil {
					if l.err == nil {
						l.err = err
					}
					l.mu.Unlock()
					l.stopAll() // the others too
					return
				}
				l.jobs = append(l.jobs, j)
				l.mu.Unlock()
				time.Sleep(pace)
			}
		}()
	}
	t.Cleanup(func() { l.halt() })
	return l
}

// reach waits up to limit for n jobs to have been accepted.
func (l *load) reach(n int, limit time.Duration) {
	l.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		l.mu.Lock()
		got, err := len(l.jobs), l.err
		l.mu.Unlock()
		switch {
		case got >= n:
			return
		case err != nil:
			l.t.Fatalf("the load: %v (after %d accepted)", err, got)
		case time.Now().After(deadline):
			l.t.Fatalf("%d of %d jobs accepted within %s", got, n, limit)
		}
		time.Sleep(15 * time.Millisecond)
	}
}

// accepted is how many jobs were accepted so far.
func (l *load) accepted() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.jobs)
}

// stopAll tells every goroutine of the load to stop after its submission.
func (l *load) stopAll() { l.once.Do(func() { close(l.stop) }) }

// halt stops the load and waits for its goroutines.
func (l *load) halt() {
	l.stopAll()
	l.wg.Wait()
}

// wait waits for the goroutines to end (at the limit) and returns the
// accepted jobs; a refused submission fails the test.
func (l *load) wait() []submitted {
	l.t.Helper()
	l.wg.Wait()
	return l.result()
}

// end stops the load and returns the accepted jobs, as wait.
func (l *load) end() []submitted {
	l.t.Helper()
	l.halt()
	return l.result()
}

func (l *load) result() []submitted {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		l.t.Fatalf("the load: %v (after %d accepted)", l.err, len(l.jobs))
	}
	return append([]submitted(nil), l.jobs...)
}

// done is closed when the load's goroutines have all ended.
func (l *load) done() <-chan struct{} {
	ch := make(chan struct{})
	go func() { l.wg.Wait(); close(ch) }()
	return ch
}

// waitAllSucceeded polls until every job has succeeded.
func waitAllSucceeded(t *testing.T, base string, jobs []submitted, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	pending := map[string]bool{}
	for _, j := range jobs {
		pending[j.ID] = true
	}
	var last *client.Job
	c := api(t, base)
	for len(pending) > 0 && time.Now().Before(deadline) {
		for id := range pending {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			j, err := c.Get(ctx, id)
			cancel()
			if err != nil {
				continue // a restart under way
			}
			last = j
			switch j.Status {
			case client.StatusSucceeded:
				delete(pending, id)
			case client.StatusFailed, client.StatusCancelled:
				t.Fatalf("job %s ended %s: %v", id, j.Status, j.Error)
			}
		}
		if len(pending) > 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if len(pending) > 0 {
		t.Fatalf("%d of %d jobs did not succeed within %s; one of them: %+v", len(pending), len(jobs), limit, last)
	}
}

// checkExactlyOnce checks that each accepted job saved exactly one episode and
// that every project's episodes are numbered 1..n with no gap or repeat.
func checkExactlyOnce(t *testing.T, base string, jobs []submitted) {
	t.Helper()
	byProject := map[string]map[string]bool{}
	for _, j := range jobs {
		if byProject[j.Project] == nil {
			byProject[j.Project] = map[string]bool{}
		}
		byProject[j.Project][j.ID] = true
	}
	for project, ids := range byProject {
		seen := map[string]int{}
		n := 0
		cursor := ""
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			page, err := api(t, base).Episodes(ctx, project, 200, cursor)
			cancel()
			if err != nil {
				t.Fatalf("episodes of %s: %v", project, err)
			}
			for _, ep := range page.Items {
				n++
				if ep.Number != n {
					t.Fatalf("project %s: episode %d where %d was due (gap or repeat)", project, ep.Number, n)
				}
				seen[ep.JobID]++
			}
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		for id := range ids {
			if seen[id] != 1 {
				t.Fatalf("project %s: job %s saved %d episodes, want exactly 1", project, id, seen[id])
			}
		}
		if n != len(ids) {
			t.Fatalf("project %s: %d episodes for %d accepted jobs", project, n, len(ids))
		}
	}
}

func serveEnv(t *testing.T, extra ...string) []string {
	port := testenv.FreePort(t)
	return append([]string{
		fmt.Sprintf("LISTEN_ADDR=127.0.0.1:%d", port),
		"DATABASE_URL=sqlite:" + filepath.Join(t.TempDir(), "scriptgen.db"),
		"LEASE_DURATION=2s", "GENERATOR_STEP_DELAY=80ms", "MAX_WORKERS=4", "DRAIN_TIMEOUT=10s",
		"POLL_INTERVAL=100ms", "LOG_LEVEL=info", "REDIS_URL=", "ADMIN_TOKEN=",
	}, extra...)
}
