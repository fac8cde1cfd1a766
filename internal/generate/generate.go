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
	// Resume is the text earlier attempts wrote and checkpointed: the
	// generator continues it instead of starting over, so that the script
	// it returns is Resume followed by what it writes now.
	Resume string
	// Text, when set, is told the script's text as it is written, a delta
	// at a time: Resume followed by every delta, in order, is the text so
	// far, and once Generate succeeds it is a prefix of the returned Script
	// (all of it, for the generators here). An error from it (the job lost
	// its lease or was cancelled) should make the generator stop.
	Text TextFunc
}

// TextFunc receives a piece of the script's text as it is written.
type TextFunc func(ctx context.Context, delta string) error

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

// Add adds the tokens of u.
func (u Usage) Add(v Usage) Usage {
	return Usage{PromptTokens: u.PromptTokens + v.PromptTokens, CompletionTokens: u.CompletionTokens + v.CompletionTokens}
}

// Script is a generator's output.
type Script struct {
	Title string `json:"title"`
	// Script is the whole text: Request.Resume followed by what this call
	// wrote, unless Restarted.
	Script string `json:"script"`
	Scenes int    `json:"scenes"`
	Model  string `json:"model"`
	// Usage counts the tokens of this call only (every request it made),
	// not those of the earlier attempts that wrote Resume.
	Usage Usage `json:"usage"`
	// ResumedFrom is how many characters of Resume the script continues.
	ResumedFrom int `json:"resumed_from"`
	// Restarted: Resume could not be continued (it is not what this
	// generator writes for the request), so the script was written anew
	// and does not start with Resume; no text was reported to Request.Text.
	Restarted bool `json:"restarted,omitempty"`
	// Requests lists the model requests of this call, each with its tokens
	// (the OpenAI-compatible generator; none for the offline ones).
	Requests []RequestUsage `json:"requests,omitempty"`
}

// RequestUsage is one model request of a call.
type RequestUsage struct {
	// ResumedFrom is the length, in characters, of the text the request was
	// asked to continue.
	ResumedFrom int   `json:"resumed_from"`
	Usage       Usage `json:"usage"`
	// Estimated: the server reported no usage (the stream broke), so the
	// completion tokens are the deltas received and the prompt's are unknown.
	Estimated bool `json:"estimated,omitempty"`
	// Error is why the request failed, when it did.
	Error string `json:"error,omitempty"`
}

// Generator writes the script of one episode.
type Generator interface {
	// Generate writes the script of req, continuing req.Resume, and tells
	// req.Text its text as it goes.
	Generate(ctx context.Context, req Request, progress ProgressFunc) (Script, error)
}
