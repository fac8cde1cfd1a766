package progress_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/progress"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/store/postgres"
	"github.com/scriptgen/scriptgen/internal/store/sqlite"
	"github.com/scriptgen/scriptgen/internal/testenv"
)

// memLog is an in-memory event log that counts its readers.
type memLog struct {
	mu       sync.Mutex
	evs      map[string][]job.Event
	inFlight map[string]int
	maxInFl  atomic.Int64
	reads    atomic.Int64
}

func newMemLog() *memLog {
	return &memLog{evs: map[string][]job.Event{}, inFlight: map[string]int{}}
}

func (m *memLog) append(id string, st job.Status) {
	m.mu.Lock()
	defer m.mu.Unlock()
	seq := int64(len(m.evs[id]) + 1)
	typ := job.EventProgress
	if st.Terminal() {
		typ = job.EventResult
	}
	m.evs[id] = append(m.evs[id], job.Event{JobID: id, Seq: seq, Type: typ, Status: st, Progress: int(seq), CreatedAt: time.Now()})
}

func (m *memLog) ListEvents(ctx context.Context, id string, after int64, limit int) ([]job.Event, error) {
	m.mu.Lock()
	m.inFlight[id]++
	if n := int64(m.inFlight[id]); n > m.maxInFl.Load() {
		m.maxInFl.Store(n)
	}
	var out []job.Event
	for _, e := range m.evs[id] {
		if e.Seq > after && len(out) < limit {
			out = append(out, e)
		}
	}
	m.mu.Unlock()
	m.reads.Add(1)
	time.Sleep(time.Millisecond) // a read takes time, so overlapping readers would show
	m.mu.Lock()
	m.inFlight[id]--
	m.mu.Unlock()
	return out, nil
}

func (m *memLog) EventSeqs(ctx context.Context, ids []string) (map[string]int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]int64{}
	for _, id := range ids {
		if evs, ok := m.evs[id]; ok {
			out[id] = int64(len(evs))
		}
	}
	return out, nil
}

// drain reads a subscription until its terminal event.
func drain(t *testing.T, sub *progress.Subscription, limit time.Duration) []int64 {
	t.Helper()
	var seqs []int64
	deadline := time.After(limit)
	for {
		evs, more, done := sub.Next()
		for _, e := range evs {
			seqs = append(seqs, e.Seq)
		}
		if done {
			return seqs
		}
		select {
		case <-more:
		case <-deadline:
			t.Errorf("no terminal event within %s; got %v", limit, seqs)
			return seqs
		}
	}
}

// waitFor polls cond every 10 ms until it holds, and fails the test when it
// still does not after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, timeout, cond, "no %s", what)
}

func checkSeqs(t *testing.T, seqs []int64, from, to int64) {
	t.Helper()
	if int64(len(seqs)) != to-from+1 {
		t.Fatalf("got %d events %v, want %d..%d", len(seqs), seqs, from, to)
	}
	for i, s := range seqs {
		if s != from+int64(i) {
			t.Fatalf("event %d has seq %d, want %d (gap or repeat): %v", i, s, from+int64(i), seqs)
		}
	}
}

func TestBrokerFansOutWithOneReaderPerJob(t *testing.T) {
	log := newMemLog()
	b := progress.NewBroker(log, progress.BrokerConfig{PollInterval: 2 * time.Millisecond}, nil)
	defer b.Stop(context.Background())
	const subs, n = 200, 30
	log.append("a", job.StatusQueued)
	var wg sync.WaitGroup
	results := make([][]int64, subs)
	for i := range subs {
		sub, err := b.Subscribe("a", 0)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer sub.Close()
			results[i] = drain(t, sub, 10*time.Second)
		}()
	}
	for i := 2; i < n; i++ {
		log.append("a", job.StatusRunning)
		time.Sleep(time.Millisecond) // paced, so that readers catch the log while it grows
	}
	log.append("a", job.StatusSucceeded)
	wg.Wait()
	for _, r := range results {
		checkSeqs(t, r, 1, n)
	}
	if got := log.maxInFl.Load(); got != 1 {
		t.Fatalf("%d concurrent readers of one job, want 1", got)
	}
	waitFor(t, time.Second, "a reader is left after the last subscriber", func() bool { return b.Feeds() == 0 })
}

