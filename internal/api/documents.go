package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/scriptgen/scriptgen/internal/httpx/response"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/rag"
	"github.com/scriptgen/scriptgen/internal/store"
)

// DefaultMaxDocumentBytes bounds a document's content.
const DefaultMaxDocumentBytes = 1 << 20

// documentHandler serves a project's documents and their search:
//
//	POST   /api/projects/{project_id}/documents            202, the rag_document job and the document
//	GET    /api/projects/{project_id}/documents            {"items": [...], "next_cursor": "..."}
//	GET    /api/projects/{project_id}/documents/{id}       the document with its content
//	DELETE /api/projects/{project_id}/documents/{id}       removes it and its chunks
//	POST   /api/projects/{project_id}/documents/{id}/reprocess  202, a new job that replaces the chunks
//	GET    /api/projects/{project_id}/search?q=...&limit=  ranked chunks with their document
//
// POST takes either a JSON body {"title": "...", "content": "...", "format":
// "markdown" | "text"} (format defaults to markdown) or the document itself as
// a text/markdown or text/plain body with ?title=. An Idempotency-Key header
// works as on POST /api/generation.
type documentHandler struct {
	domainErrors
	limits     *tenantLimits
	searcher   *rag.Searcher
	store      store.Store
	dispatcher Dispatcher
	// canceller, when set, stops a local run of a deleted document's job at once.
	canceller Canceller
	// maxAttempts is how often a new job is tried (0: the default).
	maxAttempts int
	// maxBytes bounds a document's content.
	maxBytes int
	inFlight sync.Map
}

// DocumentJSON is a document as the API shows it. Status is processing,
// ready, failed or cancelled, after the document's current job.
type DocumentJSON struct {
	ID         string            `json:"id"`
	ProjectID  string            `json:"project_id"`
	Title      string            `json:"title"`
	Format     string            `json:"format"`
	SizeBytes  int               `json:"size_bytes"`
	Status     string            `json:"status"`
	JobID      string            `json:"job_id"`
	ChunkCount int               `json:"chunk_count"`
	Content    *string           `json:"content,omitempty"`
	CreatedAt  *time.Time        `json:"created_at"`
	UpdatedAt  *time.Time        `json:"updated_at"`
	Links      map[string]string `json:"links"`
}

func newDocumentJSON(r *http.Request, d store.Document, withContent bool) DocumentJSON {
	project := external(r, d.ProjectID)
	base := "/api/projects/" + project + "/documents/" + d.ID
	out := DocumentJSON{
		ID:         d.ID,
		ProjectID:  project,
		Title:      d.Title,
		Format:     d.Format,
		SizeBytes:  d.SizeBytes,
		Status:     documentStatus(d.JobStatus),
		JobID:      d.JobID,
		ChunkCount: d.ChunkCount,
		CreatedAt:  timePtr(d.CreatedAt),
		UpdatedAt:  timePtr(d.UpdatedAt),
		Links:      map[string]string{"self": base, "job": "/api/generation/" + d.JobID, "events": "/api/generation/" + d.JobID + "/events"},
	}
	if withContent {
		out.Content = &d.Content
	}
	return out
}

func documentStatus(s job.Status) string {
	switch s {
	case job.StatusSucceeded:
		return "ready"
	case job.StatusFailed:
		return "failed"
	case job.StatusCancelled:
		return "cancelled"
	}
	return "processing"
}

// documentAccepted answers a submission: the job, as POST /api/generation
// answers, with the document beside it.
type documentAccepted struct {
	JobJSON
	DocumentID string       `json:"document_id"`
	Document   DocumentJSON `json:"document"`
}

type documentRequest struct {
	Title   string `json:"title"`
	Content string `json:"content"`
	Format  string `json:"format"`
}

