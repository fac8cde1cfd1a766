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

// JobGetter tells whether a job exists and whether it has finished.
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

// The stream's events. Each SSE event has `id:` its seq in the job's log and
// `event:` a name from this list; its `data:` is one line of JSON:
//
//   - status, progress, result, failed: an EventJSON. result is a succeeded
//     job's end; failed a failed job's end (stored as job.EventError, "error",
//     which the stream renames: EventSource fires "error" for its own
//     connection errors, so a listener for the job's failure would also hear
//     every dropped connection); a cancelled job ends with a status event.
//     The terminal event, the last of a finished job's log (status succeeded,
//     failed or cancelled), carries "final": true.
//   - script: a ScriptEventJSON, the next piece of the generation's text.
//
// Any other type the log may come to hold is sent under its own name with an
// EventJSON.
const (
	// EventFailed names a failed job's terminal event.
	EventFailed job.EventType = "failed"
	// EventScript names a piece of the script as it is written; the store
	// appends it (store.EventScript) with every checkpoint of the text.
	EventScript job.EventType = "script"
)

// EventName is the SSE event name of an event of type t: its type, except
// that job.EventError, never a name on the wire, is EventFailed.
func EventName(t job.EventType) job.EventType {
	if t == job.EventError {
		return EventFailed
	}
	return t
}

// EventJSON is the data of one SSE event other than a script event.
type EventJSON struct {
	Seq int64 `json:"seq"`
	// Type is the event's name (EventName: "failed" for a failure).
	Type      job.EventType   `json:"type"`
	Status    job.Status      `json:"status"`
	Progress  int             `json:"progress"`
	Stage     string          `json:"stage"`
	Message   string          `json:"message"`
	Data      json.RawMessage `json:"data"`
	CreatedAt time.Time       `json:"created_at"`
	// Final is true on the job's terminal event, after which the stream
	// ends and a client resuming after it gets 204 No Content; absent on
	// every other event.
	Final bool `json:"final,omitempty"`
}

// ScriptEventJSON is the data of a script event: Text follows the first
// Offset characters (Unicode code points, not bytes or UTF-16 units) of the
// script, so a client appending the texts of the job's script events in seq
// order holds the script so far. A piece that ends at or before what the
// client holds repeats it; one that starts beyond it follows a gap the
// client fills from GET /api/generation/{id}?include=script.
type ScriptEventJSON struct {
	Seq    int64  `json:"seq"`
	Offset int    `json:"offset"`
	Text   string `json:"text"`
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
	j, err := s.jobs.GetJob(r.Context(), id)
	if err != nil {
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
	// A finished job's client that has its last event is told, with 204 No
	// Content, to stop: the HTML standard's way to end an EventSource, which
	// would reconnect after an empty 200 for as long as its tab is open.
	if after > 0 && j.Status.Terminal() {
		seqs, err := s.broker.src.EventSeqs(r.Context(), []string{id})
		if err != nil {
			if r.Context().Err() != nil {
				return
			}
			response.ServerError(w, r, s.log, fmt.Errorf("event stream: read the last event of job %s: %w", id, err))
			return
		}
		if last, ok := seqs[id]; ok && after >= last {
			w.Header().Set("Cache-Control", "no-cache")
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	sub, err := s.broker.Subscribe(id, after)
	if errors.Is(err, ErrClosed) {
		// The process is shutting down and this request came in on a
		// connection it had already accepted (a load balancer's pooled
		// one): the stream ends at once, as the open ones just did, and
		// the client resumes from its last event id on another process.
		// A 503 here was an error the client had done nothing to earn,
		// and a load balancer passes it on.
		s.endAtOnce(w)
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
	// forever: every write has a deadline, cleared at the end because the
	// connection may serve further requests. Moving it resets a timer of the
	// runtime's (2 % of serve's CPU with 1,000 streams, one write per event),
	// so it is moved only when less than writeTimeout-deadlineSlack is left:
	// a write still gets at least that long.
	defer rc.SetWriteDeadline(time.Time{})
	var deadline time.Time
	send := func(b []byte) bool {
		if now := time.Now(); deadline.Sub(now) < writeTimeout-deadlineSlack {
			deadline = now.Add(writeTimeout)
			_ = rc.SetWriteDeadline(deadline)
		}
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	var buf []byte
	for {
		frames, more, done, err := sub.nextFrames(r.Context())
		if err != nil {
			// The client resumes from its last event id.
			if r.Context().Err() == nil {
				s.log.Warn("Event stream: reading earlier events failed; the stream ends", "job_id", id, "err", err)
			}
			return
		}
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

// writeTimeout bounds one write to a client: it has between
// writeTimeout-deadlineSlack and writeTimeout.
const (
	writeTimeout  = 10 * time.Second
	deadlineSlack = time.Second
)

var ping = []byte(": ping\n\n")

// encodeEvent appends e as one SSE event: its seq as the id, its name
// (EventName) as the event, its JSON (EventJSON or ScriptEventJSON) as the
// data.
func encodeEvent(buf []byte, e job.Event) []byte {
	name := EventName(e.Type)
	var data []byte
	if name == EventScript {
		var sc struct {
			Offset *int    `json:"offset"`
			Text   *string `json:"text"`
		}
		if json.Unmarshal(e.Data, &sc) == nil && sc.Offset != nil && sc.Text != nil {
			data, _ = json.Marshal(ScriptEventJSON{Seq: e.Seq, Offset: *sc.Offset, Text: *sc.Text})
		}
	}
	if data == nil {
		data, _ = json.Marshal(EventJSON{
			Seq:       e.Seq,
			Type:      name,
			Status:    e.Status,
			Progress:  e.Progress,
			Stage:     e.Stage,
			Message:   e.Message,
			Data:      e.Data,
			CreatedAt: e.CreatedAt,
			Final:     e.Status.Terminal(),
		})
	}
	buf = append(buf, "id: "...)
	buf = strconv.AppendInt(buf, e.Seq, 10)
	buf = append(buf, "\nevent: "...)
	buf = append(buf, name...)
	buf = append(buf, "\ndata: "...)
	buf = append(buf, data...) // JSON has no raw newlines
	return append(buf, "\n\n"...)
}

// endAtOnce answers an event stream that ends before its first event: the
// client (EventSource) reconnects after the retry interval with the same
// Last-Event-ID.
func (s *Stream) endAtOnce(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "close")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "retry: %d\n\n", s.cfg.Retry.Milliseconds())
}