func TestBrokerResumesAfterLastSeq(t *testing.T) {
	log := newMemLog()
	for range 9 {
		log.append("a", job.StatusRunning)
	}
	log.append("a", job.StatusFailed)
	b := progress.NewBroker(log, progress.BrokerConfig{PollInterval: 2 * time.Millisecond}, nil)
	defer b.Stop(context.Background())
	for _, after := range []int64{0, 4, 9} {
		sub, _ := b.Subscribe("a", after)
		checkSeqs(t, drain(t, sub, 5*time.Second), after+1, 10)
		sub.Close()
	}
	sub, _ := b.Subscribe("a", 10) // already past the terminal event
	if seqs := drain(t, sub, 5*time.Second); len(seqs) != 0 {
		t.Fatalf("resuming after the terminal event gave %v", seqs)
	}
	sub.Close()
}

func TestBrokerWakeSkipsPolling(t *testing.T) {
	log := newMemLog()
	b := progress.NewBroker(log, progress.BrokerConfig{PollInterval: time.Hour, FloorInterval: time.Hour}, nil)
	defer b.Stop(context.Background())
	b.SetLive(true)
	sub, _ := b.Subscribe("a", 0)
	defer sub.Close()
	log.append("a", job.StatusSucceeded)
	b.Wake("a")
	checkSeqs(t, drain(t, sub, 2*time.Second), 1, 1)
}

// fixture is a real store with one job that a test drives through its life.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	st    store.Store
	job   job.Job
	lease job.Lease
}