func invalidDoc(field, format string, args ...any) error {
	return &job.ValidationError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// tooLarge is a document over its limit, answered with 413.
func (h *documentHandler) tooLarge() error {
	return &job.ValidationError{Field: "content", Message: fmt.Sprintf("is larger than %d bytes", h.maxBytes), TooLarge: true}
}

// unsupportedMediaError is a body of a type or charset documents do not
// take, answered with 415.
type unsupportedMediaError struct{ message string }

func (e unsupportedMediaError) Error() string { return e.message }

// decode reads a submission in either of its two shapes and checks it.
func (h *documentHandler) decode(r *http.Request, w http.ResponseWriter) (documentRequest, error) {
	var req documentRequest
	mediaType := "application/json"
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil {
			return req, invalidDoc("Content-Type", "is malformed")
		}
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") && !strings.EqualFold(cs, "us-ascii") {
			// Read as UTF-8, another charset's text would be stored garbled.
			return req, unsupportedMediaError{fmt.Sprintf("charset %q: documents are UTF-8 text", cs)}
		}
		mediaType = mt
	}
	raw := mediaType == "text/plain" || mediaType == "text/markdown"
	if !raw && mediaType != "application/json" {
		return req, unsupportedMediaError{fmt.Sprintf("Content-Type %q: must be application/json, text/markdown or text/plain", mediaType)}
	}
	// JSON escapes may take up to six bytes for a three-byte character.
	limit := h.maxBytes
	if !raw {
		limit = 2*h.maxBytes + 64<<10
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return req, h.tooLarge()
	}
	if err != nil {
		return req, invalidDoc("", "could not read body: %v", err)
	}
	if !utf8.Valid(body) {
		return req, invalidDoc("content", "is not valid UTF-8")
	}
	if raw {
		req.Title = r.URL.Query().Get("title")
		req.Content = string(body)
		req.Format = store.FormatText
		if mediaType == "text/markdown" {
			req.Format = store.FormatMarkdown
		}
	} else {
		if err := job.DecodeStrict(body, &req); err != nil {
			return req, err
		}
		if req.Format == "" {
			req.Format = store.FormatMarkdown
		}
	}
	return req, h.validate(&req)
}

func (h *documentHandler) validate(req *documentRequest) error {
	req.Title = strings.TrimSpace(req.Title)
	if req.Title == "" {
		return invalidDoc("title", "is required")
	}
	if n := utf8.RuneCountInString(req.Title); n > job.MaxTitleRunes {
		return invalidDoc("title", "is %d characters long; the limit is %d", n, job.MaxTitleRunes)
	}
	if r, found := job.ControlCharacter(req.Title, false); found {
		return invalidDoc("title", "contains control character %U", r)
	}
	if req.Format != store.FormatMarkdown && req.Format != store.FormatText {
		return invalidDoc("format", "must be markdown or text")
	}
	if len(req.Content) > h.maxBytes {
		return h.tooLarge()
	}
	// JSON may carry text that raw bytes were checked for already; check
	// the decoded content too, since "\u0000" is valid JSON.
	if !utf8.ValidString(req.Content) {
		return invalidDoc("content", "is not valid UTF-8")
	}
	for _, r := range req.Content {
		if r == 0 || (unicode.IsControl(r) && !strings.ContainsRune("\n\r\t\f\v", r)) {
			return invalidDoc("content", "looks binary: it contains %U; send text or Markdown", r)
		}
	}
	if rag.Normalize(req.Content) == "" {
		return invalidDoc("content", "is empty")
	}
	return nil
}

// project reads the path's project, if the caller may use it, as the
// store's key of it.
func (h *documentHandler) project(w http.ResponseWriter, r *http.Request) (string, bool) {
	key, err := pathProject(r)
	if err != nil {
		h.fail(w, r, err)
		return "", false
	}
	return key, true
}

// document reads the project and document id of a path, refusing what cannot
// be an id before it reaches the store.
func (h *documentHandler) document(w http.ResponseWriter, r *http.Request) (project, id string, ok bool) {
	if project, ok = h.project(w, r); !ok {
		return "", "", false
	}
	id = r.PathValue("id")
	if id == "" || len(id) > 64 {
		h.fail(w, r, job.ErrNotFound)
		return "", "", false
	}
	return project, id, true
}

