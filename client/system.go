package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Health is GET /health: anyone sees the status and the worker mode; an
// admin token shows the rest.
type Health struct {
	Status          string           `json:"status"` // ok, degraded
	Reasons         []string         `json:"reasons"`
	WorkerSystem    WorkerSystem     `json:"worker_system"`
	Auth            string           `json:"auth"`
	Version         string           `json:"version,omitempty"`
	UptimeSeconds   int64            `json:"uptime_seconds,omitempty"`
	BackgroundTasks *BackgroundTasks `json:"background_tasks,omitempty"`
	Database        *struct {
		Status string `json:"status"`
		Driver string `json:"driver"`
		Error  string `json:"error,omitempty"`
	} `json:"database,omitempty"`
	Process *struct {
		PID      int   `json:"pid"`
		RSSBytes int64 `json:"rss_bytes"`
	} `json:"process,omitempty"`
}

// Health reads the service's health. A degraded service answers 503 with
// its figures: that is a Health with Status "degraded" and no error.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	resp, b, err := c.send(ctx, call{method: "GET", path: "/health"})
	if err != nil {
		return nil, err
	}
	var h Health
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusServiceUnavailable {
		if json.Unmarshal(b, &h) == nil && h.Status != "" {
			return &h, nil
		}
	}
	return nil, apiError(resp, b)
}

// SystemInfo is GET /api/generation/system-info.
type SystemInfo struct {
	Version         string           `json:"version"`
	WorkerSystem    WorkerSystem     `json:"worker_system"`
	Generator       string           `json:"generator"`
	Queues          []string         `json:"queues"`
	BackgroundTasks *BackgroundTasks `json:"background_tasks,omitempty"`
}

// SystemInfo reads the worker mode and the generator (anyone).
func (c *Client) SystemInfo(ctx context.Context) (*SystemInfo, error) {
	var s SystemInfo
	_, err := c.do(ctx, call{method: "GET", path: "/api/generation/system-info"}, &s)
	return ok(&s, err)
}

// UsagePeriod is a day's or a month's spending.
type UsagePeriod struct {
	Period   string `json:"period"`
	Tokens   int64  `json:"tokens"`
	Attempts int64  `json:"attempts"`
	Budget   int64  `json:"budget"`
}

// Usage is the caller's tenant's spending and document quota.
type Usage struct {
	Tenant    string      `json:"tenant"`
	Day       UsagePeriod `json:"day"`
	Month     UsagePeriod `json:"month"`
	Documents struct {
		Count    int   `json:"count"`
		Bytes    int64 `json:"bytes"`
		MaxCount int   `json:"max_count"`
		MaxBytes int64 `json:"max_bytes"`
	} `json:"documents"`
}

// Usage reads the caller's usage.
func (c *Client) Usage(ctx context.Context) (*Usage, error) {
	var u Usage
	_, err := c.do(ctx, call{method: "GET", path: "/api/usage"}, &u)
	return ok(&u, err)
}

// Project is a project's job counts.
type Project struct {
	ProjectID string `json:"project_id"`
	Jobs      struct {
		Queued    int `json:"queued"`
		Running   int `json:"running"`
		Succeeded int `json:"succeeded"`
		Failed    int `json:"failed"`
		Cancelled int `json:"cancelled"`
	} `json:"jobs"`
}

// Project reads a project.
func (c *Client) Project(ctx context.Context, id string) (*Project, error) {
	var p Project
	_, err := c.do(ctx, call{method: "GET", path: path("api", "projects", id)}, &p)
	return ok(&p, err)
}

// Episode is a saved episode.
type Episode struct {
	ProjectID string    `json:"project_id"`
	Number    int       `json:"number"`
	Title     string    `json:"title"`
	Script    string    `json:"script"`
	JobID     string    `json:"job_id"`
	CreatedAt time.Time `json:"created_at"`
}

// EpisodeList is a page of a project's episodes, by number.
type EpisodeList struct {
	Items      []Episode `json:"items"`
	NextCursor string    `json:"next_cursor"`
}

// Episodes reads a page of a project's episodes from cursor ("" the
// first); limit 0 is the server's default.
func (c *Client) Episodes(ctx context.Context, project string, limit int, cursor string) (*EpisodeList, error) {
	q := limitQuery(limit)
	if cursor != "" {
		if q == nil {
			q = url.Values{}
		}
		q.Set("cursor", cursor)
	}
	var l EpisodeList
	_, err := c.do(ctx, call{method: "GET", path: path("api", "projects", project, "episodes"), query: q}, &l)
	return ok(&l, err)
}