func newFixture(t *testing.T, st store.Store) *fixture {
	f := &fixture{t: t, ctx: context.Background(), st: st}
	j, _, err := st.CreateJob(f.ctx, store.NewJob{Kind: job.KindGeneration, ProjectID: "p", Payload: json.RawMessage(`{}`),
		IdempotencyKey: fmt.Sprint(time.Now().UnixNano()), RequestHash: "h", Backend: job.BackendBackgroundTasks, MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	f.job = j
	return f
}

func (f *fixture) claim() {
	j, err := f.st.ClaimNext(f.ctx, job.BackendBackgroundTasks, "test", time.Minute)
	if err != nil {
		f.t.Fatal(err)
	}
	f.lease = j.Lease()
}

func (f *fixture) progress(pct int) {
	if err := f.st.ReportProgress(f.ctx, f.lease, store.Progress{Percent: pct, Stage: "scenes", Message: "장면 " + strconv.Itoa(pct)}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) complete() {
	if _, err := f.st.Complete(f.ctx, f.lease, store.Completion{Result: json.RawMessage(`{"ok":true}`)}); err != nil {
		f.t.Fatal(err)
	}
}

func openSQLite(t testing.TB) store.Store {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "p.db"), clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// The listener wakes readers from NOTIFY alone: polling is off in this test.
// It connects only while a job is watched, and leaves once none has been for
// its idle time.
func TestListenerWakesReadersFromPostgres(t *testing.T) {
	url := testenv.PostgresURL(t)
	st, err := postgres.Open(context.Background(), url, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b := progress.NewBroker(st, progress.BrokerConfig{PollInterval: time.Hour, FloorInterval: time.Hour}, nil)
	l := progress.NewListener(url, postgres.EventChannel, b, nil)
	l.Idle = 300 * time.Millisecond
	l.Start(context.Background())
	defer l.Stop(context.Background())
	defer b.Stop(context.Background())
	waitLive := func(want bool, why string) {
		t.Helper()
		waitFor(t, 10*time.Second, why, func() bool { return b.Live() == want })
	}
	time.Sleep(200 * time.Millisecond) // what must not happen: a connection with nothing watched
	if b.Live() {
		t.Fatal("listening with no job watched")
	}
	f := newFixture(t, st)
	sub, _ := b.Subscribe(f.job.ID, 0)
	waitLive(true, "listener never connected for a watched job")
	// The job's reader has read the first event before the others are
	// written, so only a notification brings them.
	first, _ := b.Subscribe(f.job.ID, 0)
	waitFor(t, 5*time.Second, "the job's reader never read its first event", func() bool { evs, _, _ := first.Next(); return len(evs) > 0 })
	first.Close()
	go func() {
		f.claim()
		f.progress(50)
		f.complete()
	}()
	checkSeqs(t, drain(t, sub, 5*time.Second), 1, 4)
	sub.Close()
	waitLive(false, "listener still connected long after the last job stopped being watched")
}

// sseEvent is one parsed event of a stream.
type sseEvent struct {
	ID, Event string
	Data      progress.EventJSON
}

type sseReader struct {
	r        *bufio.Reader
	retry    string
	comments int
}

func (s *sseReader) next() (sseEvent, error) {
	var ev sseEvent
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if ev.ID != "" {
				return ev, nil
			}
		case strings.HasPrefix(line, ":"):
			s.comments++
		case strings.HasPrefix(line, "retry: "):
			s.retry = line[len("retry: "):]
		case strings.HasPrefix(line, "id: "):
			ev.ID = line[len("id: "):]
		case strings.HasPrefix(line, "event: "):
			ev.Event = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(line[len("data: "):]), &ev.Data); err != nil {
				return ev, err
			}
		}
	}
}

func newStreamServer(t *testing.T, st store.Store, cfg progress.StreamConfig) (*httptest.Server, *progress.Broker) {
	b := progress.NewBroker(st, progress.BrokerConfig{PollInterval: 5 * time.Millisecond}, nil)
	mux := http.NewServeMux()
	mux.Handle("GET /api/generation/{id}/events", progress.NewStream(b, st, cfg, nil))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { b.Close(); srv.Close(); b.Stop(context.Background()) })
	return srv, b
}

func TestStreamHeadersReplayLiveAndEnd(t *testing.T) {
	st := openSQLite(t)
	srv, _ := newStreamServer(t, st, progress.StreamConfig{Heartbeat: 20 * time.Millisecond, Retry: 1500 * time.Millisecond})
	f := newFixture(t, st)
	f.claim()
	f.progress(10) // seq 3

	req, _ := http.NewRequest("GET", srv.URL+"/api/generation/"+f.job.ID+"/events", nil)
	req.Header.Set("Last-Event-ID", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for k, want := range map[string]string{"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
		"X-Accel-Buffering": "no", "Connection": "keep-alive"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	rd := &sseReader{r: bufio.NewReader(resp.Body)}
	var got []sseEvent
	for len(got) < 2 {
		ev, err := rd.next()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev)
	}
	time.Sleep(100 * time.Millisecond) // five heartbeat intervals with nothing to send
	f.progress(60)
	f.complete()
	for {
		ev, err := rd.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev)
	}
	var seqs []int64
	for _, ev := range got {
		if ev.ID != strconv.FormatInt(ev.Data.Seq, 10) || ev.Event != string(ev.Data.Type) {
			t.Fatalf("id/event %s/%s disagree with data %+v", ev.ID, ev.Event, ev.Data)
		}
		seqs = append(seqs, ev.Data.Seq)
	}
	checkSeqs(t, seqs, 2, 5)
	last := got[len(got)-1]
	if last.Event != "result" || last.Data.Status != job.StatusSucceeded {
		t.Fatalf("stream ended with %+v, want the result event", last)
	}
	if rd.retry != "1500" {
		t.Errorf("retry hint %q, want 1500", rd.retry)
	}
	if rd.comments < 2 {
		t.Errorf("%d heartbeat comments in 100ms at 20ms, want several", rd.comments)
	}
}

