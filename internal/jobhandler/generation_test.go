package jobhandler_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/scriptgen/scriptgen/internal/generate"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/jobhandler"
	"github.com/scriptgen/scriptgen/internal/runner"
	"github.com/scriptgen/scriptgen/internal/store"
)

// chunks is a retriever that always finds the same passage.
type chunks []generate.ContextChunk

func (c chunks) Retrieve(context.Context, string, job.EpisodeData) ([]generate.ContextChunk, error) {
	return c, nil
}

// rejecting is a generator whose every request the model API refuses.
type rejecting struct{}

func (rejecting) Generate(context.Context, generate.Request, generate.ProgressFunc) (generate.Script, error) {
	return generate.Script{}, fmt.Errorf("%w: content policy", generate.ErrRejected)
}

func noReport(context.Context, store.Progress) error { return nil }

func TestGenerationReturnsTheEpisodeWithItsContext(t *testing.T) {
	h := jobhandler.Generation{
		Generator: generate.NewTemplate(generate.TemplateConfig{}),
		Retriever: chunks{{DocumentID: "d1", ChunkID: 7, Text: "지수는 바리스타다."}},
	}
	j := job.Job{ID: "j1", ProjectID: "p1", Kind: job.KindGeneration, Payload: json.RawMessage(`{"title":"비 오는 밤","characters":["지수"]}`)}
	c, err := h.Handle(context.Background(), j, noReport)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Title   string                  `json:"title"`
		Context []generate.ContextChunk `json:"context_chunks"`
	}
	if err := json.Unmarshal(c.Result, &res); err != nil || res.Title != "비 오는 밤" || len(res.Context) != 1 || res.Context[0].ChunkID != 7 {
		t.Fatalf("result %s: %v", c.Result, err)
	}
	if c.Episode == nil || c.Episode.JobID != "j1" || c.Episode.ProjectID != "p1" || !strings.Contains(c.Episode.Script, "바리스타") {
		t.Fatalf("episode %+v", c.Episode)
	}

	// A job submitted without documents gets none, even with a retriever.
	j.NoDocuments = true
	if c, err = h.Handle(context.Background(), j, noReport); err != nil || strings.Contains(string(c.Result), `"chunk_id"`) {
		t.Fatalf("without documents: %s %v", c.Result, err)
	}
}

func TestGenerationFailuresThatRetryingCannotFixArePermanent(t *testing.T) {
	for name, tc := range map[string]struct {
		gen     generate.Generator
		payload string
	}{
		"payload not episode data": {generate.Noop{}, `[1]`},
		"request rejected":         {rejecting{}, `{"title":"t"}`},
	} {
		j := job.Job{ID: "j1", ProjectID: "p1", Kind: job.KindGeneration, Payload: json.RawMessage(tc.payload)}
		_, err := jobhandler.Generation{Generator: tc.gen}.Handle(context.Background(), j, noReport)
		if !errors.Is(err, runner.ErrPermanent) {
			t.Errorf("%s: %v, want a permanent failure", name, err)
		}
	}
}
