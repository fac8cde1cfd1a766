// Package client is a small typed Go client of scriptgen's HTTP API (the
// routes of api/openapi.yaml): submit, read, list and cancel generation jobs,
// follow a job's events with resume, the projects, documents and usage of a
// writer, and the operator's admin calls. Every error answer of the API is a
// *Error with its code, message, status and request id.
//
//	c := client.New("http://127.0.0.1:8002", client.WithToken(key))
//	job, err := c.Submit(ctx, client.GenerationRequest{ProjectID: "p1",
//		EpisodeData: client.EpisodeData{Title: "첫 만남"}}, "my-key-1")
//	err = c.Follow(ctx, job.ID, client.FollowOptions{OnEvent: func(e client.Event) { … }})
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls one scriptgen service. Its zero value is not usable: make
// one with New. A Client is safe for concurrent use.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithToken sends `Authorization: Bearer token` on every call: a writer's
// API key or JWT, or an admin token (which also serves the writer API).
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient makes the calls with h (its transport, its timeout). An
// event stream lasts as long as the job: a Timeout on h cuts it, and Follow
// then resumes.
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// New is a client of the service at baseURL (http://host:port).
func New(baseURL string, opts ...Option) *Client {
	c := &Client{base: strings.TrimRight(baseURL, "/"), http: http.DefaultClient}
	for _, o := range opts {
		o(c)
	}
	return c
}

// BaseURL is the service's address, as given to New without a trailing slash.
func (c *Client) BaseURL() string { return c.base }

// Error is an error answer of the API: `{"error": {"code", "message",
// "field"?}}` with the answer's status and X-Request-Id.
type Error struct {
	Status    int    // the HTTP status
	Code      string // the API's code (not_found, invalid_request, …; api/openapi.yaml's ErrorCode)
	Message   string
	Field     string // the input at fault, when there is one
	RequestID string // X-Request-Id, for the server's logs
	// RetryAfter is Retry-After (429, 503), 0 without one.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	s := fmt.Sprintf("scriptgen: %d %s: %s", e.Status, e.Code, e.Message)
	if e.Field != "" {
		s += " (" + e.Field + ")"
	}
	if e.RequestID != "" {
		s += " [request " + e.RequestID + "]"
	}
	return s
}

// IsCode says whether err is an *Error with that code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// StatusOf is err's HTTP status when it is an *Error, else 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// call is one request: its method, path with query, JSON body (nil for
// none) and extra headers.
type call struct {
	method, path string
	query        url.Values
	body         any
	rawBody      []byte // sent as is with contentType, instead of body
	contentType  string
	header       map[string]string
}

// send does c and returns the answer, whatever its status, with its body read.
func (c *Client) send(ctx context.Context, k call) (*http.Response, []byte, error) {
	req, err := c.request(ctx, k)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", k.method, k.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp, b, fmt.Errorf("%s %s: read the answer: %w", k.method, k.path, err)
	}
	return resp, b, nil
}

func (c *Client) request(ctx context.Context, k call) (*http.Request, error) {
	u := c.base + k.path
	if len(k.query) > 0 {
		u += "?" + k.query.Encode()
	}
	var body io.Reader
	contentType := k.contentType
	switch {
	case k.rawBody != nil:
		body = bytes.NewReader(k.rawBody)
	case k.body != nil:
		b, err := json.Marshal(k.body)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encode the body: %w", k.method, k.path, err)
		}
		body, contentType = bytes.NewReader(b), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, k.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", k.method, k.path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for name, v := range k.header {
		req.Header.Set(name, v)
	}
	return req, nil
}

// do sends k and decodes a 2xx answer into out (when not nil); any other
// answer is an *Error.
func (c *Client) do(ctx context.Context, k call, out any) (*http.Response, error) {
	resp, b, err := c.send(ctx, k)
	if err != nil {
		return resp, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp, apiError(resp, b)
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp, fmt.Errorf("%s %s: decode the answer (%d): %w", k.method, k.path, resp.StatusCode, err)
		}
	}
	return resp, nil
}

// apiError reads an error answer; one that is not the API's shape (a proxy's
// page) keeps its status and its first words.
func apiError(resp *http.Response, body []byte) *Error {
	e := &Error{Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	var shape struct {
		Error *struct {
			Code, Message, Field string
		} `json:"error"`
	}
	if json.Unmarshal(body, &shape) == nil && shape.Error != nil {
		e.Code, e.Message, e.Field = shape.Error.Code, shape.Error.Message, shape.Error.Field
		return e
	}
	e.Code = "http_" + strconv.Itoa(resp.StatusCode)
	e.Message = strings.TrimSpace(string(body[:min(len(body), 200)]))
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

// path joins escaped segments under /.
func path(segments ...string) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}
