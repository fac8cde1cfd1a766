package jobhandler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

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

// Generation runs generation jobs: it asks the generator for the script and
// returns the episode to be saved with the job's success.
type Generation struct {
	Generator generate.Generator
	Retriever Retriever // optional
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
