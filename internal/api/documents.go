package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/rag"
	"github.com/scriptgen/scriptgen/internal/store"
)

// DefaultMaxDocumentBytes bounds a document's content.
const DefaultMaxDocumentBytes = 1 << 20

// DocumentConfig is what the document routes need.
type DocumentConfig struct {
	Store      store.Store
	Dispatcher Dispatcher
	// Canceller, when set, stops a local run of a deleted document's job at once.
	Canceller Canceller
	Log       *slog.Logger
	// MaxBytes bounds a document's content (DefaultMaxDocumentBytes if 0).
	MaxBytes int
}

type documents struct {
	cfg      DocumentConfig
	errs     *API // for writeDomainError
	inFlight sync.Map
}

// DocumentRoutes registers a project's documents and their search:
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
func DocumentRoutes(cfg DocumentConfig) func(mux *http.ServeMux) {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxDocumentBytes
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	d := &documents{cfg: cfg, errs: &API{cfg: Config{Store: cfg.Store, Log: cfg.Log}}}
	return func(mux *http.ServeMux) {
		mux.HandleFunc("POST /api/projects/{project_id}/documents", d.create)
		mux.HandleFunc("GET /api/projects/{project_id}/documents", d.list)
		mux.HandleFunc("GET /api/projects/{project_id}/documents/{id}", d.get)
		mux.HandleFunc("DELETE /api/projects/{project_id}/documents/{id}", d.delete)
		mux.HandleFunc("POST /api/projects/{project_id}/documents/{id}/reprocess", d.reprocess)
		mux.HandleFunc("GET /api/projects/{project_id}/search", d.search)
	}
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

func newDocumentJSON(d store.Document, withContent bool) DocumentJSON {
	base := "/api/projects/" + d.ProjectID + "/documents/" + d.ID
	out := DocumentJSON{ID: d.ID, ProjectID: d.ProjectID, Title: d.Title, Format: d.Format, SizeBytes: d.SizeBytes,
		Status: documentStatus(d.JobStatus), JobID: d.JobID, ChunkCount: d.ChunkCount,
		CreatedAt: timePtr(d.CreatedAt), UpdatedAt: timePtr(d.UpdatedAt),
		Links: map[string]string{"self": base, "job": "/api/generation/" + d.JobID, "events": "/api/generation/" + d.JobID + "/events"}}
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
func (d *documents) tooLarge() error {
	return &job.ValidationError{Field: "content", Message: fmt.Sprintf("is larger than %d bytes", d.cfg.MaxBytes), TooLarge: true}
}

// unsupportedMediaError is a body of a type or charset documents do not
// take, answered with 415.
type unsupportedMediaError struct{ message string }

func (e unsupportedMediaError) Error() string { return e.message }

// decode reads a submission in either of its two shapes and checks it.
func (d *documents) decode(r *http.Request, w http.ResponseWriter) (documentRequest, error) {
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
	limit := d.cfg.MaxBytes
	if !raw {
		limit = 2*d.cfg.MaxBytes + 64<<10
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return req, d.tooLarge()
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
	return req, d.validate(&req)
}

func (d *documents) validate(req *documentRequest) error {
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
	if len(req.Content) > d.cfg.MaxBytes {
		return d.tooLarge()
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

func (d *documents) fail(w http.ResponseWriter, r *http.Request, err error) {
	var media unsupportedMediaError
	switch {
	case errors.As(err, &media):
		WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", media.message)
	default:
		d.errs.writeDomainError(w, r, err)
	}
}

func (d *documents) project(w http.ResponseWriter, r *http.Request) (string, bool) {
	p := r.PathValue("project_id")
	if err := job.ValidateProjectID(p); err != nil {
		d.fail(w, r, err)
		return "", false
	}
	return p, true
}

// document reads the project and document id of a path, refusing what cannot
// be an id before it reaches the store.
func (d *documents) document(w http.ResponseWriter, r *http.Request) (project, id string, ok bool) {
	if project, ok = d.project(w, r); !ok {
		return "", "", false
	}
	id = r.PathValue("id")
	if id == "" || len(id) > 64 {
		d.fail(w, r, job.ErrNotFound)
		return "", "", false
	}
	return project, id, true
}

func (d *documents) create(w http.ResponseWriter, r *http.Request) {
	project, ok := d.project(w, r)
	if !ok {
		return
	}
	key, err := idempotencyKey(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	req, err := d.decode(r, w)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	if key != "" {
		if _, busy := d.inFlight.LoadOrStore(key, struct{}{}); busy {
			d.fail(w, r, job.ErrIdempotencyInFlight)
			return
		}
		defer d.inFlight.Delete(key)
	}
	sum := sha256.Sum256([]byte(req.Content))
	fingerprint, _ := json.Marshal(map[string]string{"title": req.Title, "format": req.Format, "content_sha256": hex.EncodeToString(sum[:])})
	doc, j, created, err := d.cfg.Store.CreateDocument(r.Context(), store.NewDocument{
		ProjectID: project, Title: req.Title, Format: req.Format, Content: req.Content, IdempotencyKey: key,
		RequestHash: job.RequestHash(job.KindRAGDocument, project, fingerprint),
		Backend:     d.cfg.Dispatcher.BackendFor(project),
	})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/projects/"+project+"/documents/"+doc.ID)
	if created {
		d.cfg.Dispatcher.Dispatch(r.Context(), j)
	} else {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	WriteJSON(w, http.StatusAccepted, documentAccepted{JobJSON: NewJobJSON(j), DocumentID: doc.ID, Document: newDocumentJSON(doc, false)})
}

func (d *documents) list(w http.ResponseWriter, r *http.Request) {
	project, ok := d.project(w, r)
	if !ok {
		return
	}
	limit, err := limitParam(r, 50, 200)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	cursor := r.URL.Query().Get("cursor")
	if len(cursor) > 64 {
		d.fail(w, r, invalidDoc("cursor", "is not a cursor this API gave"))
		return
	}
	docs, next, err := d.cfg.Store.ListDocuments(r.Context(), project, cursor, limit)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	items := make([]DocumentJSON, len(docs))
	for i, doc := range docs {
		items[i] = newDocumentJSON(doc, false)
	}
	WriteJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": next})
}

func (d *documents) get(w http.ResponseWriter, r *http.Request) {
	project, id, ok := d.document(w, r)
	if !ok {
		return
	}
	doc, err := d.cfg.Store.GetDocument(r.Context(), project, id)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, newDocumentJSON(doc, true))
}

// delete removes the document and its chunks, and cancels its job if that is
// still queued or running: the job would find nothing to process.
func (d *documents) delete(w http.ResponseWriter, r *http.Request) {
	project, id, ok := d.document(w, r)
	if !ok {
		return
	}
	doc, err := d.cfg.Store.DeleteDocument(r.Context(), project, id)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	if !doc.JobStatus.Terminal() {
		if _, err := d.cfg.Store.Cancel(r.Context(), doc.JobID); err == nil && d.cfg.Canceller != nil {
			d.cfg.Canceller.CancelLocal(doc.JobID)
		}
	}
	WriteJSON(w, http.StatusOK, map[string]any{"deleted": true, "document": newDocumentJSON(doc, false)})
}

func (d *documents) reprocess(w http.ResponseWriter, r *http.Request) {
	project, id, ok := d.document(w, r)
	if !ok {
		return
	}
	doc, j, err := d.cfg.Store.ReprocessDocument(r.Context(), project, id, d.cfg.Dispatcher.BackendFor(project))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.cfg.Dispatcher.Dispatch(r.Context(), j)
	WriteJSON(w, http.StatusAccepted, documentAccepted{JobJSON: NewJobJSON(j), DocumentID: doc.ID, Document: newDocumentJSON(doc, false)})
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

func (d *documents) search(w http.ResponseWriter, r *http.Request) {
	project, ok := d.project(w, r)
	if !ok {
		return
	}
	terms, err := rag.ParseQuery(r.URL.Query().Get("q"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	limit, err := limitParam(r, 10, 50)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	hits, err := d.cfg.Store.SearchChunks(r.Context(), project, terms, limit)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	items := make([]ChunkJSON, len(hits))
	for i, h := range hits {
		items[i] = ChunkJSON{ChunkID: h.ChunkID, DocumentID: h.DocumentID, DocumentTitle: h.DocumentTitle, Seq: h.Seq,
			Heading: h.Heading, Text: h.Text, Score: h.Score}
	}
	WriteJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": "", "terms": terms})
}
