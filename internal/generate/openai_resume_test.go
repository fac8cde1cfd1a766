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
	"unicode/utf8"

	"github.com/scriptgen/scriptgen/internal/generate"
)

// model is a fake OpenAI-compatible server with one answer, a token a chunk.
// A request that continues a partial answer (an assistant message followed by
// the instruction to continue) is served the rest of it, starting repeat
// tokens before where the partial text stops, as models do. It counts the
// tokens it serves, and cuts a response (closing the connection) after
// cutAfter[n] tokens for the n-th request, when set.
type model struct {
	t        *testing.T
	srv      *httptest.Server
	tokens   []string
	full     string
	repeat   int
	cutAfter []int

	served   atomic.Int64
	requests atomic.Int32
	mu       sync.Mutex
	partials []string // the partial answer each request continued ("" for none)
}

// answerTokens is an answer of n tokens: words of a screenplay, each with
// the space or line break before it and its number after it.
func answerTokens(n int) []string {
	words := []string{"지수가", "불을", "끈다.", "Minho", "waits,", "비가", "온다.", "☕", "(beat)", "INT."}
	out := make([]string, n)
	out[0] = "1."
	for i := 1; i < n; i++ {
		sep := " "
		if i%12 == 0 {
			sep = "\n\n"
		}
		// Numbered, so that no stretch of the answer repeats another.
		out[i] = fmt.Sprintf("%s%s%d", sep, words[(i*7)%len(words)], i)
	}
	return out
}

