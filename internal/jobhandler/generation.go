package jobhandler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/scriptgen/scriptgen/internal/access"
	"github.com/scriptgen/scriptgen/internal/generate"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/rag"
	"github.com/scriptgen/scriptgen/internal/runner"
	"github.com/scriptgen/scriptgen/internal/store"
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
// returns the episode to be saved with the job's success.
type Generation struct {
	Generator generate.Generator
	Retriever Retriever // optional
	// Usage, when set, is told the tokens of every attempt that reports
	// them, against the job's tenant, today and this month (UTC).
	Usage UsageRecorder
	// Now tells the time of a usage record (time.Now when nil).
	Now func() time.Time
}

var _ runner.Handler = Generation{}

// Handle generates the episode's script.
func (h Generation) Handle(ctx context.Context, j job.Job, report runner.ReportFunc) (store.Completion, error) {
	var ep job.EpisodeData
	if err := json.Unmarshal(j.Payload, &ep); err != nil {
		return store.Completion{}, fmt.Errorf("%w: payload is not episode data: %v", runner.ErrPermanent, err)
	}
	req := generate.Request{
		JobID:     j.ID,
		ProjectID: j.ProjectID,
		Episode:   ep,
		Context:   []generate.ContextChunk{},
	}
	if h.Retriever != nil && !j.NoDocuments {
		chunks, err := h.Retriever.Retrieve(ctx, j.ProjectID, ep)
		if err != nil {
			return store.Completion{}, fmt.Errorf("retrieve context: %w", err)
		}
		req.Context = chunks
	}
	script, err := h.Generator.Generate(ctx, req, func(ctx context.Context, p generate.Progress) error {
		return report(ctx, store.Progress{Percent: p.Percent, Stage: p.Stage, Message: p.Message})
	})
	h.recordUsage(ctx, j, script.Usage)
	if errors.Is(err, generate.ErrRejected) {
		return store.Completion{}, fmt.Errorf("%w: %w", runner.ErrPermanent, err)
	}
	if err != nil {
		return store.Completion{}, err
	}
	result, err := json.Marshal(struct {
		Title   string                  `json:"title"`
		Scenes  int                     `json:"scenes"`
		Model   string                  `json:"model"`
		Usage   generate.Usage          `json:"usage"`
		Context []generate.ContextChunk `json:"context_chunks"`
		Chars   int                     `json:"script_chars"`
	}{
		Title:   script.Title,
		Scenes:  script.Scenes,
		Model:   script.Model,
		Usage:   script.Usage,
		Context: req.Context,
		Chars:   len([]rune(script.Script)),
	})
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
