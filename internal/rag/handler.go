package rag

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/runner"
	"github.com/scriptgen/scriptgen/internal/store"
)

// DocumentReader is the part of the store the handler needs.
type DocumentReader interface {
	GetDocument(ctx context.Context, projectID, id string) (store.Document, error)
}

// Handler runs rag_document jobs: it reads the document, normalises and
// chunks it, and returns the chunks as the job's effect, so they replace the
// document's chunks in the job's completing transaction.
type Handler struct {
	store DocumentReader
	cfg   ChunkConfig
}

var _ runner.Handler = (*Handler)(nil)

// NewHandler builds the handler with the default chunk sizes.
func NewHandler(st DocumentReader) *Handler { return NewHandlerWith(st, DefaultChunkConfig) }

// NewHandlerWith builds the handler with the given chunk sizes.
func NewHandlerWith(st DocumentReader, cfg ChunkConfig) *Handler {
	return &Handler{store: st, cfg: cfg.withDefaults()}
}

// Result is what a rag_document job records.
type Result struct {
	DocumentID string `json:"document_id"`
	Chunks     int    `json:"chunks"`
	Runes      int    `json:"runes"`
}

// Handle processes one document.
func (h *Handler) Handle(ctx context.Context, j job.Job, report runner.ReportFunc) (store.Completion, error) {
	var p store.DocumentPayload
	if err := json.Unmarshal(j.Payload, &p); err != nil || p.DocumentID == "" {
		return store.Completion{}, fmt.Errorf("%w: payload names no document: %s", runner.ErrPermanent, j.Payload)
	}
	doc, err := h.store.GetDocument(ctx, j.ProjectID, p.DocumentID)
	if errors.Is(err, job.ErrNotFound) {
		return store.Completion{}, fmt.Errorf("%w: document %s was deleted", runner.ErrPermanent, p.DocumentID)
	}
	if err != nil {
		return store.Completion{}, fmt.Errorf("read document %s: %w", p.DocumentID, err)
	}
	if err := report(ctx, store.Progress{Percent: 10, Stage: "normalise", Message: "normalising " + doc.Title}); err != nil {
		return store.Completion{}, err
	}
	text := Normalize(doc.Content)
	chunks := Split(text, doc.Format == store.FormatMarkdown, h.cfg)
	if err := report(ctx, store.Progress{Percent: 60, Stage: "chunk", Message: fmt.Sprintf("split into %d chunks", len(chunks))}); err != nil {
		return store.Completion{}, err
	}
	dc := &store.DocumentChunks{DocumentID: doc.ID, Chunks: make([]store.NewChunk, len(chunks))}
	for i, c := range chunks {
		dc.Chunks[i] = store.NewChunk{Heading: c.Heading, Text: c.Text}
	}
	result, err := json.Marshal(Result{DocumentID: doc.ID, Chunks: len(chunks), Runes: utf8.RuneCountInString(text)})
	if err != nil {
		return store.Completion{}, err
	}
	return store.Completion{Result: result, Chunks: dc}, nil
}
