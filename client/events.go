package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
)

// Event is one event of a job's stream (x-events in api/openapi.yaml):
// status, progress, script, result or failed.
type Event struct {
	Name string `json:"-"`   // the SSE event name
	Seq  int64  `json:"seq"` // the event's seq, its SSE id: a resume starts after it

	// status, progress, result, failed (Event)
	Type      string          `json:"type"`
	Status    string          `json:"status"`
	Progress  int             `json:"progress"`
	Stage     string          `json:"stage"`
	Message   string          `json:"message"`
	Data      json.RawMessage `json:"data"` // result: the job's result
	CreatedAt time.Time       `json:"created_at"`
	Final     bool            `json:"final"` // the job's terminal event; the stream ends after it

	// script (ScriptEvent): Text follows the first Offset characters of
	// the script.
	Offset int    `json:"offset"`
	Text   string `json:"text"`

	// Raw is the event's data line as sent.
	Raw json.RawMessage `json:"-"`
}

// JobEndedError is what Follow returns when the job itself ended badly:
// it failed for good, or was cancelled. A lost connection is a
// *ConnectionLostError instead.
type JobEndedError struct {
	Status  string // failed or cancelled
	Message string // the reason
}

func (e *JobEndedError) Error() string {
	return fmt.Sprintf("scriptgen: the job %s: %s", e.Status, e.Message)
}

// ConnectionLostError is what Follow returns when it gave up reaching the
// stream: MaxRetries connections in a row failed. The job may well still
// run; LastSeq is where a later Follow should resume.
type ConnectionLostError struct {
	Attempts int
	LastSeq  int64
	Err      error // the last attempt's error
}

func (e *ConnectionLostError) Error() string {
	return fmt.Sprintf("scriptgen: the event stream was lost after %d attempts (last event %d): %v", e.Attempts, e.LastSeq, e.Err)
}

func (e *ConnectionLostError) Unwrap() error { return e.Err }

// FollowOptions are Follow's.
type FollowOptions struct {
	// After resumes after this seq (the last event the caller has); 0 is
	// from the start.
	After int64
	// OnEvent gets each event once, in seq order.
	OnEvent func(Event)
	// OnReconnect, when set, hears of each reconnection: the consecutive
	// failures so far, the delay before it and why the last stream ended.
	OnReconnect func(failures int, delay time.Duration, cause error)
	// MaxRetries is how many connections in a row may fail before Follow
	// gives up with a *ConnectionLostError; 0 is 20 (about 90 s of backoff).
	MaxRetries int
	// Backoff is the delay before a reconnection after n+1 failures in a
	// row; nil is Backoff.
	Backoff func(n int) time.Duration
}

// Backoff is min(1000·1.5ⁿ, 5000) ms: the delay before the (n+1)th
// reconnection in a row after a refused or failed connection.
func Backoff(n int) time.Duration {
	d := 1000.0
	for range n {
		d *= 1.5
		if d >= 5000 {
			return 5 * time.Second
		}
	}
	return time.Duration(d) * time.Millisecond
}

// errStreamEnded is a stream that closed before the job's final event (a
// restart, a mode switch, a proxy's timeout): Follow resumes at once.
var errStreamEnded = errors.New("the stream ended before the job's final event")

// errNothingAfter is a 204: the job is finished and there is no event
// after the one resumed from.
var errNothingAfter = errors.New("no event after the last one (204)")

