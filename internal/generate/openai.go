package generate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/scriptgen/scriptgen/internal/clock"
)

// OpenAIConfig configures the OpenAI-compatible generator. The same settings
// reach OpenAI, vLLM, llama.cpp server and Ollama (each serves
// POST {BaseURL}/chat/completions).
type OpenAIConfig struct {
	// BaseURL is the API root, e.g. https://api.openai.com/v1 or
	// http://localhost:11434/v1.
	BaseURL string
	// APIKey is sent as a bearer token when set; local servers need none.
	APIKey string
	Model  string
	// Timeout bounds one attempt, request and stream together (default 10m).
	Timeout time.Duration
	// IdleTimeout bounds the silence between two reads of the stream; a
	// stalled stream is abandoned and retried (default 60s).
	IdleTimeout time.Duration
	// MaxRetries is how many times a rate-limited (429), failed (5xx),
	// stalled or broken attempt is tried again (default 3; negative: none).
	MaxRetries int
	// Backoff is the first retry's delay, doubled for each next one, when the
	// server gives no Retry-After (default 1s); MaxBackoff caps every delay,
	// Retry-After included (default 60s).
	Backoff    time.Duration
	MaxBackoff time.Duration
	// MaxTokens, when set, bounds the completion.
	MaxTokens int
	// ExpectedTokens is the completion length progress is measured against
	// (default 2000).
	ExpectedTokens int
	// HTTPClient defaults to a client without an overall timeout (the
	// attempt's context carries it).
	HTTPClient *http.Client
	// Sleep waits for d or until ctx ends; tests inject one that does not sleep.
	Sleep func(ctx context.Context, d time.Duration) error
}

// OpenAI generates scripts with an OpenAI-compatible chat-completions API,
// streaming the answer and turning it into progress.
type OpenAI struct {
	cfg      OpenAIConfig
	endpoint string
}

// ErrRejected marks a request the API refused for a reason that retrying
// cannot fix (400, 401, 403, 404…): a job should fail at once.
var ErrRejected = errors.New("request rejected by the model API")

// ErrStalled is the cause of an attempt whose stream went silent for longer
// than the idle timeout.
var ErrStalled = errors.New("stream stalled")

