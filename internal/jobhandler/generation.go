package jobhandler

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/scriptgen/scriptgen/internal/access"
	"github.com/scriptgen/scriptgen/internal/generate"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/rag"
	"github.com/scriptgen/scriptgen/internal/runner"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/tracing"
)

// Retriever finds passages of a project's documents for an episode.
type Retriever interface {
	Retrieve(ctx context.Context, projectID string, ep job.EpisodeData) ([]generate.ContextChunk, error)
}

var _ Retriever = (*rag.Retriever)(nil)

// UsageRecorder counts a tenant's LLM tokens per period, for its budgets
// (store.LimitStore).
type UsageRecorder interface {
	AddUsage(ctx context.Context, tenant string, periods []string, tokens int64) error
}

// Generation runs generation jobs: it asks the generator for the script and
// returns the episode to be saved with the job's success. As the generator
// writes, the text is checkpointed under the job's lease (coalesced: every
// FlushEvery or FlushChars characters, whichever comes first, and at the
// end), and an attempt continues the text earlier attempts checkpointed.
type Generation struct {
	Generator generate.Generator
	Retriever Retriever // optional
	// Usage, when set, is told the tokens of every attempt that reports
	// them, against the job's tenant, today and this month (UTC).
	Usage UsageRecorder
	// Now tells the time of a usage record (time.Now when nil).
	Now func() time.Time
	// FlushEvery and FlushChars bound how long, and how many characters,
	// the text waits before it is checkpointed (0: DefaultFlushEvery,
	// DefaultFlushChars).
	FlushEvery time.Duration
	FlushChars int
}

// The default coalescing of checkpoints: a job writes at most about 14 a
// second while text streams in, however many tokens that is, and a token
// waits at most 70 ms for its checkpoint to start. With 200 generations and
// 1,000 readers on 2 cores (bench/README.md, issue 18): 50 ms made twice the
// commits of 100 ms and took the CPU the readers needed (lag p99 325 ms);
// 100 ms, on the phased grid (due), missed by its own wait (lag p99
// 107–110 ms); 70 ms kept the lag p99 at 87–98 ms once the broker kept only
// its feeds' last frames — before, its extra allocation met the collector,
// held to GOMEMLIMIT, in a tail of 126–180 ms.
const (
	DefaultFlushEvery = 70 * time.Millisecond
	DefaultFlushChars = 200
)

var _ runner.LiveHandler = Generation{}

// GenerationResult is what a generation job records as its result.
type GenerationResult struct {
	Title  string `json:"title"`
	Scenes int    `json:"scenes"`
	Model  string `json:"model"`
	// Usage counts the tokens of the attempt that succeeded; earlier
	// attempts' were counted against the tenant as they ran.
	Usage   generate.Usage          `json:"usage"`
	Context []generate.ContextChunk `json:"context_chunks"`
	// Chars is the script's length in characters.
	Chars int `json:"script_chars"`
	// Attempt is the attempt that succeeded; ResumedFrom the characters of
	// the script that earlier attempts wrote and it continued.
	Attempt     int  `json:"attempt"`
	ResumedFrom int  `json:"resumed_from"`
	Restarted   bool `json:"restarted,omitempty"`
	// Requests lists that attempt's model requests, each with its tokens.
	Requests []generate.RequestUsage `json:"requests,omitempty"`
}

// Handle generates the episode's script with progress only: nothing is
// checkpointed, and the script starts from nothing.
func (h Generation) Handle(ctx context.Context, j job.Job, report runner.ReportFunc) (store.Completion, error) {
	return h.HandleLive(ctx, j, report)
}

