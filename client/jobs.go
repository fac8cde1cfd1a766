package client

import (
	"context"
	"encoding/json"
	"iter"
	"net/url"
	"strconv"
	"time"
)

// Character is a character of an episode: a name and, optionally, who
// they are.
type Character struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// EpisodeData is what a generation is about.
type EpisodeData struct {
	Title      string      `json:"title"`
	Synopsis   string      `json:"synopsis,omitempty"`
	Characters []Character `json:"characters,omitempty"`
}

// GenerationRequest is the body of a submission.
type GenerationRequest struct {
	ProjectID   string      `json:"project_id"`
	EpisodeData EpisodeData `json:"episode_data"`
}

// Job statuses (JobStatus).
const (
	StatusQueued    = "queued"
	StatusRunning   = "running"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// Job is a job as the API shows it (Job in api/openapi.yaml).
type Job struct {
	ID            string          `json:"id"`
	Kind          string          `json:"kind"` // generation, rag_document
	ProjectID     string          `json:"project_id"`
	Status        string          `json:"status"`
	Stage         string          `json:"stage"`
	Progress      int             `json:"progress"`
	Attempt       int             `json:"attempt"`
	MaxAttempts   int             `json:"max_attempts"`
	Backend       string          `json:"backend"` // durable, background_tasks
	DispatchEpoch int64           `json:"dispatch_epoch"`
	Worker        string          `json:"worker,omitempty"`
	Payload       json.RawMessage `json:"payload"`
	Result        json.RawMessage `json:"result"` // null until the job succeeds
	Error         string          `json:"error"`
	CreatedAt     *time.Time      `json:"created_at"`
	StartedAt     *time.Time      `json:"started_at"`
	FinishedAt    *time.Time      `json:"finished_at"`
	// RetryAt is when a job queued again after a failed attempt runs its
	// next attempt, at the earliest; nil when it may run now.
	RetryAt *time.Time `json:"retry_at,omitempty"`
	Links   struct {
		Self   string `json:"self"`
		Events string `json:"events"`
		Cancel string `json:"cancel"`
	} `json:"links"`
	// ScriptSoFar is the checkpointed script's length (Get only).
	ScriptSoFar int `json:"script_so_far,omitempty"`
	// Script is the checkpointed script (GetWithScript only).
	Script string `json:"script,omitempty"`
	// Replayed: the answer to a submission is the job an earlier request
	// with the same Idempotency-Key made (Idempotent-Replayed: true).
	Replayed bool `json:"-"`
}

// Finished says whether the job has ended (succeeded, failed, cancelled).
func (j *Job) Finished() bool {
	return j.Status == StatusSucceeded || j.Status == StatusFailed || j.Status == StatusCancelled
}

// GenerationResult is a succeeded generation's result.
type GenerationResult struct {
	Title         string `json:"title"`
	Scenes        int    `json:"scenes"`
	Model         string `json:"model"`
	ScriptChars   int    `json:"script_chars"`
	Attempt       int    `json:"attempt"`
	ResumedFrom   int    `json:"resumed_from"`
	EpisodeNumber int    `json:"episode_number"`
	Usage         struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

// GenerationResult decodes a succeeded generation's result (nil before).
func (j *Job) GenerationResult() (*GenerationResult, error) {
	if len(j.Result) == 0 || string(j.Result) == "null" {
		return nil, nil
	}
	var r GenerationResult
	if err := json.Unmarshal(j.Result, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// JobList is a page of jobs; NextCursor is empty on the last.
type JobList struct {
	Items      []Job  `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// Submit posts a generation job. A non-empty idempotencyKey makes a retry
// of the same request safe: it answers the job the first one made
// (Job.Replayed), and the same key with another body is a 422
// idempotency_key_reused.
func (c *Client) Submit(ctx context.Context, req GenerationRequest, idempotencyKey string) (*Job, error) {
	k := call{method: "POST", path: "/api/generation", body: req}
	if idempotencyKey != "" {
		k.header = map[string]string{"Idempotency-Key": idempotencyKey}
	}
	var j Job
	resp, err := c.do(ctx, k, &j)
	if err != nil {
		return nil, err
	}
	j.Replayed = resp.Header.Get("Idempotent-Replayed") == "true"
	return &j, nil
}

// Get reads a job.
func (c *Client) Get(ctx context.Context, id string) (*Job, error) {
	return c.getJob(ctx, id, nil)
}

// GetWithScript reads a job with its checkpointed script (?include=script).
func (c *Client) GetWithScript(ctx context.Context, id string) (*Job, error) {
	return c.getJob(ctx, id, url.Values{"include": {"script"}})
}

func (c *Client) getJob(ctx context.Context, id string, q url.Values) (*Job, error) {
	var j Job
	if _, err := c.do(ctx, call{method: "GET", path: path("api", "generation", id), query: q}, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// Cancel cancels a queued or running job (409 conflict when it has ended).
func (c *Client) Cancel(ctx context.Context, id string) (*Job, error) {
	var j Job
	if _, err := c.do(ctx, call{method: "POST", path: path("api", "generation", id, "cancel")}, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// ListOptions selects a page of jobs; zero values are the server's defaults.
type ListOptions struct {
	ProjectID string
	Status    string
	Kind      string
	Limit     int
	Cursor    string
}

func (o ListOptions) query() url.Values {
	q := url.Values{}
	for name, v := range map[string]string{"project_id": o.ProjectID, "status": o.Status, "kind": o.Kind, "cursor": o.Cursor} {
		if v != "" {
			q.Set(name, v)
		}
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	return q
}

// List reads one page of the caller's jobs, newest first.
func (c *Client) List(ctx context.Context, o ListOptions) (*JobList, error) {
	var l JobList
	if _, err := c.do(ctx, call{method: "GET", path: "/api/generation", query: o.query()}, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// Jobs walks every page from o.Cursor on; it stops at the first error,
// which it yields.
func (c *Client) Jobs(ctx context.Context, o ListOptions) iter.Seq2[Job, error] {
	return func(yield func(Job, error) bool) {
		for {
			page, err := c.List(ctx, o)
			if err != nil {
				yield(Job{}, err)
				return
			}
			for _, j := range page.Items {
				if !yield(j, nil) {
					return
				}
			}
			if page.NextCursor == "" {
				return
			}
			o.Cursor = page.NextCursor
		}
	}
}
