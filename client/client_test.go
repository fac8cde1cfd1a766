package client_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/client"
	"github.com/scriptgen/scriptgen/internal/config"
	"github.com/scriptgen/scriptgen/internal/server"
	"github.com/scriptgen/scriptgen/internal/testenv"
	"github.com/scriptgen/scriptgen/internal/testenv/contract"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const adminToken = "client-test-0123456789abcdef"

// service is a real scriptgen server (internal/server: the API, the
// background pool, SQLite) run in this process on a fixed address, so that
// it can stop and start again as a restarted process would.
type service struct {
	t    *testing.T
	addr string
	env  map[string]string
	stop func()
}

func startService(t *testing.T, extra map[string]string) *service {
	t.Helper()
	s := &service{t: t, addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), env: map[string]string{
		"DATABASE_URL":         "sqlite:" + filepath.Join(t.TempDir(), "client.db"),
		"ADMIN_TOKEN":          adminToken,
		"GENERATOR_STEP_DELAY": "60ms",
		"DRAIN_TIMEOUT":        "10s",
		"LEASE_DURATION":       "2s",
		"POLL_INTERVAL":        "50ms",
	}}
	for k, v := range extra {
		s.env[k] = v
	}
	s.start()
	t.Cleanup(func() { s.stop() })
	return s
}

func (s *service) start() {
	s.t.Helper()
	cfg, err := config.Parse("serve", nil, func(k string) string { return s.env[k] }, io.Discard)
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		s.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				s.t.Errorf("serve: %v", err)
			}
		})
	}
}

// restart stops the server gracefully (its streams end, its jobs drain or
// are released) and starts it again on the same address and database.
func (s *service) restart() {
	s.t.Helper()
	s.stop()
	s.start()
}

func (s *service) url() string { return "http://" + s.addr }

// newClient is a client of s whose every exchange is held against
// api/openapi.yaml.
func newClient(t *testing.T, s *service) *client.Client {
	return client.New(s.url(), client.WithToken(adminToken), client.WithHTTPClient(contract.Client(t)))
}

func episode(project string, i int) client.GenerationRequest {
	return client.GenerationRequest{ProjectID: project, EpisodeData: client.EpisodeData{
		Title: fmt.Sprintf("에피소드 %d", i), Synopsis: "A writer meets a deadline.",
		Characters: []client.Character{{Name: "지수"}, {Name: "Minho", Description: "barista"}}}}
}

