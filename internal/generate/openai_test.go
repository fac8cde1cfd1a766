package generate_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/generate"
	"github.com/scriptgen/scriptgen/internal/job"
)

// fakeAPI speaks the chat-completions wire format; each request is answered
// by the next of its replies (the last one repeats).
type fakeAPI struct {
	t       *testing.T
	srv     *httptest.Server
	replies []func(w http.ResponseWriter, r *http.Request)
	calls   atomic.Int32
	mu      sync.Mutex
	bodies  []map[string]any
	headers []http.Header
}

func newFakeAPI(t *testing.T, replies ...func(w http.ResponseWriter, r *http.Request)) *fakeAPI {
	f := &fakeAPI{t: t, replies: replies}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
			http.Error(w, "wrong endpoint "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		var body map[string]any
		raw, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(raw, &body); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		n := int(f.calls.Add(1))
		f.mu.Lock()
		f.bodies = append(f.bodies, body)
		f.headers = append(f.headers, r.Header.Clone())
		f.mu.Unlock()
		f.replies[min(n, len(f.replies))-1](w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// stream answers with the given content deltas as real SSE chunks, a final
// chunk with finish_reason, the usage chunk and [DONE].
func stream(deltas ...string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		send := func(v string) {
			fmt.Fprintf(w, "data: %s\n\n", v)
			fl.Flush()
		}
		fmt.Fprint(w, ": keep-alive\n\n")
		send(`{"id":"c1","object":"chat.completion.chunk","model":"test-model-0125","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`)
		for _, d := range deltas {
			b, _ := json.Marshal(d)
			send(`{"id":"c1","object":"chat.completion.chunk","model":"test-model-0125","choices":[{"index":0,"delta":{"content":` + string(b) + `},"finish_reason":null}]}`)
		}
		send(`{"id":"c1","object":"chat.completion.chunk","model":"test-model-0125","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`)
		send(`{"id":"c1","object":"chat.completion.chunk","model":"test-model-0125","choices":[],"usage":{"prompt_tokens":321,"completion_tokens":45,"total_tokens":366}}`)
		send(`[DONE]`)
	}
}

func status(code int, retryAfter, body string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		io.WriteString(w, body)
	}
}

// stall sends one chunk, then nothing until the client goes away.
func stall(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	fmt.Fprint(w, `data: {"choices":[{"index":0,"delta":{"content":"1. INT. "},"finish_reason":null}]}`+"\n\n")
	w.(http.Flusher).Flush()
	<-r.Context().Done()
}

type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func newGen(t *testing.T, f *fakeAPI, s *sleeps, mod func(*generate.OpenAIConfig)) *generate.OpenAI {
	t.Helper()
	cfg := generate.OpenAIConfig{BaseURL: f.srv.URL + "/v1/", APIKey: "sk-test", Model: "test-model", Sleep: s.sleep,
		IdleTimeout: 2 * time.Second, Timeout: 10 * time.Second, ExpectedTokens: 4}
	if mod != nil {
		mod(&cfg)
	}
	g, err := generate.NewOpenAI(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

var request = generate.Request{JobID: "j1", ProjectID: "p1",
	Episode: job.EpisodeData{Title: "비 오는 밤", Synopsis: "지수가 카페 문을 닫는다.", Characters: []job.Character{{Name: "지수", Description: "barista"}}},
	Context: []generate.ContextChunk{{DocumentID: "d1", ChunkID: 7, Text: "지수는 한강 근처 카페의 바리스타다."}}}

type progressLog struct {
	mu sync.Mutex
	p  []generate.Progress
}

func (l *progressLog) fn(ctx context.Context, p generate.Progress) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.p = append(l.p, p)
	return nil
}

func TestOpenAIStreamsScriptUsageAndProgress(t *testing.T) {
	f := newFakeAPI(t, stream("1. INT. 카페 - NIGHT\n\n", "지수가 ", "불을 끈다.\n\n", "2. EXT. 한강 - NIGHT\n\n비가 온다."))
	var log progressLog
	script, err := newGen(t, f, &sleeps{}, nil).Generate(context.Background(), request, log.fn)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(script.Script, "1. INT. 카페 - NIGHT\n\n지수가 불을 끈다.") || script.Scenes != 2 || script.Title != "비 오는 밤" {
		t.Fatalf("script %+v", script)
	}
	if script.Model != "test-model-0125" || script.Usage != (generate.Usage{PromptTokens: 321, CompletionTokens: 45}) {
		t.Fatalf("model %q usage %+v", script.Model, script.Usage)
	}
	last := 0
	writing := 0
	for _, p := range log.p {
		if p.Percent < last || p.Percent > 100 {
			t.Fatalf("progress went %d → %d: %+v", last, p.Percent, log.p)
		}
		last = p.Percent
		if p.Stage == "writing" {
			writing++
		}
	}
	if writing < 2 || last < 90 {
		t.Fatalf("progress %+v: want the stream turned into several writing steps", log.p)
	}
	body, hdr := f.bodies[0], f.headers[0]
	if body["model"] != "test-model" || body["stream"] != true || body["stream_options"].(map[string]any)["include_usage"] != true {
		t.Fatalf("request body %v", body)
	}
	if hdr.Get("Authorization") != "Bearer sk-test" {
		t.Fatalf("authorization %q", hdr.Get("Authorization"))
	}
	msgs, _ := json.Marshal(body["messages"])
	for _, want := range []string{"비 오는 밤", "지수가 카페 문을 닫는다.", "barista", "한강 근처 카페의 바리스타"} {
		if !strings.Contains(string(msgs), want) {
			t.Fatalf("prompt lacks %q: %s", want, msgs)
		}
	}
}

func TestOpenAIRetries(t *testing.T) {
	ok := stream("1. INT. ROOM - DAY\n\nDone.")
	tests := []struct {
		name      string
		replies   []func(http.ResponseWriter, *http.Request)
		wantCalls int32
		wantSleep []time.Duration
	}{
		{"429 honours Retry-After seconds", []func(http.ResponseWriter, *http.Request){
			status(429, "7", `{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`), ok},
			2, []time.Duration{7 * time.Second}},
		{"429 Retry-After is capped", []func(http.ResponseWriter, *http.Request){status(429, "3600", `{}`), ok},
			2, []time.Duration{time.Minute}},
		{"5xx backs off exponentially", []func(http.ResponseWriter, *http.Request){
			status(500, "", `{"error":{"message":"internal"}}`), status(502, "", "<html>bad gateway</html>"), status(503, "", ""), ok},
			4, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}},
		{"error inside the stream", []func(http.ResponseWriter, *http.Request){
			func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				fmt.Fprint(w, "data: {\"error\":{\"message\":\"model overloaded\"}}\n\n")
			}, ok},
			2, []time.Duration{time.Second}},
		{"stream cut before the end", []func(http.ResponseWriter, *http.Request){
			func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				fmt.Fprint(w, `data: {"choices":[{"index":0,"delta":{"content":"half"},"finish_reason":null}]}`+"\n\n")
			}, ok},
			2, []time.Duration{time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t, tt.replies...)
			var s sleeps
			script, err := newGen(t, f, &s, nil).Generate(context.Background(), request, (&progressLog{}).fn)
			if err != nil || !strings.Contains(script.Script, "Done.") {
				t.Fatalf("script %q err %v", script.Script, err)
			}
			if f.calls.Load() != tt.wantCalls || fmt.Sprint(s.d) != fmt.Sprint(tt.wantSleep) {
				t.Fatalf("%d calls, sleeps %v; want %d calls, sleeps %v", f.calls.Load(), s.d, tt.wantCalls, tt.wantSleep)
			}
		})
	}
}