// create takes a document and queues its rag_document job.
func (h *documentHandler) create(w http.ResponseWriter, r *http.Request) {
	project, ok := h.project(w, r)
	if !ok {
		return
	}
	key, err := idempotencyKey(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	req, err := h.decode(r, w)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	key = principal(r).IdempotencyKey(key)
	if key != "" {
		if _, busy := h.inFlight.LoadOrStore(key, struct{}{}); busy {
			h.fail(w, r, job.ErrIdempotencyInFlight)
			return
		}
		defer h.inFlight.Delete(key)
	}
	if err := h.limits.admitDocument(r, len(req.Content)); err != nil {
		h.fail(w, r, err)
		return
	}
	sum := sha256.Sum256([]byte(req.Content))
	fingerprint, _ := json.Marshal(map[string]string{"title": req.Title, "format": req.Format, "content_sha256": hex.EncodeToString(sum[:])})
	doc, j, created, err := h.store.CreateDocument(r.Context(), store.NewDocument{
		ProjectID:      project,
		Title:          req.Title,
		Format:         req.Format,
		Content:        req.Content,
		IdempotencyKey: key,
		RequestHash:    job.RequestHash(job.KindRAGDocument, project, fingerprint),
		Backend:        h.dispatcher.BackendFor(project),
		MaxAttempts:    h.maxAttempts,
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/projects/"+external(r, project)+"/documents/"+doc.ID)
	if created {
		dispatchNew(r, h.dispatcher, j, time.Now())
	} else {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	response.Accepted(w, documentAccepted{JobJSON: NewJobJSON(r, j), DocumentID: doc.ID, Document: newDocumentJSON(r, doc, false)})
}

// list pages through a project's documents, without their content.
func (h *documentHandler) list(w http.ResponseWriter, r *http.Request) {
	project, ok := h.project(w, r)
	if !ok {
		return
	}
	limit, err := limitParam(r, store.DefaultPage, 200)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	cursor := r.URL.Query().Get("cursor")
	if len(cursor) > 64 {
		h.fail(w, r, invalidDoc("cursor", "is not a cursor this API gave"))
		return
	}
	docs, next, err := h.store.ListDocuments(r.Context(), project, cursor, limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	items := make([]DocumentJSON, len(docs))
	for i, doc := range docs {
		items[i] = newDocumentJSON(r, doc, false)
	}
	response.OK(w, map[string]any{"items": items, "next_cursor": next})
}

// get answers a document with its content.
func (h *documentHandler) get(w http.ResponseWriter, r *http.Request) {
	project, id, ok := h.document(w, r)
	if !ok {
		return
	}
	doc, err := h.store.GetDocument(r.Context(), project, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	response.OK(w, newDocumentJSON(r, doc, true))
}

// delete removes the document and its chunks, and cancels its job if that is
// still queued or running: the job would find nothing to process.
func (h *documentHandler) delete(w http.ResponseWriter, r *http.Request) {
	project, id, ok := h.document(w, r)
	if !ok {
		return
	}
	doc, err := h.store.DeleteDocument(r.Context(), project, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !doc.JobStatus.Terminal() {
		if _, err := h.store.Cancel(r.Context(), doc.JobID); err == nil && h.canceller != nil {
			h.canceller.CancelLocal(doc.JobID)
		}
	}
	response.OK(w, map[string]any{"deleted": true, "document": newDocumentJSON(r, doc, false)})
}

// reprocess queues a new job that replaces the document's chunks.
func (h *documentHandler) reprocess(w http.ResponseWriter, r *http.Request) {
	if err := jsonOrEmptyBody(r); err != nil {
		h.fail(w, r, err)
		return
	}
	project, id, ok := h.document(w, r)
	if !ok {
		return
	}
	if err := h.limits.admitJob(r); err != nil {
		h.fail(w, r, err)
		return
	}
	doc, j, err := h.store.ReprocessDocument(r.Context(), project, id, h.dispatcher.BackendFor(project))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	dispatchNew(r, h.dispatcher, j, time.Now())
	response.Accepted(w, documentAccepted{JobJSON: NewJobJSON(r, j), DocumentID: doc.ID, Document: newDocumentJSON(r, doc, false)})
}

// ChunkJSON is one search result.
type ChunkJSON struct {
	ChunkID       int64  `json:"chunk_id"`
	DocumentID    string `json:"document_id"`
	DocumentTitle string `json:"document_title"`
	Seq           int    `json:"seq"`
	Heading       string `json:"heading"`
	Text          string `json:"text"`
	Score         int    `json:"score"`
}

// search ranks the chunks of a project's documents for a free-text query.
func (h *documentHandler) search(w http.ResponseWriter, r *http.Request) {
	project, ok := h.project(w, r)
	if !ok {
		return
	}
	limit, err := limitParam(r, 10, 50)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	terms, hits, err := h.searcher.Search(r.Context(), project, r.URL.Query().Get("q"), limit)
	switch {
	case errors.Is(err, rag.ErrSearchBusy):
		w.Header().Set("Retry-After", "1")
		response.Error(w, http.StatusTooManyRequests, "search_busy", err.Error())
		return
	case errors.Is(err, rag.ErrSearchTimeout):
		response.Error(w, http.StatusServiceUnavailable, "search_timeout", err.Error()+": use fewer or longer terms")
		return
	case err != nil:
		h.fail(w, r, err)
		return
	}
	items := make([]ChunkJSON, len(hits))
	for i, hit := range hits {
		items[i] = ChunkJSON{
			ChunkID:       hit.ChunkID,
			DocumentID:    hit.DocumentID,
			DocumentTitle: hit.DocumentTitle,
			Seq:           hit.Seq,
			Heading:       hit.Heading,
			Text:          hit.Text,
			Score:         hit.Score,
		}
	}
	response.OK(w, map[string]any{"items": items, "next_cursor": "", "terms": terms})
}
