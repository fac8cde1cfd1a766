// Package tracing is scriptgen's OpenTelemetry tracing: one trace per job,
// from its submission through dispatch, claim, run, generation and
// completion, in whichever processes those happen.
//
// A job's trace needs no context carried beside it: its trace id is the
// job's id (a UUID is 16 bytes, as a trace id is) and the span id of its
// root span, the submission, is derived from that id too. Any process that
// later touches the job — the serve that dispatches it, a durable worker
// that claims it, another replica's pool, the reconciler re-sending a lost
// task, a rollback moving it — rebuilds the same parent from the id alone
// (JobContext), so its spans join the submission's trace however the job
// travelled. An operator finds a job's trace by its id without the dashes.
//
// Tracing is off by default: without OTEL_EXPORTER_OTLP_ENDPOINT, Setup
// installs nothing and OpenTelemetry's global provider stays a no-op, whose
// spans record nothing and cost a few nanoseconds.
package tracing

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Name is the instrumentation scope of scriptgen's spans.
const Name = "github.com/scriptgen/scriptgen"

// The spans of a job's trace, in the order they happen.
const (
	SpanSubmit   = "job.submit"   // serve: the request that created the job (the root)
	SpanDispatch = "job.dispatch" // serve (or a reconciler): handed to its backend
	SpanClaim    = "job.claim"    // the runner that took it: pool or durable worker
	SpanRun      = "job.run"      // one attempt, in the runner's process
	SpanGenerate = "job.generate" // the generator's work within the run
	SpanComplete = "job.complete" // the result committed with the job's success
)

// Attribute keys of scriptgen's spans.
const (
	AttrJobID   = attribute.Key("scriptgen.job.id")
	AttrKind    = attribute.Key("scriptgen.job.kind")
	AttrProject = attribute.Key("scriptgen.project.id")
	AttrBackend = attribute.Key("scriptgen.job.backend")
	AttrEpoch   = attribute.Key("scriptgen.job.epoch")
	AttrAttempt = attribute.Key("scriptgen.job.attempt")
	AttrOwner   = attribute.Key("scriptgen.job.lease_owner")
	AttrOutcome = attribute.Key("scriptgen.job.outcome")
)

// Tracer is scriptgen's tracer on the global provider: a no-op until Setup
// (or a test) installs one.
func Tracer() trace.Tracer { return otel.Tracer(Name) }

// Enabled reports whether spans are recorded: a provider is installed.
func Enabled() bool { return enabled.Load() }

var enabled atomic.Bool

// Setup installs the OTLP/HTTP exporter when endpoint (OTEL_EXPORTER_OTLP_ENDPOINT,
// e.g. http://otel-collector:4318) is set, and returns the function that
// flushes and stops it. Without an endpoint it installs nothing. role
// (serve, worker) is a resource attribute beside service.name "scriptgen";
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override them, and the
// exporter's other OTEL_EXPORTER_OTLP_* variables (headers, timeout…) apply.
func Setup(ctx context.Context, endpoint, role string) (shutdown func(context.Context) error, err error) {
	if endpoint == "" {
		return func(context.Context) error { return nil }, nil
	}
	target, err := TracesURL(endpoint)
	if err != nil {
		return nil, err
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(target))
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName("scriptgen"), attribute.String("scriptgen.role", role)),
		resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithHost(), resource.WithProcessPID())
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	tp := NewProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	Install(tp)
	return tp.Shutdown, nil
}

// TracesURL is the OTLP/HTTP traces URL of OTEL_EXPORTER_OTLP_ENDPOINT: the
// base URL with /v1/traces appended, as the OpenTelemetry specification
// says for that variable.
func TracesURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT=%q: want a URL such as http://otel-collector:4318", endpoint)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
	return u.String(), nil
}

// NewProvider is an SDK tracer provider that gives a job's root span the
// job's ids (see JobRoot); opts add its processors, resource, sampler.
func NewProvider(opts ...sdktrace.TracerProviderOption) *sdktrace.TracerProvider {
	return sdktrace.NewTracerProvider(append([]sdktrace.TracerProviderOption{sdktrace.WithIDGenerator(jobIDs{})}, opts...)...)
}

// Install makes tp the global provider (tests install one with a
// tracetest.SpanRecorder) and W3C trace context the propagator.
func Install(tp trace.TracerProvider) {
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	enabled.Store(true)
}

