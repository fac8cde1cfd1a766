package e2e

import (
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	collector "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/scriptgen/scriptgen/internal/tracing"
)

// otlpSpan is one span an OTLP/HTTP exporter sent, with the role of the
// process that sent it.
type otlpSpan struct {
	trace, id, parent, name, role string
}

// otlpReceiver is an OTLP/HTTP traces endpoint (POST /v1/traces, protobuf)
// that keeps what it is sent: the collector a deployment would run.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []otlpSpan
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		http.NotFound(w, req)
		return
	}
	body := io.Reader(req.Body)
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	var msg collector.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(b, &msg)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range msg.ResourceSpans {
		role := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "scriptgen.role" {
				role = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				r.spans = append(r.spans, otlpSpan{hex.EncodeToString(s.TraceId), hex.EncodeToString(s.SpanId),
					hex.EncodeToString(s.ParentSpanId), s.Name, role})
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&collector.ExportTraceServiceResponse{})
	w.Write(out)
}

// trace is the spans of one trace received so far, by name.
func (r *otlpReceiver) trace(id string) map[string][]otlpSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]otlpSpan{}
	for _, s := range r.spans {
		if s.trace == id {
			out[s.name] = append(out[s.name], s)
		}
	}
	return out
}

// Real processes: a serve and a `scriptgen worker` export by OTLP/HTTP to a
// receiver the test runs, and a job's spans from both arrive as one trace —
// submitted and dispatched by serve, claimed, run, generated and completed
// by the worker, each under its cause — with the trace id in the worker's
// log lines of the job.
func TestTracesCrossFromServeToWorker(t *testing.T) {
	recv := &otlpReceiver{}
	collectorSrv := httptest.NewServer(recv)
	t.Cleanup(collectorSrv.Close)
	c := newCluster(t, 1, "OTEL_EXPORTER_OTLP_ENDPOINT="+collectorSrv.URL, "OTEL_BSP_SCHEDULE_DELAY=100")
	j := submit(t, c.serve.URL, "traced", 1)
	waitAllSucceeded(t, c.serve.URL, []submitted{j}, 60*time.Second)
	checkExactlyOnce(t, c.serve.URL, []submitted{j})

	traceID := tracing.TraceID(j.ID).String()
	want := map[string]string{ // span: the role of the process that sends it
		tracing.SpanSubmit: "serve", tracing.SpanDispatch: "serve", tracing.SpanClaim: "worker",
		tracing.SpanRun: "worker", tracing.SpanGenerate: "worker", tracing.SpanComplete: "worker",
	}
	var spans map[string][]otlpSpan
	deadline := time.Now().Add(30 * time.Second)
	for {
		spans = recv.trace(traceID)
		if len(spans) == len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for name, role := range want {
		if got := spans[name]; len(got) != 1 || got[0].role != role {
			t.Errorf("span %s of trace %s: %v, want one from %s", name, traceID, got, role)
		}
	}
	if t.Failed() {
		t.Fatalf("received spans of the job's trace: %v", spans)
	}
	root := spans[tracing.SpanSubmit][0]
	if root.parent != "" {
		t.Errorf("the submission has a parent %s", root.parent)
	}
	for child, parent := range map[string]string{
		tracing.SpanDispatch: tracing.SpanSubmit, tracing.SpanClaim: tracing.SpanSubmit, tracing.SpanRun: tracing.SpanSubmit,
		tracing.SpanGenerate: tracing.SpanRun, tracing.SpanComplete: tracing.SpanRun,
	} {
		if got, want := spans[child][0].parent, spans[parent][0].id; got != want {
			t.Errorf("%s's parent is %s, want %s's %s", child, got, parent, want)
		}
	}
	log := c.workers[0].log.String()
	lines := 0
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "job_id="+j.ID) {
			lines++
			if !strings.Contains(line, "trace_id="+traceID) {
				t.Errorf("a worker's log line of job %s lacks trace_id=%s: %s", j.ID, traceID, line)
			}
		}
	}
	if lines < 2 {
		t.Errorf("%d worker log lines name job %s, want its processing and success:\n%s", lines, j.ID, tail(log, 20))
	}
}
