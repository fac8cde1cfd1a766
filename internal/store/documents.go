package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/scriptgen/scriptgen/internal/job"
)

// DocumentStore keeps a project's documents and the chunks they are split
// into for retrieval. A document is created together with its rag_document job
// in one transaction, and its chunks are replaced only in the transaction that
// completes such a job (invariant 3), so re-processing never duplicates them.
type DocumentStore interface {
	// CreateDocument commits a document and its queued rag_document job, or
	// returns the existing pair of the same idempotency key and request hash
	// (created is then false).
	CreateDocument(ctx context.Context, nd NewDocument) (d Document, j job.Job, created bool, err error)
	// ReprocessDocument queues a new rag_document job for an existing document.
	ReprocessDocument(ctx context.Context, projectID, id string, backend job.Backend) (Document, job.Job, error)
	// GetDocument reads one document with its content.
	GetDocument(ctx context.Context, projectID, id string) (Document, error)
	// ListDocuments lists a project's documents newest first, without content.
	ListDocuments(ctx context.Context, projectID, cursor string, limit int) (docs []Document, nextCursor string, err error)
	// DeleteDocument removes a document and its chunks and returns what it was.
	DeleteDocument(ctx context.Context, projectID, id string) (Document, error)
	// SearchChunks returns the project's chunks that contain any of terms,
	// best first. Terms are plain words; LIKE wildcards in them are ignored.
	SearchChunks(ctx context.Context, projectID string, terms []string, limit int) ([]ChunkHit, error)
}

// Document formats.
const (
	FormatText     = "text"
	FormatMarkdown = "markdown"
)

// NewDocument is a document to be created with its processing job.
type NewDocument struct {
	ProjectID      string
	Title          string
	Format         string
	Content        string
	IdempotencyKey string
	// RequestHash fingerprints the request (title, format, content) for
	// idempotency.
	RequestHash string
	Backend     job.Backend
	MaxAttempts int
}

// Document is one uploaded document of a project.
type Document struct {
	ID        string
	ProjectID string
	Title     string
	Format    string
	// Content is empty in lists.
	Content    string
	SizeBytes  int
	JobID      string
	JobStatus  job.Status
	ChunkCount int
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// DocumentPayload is the payload of a rag_document job.
type DocumentPayload struct {
	DocumentID string `json:"document_id"`
	Title      string `json:"title"`
	Format     string `json:"format"`
	SizeBytes  int    `json:"size_bytes"`
}

// DocumentChunks replace every chunk of a document.
type DocumentChunks struct {
	DocumentID string
	Chunks     []NewChunk
}

// NewChunk is one passage of a document, in document order.
type NewChunk struct {
	Heading string
	Text    string
}

// ChunkHit is one search result.
type ChunkHit struct {
	ChunkID       int64
	DocumentID    string
	DocumentTitle string
	Seq           int
	Heading       string
	Text          string
	Score         int
}

// ChunkSearch is the driver's part of a chunk search: the tables to read the
// chunk text from (aliases c for document_chunks, d for documents) and the
// case-insensitive substring match of that text against a '?' pattern.
type ChunkSearch struct {
	From  string
	Match string
	// ASCIICase: Match may ignore the case of ASCII letters only (SQLite's
	// LIKE, PostgreSQL's ILIKE under the C locale), so a term with other
	// cased letters is also looked for in capitals and with a capital first
	// letter.
	ASCIICase bool
}

const documentColumns = `d.id, d.project_id, d.title, d.format, d.size_bytes, d.job_id, COALESCE(j.status, ''),
	d.chunk_count, d.created_at, d.updated_at`

const documentFrom = ` FROM documents d LEFT JOIN jobs j ON j.id = d.job_id`

func scanDocument(sc scanner, withContent bool) (Document, error) {
	var d Document
	var created, updated int64
	dest := []any{&d.ID, &d.ProjectID, &d.Title, &d.Format, &d.SizeBytes, &d.JobID, &d.JobStatus,
		&d.ChunkCount, &created, &updated}
	if withContent {
		dest = append(dest, &d.Content)
	}
	err := sc.Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return d, job.ErrNotFound
	}
	d.CreatedAt, d.UpdatedAt = fromMicros(created), fromMicros(updated)
	return d, err
}

