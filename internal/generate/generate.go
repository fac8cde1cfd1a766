// Package generate owns script generation: the Generator interface that every
// backend calls, and the generators behind it. A generator only computes; saving
// its output is the job's effect and happens in the runner's completing
// transaction (invariant 3).
package generate

import (
	"context"

	"github.com/scriptgen/scriptgen/internal/job"
)

// Request is what a generator is asked to write.
type Request struct {
	JobID     string
	ProjectID string
	Episode   job.EpisodeData
	// Context holds retrieved passages of the project's documents, best first.
	Context []ContextChunk
}

// ContextChunk is one retrieved passage given to the generator.
type ContextChunk struct {
	DocumentID string `json:"document_id"`
	ChunkID    int64  `json:"chunk_id"`
	Text       string `json:"-"`
}

// Progress is reported by a generator as it goes.
type Progress struct {
	Percent int
	Stage   string
	Message string
}

// ProgressFunc receives progress; an error from it (the job lost its lease or was
// cancelled) should make the generator stop.
type ProgressFunc func(ctx context.Context, p Progress) error

// Usage counts tokens where the generator knows them.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

// Script is a generator's output.
type Script struct {
	Title  string `json:"title"`
	Script string `json:"script"`
	Scenes int    `json:"scenes"`
	Model  string `json:"model"`
	Usage  Usage  `json:"usage"`
}

// Generator writes the script of one episode.
type Generator interface {
	Generate(ctx context.Context, req Request, progress ProgressFunc) (Script, error)
}