// Uninstall puts back the no-op provider (tests).
func Uninstall() {
	otel.SetTracerProvider(noop.NewTracerProvider())
	enabled.Store(false)
}

// TraceID is the trace id of a job's trace.
func TraceID(jobID string) trace.TraceID {
	if u, err := uuid.Parse(jobID); err == nil {
		return trace.TraceID(u)
	}
	sum := sha256.Sum256([]byte(jobID))
	return trace.TraceID(sum[:16])
}

// rootSpanID is the span id of a job's root span (its submission).
func rootSpanID(jobID string) trace.SpanID {
	sum := sha256.Sum256([]byte("scriptgen root span " + jobID))
	id := trace.SpanID(sum[:8])
	if !id.IsValid() {
		id[7] = 1
	}
	return id
}

// root is the span context of a job's root span, as a remote parent.
func root(jobID string) trace.SpanContext {
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    TraceID(jobID),
		SpanID:     rootSpanID(jobID),
		TraceFlags: trace.FlagsSampled,
		Remote:     true,
	})
}

// JobContext is ctx inside the job's trace: unchanged when its span already
// belongs to it, else with the job's root span as the remote parent.
func JobContext(ctx context.Context, jobID string) context.Context {
	if trace.SpanContextFromContext(ctx).TraceID() == TraceID(jobID) {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, root(jobID))
}

// Start starts a span of the job's trace (JobContext). Off, it returns ctx
// and a span that records nothing, without allocating.
func Start(ctx context.Context, jobID, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !Enabled() {
		return ctx, offSpan
	}
	return Tracer().Start(JobContext(ctx, jobID), name, opts...)
}

// offSpan is the span of Start and StartRoot while tracing is off.
var offSpan = trace.SpanFromContext(context.Background())

type rootKey struct{}

// StartRoot starts the job's root span: a new trace whose ids are the job's
// (TraceID, and the root's span id every other process derives). Call it
// once per job, where the job was created; a request's incoming trace
// context, if any, becomes a link.
func StartRoot(ctx context.Context, jobID, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !Enabled() {
		return ctx, offSpan
	}
	if caller := trace.SpanContextFromContext(ctx); caller.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: caller}))
	}
	opts = append(opts, trace.WithNewRoot(), trace.WithAttributes(AttrJobID.String(jobID)))
	return Tracer().Start(context.WithValue(ctx, rootKey{}, jobID), name, opts...)
}

// Incoming is the request's context with the caller's W3C trace context
// (traceparent), when tracing is on and the request carries one: a job's
// root span links to it.
func Incoming(r *http.Request) context.Context {
	if !Enabled() {
		return r.Context()
	}
	return otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
}

// LogAttrs are the attributes a job's log lines carry while tracing is on:
// its trace id.
func LogAttrs(jobID string) []any {
	if !enabled.Load() {
		return nil
	}
	return []any{"trace_id", TraceID(jobID).String()}
}

// jobIDs gives a job's root span (StartRoot) the job's ids, and every other
// span random ones, as the SDK's own generator does.
type jobIDs struct{}

func (jobIDs) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if jobID, ok := ctx.Value(rootKey{}).(string); ok {
		return TraceID(jobID), rootSpanID(jobID)
	}
	var tid trace.TraceID
	for !tid.IsValid() {
		binary.NativeEndian.PutUint64(tid[:8], rand.Uint64())
		binary.NativeEndian.PutUint64(tid[8:], rand.Uint64())
	}
	return tid, jobIDs{}.NewSpanID(ctx, tid)
}

func (jobIDs) NewSpanID(context.Context, trace.TraceID) trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.NativeEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}

// End ends a span, marking it failed with err if there is one.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// EndClaim ends a claim's span; a claim that found the dispatch stale or
// the row gone is an error of the span, not of the job.
func EndClaim(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "not claimed")
	}
	span.End()
}

// RecordClaims records the claim span of each job a batch claim took
// between start and now (the pool claims several at once).
func RecordClaims(ctx context.Context, start time.Time, backend, owner string, jobs ...ClaimedJob) {
	if !Enabled() {
		return
	}
	for _, j := range jobs {
		_, span := Start(ctx, j.ID, SpanClaim, trace.WithTimestamp(start), trace.WithAttributes(
			AttrBackend.String(backend), AttrEpoch.Int64(j.Epoch), AttrOwner.String(owner)))
		span.End()
	}
}

// ClaimedJob is a job a claim took: its id and dispatch epoch.
type ClaimedJob struct {
	ID    string
	Epoch int64
}