// insertJob inserts a queued job with its first event inside tx; it is the
// insert of CreateJob for callers that commit more in the same transaction.
func (s *SQL) insertJob(ctx context.Context, tx *Tx, nj NewJob, id string, now time.Time) (job.Job, error) {
	if nj.MaxAttempts <= 0 {
		nj.MaxAttempts = job.DefaultMaxAttempts
	}
	var key any
	if nj.IdempotencyKey != "" {
		key = nj.IdempotencyKey
	}
	j, err := scanJob(tx.QueryRowContext(ctx, s.Q(`INSERT INTO jobs (id, kind, project_id, payload, idempotency_key, request_hash,
		status, backend, dispatch_epoch, attempt, max_attempts, lease_owner, lease_expires_at, progress, stage,
		result, error, created_at, updated_at, started_at, finished_at, event_seq)
		VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, 1, 0, ?, '', 0, 0, 'queued', '', '', ?, ?, 0, 0, 1)
		ON CONFLICT (idempotency_key) DO NOTHING
		RETURNING `+jobColumns),
		id, nj.Kind, nj.ProjectID, string(nj.Payload), key, nj.RequestHash, nj.Backend, nj.MaxAttempts,
		micros(now), micros(now)))
	if err != nil {
		return j, err
	}
	return j, s.appendEvent(ctx, tx, job.Event{JobID: j.ID, Seq: 1, Type: job.EventStatus, Status: job.StatusQueued,
		Stage: "queued", Message: "accepted", CreatedAt: now})
}

// CreateDocument commits the document and its job together, so that neither
// exists without the other.
func (s *SQL) CreateDocument(ctx context.Context, nd NewDocument) (Document, job.Job, bool, error) {
	docID, err := uuid.NewV7()
	if err != nil {
		return Document{}, job.Job{}, false, err
	}
	jobID, err := uuid.NewV7()
	if err != nil {
		return Document{}, job.Job{}, false, err
	}
	now := s.Clock.Now()
	payload, _ := json.Marshal(DocumentPayload{DocumentID: docID.String(), Title: nd.Title, Format: nd.Format, SizeBytes: len(nd.Content)})
	nj := NewJob{Kind: job.KindRAGDocument, ProjectID: nd.ProjectID, Payload: payload, IdempotencyKey: nd.IdempotencyKey,
		RequestHash: nd.RequestHash, Backend: nd.Backend, MaxAttempts: nd.MaxAttempts}
	var j job.Job
	err = s.inTx(ctx, func(tx *Tx) error {
		if nd.IdempotencyKey != "" {
			existing, err := scanJob(tx.QueryRowContext(ctx, s.Q(`SELECT `+jobColumns+` FROM jobs WHERE idempotency_key = ?`), nd.IdempotencyKey))
			if err == nil {
				j = existing
				return errExisting
			}
			if !errors.Is(err, job.ErrNotFound) {
				return err
			}
		}
		var err error
		j, err = s.insertJob(ctx, tx, nj, jobID.String(), now)
		if errors.Is(err, job.ErrNotFound) {
			// Another replica committed the same key since our read.
			if j, err = scanJob(tx.QueryRowContext(ctx, s.Q(`SELECT `+jobColumns+` FROM jobs WHERE idempotency_key = ?`), nd.IdempotencyKey)); err == nil {
				return errExisting
			}
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.Q(`INSERT INTO documents (id, project_id, title, format, content, size_bytes, job_id,
			chunk_count, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`),
			docID.String(), nd.ProjectID, nd.Title, nd.Format, nd.Content, len(nd.Content), j.ID, micros(now), micros(now))
		return err
	})
	switch {
	case errors.Is(err, errExisting):
		return s.existingDocument(ctx, j, nj)
	case err != nil && nd.IdempotencyKey != "" && s.rb.d.IsUniqueViolation(err):
		// Another replica committed the same key between our read and insert.
		existing, gerr := scanJob(s.W.QueryRowContext(ctx, s.Q(`SELECT `+jobColumns+` FROM jobs WHERE idempotency_key = ?`), nd.IdempotencyKey))
		if gerr != nil {
			return Document{}, job.Job{}, false, fmt.Errorf("create document: %w", err)
		}
		return s.existingDocument(ctx, existing, nj)
	case err != nil:
		return Document{}, job.Job{}, false, fmt.Errorf("create document: %w", err)
	}
	d, err := s.GetDocument(ctx, nd.ProjectID, docID.String())
	if err != nil {
		return Document{}, job.Job{}, false, err
	}
	return d, j, true, nil
}