// waitFinished polls a job until it ends.
func waitFinished(t *testing.T, c *client.Client, id string) *client.Job {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		j, err := c.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Finished() {
			return j
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("job %s did not finish", id)
	return nil
}

// checkOneEpisode: the project saved exactly one episode per job, 1..n.
func checkOneEpisode(t *testing.T, c *client.Client, project string, jobs []string) {
	t.Helper()
	var got []string
	cursor := ""
	for {
		page, err := c.Episodes(context.Background(), project, 1, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Items {
			got = append(got, e.JobID)
			if e.Number != len(got) {
				t.Fatalf("episode %d where %d was due", e.Number, len(got))
			}
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	slices.Sort(got)
	want := slices.Clone(jobs)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("project %s saved episodes of jobs %v, want one each of %v", project, got, want)
	}
}

// TestClientJobs: submit with an Idempotency-Key (a replay answers the same
// job), read with and without the script, list page by page, and the API's
// errors as *client.Error with their code, status and request id.
func TestClientJobs(t *testing.T) {
	s := startService(t, nil)
	c := newClient(t, s)
	ctx := context.Background()
	var ids []string
	for i := range 3 {
		j, err := c.Submit(ctx, episode("p1", i), fmt.Sprintf("client-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if j.Replayed || j.Status != client.StatusQueued && j.Status != client.StatusRunning {
			t.Fatalf("a first submission: replayed=%v status=%s", j.Replayed, j.Status)
		}
		ids = append(ids, j.ID)
	}
	again, err := c.Submit(ctx, episode("p1", 0), "client-0")
	if err != nil || !again.Replayed || again.ID != ids[0] {
		t.Fatalf("a replay: %+v %v, want job %s replayed", again, err, ids[0])
	}
	_, err = c.Submit(ctx, episode("p1", 9), "client-0")
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 422 || apiErr.Code != "idempotency_key_reused" || apiErr.RequestID == "" {
		t.Fatalf("a reused key: %#v", err)
	}
	for _, id := range ids {
		waitFinished(t, c, id)
	}
	j, err := c.GetWithScript(ctx, ids[0])
	if err != nil || j.Status != client.StatusSucceeded || j.Script == "" {
		t.Fatalf("GetWithScript: %+v %v", j, err)
	}
	r, err := j.GenerationResult()
	if err != nil || r == nil || r.EpisodeNumber < 1 || r.ScriptChars == 0 {
		t.Fatalf("result %+v %v", r, err)
	}
	if j, _ := c.Get(ctx, ids[0]); j.Script != "" {
		t.Errorf("Get without include=script has the script")
	}

	var listed []string
	for j, err := range c.Jobs(ctx, client.ListOptions{ProjectID: "p1", Limit: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, j.ID)
	}
	slices.Sort(listed)
	slices.Sort(ids)
	if !slices.Equal(listed, ids) {
		t.Fatalf("paged list %v, want %v", listed, ids)
	}

	_, err = c.Get(ctx, "no-such-job")
	if !client.IsCode(err, "not_found") || client.StatusOf(err) != 404 {
		t.Errorf("a missing job: %v", err)
	}
	if _, err := c.Cancel(ctx, ids[0]); client.StatusOf(err) != 409 {
		t.Errorf("cancelling a finished job: %v", err)
	}
	_, err = c.Submit(contract.OffSpecContext(ctx), client.GenerationRequest{ProjectID: "p1"}, "")
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Field == "" || apiErr.Message == "" {
		t.Errorf("an invalid submission: %#v", err)
	}
	checkOneEpisode(t, c, "p1", ids)
}

// follow runs Follow in the background and keeps every event it hands over.
type follow struct {
	mu     sync.Mutex
	events []client.Event
	first  chan struct{} // closed at the first progress event
	done   chan error
}

func startFollow(c *client.Client, id string, o client.FollowOptions) *follow {
	f := &follow{first: make(chan struct{}), done: make(chan error, 1)}
	var once sync.Once
	o.OnEvent = func(e client.Event) {
		f.mu.Lock()
		f.events = append(f.events, e)
		f.mu.Unlock()
		if e.Name == "progress" {
			once.Do(func() { close(f.first) })
		}
	}
	go func() { f.done <- c.Follow(context.Background(), id, o) }()
	return f
}

func (f *follow) seqs() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int64
	for _, e := range f.events {
		out = append(out, e.Seq)
	}
	return out
}

// TestFollowResumesAcrossRestart: a follower of a running job sees the
// server restart under it, reconnects with Last-Event-ID, and hands over
// every event of the job exactly once and in order, ending at the final
// one with nil (the job succeeded); the same job read whole afterwards has
// the same events, and it saved one episode.
func TestFollowResumesAcrossRestart(t *testing.T) {
	s := startService(t, map[string]string{"GENERATOR_STEP_DELAY": "300ms"})
	c := newClient(t, s)
	ctx := context.Background()
	j, err := c.Submit(ctx, episode("p1", 1), "restart-1")
	if err != nil {
		t.Fatal(err)
	}
	reconnects := 0
	f := startFollow(c, j.ID, client.FollowOptions{OnReconnect: func(int, time.Duration, error) { reconnects++ }})
	select {
	case <-f.first:
	case <-time.After(30 * time.Second):
		t.Fatal("no progress event")
	}
	s.restart()
	select {
	case err := <-f.done:
		if err != nil {
			t.Fatalf("Follow: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Follow did not end")
	}
	if reconnects == 0 {
		t.Fatal("the follower never reconnected: the restart did not cut its stream")
	}
	got := f.seqs()
	whole := startFollow(c, j.ID, client.FollowOptions{})
	if err := <-whole.done; err != nil {
		t.Fatal(err)
	}
	if want := whole.seqs(); !slices.Equal(got, want) {
		t.Fatalf("across the restart the follower had seqs %v; the job's stream is %v", got, want)
	}
	if last := f.events[len(f.events)-1]; !last.Final || last.Name != "result" {
		t.Fatalf("the last event is %s final=%v", last.Name, last.Final)
	}
	// A resume after the final event ends at once (204) with the job's outcome.
	if err := c.Follow(ctx, j.ID, client.FollowOptions{After: got[len(got)-1]}); err != nil {
		t.Fatalf("a resume after the end: %v", err)
	}
	checkOneEpisode(t, c, "p1", []string{j.ID})
}

// TestFollowTellsFailureFromLostConnection: a cancelled job ends Follow with
// a *JobEndedError; a service that refuses connections ends it with a
// *ConnectionLostError after MaxRetries attempts backed off by Backoff's
// steps; a missing job is the API's 404, at once.
func TestFollowTellsFailureFromLostConnection(t *testing.T) {
	s := startService(t, map[string]string{"GENERATOR_STEP_DELAY": "500ms"})
	c := newClient(t, s)
	ctx := context.Background()
	j, err := c.Submit(ctx, episode("p2", 1), "")
	if err != nil {
		t.Fatal(err)
	}
	f := startFollow(c, j.ID, client.FollowOptions{})
	<-f.first
	if _, err := c.Cancel(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	var ended *client.JobEndedError
	if err := <-f.done; !errors.As(err, &ended) || ended.Status != client.StatusCancelled {
		t.Fatalf("Follow of a cancelled job: %v", err)
	}

	if err := c.Follow(ctx, "no-such-job", client.FollowOptions{}); client.StatusOf(err) != 404 {
		t.Fatalf("Follow of a missing job: %v", err)
	}

	s.stop()
	var steps []int
	var delays []time.Duration
	err = c.Follow(ctx, j.ID, client.FollowOptions{MaxRetries: 4,
		Backoff: func(n int) time.Duration { steps = append(steps, n); return time.Millisecond },
		OnReconnect: func(_ int, d time.Duration, cause error) {
			delays = append(delays, d)
		}})
	var lost *client.ConnectionLostError
	if !errors.As(err, &lost) || lost.Attempts != 5 || errors.As(err, &ended) {
		t.Fatalf("Follow of a stopped service: %v", err)
	}
	if !slices.Equal(steps, []int{0, 1, 2, 3}) || len(delays) != 4 {
		t.Fatalf("backoff steps %v, delays %v; want 0..3", steps, delays)
	}
}

// TestBackoff: min(1000·1.5ⁿ, 5000) ms.
func TestBackoff(t *testing.T) {
	want := []time.Duration{1000, 1500, 2250, 3375, 5000, 5000, 5000}
	for n, w := range want {
		if got := client.Backoff(n); got != w*time.Millisecond {
			t.Errorf("Backoff(%d) = %s, want %s", n, got, w*time.Millisecond)
		}
	}
}

// TestClientAdmin: the operator's calls of the route table against the real
// server: the flag, stats, health with an operator's details, the system's
// info, a rollback with its record and report, the migration list, a
// cleanup, the keys' life; and a writer's key refused on them with 403.
func TestClientAdmin(t *testing.T) {
	s := startService(t, nil)
	c := newClient(t, s)
	ctx := context.Background()
	ws, err := c.WorkerSystem(ctx)
	if err != nil || ws.Type != "background_tasks" || ws.Redis != "unconfigured" {
		t.Fatalf("WorkerSystem: %+v %v", ws, err)
	}
	h, err := c.Health(ctx)
	if err != nil || h.Status != "ok" || h.Version == "" || h.Process == nil {
		t.Fatalf("Health: %+v %v", h, err)
	}
	info, err := c.SystemInfo(ctx)
	if err != nil || info.WorkerSystem.Type != "background_tasks" {
		t.Fatalf("SystemInfo: %+v %v", info, err)
	}
	if st, err := c.Stats(ctx); err != nil || st.Memory.RSSBytes == 0 || st.Durable.Redis != "unconfigured" {
		t.Fatalf("Stats: %+v %v", st, err)
	}
	op, err := c.Rollback(ctx, "client test")
	if err != nil || op.Record == nil || op.Record.Kind != "rollback" || len(op.Steps) == 0 {
		t.Fatalf("Rollback: %+v %v", op, err)
	}
	hist, err := c.Rollbacks(ctx, 5)
	if err != nil || len(hist.Items) == 0 || hist.Items[0].ID != op.Record.ID {
		t.Fatalf("Rollbacks: %+v %v", hist, err)
	}
	if rec, err := c.RollbackRecord(ctx, op.Record.ID); err != nil || rec.Reason != "client test" {
		t.Fatalf("RollbackRecord: %+v %v", rec, err)
	}
	if rep, err := c.RollbackReport(ctx, op.Record.ID); err != nil || len(rep) == 0 {
		t.Fatalf("RollbackReport: %q %v", rep, err)
	}
	if _, err := c.Rollforward(ctx, 50, "client test"); client.StatusOf(err) != 409 {
		t.Fatalf("Rollforward without a durable side: %v, want 409", err)
	}
	if fs, err := c.MigrationFailures(ctx); err != nil || len(fs) != 0 {
		t.Fatalf("MigrationFailures: %v %v", fs, err)
	}
	if r, err := c.Cleanup(ctx, true, false); err != nil || r.After.RSSBytes == 0 {
		t.Fatalf("Cleanup: %+v %v", r, err)
	}
	k, err := c.CreateKey(ctx, client.KeyRequest{Tenant: "acme", Name: "client test"})
	if err != nil || k.Secret == "" || k.Tenant != "acme" {
		t.Fatalf("CreateKey: %+v %v", k, err)
	}
	writer := client.New(s.url(), client.WithToken(k.Secret), client.WithHTTPClient(contract.Client(t)))
	if _, err := writer.Stats(ctx); client.StatusOf(err) != 403 {
		t.Fatalf("a writer's key on the admin API: %v, want 403", err)
	}
	if _, err := writer.Submit(ctx, episode("p9", 1), ""); err != nil {
		t.Fatalf("the writer's key: %v", err)
	}
	rotated, err := c.RotateKey(ctx, k.ID)
	if err != nil || rotated.Secret == "" || rotated.ID == k.ID {
		t.Fatalf("RotateKey: %+v %v", rotated, err)
	}
	if revoked, err := c.RevokeKey(ctx, rotated.ID); err != nil || revoked.RevokedAt == nil {
		t.Fatalf("RevokeKey: %+v %v", revoked, err)
	}
	keys, err := c.Keys(ctx)
	if err != nil || len(keys) != 2 {
		t.Fatalf("Keys: %+v %v", keys, err)
	}
	for _, k := range keys {
		if k.RevokedAt == nil {
			t.Errorf("key %s (%s) is not revoked after a rotation and a revocation", k.ID, k.Prefix)
		}
	}
	if _, err := c.SetWorkerSystem(ctx, client.WorkerSystemChange{Enabled: false, Reason: "client test"}); err != nil {
		t.Fatalf("SetWorkerSystem: %v", err)
	}
	if spec, err := c.OpenAPI(ctx); err != nil || len(spec) == 0 {
		t.Fatalf("OpenAPI: %v", err)
	}
	var apiErr *client.Error
	_, err = c.Episode(ctx, "p1", 1)
	if !errors.As(err, &apiErr) || apiErr.Code != "not_found" {
		t.Fatalf("a missing episode: %v", err)
	}
}

// cutter is a proxy in front of a service that ends every event stream
// after its first event, as a flaky network or a proxy's timeout would:
// each cut is a forced disconnect the client must resume across.
type cutter struct {
	upstream string
	mu       sync.Mutex
	cuts     int
}

func (c *cutter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, c.upstream+r.URL.RequestURI(), r.Body)
	req.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	if !strings.HasSuffix(r.URL.Path, "/events") || resp.StatusCode != 200 {
		io.Copy(w, resp.Body)
		return
	}
	br := bufio.NewReader(resp.Body)
	sawData, final := false, false
	for {
		line, err := br.ReadString('\n')
		io.WriteString(w, line)
		if err != nil {
			return // the stream's own end
		}
		sawData = sawData || strings.HasPrefix(line, "data:")
		final = final || strings.HasPrefix(line, "data:") && strings.Contains(line, `"final":true`)
		if line == "\n" && sawData {
			if final {
				return // the job's end, not a cut
			}
			http.NewResponseController(w).Flush()
			c.mu.Lock()
			c.cuts++
			c.mu.Unlock()
			return // cut after one event
		}
	}
}

// TestFollowExactlyOnceAcross100Disconnects: behind a proxy that cuts every
// stream after one event, Follow resumes each time with Last-Event-ID, and
// across at least 100 forced disconnects every job's events arrive exactly
// once, in order, the same as the whole stream read straight from the server.
func TestFollowExactlyOnceAcross100Disconnects(t *testing.T) {
	s := startService(t, map[string]string{"GENERATOR_STEP_DELAY": "20ms"})
	direct := newClient(t, s)
	cut := &cutter{upstream: s.url()}
	proxy := httptest.NewServer(cut)
	defer proxy.Close()
	viaProxy := client.New(proxy.URL, client.WithToken(adminToken), client.WithHTTPClient(contract.Client(t)))
	ctx := context.Background()
	events, jobs := 0, 0
	for i := 0; cut.cuts < 100; i++ {
		if i == 50 {
			t.Fatalf("50 jobs gave only %d disconnects", cut.cuts)
		}
		j, err := direct.Submit(ctx, episode("cuts", i), "")
		if err != nil {
			t.Fatal(err)
		}
		f := startFollow(viaProxy, j.ID, client.FollowOptions{Backoff: func(int) time.Duration { return time.Millisecond }})
		if err := <-f.done; err != nil {
			t.Fatalf("Follow through the cutter: %v", err)
		}
		whole := startFollow(direct, j.ID, client.FollowOptions{})
		if err := <-whole.done; err != nil {
			t.Fatal(err)
		}
		if got, want := f.seqs(), whole.seqs(); !slices.Equal(got, want) {
			t.Fatalf("job %s through the cutter: seqs %v; its stream is %v", j.ID, got, want)
		}
		events += len(f.seqs())
		jobs++
	}
	t.Logf("%d forced disconnects over %d jobs: %d events, each exactly once and in order", cut.cuts, jobs, events)
}