// NewOpenAI checks the configuration and builds the generator.
func NewOpenAI(cfg OpenAIConfig) (*OpenAI, error) {
	u, err := url.Parse(strings.TrimSpace(cfg.BaseURL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("OPENAI_BASE_URL %q must be an http(s) URL such as https://api.openai.com/v1", cfg.BaseURL)
	}
	if strings.TrimSpace(cfg.Model) == "" {
		return nil, errors.New("OPENAI_MODEL is required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Minute
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 60 * time.Second
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = 3
	}
	cfg.MaxRetries = max(cfg.MaxRetries, 0)
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 60 * time.Second
	}
	if cfg.ExpectedTokens <= 0 {
		cfg.ExpectedTokens = 2000
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Sleep == nil {
		cfg.Sleep = clock.Sleep
	}
	return &OpenAI{cfg: cfg, endpoint: strings.TrimRight(u.String(), "/") + "/chat/completions"}, nil
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatRequest struct {
	Model         string        `json:"model"`
	Messages      []chatMessage `json:"messages"`
	Stream        bool          `json:"stream"`
	StreamOptions struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens int `json:"max_tokens,omitempty"`
}

type chatChunk struct {
	Model   string `json:"model"`
	Choices []struct {
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Error *apiError `json:"error"`
}

type apiError struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Code    any    `json:"code"`
}

// attemptError is one failed attempt; retryAfter is the server's wish.
type attemptError struct {
	err        error
	retryable  bool
	retryAfter time.Duration
}

func (e *attemptError) Error() string { return e.err.Error() }
func (e *attemptError) Unwrap() error { return e.err }

const systemPrompt = `You are a professional TV drama screenwriter. Write the complete script of one episode in screenplay form: ` +
	`numbered scene headings (e.g. "1. INT. 카페 - NIGHT"), action lines, and dialogue under character cues. ` +
	`Write in the language of the episode's title and synopsis. Stay consistent with the series notes you are given. ` +
	`Answer with the script only.`

// continuePrompt follows the text written so far when a request resumes it.
const continuePrompt = "Continue exactly from where the text stops; do not repeat anything."

// messages builds the prompt: the episode, and the retrieved passages of the
// project's documents as series notes. A request that resumes a script adds
// the text written so far as the assistant's answer and asks it to go on:
// plain chat messages, which every OpenAI-compatible server takes.
func messages(req Request, sofar string) []chatMessage {
	msgs := prompt(req)
	if sofar != "" {
		msgs = append(msgs, chatMessage{Role: "assistant", Content: sofar}, chatMessage{Role: "user", Content: continuePrompt})
	}
	return msgs
}

// prompt is the system message and the episode's.
func prompt(req Request) []chatMessage {
	var b strings.Builder
	ep := req.Episode
	fmt.Fprintf(&b, "Episode title: %s\n", ep.Title)
	if ep.Synopsis != "" {
		fmt.Fprintf(&b, "Synopsis: %s\n", ep.Synopsis)
	}
	if len(ep.Characters) > 0 {
		b.WriteString("Characters:\n")
		for _, c := range ep.Characters {
			if c.Description != "" {
				fmt.Fprintf(&b, "- %s: %s\n", c.Name, c.Description)
			} else {
				fmt.Fprintf(&b, "- %s\n", c.Name)
			}
		}
	}
	if len(req.Context) > 0 {
		b.WriteString("\nSeries notes (excerpts from the project's documents):\n")
		for i, c := range req.Context {
			fmt.Fprintf(&b, "[%d]\n%s\n\n", i+1, c.Text)
		}
	}
	return []chatMessage{{Role: "system", Content: systemPrompt}, {Role: "user", Content: b.String()}}
}

// Generate streams the script from the API, retrying rate limits, server
// errors and stalled or broken streams with backoff, and tells req.Text the
// text as it arrives. Every request continues the text written so far —
// req.Resume and what earlier requests of this call received — so a retry
// after a broken stream asks only for the rest, and the script is that text
// followed by the continuation, with no seam (writer.go). On an error the
// returned Script holds no text but counts the tokens spent.
func (o *OpenAI) Generate(ctx context.Context, req Request, progress ProgressFunc) (Script, error) {
	w := newWriter(ctx, req, progress, o.cfg.ExpectedTokens)
	out := Script{Title: req.Episode.Title, Model: o.cfg.Model, ResumedFrom: utf8.RuneCountInString(req.Resume)}
	msg := fmt.Sprintf("asking %s with %d context chunks", o.cfg.Model, len(req.Context))
	if req.Resume != "" {
		msg += fmt.Sprintf(" to continue %d characters", out.ResumedFrom)
	}
	if err := progress(ctx, Progress{Percent: 5, Stage: "prompt", Message: msg}); err != nil {
		return Script{}, err
	}
	for attempt := 0; ; attempt++ {
		sofar := w.sofar.String()
		body := chatRequest{
			Model:     o.cfg.Model,
			Messages:  messages(req, sofar),
			Stream:    true,
			MaxTokens: o.cfg.MaxTokens,
		}
		body.StreamOptions.IncludeUsage = true
		payload, err := json.Marshal(body)
		if err != nil {
			return Script{}, err
		}
		a := &answer{w: w}
		w.begin()
		err = o.attempt(ctx, payload, a)
		used := a.used(utf8.RuneCountInString(sofar))
		if a.model != "" {
			out.Model = a.model
		}
		if err != nil {
			used.Error = err.Error()
		}
		out.Requests = append(out.Requests, used)
		out.Usage = out.Usage.Add(used.Usage)
		if err == nil {
			out.Script = w.sofar.String()
			out.Scenes = countScenes(out.Script)
			return out, nil
		}
		var ae *attemptError
		if ctx.Err() != nil || !errors.As(err, &ae) {
			return spent(out), err
		}
		if !ae.retryable {
			return spent(out), fmt.Errorf("%w: %w", ErrRejected, err)
		}
		if attempt >= o.cfg.MaxRetries {
			return spent(out), fmt.Errorf("model API failed after %d attempts: %w", attempt+1, err)
		}
		delay := ae.retryAfter
		if delay <= 0 {
			delay = o.cfg.Backoff << attempt
		}
		delay = min(delay, o.cfg.MaxBackoff)
		retrying := Progress{
			Percent: 5,
			Stage:   "retrying",
			Message: fmt.Sprintf("attempt %d failed (%v); retrying in %s", attempt+1, err, delay),
		}
		if err := progress(ctx, retrying); err != nil {
			return spent(out), err
		}
		if err := o.cfg.Sleep(ctx, delay); err != nil {
			return spent(out), err
		}
	}
}

// spent is what a failed call returns: no script, but the tokens it cost.
func spent(s Script) Script {
	return Script{Title: s.Title, Model: s.Model, Usage: s.Usage, ResumedFrom: s.ResumedFrom, Requests: s.Requests}
}

// attempt makes one request and reads its stream to the end into a.
func (o *OpenAI) attempt(ctx context.Context, payload []byte, a *answer) error {
	actx, idle, stop := o.attemptContext(ctx)
	defer stop()
	hreq, err := o.newRequest(actx, payload)
	if err != nil {
		return err
	}
	resp, err := o.cfg.HTTPClient.Do(hreq)
	if err != nil {
		return o.broken(ctx, actx, fmt.Errorf("request to %s: %w", o.endpoint, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return statusError(resp)
	}
	if err := readEvents(resp.Body, func() { idle.Reset(o.cfg.IdleTimeout) }, a.event); err != nil {
		return o.streamError(ctx, actx, err)
	}
	if err := a.end(); err != nil {
		return o.streamError(ctx, actx, err)
	}
	return nil
}

// attemptContext bounds one attempt by the attempt timeout, and by the idle
// timeout: its timer cancels the attempt when the server goes silent, and
// every read of the stream resets it. stop releases both.
func (o *OpenAI) attemptContext(ctx context.Context) (actx context.Context, idle *time.Timer, stop func()) {
	actx, cancel := context.WithCancelCause(ctx)
	actx, cancelTimeout := context.WithTimeoutCause(actx, o.cfg.Timeout, fmt.Errorf("attempt took longer than %s", o.cfg.Timeout))
	idle = time.AfterFunc(o.cfg.IdleTimeout, func() {
		cancel(fmt.Errorf("%w: nothing received for %s", ErrStalled, o.cfg.IdleTimeout))
	})
	return actx, idle, func() {
		idle.Stop()
		cancelTimeout()
		cancel(nil)
	}
}

// newRequest is the streaming chat-completions request of payload.
func (o *OpenAI) newRequest(ctx context.Context, payload []byte) (*http.Request, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, o.endpoint, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "text/event-stream")
	if o.cfg.APIKey != "" {
		hreq.Header.Set("Authorization", "Bearer "+o.cfg.APIKey)
	}
	return hreq, nil
}

// streamError classifies a stream that ended in an error: the progress or
// text callback's (the job lost its lease or was cancelled: stop, do not retry),
// a chunk's that was refused, or the stream's own.
func (o *OpenAI) streamError(ctx, actx context.Context, err error) error {
	var pe progressError
	if errors.As(err, &pe) {
		return pe.err
	}
	var ae *attemptError
	if errors.As(err, &ae) {
		return err
	}
	return o.broken(ctx, actx, fmt.Errorf("stream broke: %w", err))
}

// answer is what one request has read of its streamed answer; its text
// goes to the call's writer as it comes.
type answer struct {
	w        *writer
	usage    *Usage // as the server reported it
	model    string
	deltas   int
	finished bool // a choice gave its finish reason
	done     bool // the server sent [DONE]; what follows is ignored
}

// event takes the data of one server-sent event.
func (a *answer) event(data []byte) error {
	if a.done {
		return nil
	}
	if string(data) == "[DONE]" {
		a.done = true
		return nil
	}
	var c chatChunk
	if err := json.Unmarshal(data, &c); err != nil {
		return &attemptError{err: fmt.Errorf("malformed stream chunk %.80q: %v", data, err), retryable: true}
	}
	if c.Error != nil {
		return &attemptError{err: fmt.Errorf("model API error in stream: %s", c.Error.Message), retryable: true}
	}
	if c.Model != "" {
		a.model = c.Model
	}
	if c.Usage != nil {
		a.usage = &Usage{PromptTokens: c.Usage.PromptTokens, CompletionTokens: c.Usage.CompletionTokens}
	}
	for _, ch := range c.Choices {
		if ch.Delta.Content != "" {
			a.deltas++
			if err := a.w.add(ch.Delta.Content); err != nil {
				return err
			}
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			a.finished = true
		}
	}
	return nil
}

// end finishes the answer once its stream has ended, or says why it is none.
func (a *answer) end() error {
	if !a.done && !a.finished {
		return &attemptError{err: errors.New("stream ended before the answer was complete"), retryable: true}
	}
	return a.w.end()
}

// used is the request's usage: the server's, or an estimate when it gave
// none (a broken stream).
func (a *answer) used(resumedFrom int) RequestUsage {
	switch {
	case a.usage != nil:
		return RequestUsage{ResumedFrom: resumedFrom, Usage: *a.usage}
	case a.deltas == 0:
		return RequestUsage{ResumedFrom: resumedFrom}
	}
	return RequestUsage{ResumedFrom: resumedFrom, Usage: Usage{CompletionTokens: a.deltas}, Estimated: true}
}

// broken classifies an attempt cut short: by the caller (returned as is), by
// a stall or the attempt timeout (retryable, with the cause), or by the network.
func (o *OpenAI) broken(ctx, actx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if cause := context.Cause(actx); actx.Err() != nil && cause != nil {
		return &attemptError{err: cause, retryable: true}
	}
	return &attemptError{err: err, retryable: true}
}

// progressError carries the error of the progress or text callback out of
// the stream.
type progressError struct{ err error }

func (e progressError) Error() string { return e.err.Error() }

// readEvents reads server-sent events, calling onRead after every line and
// event with the data of each event (its data lines joined by newlines). The
// data is valid only until event returns: lines are read in place and the
// data gathered in one buffer reused from event to event, since a line and
// an event per token were, with 200 generations streaming, most of serve's
// allocations (bench/README.md, issue 18).
func readEvents(r io.Reader, onRead func(), event func(data []byte) error) error {
	// A line longer than the buffer is gathered in long, so the buffer is
	// sized for the usual line (a delta of a few tokens), not the longest:
	// one is held by every generation running (200 of 64 KiB were 12.8 MiB
	// of serve's heap).
	br := bufio.NewReaderSize(r, 4<<10)
	var data, long []byte
	hasData := false
	flush := func() error {
		if !hasData {
			return nil
		}
		hasData = false
		err := event(data)
		data = data[:0]
		return err
	}
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if len(line) > 0 {
			onRead()
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if ferr := flush(); ferr != nil {
				return ferr
			}
		case line[0] == ':':
			// A comment (keep-alive).
		case bytes.HasPrefix(line, dataField):
			if hasData {
				data = append(data, '\n')
			}
			hasData = true
			data = append(data, bytes.TrimPrefix(line[len(dataField):], []byte(" "))...)
		}
		if cap(long) > 64<<10 {
			long = nil // a rare long line is not kept for the rest of the stream
		}
		if err == io.EOF {
			return flush()
		}
		if err != nil {
			return err
		}
	}
}

var dataField = []byte("data:")

// statusError reads an error answer: 429 and 5xx are retried (after
// Retry-After when given), anything else is the request's fault.
func statusError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<10))
	msg := strings.TrimSpace(string(raw))
	var body struct {
		Error *apiError `json:"error"`
	}
	if json.Unmarshal(raw, &body) == nil && body.Error != nil && body.Error.Message != "" {
		msg = body.Error.Message
	}
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	err := fmt.Errorf("model API answered %s: %s", resp.Status, msg)
	retryable := resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout
	return &attemptError{
		err:        err,
		retryable:  retryable,
		retryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 {
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

var openAISceneHeading = regexp.MustCompile(`(?m)^\s*(?:\d+\.\s*)?(?:INT\.|EXT\.|INT/EXT\.|S#\s*\d+|씬\s*\d+)`)

func countScenes(script string) int { return len(openAISceneHeading.FindAllStringIndex(script, -1)) }
