package jobhandler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/rag"
	"github.com/scriptgen/scriptgen/internal/runner"
	"github.com/scriptgen/scriptgen/internal/store"
)

// DocumentReader is the part of the store RAGDocument needs.
type DocumentReader interface {
	GetDocument(ctx context.Context, projectID, id string) (store.Document, error)
}

// RAGDocument runs rag_document jobs: it reads the document, normalises and
// chunks it, and returns the chunks as the job's effect, so they replace the
// document's chunks in the job's completing transaction.
type RAGDocument struct {
	store DocumentReader
	cfg   rag.ChunkConfig
}

var _ runner.Handler = (*RAGDocument)(nil)

// NewRAGDocument builds the handler with the default chunk sizes.
func NewRAGDocument(st DocumentReader) *RAGDocument {
	return NewRAGDocumentWith(st, rag.DefaultChunkConfig)
}

// NewRAGDocumentWith builds the handler with the given chunk sizes (a size
// left 0 takes its default).
func NewRAGDocumentWith(st DocumentReader, cfg rag.ChunkConfig) *RAGDocument {
	return &RAGDocument{store: st, cfg: cfg}
}

// DocumentResult is what a rag_document job records.
type DocumentResult struct {
	DocumentID string `json:"document_id"`
	Chunks     int    `json:"chunks"`
	Runes      int    `json:"runes"`
}

// Handle processes one document.
func (h *RAGDocument) Handle(ctx context.Context, j job.Job, report runner.ReportFunc) (store.Completion, error) {
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
	text := rag.Normalize(doc.Content)
	chunks := rag.Split(text, doc.Format == store.FormatMarkdown, h.cfg)
	if err := report(ctx, store.Progress{Percent: 60, Stage: "chunk", Message: fmt.Sprintf("split into %d chunks", len(chunks))}); err != nil {
		return store.Completion{}, err
	}
	dc := &store.DocumentChunks{DocumentID: doc.ID, Chunks: make([]store.NewChunk, len(chunks))}
	for i, c := range chunks {
		dc.Chunks[i] = store.NewChunk{Heading: c.Heading, Text: c.Text}
	}
	result, err := json.Marshal(DocumentResult{DocumentID: doc.ID, Chunks: len(chunks), Runes: utf8.RuneCountInString(text)})
	if err != nil {
		return store.Completion{}, err
	}
	return store.Completion{Result: result, Chunks: dc}, nil
}
