package scriptkit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FakeConfig shapes the fake model's answers and pace.
type FakeConfig struct {
	// Tokens is the length of every answer (default 2,000).
	Tokens int
	// FirstToken is the wait before the first token of every request (a
	// model's time to first token); Every the wait between two tokens.
	FirstToken time.Duration
	Every      time.Duration
}

// Fake is an OpenAI-compatible chat-completions server that streams, for an
// episode, its Answer (keyed by the episode's title, read from the prompt),
// one token per chunk. A request that carries a partial answer as an
// assistant message followed by a user message (the generator's "continue")
// gets only the rest of the answer: the fake finds where the partial ends in
// the whole answer. It counts the tokens it serves, per title and in all,
// and logs when it sent each token.
//
// It answers POST …/chat/completions with "stream": true as
// `data: {"choices":[{"delta":{"content":"…"}}]}` chunks, a chunk with
// finish_reason "stop", a usage chunk when stream_options.include_usage is
// set, and `data: [DONE]`.
type Fake struct {
	cfg FakeConfig

	served     atomic.Int64
	requests   atomic.Int64
	mismatches atomic.Int64

	mu      sync.Mutex
	answers map[string]*Answer
	keys    map[string]*keyLog
}

// keyLog is what the fake served of one title's answer.
type keyLog struct {
	served   int
	sent     []int64 // unix nanoseconds of each token's last send
	requests []Request
	waiters  []waiter
}

type waiter struct {
	n  int
	ch chan struct{}
}

// Request is one request the fake answered.
type Request struct {
	// From is the token the answer started at (0: from the beginning; the
	// partial answer's length in tokens when continuing).
	From int
	// Partial is the length in characters of the partial answer sent.
	Partial int
	// Served counts the tokens sent (until the client went away).
	Served int
	// Prompt estimates the prompt's tokens: the words of its messages, the
	// partial answer's included.
	Prompt int
	// Mismatch: the partial answer was not the start of the answer.
	Mismatch bool
	// At is when the request came.
	At time.Time
}

// NewFake builds a fake model.
func NewFake(cfg FakeConfig) *Fake {
	if cfg.Tokens <= 0 {
		cfg.Tokens = 2000
	}
	return &Fake{cfg: cfg, answers: map[string]*Answer{}, keys: map[string]*keyLog{}}
}

// Answer is the whole answer the fake gives for an episode title.
func (f *Fake) Answer(title string) *Answer {
	f.mu.Lock()
	a := f.answers[title]
	f.mu.Unlock()
	if a != nil {
		return a
	}
	a = NewAnswer(title, f.cfg.Tokens)
	f.mu.Lock()
	defer f.mu.Unlock()
	if b := f.answers[title]; b != nil {
		return b
	}
	f.answers[title] = a
	return a
}

// Served counts every token served, across requests and titles.
func (f *Fake) Served() int64 { return f.served.Load() }

// Requests counts the requests answered.
func (f *Fake) Requests() int64 { return f.requests.Load() }

// Mismatches counts the requests whose partial answer did not start the
// answer (the fake then served the whole answer).
func (f *Fake) Mismatches() int64 { return f.mismatches.Load() }

// ServedFor counts the tokens served of title's answer, across requests.
func (f *Fake) ServedFor(title string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if k := f.keys[title]; k != nil {
		return k.served
	}
	return 0
}

// RequestsFor lists the requests for title's answer, in order.
func (f *Fake) RequestsFor(title string) []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	if k := f.keys[title]; k != nil {
		return append([]Request(nil), k.requests...)
	}
	return nil
}

// SentAt is when token i of title's answer was last sent (zero: never).
func (f *Fake) SentAt(title string, i int) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.keys[title]
	if k == nil || i < 0 || i >= len(k.sent) || k.sent[i] == 0 {
		return time.Time{}
	}
	return time.Unix(0, k.sent[i])
}

// SentTimes is when each token of title's answer was last sent (zero:
// never), in unix nanoseconds.
func (f *Fake) SentTimes(title string) []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if k := f.keys[title]; k != nil {
		return append([]int64(nil), k.sent...)
	}
	return nil
}