func newModel(t *testing.T, tokens []string, repeat int, cutAfter ...int) *model {
	m := &model{t: t, tokens: tokens, full: strings.Join(tokens, ""), repeat: repeat, cutAfter: cutAfter}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *model) serve(w http.ResponseWriter, r *http.Request) {
	n := int(m.requests.Add(1))
	var body struct {
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	io.Copy(io.Discard, r.Body) // so that closing the connection loses nothing sent
	partial := ""
	switch len(body.Messages) {
	case 2:
	case 4:
		if body.Messages[2].Role != "assistant" || body.Messages[3].Role != "user" || !strings.Contains(body.Messages[3].Content, "Continue exactly") {
			http.Error(w, "not a continuation", http.StatusBadRequest)
			return
		}
		partial = body.Messages[2].Content
	default:
		http.Error(w, fmt.Sprintf("%d messages", len(body.Messages)), http.StatusBadRequest)
		return
	}
	m.mu.Lock()
	m.partials = append(m.partials, partial)
	m.mu.Unlock()
	// The model goes on after the partial text's last word.
	partial = strings.TrimRight(partial, " \n")
	if !strings.HasPrefix(m.full, partial) {
		http.Error(w, "the partial answer is not the start of the answer", http.StatusBadRequest)
		return
	}
	// The token the partial text stops in, then back by repeat tokens; a
	// partial that stops inside a token without a repeat gets its rest.
	serve, at := []string{}, 0
	for i, tok := range m.tokens {
		if at+len(tok) > len(partial) {
			from := max(i-m.repeat, 0)
			if from == i {
				serve = append(serve, tok[len(partial)-at:])
			} else {
				serve = append(serve, m.tokens[from:i+1]...)
			}
			serve = append(serve, m.tokens[i+1:]...)
			break
		}
		at += len(tok)
	}
	cut := 0
	if n <= len(m.cutAfter) {
		cut = m.cutAfter[n-1]
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fl := w.(http.Flusher)
	for i, tok := range serve {
		if cut > 0 && i == cut {
			panic(http.ErrAbortHandler) // the connection is closed mid-answer
		}
		b, _ := json.Marshal(tok)
		fmt.Fprintf(w, "data: {\"model\":\"fake\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%s},\"finish_reason\":null}]}\n\n", b)
		fl.Flush()
		m.served.Add(1)
	}
	fmt.Fprint(w, "data: {\"model\":\"fake\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
	fmt.Fprintf(w, "data: {\"model\":\"fake\",\"choices\":[],\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":%d}}\n\n", len(serve))
	fmt.Fprint(w, "data: [DONE]\n\n")
}

func (m *model) generator(t *testing.T, retries int) *generate.OpenAI {
	g, err := generate.NewOpenAI(generate.OpenAIConfig{BaseURL: m.srv.URL + "/v1", Model: "fake", MaxRetries: retries,
		Sleep: (&sleeps{}).sleep})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// told collects what a generator tells.
type told struct {
	mu     sync.Mutex
	deltas []string
}

func (tl *told) text(_ context.Context, d string) error {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.deltas = append(tl.deltas, d)
	return nil
}

func (tl *told) String() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return strings.Join(tl.deltas, "")
}

func noProgress(context.Context, generate.Progress) error { return nil }

func TestOpenAITellsTheTextAsItStreams(t *testing.T) {
	f := newFakeAPI(t, stream("\n\n", "1. INT. 카페 - NIGHT", "\n\n", "지수가 ", "불을 끈다.", "  \n\n"))
	var tl told
	req := request
	req.Text = tl.text
	s, err := newGen(t, f, &sleeps{}, nil).Generate(context.Background(), req, noProgress)
	if err != nil {
		t.Fatal(err)
	}
	want := "1. INT. 카페 - NIGHT\n\n지수가 불을 끈다.\n"
	if s.Script != want || tl.String() != want {
		t.Fatalf("script %q, told %q, want %q", s.Script, tl.deltas, want)
	}
	if s.ResumedFrom != 0 || len(s.Requests) != 1 || s.Requests[0].Usage != s.Usage || s.Requests[0].Estimated {
		t.Fatalf("resumed from %d, requests %+v", s.ResumedFrom, s.Requests)
	}
}

// TestOpenAIRetryContinuesABrokenStream: a stream cut after 700 of 2,000
// tokens is retried as a continuation of what came, not from the start; the
// model repeats three tokens, which are dropped: the script is the answer,
// nothing missing or twice, and the model served the answer once, plus the
// repeat.
func TestOpenAIRetryContinuesABrokenStream(t *testing.T) {
	m := newModel(t, answerTokens(2000), 3, 700)
	var tl told
	req := request
	req.Text = tl.text
	s, err := m.generator(t, 3).Generate(context.Background(), req, noProgress)
	if err != nil {
		t.Fatal(err)
	}
	if s.Script != m.full+"\n" || tl.String() != s.Script {
		t.Fatalf("script differs from the answer (%d vs %d bytes), or from what was told (%d)", len(s.Script), len(m.full)+1, len(tl.String()))
	}
	if served := m.served.Load(); served > 2000+3 {
		t.Fatalf("served %d tokens for an answer of 2,000", served)
	}
	first := strings.Join(m.tokens[:700], "")
	if m.requests.Load() != 2 || m.partials[0] != "" || m.partials[1] != first {
		t.Fatalf("%d requests continuing %d and %d bytes, want the second to continue the first's 700 tokens", m.requests.Load(), len(m.partials[0]), len(m.partials[1]))
	}
	if len(s.Requests) != 2 || s.Requests[0] != (generate.RequestUsage{Usage: generate.Usage{CompletionTokens: 700}, Estimated: true, Error: s.Requests[0].Error}) ||
		s.Requests[1].ResumedFrom != utf8.RuneCountInString(first) || s.Requests[1].Usage != (generate.Usage{PromptTokens: 100, CompletionTokens: 2000 - 700 + 3}) {
		t.Fatalf("requests %+v", s.Requests)
	}
	if s.Usage != (generate.Usage{PromptTokens: 100, CompletionTokens: 2003}) {
		t.Fatalf("usage %+v, want both requests' tokens", s.Usage)
	}
}

// TestOpenAIResumesACheckpoint: a run whose stream broke and that gave up
// (the job's attempt failed) left a checkpoint; the next attempt, given it
// as Resume, asks only for the rest and ends with the whole answer, told
// after the checkpoint with no seam — whether the checkpoint is everything
// the first run told or lags behind it, ends between tokens or inside one.
func TestOpenAIResumesACheckpoint(t *testing.T) {
	for _, tt := range []struct {
		name   string
		repeat int
		lag    int // characters of the told text the checkpoint lacks
	}{
		{"all of it, no repeat", 0, 0},
		{"all of it, a repeat", 3, 0},
		{"lagging, inside a token, no repeat", 0, 150},
		{"lagging, inside a token, a repeat", 5, 151},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := newModel(t, answerTokens(2000), tt.repeat, 900)
			var first told
			req := request
			req.Text = first.text
			s, err := m.generator(t, -1).Generate(context.Background(), req, noProgress)
			if err == nil || s.Script != "" || s.Usage.CompletionTokens != 900 {
				t.Fatalf("the broken run: %v, script %d bytes, usage %+v", err, len(s.Script), s.Usage)
			}
			sofar := []rune(first.String())
			checkpoint := string(sofar[:len(sofar)-tt.lag])

			var second told
			req.Resume, req.Text = checkpoint, second.text
			s, err = m.generator(t, -1).Generate(context.Background(), req, noProgress)
			if err != nil {
				t.Fatal(err)
			}
			if s.Script != m.full+"\n" || checkpoint+second.String() != s.Script {
				t.Fatalf("resumed script is not the answer: %d bytes, want %d; checkpoint and told: %d", len(s.Script), len(m.full)+1, len(checkpoint+second.String()))
			}
			if len(m.partials) != 2 || m.partials[1] != checkpoint {
				t.Fatalf("the resumed request did not continue the checkpoint")
			}
			if s.ResumedFrom != len(sofar)-tt.lag || len(s.Requests) != 1 || s.Requests[0].ResumedFrom != s.ResumedFrom {
				t.Fatalf("resumed from %d, requests %+v", s.ResumedFrom, s.Requests)
			}
			// The answer once, what the checkpoint lacked again, the repeat.
			lagTokens := int64(tt.lag/4 + 2)
			if served := m.served.Load(); served > 2000+lagTokens+int64(tt.repeat)+1 {
				t.Fatalf("served %d tokens for an answer of 2,000", served)
			}
		})
	}
}

// TestOpenAIResumeOfAFinishedScript: a checkpoint that holds the whole
// script (the run died before its completion) is continued by nothing.
func TestOpenAIResumeOfAFinishedScript(t *testing.T) {
	m := newModel(t, answerTokens(50), 0)
	var tl told
	req := request
	req.Resume, req.Text = m.full+"\n", tl.text
	s, err := m.generator(t, -1).Generate(context.Background(), req, noProgress)
	if err != nil || s.Script != m.full+"\n" || len(tl.deltas) != 0 {
		t.Fatalf("script %q told %q (%v)", s.Script, tl.deltas, err)
	}
}

// TestOpenAITextErrorStops: an error from Text (the lease was lost) ends the
// call at once, unretried.
func TestOpenAITextErrorStops(t *testing.T) {
	m := newModel(t, answerTokens(500), 0)
	lost := errors.New("lease lost")
	req := request
	n := 0
	req.Text = func(context.Context, string) error {
		if n++; n == 10 {
			return lost
		}
		return nil
	}
	_, err := m.generator(t, 3).Generate(context.Background(), req, noProgress)
	if !errors.Is(err, lost) || m.requests.Load() != 1 {
		t.Fatalf("err %v after %d requests", err, m.requests.Load())
	}
}
