package tracing

import (
	"context"
	"testing"

	"github.com/google/uuid"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func record(t *testing.T) *tracetest.SpanRecorder {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	Install(NewProvider(sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(Uninstall)
	return rec
}

// A job's root span carries the job's ids, and a span started in another
// process from the job id alone is its child in the same trace.
func TestSpansOfAJobShareItsTraceWhereverTheyStart(t *testing.T) {
	rec := record(t)
	id := uuid.Must(uuid.NewV7()).String()
	ctx, submit := StartRoot(context.Background(), id, SpanSubmit)
	_, dispatch := Start(ctx, id, SpanDispatch)
	dispatch.End()
	submit.End()
	// "Another process": a fresh context, the job id only.
	_, claim := Start(context.Background(), id, SpanClaim)
	claim.End()

	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3", len(spans))
	}
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()] = s
		if s.SpanContext().TraceID() != TraceID(id) {
			t.Errorf("%s: trace %s, want the job's %s", s.Name(), s.SpanContext().TraceID(), TraceID(id))
		}
	}
	root := byName[SpanSubmit]
	if root.Parent().IsValid() {
		t.Errorf("the submission has a parent: %v", root.Parent())
	}
	if got, want := TraceID(id).String(), uuid.MustParse(id).String(); got != stripDashes(want) {
		t.Errorf("trace id %s is not the job id %s", got, want)
	}
	for _, name := range []string{SpanDispatch, SpanClaim} {
		if p := byName[name].Parent(); p.SpanID() != root.SpanContext().SpanID() {
			t.Errorf("%s's parent is %s, want the submission %s", name, p.SpanID(), root.SpanContext().SpanID())
		}
	}
	if got := LogAttrs(id); len(got) != 2 || got[1] != TraceID(id).String() {
		t.Errorf("LogAttrs = %v", got)
	}
}

// A submission that arrives with a caller's trace context links to it.
func TestRootLinksTheCallersSpan(t *testing.T) {
	rec := record(t)
	caller := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true})
	_, s := StartRoot(trace.ContextWithRemoteSpanContext(context.Background(), caller), "job-1", SpanSubmit)
	s.End()
	got := rec.Ended()[0]
	if got.SpanContext().TraceID() != TraceID("job-1") || len(got.Links()) != 1 || got.Links()[0].SpanContext.TraceID() != caller.TraceID() {
		t.Fatalf("root %v links %v", got.SpanContext(), got.Links())
	}
}

// Off (the default), nothing is recorded and no log line carries a trace id.
func TestOffByDefault(t *testing.T) {
	if Enabled() || LogAttrs("j") != nil {
		t.Fatal("tracing is on without Setup")
	}
	shutdown, err := Setup(context.Background(), "", "serve")
	if err != nil || Enabled() {
		t.Fatalf("Setup without an endpoint: %v, enabled %v", err, Enabled())
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, s := Start(context.Background(), "j", SpanRun)
	if s.IsRecording() {
		t.Fatal("a span records with tracing off")
	}
	ctx := context.Background()
	if n := testing.AllocsPerRun(100, func() {
		_, s := StartRoot(ctx, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", SpanSubmit)
		s.End()
		_, s = Start(ctx, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", SpanDispatch)
		s.End()
	}); n != 0 {
		t.Errorf("off, a job's spans cost %v allocations", n)
	}
}

func TestTracesURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://collector:4318":     "http://collector:4318/v1/traces",
		"https://otel.example.com/": "https://otel.example.com/v1/traces",
		"http://gw:8080/otlp":       "http://gw:8080/otlp/v1/traces",
	} {
		if got, err := TracesURL(in); err != nil || got != want {
			t.Errorf("TracesURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"collector:4318", "ftp://x", "http://"} {
		if _, err := TracesURL(bad); err == nil {
			t.Errorf("TracesURL(%q) accepted", bad)
		}
	}
}

func stripDashes(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '-' {
			out = append(out, s[i])
		}
	}
	return string(out)
}
