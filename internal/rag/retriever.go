package rag

import (
	"context"
	"fmt"

	"github.com/scriptgen/scriptgen/internal/generate"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// ChunkSearcher is the part of the store the retriever needs.
type ChunkSearcher interface {
	SearchChunks(ctx context.Context, projectID string, terms []string, limit int) ([]store.ChunkHit, error)
}

// Retriever finds the chunks of a project's documents that an episode's
// title, synopsis and characters speak of.
type Retriever struct {
	store ChunkSearcher
	topK  int
}

// NewRetriever builds a retriever that returns at most topK chunks (5 when
// topK is not positive).
func NewRetriever(st ChunkSearcher, topK int) *Retriever {
	if topK <= 0 {
		topK = 5
	}
	return &Retriever{store: st, topK: topK}
}

// Retrieve returns the best chunks for the episode, best first; none when the
// project has no documents or nothing matches.
func (r *Retriever) Retrieve(ctx context.Context, projectID string, ep job.EpisodeData) ([]generate.ContextChunk, error) {
	terms := episodeTerms(ep)
	if len(terms) == 0 {
		return []generate.ContextChunk{}, nil
	}
	hits, err := r.store.SearchChunks(ctx, projectID, terms, r.topK)
	if err != nil {
		return nil, fmt.Errorf("search chunks of %s: %w", projectID, err)
	}
	out := make([]generate.ContextChunk, len(hits))
	for i, h := range hits {
		out[i] = generate.ContextChunk{DocumentID: h.DocumentID, ChunkID: h.ChunkID, Text: h.Text}
	}
	return out, nil
}
