package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/scriptgen/scriptgen/internal/config"
	"github.com/scriptgen/scriptgen/internal/testenv"
	"github.com/scriptgen/scriptgen/internal/tracing"
)

// syncBuffer is a log sink that several goroutines write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A job submitted to serve and run by a durable worker (asynq on a Redis of
// the test's own) is one trace: submission, dispatch, the worker's claim,
// run, generation and completion, each the child of what caused it, in
// that order; the worker's log lines of the job carry the trace id.
func TestOneTracePerJobThroughADurableWorker(t *testing.T) {
	redis := testenv.StartRedis(t)
	rec, base, logs := tracedServer(t, map[string]string{"REDIS_URL": redis.URL(5)}, true)
	id := submitAndWait(t, base)
	spans := jobSpans(t, rec, id)
	wantTrace(t, spans, id, "durable")
	wantLogged(t, logs, id, "worker")
}

// The same in-process: the serve's background_tasks pool claims and runs it.
func TestOneTracePerJobInProcess(t *testing.T) {
	rec, base, logs := tracedServer(t, map[string]string{"USE_DURABLE_WORKER": "false"}, false)
	id := submitAndWait(t, base)
	spans := jobSpans(t, rec, id)
	wantTrace(t, spans, id, "background_tasks")
	wantLogged(t, logs, id, "serve")
}

// tracedServer runs a serve (and with worker a `scriptgen worker`) in this
// process, on an SQLite file of the test's own, recording every span.
func tracedServer(t *testing.T, extra map[string]string, worker bool) (*tracetest.SpanRecorder, string, *syncBuffer) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tracing.Install(tracing.NewProvider(sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(tracing.Uninstall)
	env := map[string]string{
		"DATABASE_URL":         "sqlite:" + filepath.Join(t.TempDir(), "t.db"),
		"GENERATOR":            "template",
		"GENERATOR_STEP_DELAY": "1ms",
		"AUTO_ROLLBACK":        "false",
	}
	for k, v := range extra {
		env[k] = v
	}
	cfg, err := config.Parse("serve", nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	var done []chan error
	t.Cleanup(func() {
		cancel()
		for _, d := range done {
			if err := <-d; err != nil {
				t.Errorf("stop: %v", err)
			}
		}
	})
	s, err := New(ctx, cfg, log.With("process", "serve"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done = append(done, make(chan error, 1))
	go func(d chan error) { d <- s.Serve(ctx, ln) }(done[0])
	if worker {
		done = append(done, make(chan error, 1))
		go func(d chan error) { d <- RunWorker(ctx, cfg, log.With("process", "worker")) }(done[1])
	}
	return rec, "http://" + ln.Addr().String(), logs
}

// submitAndWait submits a generation job and waits until it succeeded.
func submitAndWait(t *testing.T, base string) string {
	t.Helper()
	res, err := http.Post(base+"/api/generation", "application/json", strings.NewReader(
		`{"project_id":"p1","episode_data":{"title":"첫 만남","synopsis":"두 사람이 만난다.","characters":["지수"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	var j struct{ ID string }
	json.NewDecoder(res.Body).Decode(&j)
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted || j.ID == "" {
		t.Fatalf("submit: %d", res.StatusCode)
	}
	testenv.Eventually(t, 60*time.Second, func() bool {
		res, err := http.Get(base + "/api/generation/" + j.ID)
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var got struct{ Status string }
		json.NewDecoder(res.Body).Decode(&got)
		return got.Status == "succeeded"
	}, "job %s did not succeed", j.ID)
	return j.ID
}

// jobSpans waits for the run's span to end (the job is marked succeeded
// inside it) and returns every ended span, in the order they started.
func jobSpans(t *testing.T, rec *tracetest.SpanRecorder, id string) []sdktrace.ReadOnlySpan {
	t.Helper()
	var spans []sdktrace.ReadOnlySpan
	testenv.Eventually(t, 10*time.Second, func() bool {
		spans = rec.Ended()
		return slices.ContainsFunc(spans, func(s sdktrace.ReadOnlySpan) bool { return s.Name() == tracing.SpanRun })
	}, "the run's span of %s did not end", id)
	slices.SortStableFunc(spans, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
	return spans
}

// wantTrace checks that the job's spans are one trace, whose id is the
// job's, in the order of the job's path, each under its cause.
func wantTrace(t *testing.T, spans []sdktrace.ReadOnlySpan, id, backend string) {
	t.Helper()
	var names []string
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		if s.SpanContext().TraceID() != tracing.TraceID(id) {
			t.Errorf("span %s is in trace %s, not the job's %s", s.Name(), s.SpanContext().TraceID(), tracing.TraceID(id))
			continue
		}
		if _, dup := byName[s.Name()]; dup {
			t.Errorf("span %s twice", s.Name())
		}
		names = append(names, s.Name())
		byName[s.Name()] = s
	}
	want := []string{tracing.SpanSubmit, tracing.SpanDispatch, tracing.SpanClaim, tracing.SpanRun, tracing.SpanGenerate, tracing.SpanComplete}
	if !slices.Equal(names, want) {
		t.Fatalf("spans %v, want %v", names, want)
	}
	root := byName[tracing.SpanSubmit].SpanContext().SpanID()
	if byName[tracing.SpanSubmit].Parent().IsValid() {
		t.Errorf("the submission has a parent")
	}
	for child, parent := range map[string]string{
		tracing.SpanDispatch: tracing.SpanSubmit, tracing.SpanClaim: tracing.SpanSubmit, tracing.SpanRun: tracing.SpanSubmit,
		tracing.SpanGenerate: tracing.SpanRun, tracing.SpanComplete: tracing.SpanRun,
	} {
		if got, want := byName[child].Parent().SpanID(), byName[parent].SpanContext().SpanID(); got != want {
			t.Errorf("%s's parent is %s, want %s (%s); the root is %s", child, got, parent, want, root)
		}
	}
	for _, name := range []string{tracing.SpanDispatch, tracing.SpanClaim, tracing.SpanRun} {
		if !slices.Contains(byName[name].Attributes(), tracing.AttrBackend.String(backend)) {
			t.Errorf("%s: attributes %v lack backend %s", name, byName[name].Attributes(), backend)
		}
	}
	if !slices.Contains(byName[tracing.SpanRun].Attributes(), tracing.AttrOutcome.String("succeeded")) {
		t.Errorf("run: attributes %v lack the outcome", byName[tracing.SpanRun].Attributes())
	}
}

// wantLogged checks that the process that ran the job logged its lines of
// the job with the trace id.
func wantLogged(t *testing.T, logs *syncBuffer, id, process string) {
	t.Helper()
	var lines int
	for _, line := range strings.Split(logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["job_id"] != id {
			continue
		}
		lines++
		if rec["trace_id"] != tracing.TraceID(id).String() {
			t.Errorf("log line of job %s without its trace id: %s", id, line)
		}
		if rec["process"] != process {
			t.Errorf("job %s logged by %v, want %s: %s", id, rec["process"], process, line)
		}
	}
	if lines < 2 {
		t.Errorf("%d log lines of job %s, want its processing and success:\n%s", lines, id, logs)
	}
}