// existingDocument answers a replayed request with the document its job made.
func (s *SQL) existingDocument(ctx context.Context, existing job.Job, nj NewJob) (Document, job.Job, bool, error) {
	if existing.Kind != job.KindRAGDocument || existing.RequestHash != nj.RequestHash || existing.ProjectID != nj.ProjectID {
		return Document{}, job.Job{}, false, job.ErrIdempotencyMismatch
	}
	var p DocumentPayload
	if err := json.Unmarshal(existing.Payload, &p); err != nil {
		return Document{}, job.Job{}, false, fmt.Errorf("payload of job %s: %w", existing.ID, err)
	}
	d, err := s.GetDocument(ctx, existing.ProjectID, p.DocumentID)
	if err != nil {
		// The document was deleted since; the replay still names the same job.
		return Document{ID: p.DocumentID, ProjectID: existing.ProjectID, Title: p.Title, Format: p.Format,
			SizeBytes: p.SizeBytes, JobID: existing.ID, JobStatus: existing.Status}, existing, false, nil
	}
	return d, existing, false, nil
}

// ReprocessDocument queues a new job for the document and makes it the
// document's current job; its completion replaces the chunks.
func (s *SQL) ReprocessDocument(ctx context.Context, projectID, id string, backend job.Backend) (Document, job.Job, error) {
	jobID, err := uuid.NewV7()
	if err != nil {
		return Document{}, job.Job{}, err
	}
	now := s.Clock.Now()
	var j job.Job
	err = s.inTx(ctx, func(tx *Tx) error {
		d, err := scanDocument(tx.QueryRowContext(ctx, s.Q(`SELECT `+documentColumns+documentFrom+` WHERE d.project_id = ? AND d.id = ?`),
			projectID, id), false)
		if err != nil {
			return err
		}
		payload, _ := json.Marshal(DocumentPayload{DocumentID: d.ID, Title: d.Title, Format: d.Format, SizeBytes: d.SizeBytes})
		if j, err = s.insertJob(ctx, tx, NewJob{Kind: job.KindRAGDocument, ProjectID: projectID, Payload: payload,
			RequestHash: job.RequestHash(job.KindRAGDocument, projectID, payload), Backend: backend}, jobID.String(), now); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.Q(`UPDATE documents SET job_id = ?, updated_at = ? WHERE id = ?`), j.ID, micros(now), d.ID)
		return err
	})
	if errors.Is(err, job.ErrNotFound) {
		return Document{}, job.Job{}, err
	}
	if err != nil {
		return Document{}, job.Job{}, fmt.Errorf("reprocess document %s: %w", id, err)
	}
	d, err := s.GetDocument(ctx, projectID, id)
	return d, j, err
}

// GetDocument reads one document of a project with its content.
func (s *SQL) GetDocument(ctx context.Context, projectID, id string) (Document, error) {
	d, err := scanDocument(s.queryRow(ctx, `SELECT `+documentColumns+`, d.content`+documentFrom+
		` WHERE d.project_id = ? AND d.id = ?`, projectID, id), true)
	if err != nil && !errors.Is(err, job.ErrNotFound) {
		return d, fmt.Errorf("get document %s: %w", id, err)
	}
	return d, err
}

// ListDocuments lists a project's documents newest first, a page at a time.
func (s *SQL) ListDocuments(ctx context.Context, projectID, cursor string, limit int) ([]Document, string, error) {
	if limit <= 0 {
		limit = DefaultPage
	}
	q := `SELECT ` + documentColumns + documentFrom + ` WHERE d.project_id = ?`
	args := []any{projectID}
	if cursor != "" {
		q += ` AND d.id < ?`
		args = append(args, cursor)
	}
	rows, err := s.query(ctx, q+` ORDER BY d.id DESC LIMIT ?`, append(args, limit+1)...)
	if err != nil {
		return nil, "", fmt.Errorf("list documents of %s: %w", projectID, err)
	}
	defer rows.Close()
	docs := []Document{}
	for rows.Next() {
		d, err := scanDocument(rows, false)
		if err != nil {
			return nil, "", err
		}
		docs = append(docs, d)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if len(docs) > limit {
		docs = docs[:limit]
		next = docs[len(docs)-1].ID
	}
	return docs, next, nil
}

// DeleteDocument removes a document and its chunks in one transaction. A job
// still processing it finds it gone and saves nothing.
func (s *SQL) DeleteDocument(ctx context.Context, projectID, id string) (Document, error) {
	var d Document
	err := s.inTx(ctx, func(tx *Tx) error {
		var err error
		d, err = scanDocument(tx.QueryRowContext(ctx, s.Q(`SELECT `+documentColumns+documentFrom+` WHERE d.project_id = ? AND d.id = ?`),
			projectID, id), false)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.Q(`DELETE FROM document_chunks WHERE document_id = ?`), id); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.Q(`DELETE FROM documents WHERE id = ?`), id)
		return err
	})
	if err != nil && !errors.Is(err, job.ErrNotFound) {
		return d, fmt.Errorf("delete document %s: %w", id, err)
	}
	return d, err
}