// Episode reads a project's episode by its number.
func (c *Client) Episode(ctx context.Context, project string, number int) (*Episode, error) {
	var e Episode
	_, err := c.do(ctx, call{method: "GET", path: path("api", "projects", project, "episodes", strconv.Itoa(number))}, &e)
	return ok(&e, err)
}

// Document is a project's RAG document.
type Document struct {
	ID         string     `json:"id"`
	ProjectID  string     `json:"project_id"`
	Title      string     `json:"title"`
	Format     string     `json:"format"` // markdown, text
	SizeBytes  int64      `json:"size_bytes"`
	Status     string     `json:"status"` // processing, ready, failed, cancelled
	JobID      string     `json:"job_id"`
	ChunkCount int        `json:"chunk_count"`
	Content    string     `json:"content,omitempty"`
	CreatedAt  *time.Time `json:"created_at"`
	UpdatedAt  *time.Time `json:"updated_at"`
}

// DocumentRequest is an upload: Format markdown (the default) or text.
type DocumentRequest struct {
	Title   string `json:"title"`
	Content string `json:"content"`
	Format  string `json:"format,omitempty"`
}

// DocumentAccepted is an upload's answer: the rag_document job that
// processes it, with the document.
type DocumentAccepted struct {
	Job
	DocumentID string   `json:"document_id"`
	Document   Document `json:"document"`
}

// CreateDocument uploads a document to a project; idempotencyKey as Submit's.
func (c *Client) CreateDocument(ctx context.Context, project string, d DocumentRequest, idempotencyKey string) (*DocumentAccepted, error) {
	k := call{method: "POST", path: path("api", "projects", project, "documents"), body: d}
	if idempotencyKey != "" {
		k.header = map[string]string{"Idempotency-Key": idempotencyKey}
	}
	var a DocumentAccepted
	resp, err := c.do(ctx, k, &a)
	if err != nil {
		return nil, err
	}
	a.Replayed = resp.Header.Get("Idempotent-Replayed") == "true"
	return &a, nil
}

// Documents lists a project's documents.
func (c *Client) Documents(ctx context.Context, project string) ([]Document, error) {
	var l struct {
		Items []Document `json:"items"`
	}
	_, err := c.do(ctx, call{method: "GET", path: path("api", "projects", project, "documents")}, &l)
	return l.Items, err
}

// Document reads one document with its content.
func (c *Client) Document(ctx context.Context, project, id string) (*Document, error) {
	var d Document
	_, err := c.do(ctx, call{method: "GET", path: path("api", "projects", project, "documents", id)}, &d)
	return ok(&d, err)
}

// DeleteDocument deletes a document and its chunks.
func (c *Client) DeleteDocument(ctx context.Context, project, id string) error {
	_, err := c.do(ctx, call{method: "DELETE", path: path("api", "projects", project, "documents", id)}, nil)
	return err
}

// ReprocessDocument runs a document's processing again; the answer is the
// new job with the document.
func (c *Client) ReprocessDocument(ctx context.Context, project, id string) (*DocumentAccepted, error) {
	var a DocumentAccepted
	_, err := c.do(ctx, call{method: "POST", path: path("api", "projects", project, "documents", id, "reprocess")}, &a)
	return ok(&a, err)
}

// Chunk is a search hit.
type Chunk struct {
	ChunkID       int64  `json:"chunk_id"`
	DocumentID    string `json:"document_id"`
	DocumentTitle string `json:"document_title"`
	Seq           int    `json:"seq"`
	Heading       string `json:"heading"`
	Text          string `json:"text"`
	Score         int    `json:"score"`
}

// Search searches a project's documents.
func (c *Client) Search(ctx context.Context, project, q string, limit int) ([]Chunk, error) {
	query := limitQuery(limit)
	if query == nil {
		query = url.Values{}
	}
	query.Set("q", q)
	var r struct {
		Items []Chunk `json:"items"`
	}
	_, err := c.do(ctx, call{method: "GET", path: path("api", "projects", project, "search"), query: query}, &r)
	return r.Items, err
}

// OpenAPI is the service's description of its API (YAML).
func (c *Client) OpenAPI(ctx context.Context) ([]byte, error) {
	resp, b, err := c.send(ctx, call{method: "GET", path: "/api/openapi.yaml"})
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, apiError(resp, b)
	}
	return b, nil
}