func TestOpenAIErrors(t *testing.T) {
	t.Run("4xx is rejected at once with the API's message", func(t *testing.T) {
		f := newFakeAPI(t, status(401, "", `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`))
		_, err := newGen(t, f, &sleeps{}, nil).Generate(context.Background(), request, (&progressLog{}).fn)
		if !errors.Is(err, generate.ErrRejected) || !strings.Contains(err.Error(), "Incorrect API key") || f.calls.Load() != 1 {
			t.Fatalf("err %v after %d calls", err, f.calls.Load())
		}
	})
	t.Run("retries run out", func(t *testing.T) {
		f := newFakeAPI(t, status(503, "", `{"error":{"message":"overloaded"}}`))
		var s sleeps
		_, err := newGen(t, f, &s, func(c *generate.OpenAIConfig) { c.MaxRetries = 2 }).Generate(context.Background(), request, (&progressLog{}).fn)
		if err == nil || errors.Is(err, generate.ErrRejected) || !strings.Contains(err.Error(), "503") || f.calls.Load() != 3 {
			t.Fatalf("err %v after %d calls", err, f.calls.Load())
		}
	})
	t.Run("stalled stream times out and is retried", func(t *testing.T) {
		f := newFakeAPI(t, stall, stream("1. INT. ROOM - DAY\n\nRecovered."))
		start := time.Now()
		script, err := newGen(t, f, &sleeps{}, func(c *generate.OpenAIConfig) { c.IdleTimeout = 150 * time.Millisecond }).
			Generate(context.Background(), request, (&progressLog{}).fn)
		if err != nil || !strings.Contains(script.Script, "Recovered.") || f.calls.Load() != 2 {
			t.Fatalf("script %q err %v calls %d", script.Script, err, f.calls.Load())
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("stall took %s to detect", took)
		}
	})
	t.Run("stalled stream without retries", func(t *testing.T) {
		f := newFakeAPI(t, stall)
		_, err := newGen(t, f, &sleeps{}, func(c *generate.OpenAIConfig) { c.IdleTimeout = 100 * time.Millisecond; c.MaxRetries = -1 }).
			Generate(context.Background(), request, (&progressLog{}).fn)
		if !errors.Is(err, generate.ErrStalled) {
			t.Fatalf("err %v, want ErrStalled", err)
		}
	})
	t.Run("cancellation stops at once and is not retried", func(t *testing.T) {
		f := newFakeAPI(t, stall)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		_, err := newGen(t, f, &sleeps{}, func(c *generate.OpenAIConfig) { c.IdleTimeout = time.Minute }).Generate(ctx, request, (&progressLog{}).fn)
		if !errors.Is(err, context.Canceled) || f.calls.Load() != 1 || time.Since(start) > 3*time.Second {
			t.Fatalf("err %v after %d calls in %s", err, f.calls.Load(), time.Since(start))
		}
	})
	t.Run("a progress error stops the stream", func(t *testing.T) {
		f := newFakeAPI(t, stream("a", "b", "c", "d", "e"))
		lost := errors.New("lease lost")
		_, err := newGen(t, f, &sleeps{}, nil).Generate(context.Background(), request, func(ctx context.Context, p generate.Progress) error {
			if p.Stage == "writing" {
				return lost
			}
			return nil
		})
		if !errors.Is(err, lost) || f.calls.Load() != 1 {
			t.Fatalf("err %v after %d calls", err, f.calls.Load())
		}
	})
}

func TestNewOpenAIChecksConfig(t *testing.T) {
	for _, cfg := range []generate.OpenAIConfig{
		{BaseURL: "", Model: "m"},
		{BaseURL: "ftp://x", Model: "m"},
		{BaseURL: "http://localhost:11434/v1", Model: " "},
	} {
		if _, err := generate.NewOpenAI(cfg); err == nil {
			t.Errorf("NewOpenAI(%+v) accepted", cfg)
		}
	}
}