// WhenServed is closed once n tokens of title's answer have been served.
func (f *Fake) WhenServed(title string, n int) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.key(title)
	ch := make(chan struct{})
	if k.served >= n {
		close(ch)
		return ch
	}
	k.waiters = append(k.waiters, waiter{n, ch})
	return ch
}

// key is title's log; with f.mu held.
func (f *Fake) key(title string) *keyLog {
	k := f.keys[title]
	if k == nil {
		k = &keyLog{sent: make([]int64, f.cfg.Tokens)}
		f.keys[title] = k
	}
	return k
}

// sent records token i of title's answer as sent now, by request r.
func (f *Fake) sent(title string, i, r int) {
	now := time.Now().UnixNano()
	f.served.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.key(title)
	k.served++
	k.requests[r].Served++
	if i < len(k.sent) {
		k.sent[i] = now
	}
	kept := k.waiters[:0]
	for _, w := range k.waiters {
		if k.served >= w.n {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	k.waiters = kept
}

type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
	Stream        bool `json:"stream"`
	StreamOptions struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

// Title reads the episode's title from a generator's prompt: the line
// "Episode title: …" of its user message.
func Title(prompt string) string {
	for line := range strings.Lines(prompt) {
		if t, ok := strings.CutPrefix(line, "Episode title: "); ok {
			return strings.TrimRight(t, "\r\n")
		}
	}
	return ""
}

// ServeHTTP answers POST …/chat/completions.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/chat/completions") {
		http.Error(w, `{"error":{"message":"not found"}}`, http.StatusNotFound)
		return
	}
	var req chatRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || !req.Stream || len(req.Messages) < 2 {
		http.Error(w, `{"error":{"message":"want a streamed chat completion"}}`, http.StatusBadRequest)
		return
	}
	at := time.Now()
	f.requests.Add(1)
	title, partial, promptWords := "", "", 0
	for i, m := range req.Messages {
		promptWords += len(strings.Fields(m.Content))
		if m.Role == "user" && title == "" {
			title = Title(m.Content)
		}
		if m.Role == "assistant" && i == len(req.Messages)-2 && req.Messages[i+1].Role == "user" {
			partial = m.Content
		}
	}
	a := f.Answer(title)
	// Where the partial answer ends: the tokens before it were served
	// already; a token it ends inside is served from there.
	from, head, mismatch := 0, "", false
	if partial != "" {
		if !strings.HasPrefix(a.Text, partial) {
			mismatch = true
			f.mismatches.Add(1)
		} else {
			from = sort.SearchInts(a.ByteEnds, len(partial))
			if from < len(a.Tokens) && a.ByteEnds[from] == len(partial) {
				from++
			} else if from < len(a.Tokens) {
				head = a.Text[len(partial):a.ByteEnds[from]]
			}
		}
	}
	f.mu.Lock()
	k := f.key(title)
	k.requests = append(k.requests, Request{From: from, Partial: len([]rune(partial)), Prompt: promptWords, Mismatch: mismatch, At: at})
	reqNo := len(k.requests) - 1
	f.mu.Unlock()

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	ctx := r.Context()
	send := func(v any) bool {
		b, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	type delta struct {
		Role    string `json:"role,omitempty"`
		Content string `json:"content"`
	}
	chunk := func(d delta, finish *string) map[string]any {
		return map[string]any{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": "fake-model",
			"choices": []map[string]any{{"index": 0, "delta": d, "finish_reason": finish}}}
	}
	if !send(chunk(delta{Role: "assistant"}, nil)) || !wait(ctx, f.cfg.FirstToken) {
		return
	}
	completion := 0
	for i := from; i < len(a.Tokens); i++ {
		if i > from && !wait(ctx, f.cfg.Every) {
			return
		}
		text := a.Tokens[i]
		if i == from && head != "" {
			text = head
		}
		if !send(chunk(delta{Content: text}, nil)) {
			return
		}
		completion++
		f.sent(title, i, reqNo)
	}
	stop := "stop"
	if !send(chunk(delta{}, &stop)) {
		return
	}
	if req.StreamOptions.IncludeUsage {
		prompt := promptWords
		send(map[string]any{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": "fake-model", "choices": []any{},
			"usage": map[string]int{"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}})
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	rc.Flush()
}

// wait sleeps d, or until ctx ends (false).
func wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
