package scriptkit

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
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Follower follows one job's event stream (GET /api/generation/{id}/events)
// to its final event, as a browser's EventSource would: when a stream ends
// before it, it reconnects with Last-Event-ID. It pieces the script together
// from the script events, each of which must continue the text exactly
// where it stands (a gap or a repeat is a Problem), and checks that the
// events' ids go 1, 2, 3… with none missing or repeated across connections.
//
// Script events are read in both shapes the server has sent: flat,
// {"seq","offset","text"}, and nested, {"seq","type":"script","data":{"offset","text"}}.
type Follower struct {
	Base  string // the server's URL
	JobID string
	// Client defaults to http.DefaultClient.
	Client *http.Client
	// Header is sent with every request (e.g. Authorization).
	Header http.Header
	// DropEvery, above 0, has the client close its connection after that
	// many events and reconnect with Last-Event-ID, as a client on a bad
	// network would.
	DropEvery int
	// Retry is the wait before a reconnect (default 100 ms).
	Retry time.Duration
	// OnScript is told each script event (its seq, offset and text) when it
	// has been read.
	OnScript func(seq int64, offset int, text string, at time.Time)
	// Chars, when set, holds the length of the script pieced together so
	// far, in characters.
	Chars *atomic.Int64
}

// Followed is what a Follower saw.
type Followed struct {
	Script       string
	LastSeq      int64
	Events       int
	ScriptEvents int
	Connections  int    // streams opened (200 answers)
	ServerEnds   int    // streams the server ended before the final event
	Drops        int    // streams the client closed on purpose
	NoContent    int    // 204 answers: caught up with a finished job
	Status       string // the final event's status
	Final        bool   // the final event was seen
	LastError    string // why the last failed connection failed
	Problems     []string
}

// piece is the script pieced together so far.
type piece struct {
	b     *strings.Builder
	chars *int
}

// eventData is the data of one event, of any type.
type eventData struct {
	Seq    int64           `json:"seq"`
	Type   string          `json:"type"`
	Status string          `json:"status"`
	Final  bool            `json:"final"`
	Offset *int            `json:"offset"`
	Text   *string         `json:"text"`
	Data   json.RawMessage `json:"data"`
}

type sseEvent struct {
	id, name, data string
}

// errDrop ends a connection the client closes on purpose.
var errDrop = errors.New("dropped on purpose")

// Run follows the stream until the final event (or a 204 after it), or
// until ctx ends.
func (f *Follower) Run(ctx context.Context) (out Followed, err error) {
	client := f.Client
	if client == nil {
		client = http.DefaultClient
	}
	retry := f.Retry
	if retry <= 0 {
		retry = 100 * time.Millisecond
	}
	var script strings.Builder
	defer func() { out.Script = script.String() }()
	var chars int
	for !out.Final {
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("job %s: stream not finished after seq %d: %w", f.JobID, out.LastSeq, err)
		}
		err = f.connect(ctx, client, &out, &piece{b: &script, chars: &chars})
		switch {
		case out.Final:
		case errors.Is(err, errDrop):
			out.Drops++
			continue // at once
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			out.ServerEnds++
		case err != nil:
			out.LastError = err.Error()
		}
		err = nil
		if !out.Final {
			select {
			case <-ctx.Done():
			case <-time.After(retry):
			}
		}
	}
	return out, nil
}

// connect reads one stream; its error says why it ended (io.EOF: the server
// ended it; nil: the final event, or a 204).
func (f *Follower) connect(ctx context.Context, client *http.Client, out *Followed, chars *piece) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(f.Base, "/")+"/api/generation/"+f.JobID+"/events", nil)
	if err != nil {
		return err
	}
	for k, vs := range f.Header {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", "text/event-stream")
	if out.LastSeq > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(out.LastSeq, 10))
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		// The job is finished and its last event is ours.
		out.NoContent++
		out.Final = true
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("events of %s: %s", f.JobID, resp.Status)
	}
	out.Connections++
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	var ev sseEvent
	n := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if ev.data == "" {
				ev = sseEvent{}
				continue
			}
			f.event(ev, out, chars)
			ev = sseEvent{}
			n++
			if out.Final {
				return nil
			}
			if f.DropEvery > 0 && n >= f.DropEvery {
				return errDrop
			}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id:"):
			ev.id = strings.TrimSpace(line[3:])
		case strings.HasPrefix(line, "event:"):
			ev.name = strings.TrimSpace(line[6:])
		case strings.HasPrefix(line, "data:"):
			d := strings.TrimPrefix(line[5:], " ")
			if ev.data != "" {
				ev.data += "\n"
			}
			ev.data += d
		}
	}
}

// event takes one event.
func (f *Follower) event(ev sseEvent, out *Followed, p *piece) {
	chars := p.chars
	at := time.Now()
	problem := func(format string, args ...any) {
		if len(out.Problems) < 20 {
			out.Problems = append(out.Problems, fmt.Sprintf("seq %s: ", ev.id)+fmt.Sprintf(format, args...))
		}
	}
	var d eventData
	if err := json.Unmarshal([]byte(ev.data), &d); err != nil {
		problem("bad data %.100q: %v", ev.data, err)
		return
	}
	seq, err := strconv.ParseInt(ev.id, 10, 64)
	if err != nil || seq != d.Seq {
		problem("id %q does not match the data's seq %d", ev.id, d.Seq)
	}
	if d.Seq != out.LastSeq+1 {
		problem("after seq %d (a gap or a repeat)", out.LastSeq)
	}
	out.LastSeq = d.Seq
	out.Events++
	if ev.name == "script" || d.Type == "script" {
		offset, text, ok := scriptPiece(d)
		if !ok {
			problem("a script event without offset and text: %.100q", ev.data)
			return
		}
		out.ScriptEvents++
		switch {
		case offset < *chars:
			problem("script piece at %d repeats text the client has (it holds %d characters)", offset, *chars)
		case offset > *chars:
			problem("script piece at %d leaves a gap (the client holds %d characters)", offset, *chars)
		default:
			p.b.WriteString(text)
			*chars += utf8.RuneCountInString(text)
			if f.Chars != nil {
				f.Chars.Store(int64(*chars))
			}
		}
		if f.OnScript != nil {
			f.OnScript(d.Seq, offset, text, at)
		}
		return
	}
	terminal := d.Final
	if !terminal { // a server from before "final"
		terminal = ev.name == "result" || ev.name == "failed" || ev.name == "error" || (ev.name == "status" && d.Status == "cancelled")
	}
	if terminal {
		out.Final = true
		out.Status = d.Status
	}
}

// scriptPiece reads a script event's offset and text, flat or nested.
func scriptPiece(d eventData) (int, string, bool) {
	if d.Offset != nil && d.Text != nil {
		return *d.Offset, *d.Text, true
	}
	var nested struct {
		Offset *int    `json:"offset"`
		Text   *string `json:"text"`
	}
	if len(d.Data) == 0 || json.Unmarshal(d.Data, &nested) != nil || nested.Offset == nil || nested.Text == nil {
		return 0, "", false
	}
	return *nested.Offset, *nested.Text, true
}