// HandleLive generates the episode's script, continuing and checkpointing
// the job's script so far through r. The episode's script is the text the
// attempt started from followed by what it wrote — the checkpointed text,
// once the last checkpoint has landed, which it must before the episode is
// returned — unless the generator could not continue it and started over
// (the result says "restarted").
func (h Generation) HandleLive(ctx context.Context, j job.Job, r runner.Reporter) (store.Completion, error) {
	var ep job.EpisodeData
	if err := json.Unmarshal(j.Payload, &ep); err != nil {
		return store.Completion{}, fmt.Errorf("%w: payload is not episode data: %v", runner.ErrPermanent, err)
	}
	resume, err := r.ScriptSoFar(ctx)
	if err != nil {
		return store.Completion{}, fmt.Errorf("read the script so far: %w", err)
	}
	req := generate.Request{
		JobID:     j.ID,
		ProjectID: j.ProjectID,
		Episode:   ep,
		Context:   []generate.ContextChunk{},
		Resume:    resume,
	}
	if h.Retriever != nil && !j.NoDocuments {
		chunks, err := h.Retriever.Retrieve(ctx, j.ProjectID, ep)
		if err != nil {
			return store.Completion{}, fmt.Errorf("retrieve context: %w", err)
		}
		req.Context = chunks
	}
	cp := newCheckpointer(ctx, r, j.ID, resume, cmp.Or(h.FlushEvery, DefaultFlushEvery), cmp.Or(h.FlushChars, DefaultFlushChars))
	req.Text = cp.add
	genCtx, span := tracing.Tracer().Start(ctx, tracing.SpanGenerate, trace.WithAttributes(attribute.Int("scriptgen.generate.context_chunks", len(req.Context))))
	script, err := h.Generator.Generate(genCtx, req, func(ctx context.Context, p generate.Progress) error {
		return cp.progress(ctx, store.Progress{Percent: p.Percent, Stage: p.Stage, Message: p.Message})
	})
	tracing.End(span, err)
	h.recordUsage(ctx, j, script.Usage)
	if err != nil {
		// What was written is kept for the next attempt.
		_ = cp.close(ctx)
		if errors.Is(err, generate.ErrRejected) {
			return store.Completion{}, fmt.Errorf("%w: %w", runner.ErrPermanent, err)
		}
		return store.Completion{}, err
	}
	live := resume + cp.written()
	restarted := script.Restarted
	switch {
	case !restarted && strings.HasPrefix(script.Script, live):
		// A generator that tells less than its script (or nothing) has
		// the rest checkpointed now.
		err = cp.add(ctx, script.Script[len(live):])
	case cp.written() == "":
		restarted = true // the generator set the checkpoint aside
	default:
		err = errors.New("the generator's script does not continue the text it reported")
	}
	if cerr := cp.close(ctx); err == nil {
		err = cerr
	}
	if errors.Is(err, store.ErrScriptTooLong) {
		return store.Completion{}, fmt.Errorf("%w: %w", runner.ErrPermanent, err)
	}
	if err != nil {
		return store.Completion{}, fmt.Errorf("checkpoint the script: %w", err)
	}
	res := GenerationResult{
		Title:       script.Title,
		Scenes:      script.Scenes,
		Model:       script.Model,
		Usage:       script.Usage,
		Context:     req.Context,
		Chars:       utf8.RuneCountInString(script.Script),
		Attempt:     j.Attempt,
		ResumedFrom: utf8.RuneCountInString(resume),
		Restarted:   restarted,
		Requests:    script.Requests,
	}
	if restarted {
		res.ResumedFrom = 0
	}
	result, err := json.Marshal(res)
	if err != nil {
		return store.Completion{}, err
	}
	return store.Completion{Result: result, Episode: &job.Episode{
		ProjectID: j.ProjectID,
		Title:     script.Title,
		Script:    script.Script,
		JobID:     j.ID,
	}}, nil
}

// recordUsage counts an attempt's tokens against the job's tenant. It is
// best effort: a lost count must not fail (and so pay again for) a script
// already written; the budget is a guard, not a bill.
func (h Generation) recordUsage(ctx context.Context, j job.Job, u generate.Usage) {
	tokens := int64(u.PromptTokens + u.CompletionTokens)
	if h.Usage == nil || tokens <= 0 {
		return
	}
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	t := now().UTC()
	tenant, _ := access.Split(j.ProjectID)
	_ = h.Usage.AddUsage(context.WithoutCancel(ctx), tenant, []string{t.Format("2006-01-02"), t.Format("2006-01")}, tokens)
}
