package progress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/scriptgen/scriptgen/internal/httpx/response"
	"github.com/scriptgen/scriptgen/internal/job"
)

// JobGetter tells whether a job exists.
type JobGetter interface {
	GetJob(ctx context.Context, id string) (job.Job, error)
}

// StreamConfig tunes the SSE endpoint.
type StreamConfig struct {
	// Heartbeat is the interval of `: ping` comments that keep proxies and
	// clients from timing the stream out. Default 15s.
	Heartbeat time.Duration
	// Retry is the reconnection delay the stream suggests to clients.
	// Default 1s.
	Retry time.Duration
}

// Stream serves GET /api/generation/{id}/events as Server-Sent Events.
type Stream struct {
	broker *Broker
	jobs   JobGetter
	cfg    StreamConfig
	log    *slog.Logger
}

// NewStream builds the SSE handler.
func NewStream(b *Broker, jobs JobGetter, cfg StreamConfig, log *slog.Logger) *Stream {
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	if cfg.Retry <= 0 {
		cfg.Retry = time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Stream{broker: b, jobs: jobs, cfg: cfg, log: log}
}

// EventJSON is the data of one SSE event.
type EventJSON struct {
	Seq       int64           `json:"seq"`
	Type      job.EventType   `json:"type"`
	Status    job.Status      `json:"status"`
	Progress  int             `json:"progress"`
	Stage     string          `json:"stage"`
	Message   string          `json:"message"`
	Data      json.RawMessage `json:"data"`
	CreatedAt time.Time       `json:"created_at"`
}

// LastEventID reads where a client resumes: the Last-Event-ID header, or the
// last_event_id query parameter for clients that cannot set headers.
func LastEventID(r *http.Request) (int64, error) {
	v := strings.TrimSpace(r.Header.Get("Last-Event-ID"))
	if v == "" {
		v = strings.TrimSpace(r.URL.Query().Get("last_event_id"))
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("Last-Event-ID %q is not an event id of this stream (a non-negative integer)", v)
	}
	return n, nil
}

func (s *Stream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	after, err := LastEventID(r)
	if err != nil {
		response.Error(w, http.StatusBadRequest, "invalid_last_event_id", err.Error())
		return
	}
	if _, err := s.jobs.GetJob(r.Context(), id); err != nil {
		if errors.Is(err, job.ErrNotFound) {
			response.Error(w, http.StatusNotFound, "not_found", "no job with id "+id)
			return
		}
		if r.Context().Err() != nil {
			return
		}
		response.ServerError(w, r, s.log, fmt.Errorf("event stream: read job %s: %w", id, err))
		return
	}
	sub, err := s.broker.Subscribe(id, after)
	if errors.Is(err, ErrClosed) {
		response.Error(w, http.StatusServiceUnavailable, "shutting_down", ErrClosed.Error())
		return
	}
	if err != nil {
		response.ServerError(w, r, s.log, fmt.Errorf("event stream: subscribe to job %s: %w", id, err))
		return
	}
	defer sub.Close()

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "retry: %d\n\n", s.cfg.Retry.Milliseconds())
	if err := rc.Flush(); err != nil {
		return
	}
	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	// A client that stops reading must not hold its handler (and shutdown)
	// forever: each write gets a deadline, cleared at the end because the
	// connection may serve further requests.
	defer rc.SetWriteDeadline(time.Time{})
	send := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	var buf []byte
	for {
		frames, more, done := sub.nextFrames()
		if len(frames) > 0 {
			buf = buf[:0]
			for _, fr := range frames {
				buf = append(buf, fr...)
			}
			if !send(buf) {
				return
			}
		}
		if done {
			return
		}
		select {
		case <-more:
		case <-heartbeat.C:
			if !send(ping) {
				return
			}
		case <-r.Context().Done():
			return
		case <-s.broker.Closing():
			// The server is shutting down; the client resumes from its
			// last event id on another process or after the restart.
			return
		}
	}
}

// writeTimeout bounds one write to a client.
const writeTimeout = 10 * time.Second

var ping = []byte(": ping\n\n")

// encodeEvent appends e as one SSE event: its seq as the id, its type as the
// event name, its JSON as the data.
func encodeEvent(buf []byte, e job.Event) []byte {
	data, _ := json.Marshal(EventJSON{
		Seq:       e.Seq,
		Type:      e.Type,
		Status:    e.Status,
		Progress:  e.Progress,
		Stage:     e.Stage,
		Message:   e.Message,
		Data:      e.Data,
		CreatedAt: e.CreatedAt,
	})
	buf = append(buf, "id: "...)
	buf = strconv.AppendInt(buf, e.Seq, 10)
	buf = append(buf, "\nevent: "...)
	buf = append(buf, e.Type...)
	buf = append(buf, "\ndata: "...)
	buf = append(buf, data...) // JSON has no raw newlines
	return append(buf, "\n\n"...)
}