// Follow reads job id's events and gives each to o.OnEvent once, in order,
// resuming with Last-Event-ID after the last one it saw whenever the stream
// breaks and dropping any event at or below it. It returns nil when the job
// succeeded (its final event), a *JobEndedError when it failed or was
// cancelled, a *ConnectionLostError when o.MaxRetries connections in a row
// failed, an *Error when the API refused the stream (404, 401…), or ctx's
// error. A stream that delivered events and broke is reopened at once; a
// connection that is refused or answers an error waits Backoff(n).
func (c *Client) Follow(ctx context.Context, id string, o FollowOptions) error {
	maxRetries := o.MaxRetries
	if maxRetries <= 0 {
		maxRetries = 20
	}
	backoff := o.Backoff
	if backoff == nil {
		backoff = Backoff
	}
	last, failures := o.After, 0
	for {
		before := last
		final, err := c.stream(ctx, id, &last, o.OnEvent)
		switch {
		case final != nil:
			return ended(final)
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, errNothingAfter):
			return c.endedFromJob(ctx, id)
		case !retryable(err):
			return err
		}
		delay := time.Duration(0)
		if last > before { // it delivered: the next try is a fresh start
			failures = 0
		} else {
			failures++
			if failures > maxRetries {
				return &ConnectionLostError{Attempts: failures, LastSeq: last, Err: err}
			}
			delay = backoff(failures - 1)
			var apiErr *Error
			if errors.As(err, &apiErr) && apiErr.RetryAfter > delay {
				delay = apiErr.RetryAfter
			}
		}
		if o.OnReconnect != nil {
			o.OnReconnect(failures, delay, err)
		}
		if err := clock.Sleep(ctx, delay); err != nil {
			return err
		}
	}
}

// retryable says whether a stream's end is worth another connection: a
// transport error, a broken stream, 429, 5xx. Any other error answer (404,
// 401, 400) will not change.
func retryable(err error) bool {
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return apiErr.Status == http.StatusTooManyRequests || apiErr.Status >= 500
	}
	return err != nil
}

// ended is Follow's answer for a final event.
func ended(e *Event) error {
	if e.Name == "failed" || e.Status == StatusFailed || e.Status == StatusCancelled {
		status := e.Status
		if e.Name == "failed" {
			status = StatusFailed
		}
		return &JobEndedError{Status: status, Message: e.Message}
	}
	return nil
}

// endedFromJob is Follow's answer when the caller already had the final
// event (a 204 on resume): the job's own status says how it ended.
func (c *Client) endedFromJob(ctx context.Context, id string) error {
	j, err := c.Get(ctx, id)
	if err != nil {
		return err
	}
	if j.Status == StatusFailed || j.Status == StatusCancelled {
		return &JobEndedError{Status: j.Status, Message: j.Error}
	}
	return nil
}

// stream reads one connection of the stream after *last, moving *last on
// with each event it hands to onEvent. It returns the final event when it
// came, or why the connection ended.
func (c *Client) stream(ctx context.Context, id string, last *int64, onEvent func(Event)) (*Event, error) {
	k := call{method: "GET", path: path("api", "generation", id, "events")}
	if *last > 0 {
		k.header = map[string]string{"Last-Event-ID": strconv.FormatInt(*last, 10)}
	}
	req, err := c.request(ctx, k)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNoContent:
		return nil, errNothingAfter
	case resp.StatusCode != http.StatusOK:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		return nil, apiError(resp, b)
	}
	r := &sseReader{r: bufio.NewReader(resp.Body)}
	for {
		e, err := r.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errStreamEnded
			}
			return nil, err
		}
		if e.Seq <= *last {
			continue // a repeat across a resume
		}
		*last = e.Seq
		if onEvent != nil {
			onEvent(*e)
		}
		if e.Final {
			return e, nil
		}
	}
}

// sseReader reads the events of a text/event-stream. It is written here
// rather than taken from a library: the stream's resume, its dedup and its
// typed events are this package's, and what remains is four kinds of line.
type sseReader struct {
	r *bufio.Reader
}

// next is the next event with data; comments, retry: and empty events are
// skipped.
func (s *sseReader) next() (*Event, error) {
	var name, id string
	var data []string
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if data == nil {
				name, id = "", ""
				continue
			}
			return decodeEvent(name, id, strings.Join(data, "\n"))
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			name = value
		case "data":
			data = append(data, value)
		case "id":
			id = value
		}
	}
}

func decodeEvent(name, id, data string) (*Event, error) {
	e := &Event{Raw: json.RawMessage(data)}
	if err := json.Unmarshal([]byte(data), e); err != nil {
		return nil, fmt.Errorf("event %s %s: %w", name, id, err)
	}
	e.Name = name // e.Seq is data's seq; the id line, its twin, wins
	if n, err := strconv.ParseInt(id, 10, 64); err == nil {
		e.Seq = n
	}
	return e, nil
}