// saveChunks replaces a document's chunks inside the completing transaction of
// its job, after the lease was checked by a row lock on the job, so a stale
// holder writes nothing and a re-run replaces rather than adds. A document
// deleted meanwhile gets no chunks.
func (s *SQL) saveChunks(ctx context.Context, tx *Tx, l job.Lease, dc *DocumentChunks, now time.Time) error {
	res, err := tx.ExecContext(ctx, s.Q(`UPDATE jobs SET updated_at = ?`+leaseHeld), append([]any{micros(now)}, leaseArgs(l)...)...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return job.ErrStaleLease
	}
	var projectID string
	err = tx.QueryRowContext(ctx, s.Q(`SELECT project_id FROM documents WHERE id = ?`), dc.DocumentID).Scan(&projectID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read document %s: %w", dc.DocumentID, err)
	}
	if _, err := tx.ExecContext(ctx, s.Q(`DELETE FROM document_chunks WHERE document_id = ?`), dc.DocumentID); err != nil {
		return fmt.Errorf("clear chunks of document %s: %w", dc.DocumentID, err)
	}
	for i, c := range dc.Chunks {
		if _, err := tx.ExecContext(ctx, s.Q(`INSERT INTO document_chunks (document_id, project_id, seq, heading, text)
			VALUES (?, ?, ?, ?, ?)`), dc.DocumentID, projectID, i, c.Heading, c.Text); err != nil {
			return fmt.Errorf("save chunk %d of document %s: %w", i, dc.DocumentID, err)
		}
	}
	if _, err := tx.ExecContext(ctx, s.Q(`UPDATE documents SET chunk_count = ?, updated_at = ? WHERE id = ?`),
		len(dc.Chunks), micros(now), dc.DocumentID); err != nil {
		return fmt.Errorf("update document %s: %w", dc.DocumentID, err)
	}
	return nil
}