func TestStreamErrors(t *testing.T) {
	st := openSQLite(t)
	srv, _ := newStreamServer(t, st, progress.StreamConfig{})
	f := newFixture(t, st)
	for _, tc := range []struct {
		name, path, header string
		status             int
		code               string
	}{
		{"unknown job", "/api/generation/no-such-job/events", "", 404, "not_found"},
		{"bad header", "/api/generation/" + f.job.ID + "/events", "abc", 400, "invalid_last_event_id"},
		{"negative header", "/api/generation/" + f.job.ID + "/events", "-1", 400, "invalid_last_event_id"},
		{"bad query", "/api/generation/" + f.job.ID + "/events?last_event_id=1.5", "", 400, "invalid_last_event_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+tc.path, nil)
			if tc.header != "" {
				req.Header.Set("Last-Event-ID", tc.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct{ Error struct{ Code string } }
			json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tc.status || body.Error.Code != tc.code {
				t.Fatalf("%d %q, want %d %q", resp.StatusCode, body.Error.Code, tc.status, tc.code)
			}
		})
	}
}

func TestStreamEndsWhenBrokerCloses(t *testing.T) {
	st := openSQLite(t)
	srv, b := newStreamServer(t, st, progress.StreamConfig{})
	f := newFixture(t, st)
	resp, err := http.Get(srv.URL + "/api/generation/" + f.job.ID + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := &sseReader{r: bufio.NewReader(resp.Body)}
	if ev, err := rd.next(); err != nil || ev.ID != "1" {
		t.Fatalf("first event %+v %v", ev, err)
	}
	b.Close()
	done := make(chan error, 1)
	go func() { _, err := rd.next(); done <- err }()
	select {
	case err := <-done:
		if err != io.EOF {
			t.Fatalf("after Close: %v, want EOF", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("stream still open after the broker closed")
	}
}

// TestStreamReadsWhatItsFeedNoLongerKeeps: a feed keeps only the last
// KeptFrames of a job's events encoded; a stream that starts further back —
// from the start of a long job, or from an old Last-Event-ID — gets the
// events before them from the store, and every event exactly once, in order.
func TestStreamReadsWhatItsFeedNoLongerKeeps(t *testing.T) {
	st := openSQLite(t)
	srv, b := newStreamServer(t, st, progress.StreamConfig{Heartbeat: time.Second})
	f := newFixture(t, st)
	f.claim()
	const n = 4*progress.KeptFrames + 50
	for i := range n {
		f.progress(i % 100)
	}
	// A subscription of the test's own holds the feed while the streams
	// come and go, so that the frames it trimmed stay trimmed.
	hold, err := b.Subscribe(f.job.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	waitFor(t, 5*time.Second, "trimmed frames", func() bool {
		base, kept := b.FramesKept(f.job.ID)
		return base > 0 && kept <= 2*progress.KeptFrames
	})
	open := func(last string) *sseReader {
		req, _ := http.NewRequest("GET", srv.URL+"/api/generation/"+f.job.ID+"/events", nil)
		if last != "" {
			req.Header.Set("Last-Event-ID", last)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return &sseReader{r: bufio.NewReader(resp.Body)}
	}
	fromStart, fromOld := open(""), open("5")
	f.progress(1)
	f.complete()
	for _, tc := range []struct {
		rd   *sseReader
		from int64
	}{{fromStart, 1}, {fromOld, 6}} {
		var seqs []int64
		for {
			ev, err := tc.rd.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, ev.Data.Seq)
		}
		// accepted, claimed, n progress, one more, the result
		checkSeqs(t, seqs, tc.from, n+4)
	}
	base, kept := b.FramesKept(f.job.ID)
	t.Logf("%d events; the feed kept %d encoded, after seq %d", n+4, kept, base)
}