// likeWildcards drops what LIKE would read as a wildcard or an escape.
var likeWildcards = strings.NewReplacer("%", "", "_", "", `\`, "")

// MaxSearchTerms bounds the terms of one search, and so the size of its SQL.
const MaxSearchTerms = 16

// casings are the LIKE patterns of a lower-case term. Where the match ignores
// the case of ASCII letters only, a term with other cased letters ("élodie")
// is also looked for in capitals ("ÉLODIE") and with a capital first letter
// ("Élodie"), the ways a name is written; other mixes of case are not found.
func casings(t string, asciiCase bool) []string {
	ps := []string{"%" + t + "%"}
	if !asciiCase || !hasNonASCIICase(t) {
		return ps
	}
	first, n := utf8.DecodeRuneInString(t)
	for _, v := range []string{strings.ToUpper(t), string(unicode.ToUpper(first)) + t[n:]} {
		if p := "%" + v + "%"; !slices.Contains(ps, p) {
			ps = append(ps, p)
		}
	}
	return ps
}

func hasNonASCIICase(t string) bool {
	for _, r := range t {
		if r >= utf8.RuneSelf && unicode.ToUpper(r) != r {
			return true
		}
	}
	return false
}

// SearchChunksWith runs a chunk search with the driver's part of the SQL. A
// chunk scores the rune length of every distinct term it contains, so that
// longer, more specific words weigh more; ties go to document order. A
// search cut short by the context's deadline fails with an error that
// errors.Is context.DeadlineExceeded; on PostgreSQL such a search runs in a
// read-only transaction whose statement_timeout ends the query on the
// server as well.
func (s *SQL) SearchChunksWith(ctx context.Context, cs ChunkSearch, projectID string, terms []string, limit int) ([]ChunkHit, error) {
	if limit <= 0 {
		limit = 10
	}
	var patterns [][]string // each term's patterns, any of which matches it
	var weights []int
	seen := map[string]bool{}
	for _, t := range terms {
		// The terms are bound as LIKE patterns: drop the wildcards and the
		// escape character rather than trusting every caller to.
		t = strings.ToLower(likeWildcards.Replace(strings.TrimSpace(t)))
		if t == "" || seen[t] {
			continue
		}
		seen[t] = true
		patterns = append(patterns, casings(t, cs.ASCIICase))
		weights = append(weights, utf8.RuneCountInString(t))
		if len(patterns) == MaxSearchTerms {
			break
		}
	}
	if len(patterns) == 0 {
		return []ChunkHit{}, nil
	}
	query, queryRow := s.query, s.queryRow
	if deadline, ok := ctx.Deadline(); ok && s.Driver() == "postgres" {
		// pgx answers an ended context by closing the connection and
		// sending PostgreSQL a cancel request on a connection of its own, at
		// best effort. The statement timeout ends the query on the server
		// whatever becomes of that request, and a little before the
		// context, so that the connection survives: a flood of searches
		// cut at their limit does not make the pool dial anew for each.
		tx, err := s.R.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return nil, fmt.Errorf("search chunks of %s: %w", projectID, err)
		}
		defer tx.Rollback()
		left := time.Until(deadline)
		ms := max((left - min(searchTimeoutMargin, left/10)).Milliseconds(), 1)
		if _, err := tx.ExecContext(ctx, `SELECT set_config('statement_timeout', $1, true)`, strconv.FormatInt(ms, 10)); err != nil {
			return nil, fmt.Errorf("search chunks of %s: %w", projectID, err)
		}
		query = func(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
			return tx.QueryContext(ctx, s.Q(q), args...)
		}
		queryRow = func(ctx context.Context, q string, args ...any) *sql.Row {
			return tx.QueryRowContext(ctx, s.Q(q), args...)
		}
	}
	// Most projects have no documents: a one-row probe spares them the search.
	var found int
	if err := queryRow(ctx, `SELECT 1 FROM document_chunks WHERE project_id = ? LIMIT 1`, projectID).Scan(&found); errors.Is(err, sql.ErrNoRows) {
		return []ChunkHit{}, nil
	} else if err != nil {
		return nil, searchError(ctx, projectID, err)
	}
	var score, match []string
	var args []any
	anyOf := func(ps []string) string {
		ms := make([]string, len(ps))
		for i, p := range ps {
			ms[i] = cs.Match
			args = append(args, p)
		}
		return strings.Join(ms, ` OR `)
	}
	for i, ps := range patterns {
		score = append(score, `CASE WHEN `+anyOf(ps)+` THEN `+strconv.Itoa(weights[i])+` ELSE 0 END`)
	}
	args = append(args, projectID)
	for _, ps := range patterns {
		match = append(match, anyOf(ps))
	}
	args = append(args, limit)
	q := `SELECT c.id, c.document_id, d.title, c.seq, c.heading, c.text, (` + strings.Join(score, ` + `) + `) AS score
		FROM ` + cs.From + ` WHERE c.project_id = ? AND (` + strings.Join(match, ` OR `) + `)
		ORDER BY score DESC, c.document_id, c.seq LIMIT ?`
	rows, err := query(ctx, q, args...)
	if err != nil {
		return nil, searchError(ctx, projectID, err)
	}
	defer rows.Close()
	hits := []ChunkHit{}
	for rows.Next() {
		var h ChunkHit
		if err := rows.Scan(&h.ChunkID, &h.DocumentID, &h.DocumentTitle, &h.Seq, &h.Heading, &h.Text, &h.Score); err != nil {
			return nil, searchError(ctx, projectID, err)
		}
		hits = append(hits, h)
	}
	if err := rows.Err(); err != nil {
		return nil, searchError(ctx, projectID, err)
	}
	return hits, nil
}

// ReadConnections is how many connections reads may hold at once: the reader
// pool that searches share with every other read, /health's ping included
// (rag.NewSearcher keeps its searches to half of it).
func (s *SQL) ReadConnections() int { return s.R.Stats().MaxOpenConnections }

// searchTimeoutMargin is how much sooner than its context a search's
// statement timeout ends it on PostgreSQL (a tenth of its time at most).
const searchTimeoutMargin = 50 * time.Millisecond

// searchError wraps a failed search. One that its deadline ended says
// context.DeadlineExceeded, whether PostgreSQL's statement timeout ended it
// (57014) or the driver answered the context with an error of its own
// (SQLite's "interrupted").
func searchError(ctx context.Context, projectID string, err error) error {
	var pe *pgconn.PgError
	timedOut := (errors.As(err, &pe) && pe.Code == "57014") || errors.Is(ctx.Err(), context.DeadlineExceeded)
	if timedOut && !errors.Is(err, context.DeadlineExceeded) {
		err = errors.Join(err, context.DeadlineExceeded)
	}
	return fmt.Errorf("search chunks of %s: %w", projectID, err)
}
