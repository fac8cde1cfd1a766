package progress_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/progress"
	"github.com/scriptgen/scriptgen/internal/store"
)

// How a stream ends (issue 18): the terminal event says "final": true, a
// client that already has it is told to stop with 204 No Content, no event is
// named "error", and script events carry the text flat.

// rawEvent is one event of a stream as sent: its data decoded into a map, so
// that a test sees exactly which fields it has.
type rawEvent struct {
	ID, Event string
	Data      map[string]any
}

// readAll reads a stream to its end.
func readAll(t *testing.T, body io.Reader) (evs []rawEvent, raw string) {
	t.Helper()
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	raw = string(b)
	for _, block := range strings.Split(raw, "\n\n") {
		var ev rawEvent
		for _, line := range strings.Split(block, "\n") {
			switch {
			case strings.HasPrefix(line, "id: "):
				ev.ID = line[len("id: "):]
			case strings.HasPrefix(line, "event: "):
				ev.Event = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				if err := json.Unmarshal([]byte(line[len("data: "):]), &ev.Data); err != nil {
					t.Fatalf("data of %q is not JSON: %v", block, err)
				}
			}
		}
		if ev.ID != "" {
			evs = append(evs, ev)
		}
	}
	return evs, raw
}

// get opens a job's stream, resuming after lastID ("" for none; a header, or
// the query parameter when query is set).
func openEvents(t *testing.T, base, id, lastID string, query bool) *http.Response {
	t.Helper()
	url := base + "/api/generation/" + id + "/events"
	if lastID != "" && query {
		url += "?last_event_id=" + lastID
	}
	req, _ := http.NewRequest("GET", url, nil)
	if lastID != "" && !query {
		req.Header.Set("Last-Event-ID", lastID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// checkpoint appends a piece of the script.
func (f *fixture) checkpoint(offset int, text string) {
	if err := f.st.CheckpointScript(f.ctx, f.lease, offset, text); err != nil {
		f.t.Fatal(err)
	}
}

// Every way a job ends: the whole stream ends with the one final event, named
// as the job ended, and no event anywhere is named "error" — a failure is
// stored as "error", as rows written before the rename say, and sent as
// "failed".
func TestStreamFinalEventOnlyAtTheEnd(t *testing.T) {
	st := openSQLite(t)
	srv, _ := newStreamServer(t, st, progress.StreamConfig{})
	for _, tc := range []struct {
		end        string
		finish     func(f *fixture)
		wantEvent  string
		wantStatus job.Status
	}{
		{"succeeded", (*fixture).complete, "result", job.StatusSucceeded},
		{"failed", func(f *fixture) {
			if _, err := f.st.Fail(f.ctx, f.lease, "the model refused", false); err != nil {
				f.t.Fatal(err)
			}
		}, "failed", job.StatusFailed},
		{"cancelled", func(f *fixture) {
			if _, err := f.st.Cancel(f.ctx, f.job.ID); err != nil {
				f.t.Fatal(err)
			}
		}, "status", job.StatusCancelled},
	} {
		t.Run(tc.end, func(t *testing.T) {
			f := newFixture(t, st)
			f.claim()
			f.progress(10)
			f.checkpoint(0, "TITLE: 첫 만남\n")
			f.progress(50)
			tc.finish(f)
			stored, err := st.ListEvents(context.Background(), f.job.ID, 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			if tc.end == "failed" && stored[len(stored)-1].Type != job.EventError {
				t.Fatalf("the store wrote the failure as %q; this test means to read the stored name \"error\"", stored[len(stored)-1].Type)
			}
			resp := openEvents(t, srv.URL, f.job.ID, "", false)
			evs, raw := readAll(t, resp.Body)
			if resp.StatusCode != 200 || len(evs) != len(stored) {
				t.Fatalf("%d with %d events, want 200 with the log's %d", resp.StatusCode, len(evs), len(stored))
			}
			if strings.Contains(raw, "event: error") || strings.Contains(raw, `"type":"error"`) {
				t.Fatalf("stream names an event \"error\":\n%s", raw)
			}
			for i, ev := range evs {
				final, has := ev.Data["final"]
				last := i == len(evs)-1
				if last != has || (has && final != true) {
					t.Fatalf("event %d of %d (%s) has final=%v (present %v); want true on the last only", i+1, len(evs), ev.Event, final, has)
				}
				if ev.Event != "script" && ev.Data["type"] != ev.Event {
					t.Fatalf("event %s has type %v in its data", ev.Event, ev.Data["type"])
				}
			}
			end := evs[len(evs)-1]
			if end.Event != tc.wantEvent || end.Data["status"] != string(tc.wantStatus) {
				t.Fatalf("stream ends with %s %v, want %s %s", end.Event, end.Data["status"], tc.wantEvent, tc.wantStatus)
			}
		})
	}
}

// A client that already has a finished job's last event gets 204 No Content,
// whether it says so in Last-Event-ID or ?last_event_id=, or names a later
// seq; one that lacks some gets 200 with exactly those; one following a job
// that has not ended gets 200 and waits, even at its last event.
func TestStreamReconnectToAFinishedJob(t *testing.T) {
	st := openSQLite(t)
	srv, _ := newStreamServer(t, st, progress.StreamConfig{})
	f := newFixture(t, st)
	f.claim()
	f.progress(10)
	f.checkpoint(0, "장면 1\n")
	running, err := st.ListEvents(context.Background(), f.job.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	atEnd := strconv.Itoa(len(running))

	// Running, caught up: a stream that waits for what comes next.
	resp := openEvents(t, srv.URL, f.job.ID, atEnd, false)
	if resp.StatusCode != 200 {
		t.Fatalf("caught-up reconnect to a running job: %d, want 200", resp.StatusCode)
	}
	rd := &sseReader{r: bufio.NewReader(resp.Body)}
	f.complete()
	ev, err := rd.next()
	if err != nil || ev.Event != "result" || !ev.Data.Final {
		t.Fatalf("after the job succeeded the waiting stream got %+v %v, want the final result", ev, err)
	}
	if _, err := rd.next(); err != io.EOF {
		t.Fatalf("stream goes on after the final event: %v", err)
	}

	all, err := st.ListEvents(context.Background(), f.job.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	last := int64(len(all))
	for _, tc := range []struct {
		name   string
		lastID int64
		query  bool
	}{
		{"Last-Event-ID at the end", last, false},
		{"last_event_id at the end", last, true},
		{"beyond the end", last + 5, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := openEvents(t, srv.URL, f.job.ID, strconv.FormatInt(tc.lastID, 10), tc.query)
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusNoContent || len(b) != 0 {
				t.Fatalf("%d %q, want 204 and no body", resp.StatusCode, b)
			}
		})
	}
	t.Run("missing two", func(t *testing.T) {
		resp := openEvents(t, srv.URL, f.job.ID, strconv.FormatInt(last-2, 10), false)
		evs, _ := readAll(t, resp.Body)
		if resp.StatusCode != 200 || len(evs) != 2 || evs[0].ID != strconv.FormatInt(last-1, 10) ||
			evs[1].ID != strconv.FormatInt(last, 10) || evs[1].Data["final"] != true {
			t.Fatalf("%d %+v, want 200 with events %d and %d, the last final", resp.StatusCode, evs, last-1, last)
		}
	})
	t.Run("from the start", func(t *testing.T) {
		resp := openEvents(t, srv.URL, f.job.ID, "", false)
		evs, _ := readAll(t, resp.Body)
		if resp.StatusCode != 200 || int64(len(evs)) != last {
			t.Fatalf("%d with %d events, want 200 with all %d", resp.StatusCode, len(evs), last)
		}
	})
}

// Script events are `event: script`, `id: <seq>`, `data: {"seq", "offset",
// "text"}` and nothing else; offsets count characters, so appending the texts
// in order rebuilds the stored script, Korean included.
func TestStreamScriptEvents(t *testing.T) {
	if progress.EventScript != store.EventScript {
		t.Fatalf("the stream names script events %q, the store writes %q", progress.EventScript, store.EventScript)
	}
	st := openSQLite(t)
	srv, _ := newStreamServer(t, st, progress.StreamConfig{})
	f := newFixture(t, st)
	f.claim()
	pieces := []string{"TITLE: 첫 만남\n", "\n1. INT. 카페 - NIGHT\n", "지수 창가에 서 있다. \"Quote\" <b>&</b>\n", "\n                    MINHO\n          기억나? 그날 밤.\n"}
	offset := 0
	for i, p := range pieces {
		f.checkpoint(offset, p)
		if i == 1 {
			f.checkpoint(offset, p) // written again: stored once, no event
		}
		offset += len([]rune(p))
	}
	f.complete()
	resp := openEvents(t, srv.URL, f.job.ID, "", false)
	evs, _ := readAll(t, resp.Body)
	var text strings.Builder
	n := 0
	for _, ev := range evs {
		if ev.Event != "script" {
			if _, ok := ev.Data["offset"]; ok {
				t.Fatalf("%s event with an offset: %v", ev.Event, ev.Data)
			}
			continue
		}
		seq, _ := ev.Data["seq"].(float64)
		if len(ev.Data) != 3 || strconv.Itoa(int(seq)) != ev.ID {
			t.Fatalf("script event id %s with data %v, want exactly seq (= id), offset, text", ev.ID, ev.Data)
		}
		off, _ := ev.Data["offset"].(float64)
		piece, _ := ev.Data["text"].(string)
		if int(off) != len([]rune(text.String())) {
			t.Fatalf("script event %s at offset %v, the text so far has %d characters", ev.ID, off, len([]rune(text.String())))
		}
		text.WriteString(piece)
		n++
	}
	if n != len(pieces) {
		t.Fatalf("%d script events, want %d (one per checkpoint that appended)", n, len(pieces))
	}
	if want, _ := st.ScriptSoFar(context.Background(), f.job.ID); text.String() != want || want != strings.Join(pieces, "") {
		t.Fatalf("script events make %q, the store holds %q", text.String(), want)
	}
}

// Events are named by EventName: every type as it is, but the stored "error".
func TestEventName(t *testing.T) {
	for in, want := range map[job.EventType]job.EventType{
		job.EventStatus: "status", job.EventProgress: "progress", job.EventResult: "result",
		job.EventError: "failed", store.EventScript: "script",
	} {
		if got := progress.EventName(in); got != want {
			t.Errorf("EventName(%q) = %q, want %q", in, got, want)
		}
	}
}

// A stream asked of a process whose broker is already closed (a request that
// came in on a pooled connection while the process shut down) ends at once
// with 200 and the retry interval, no 5xx: the client resumes from its last
// event id on another process, which the load balancer picks.
func TestStreamAskedWhileShuttingDownEndsAtOnce(t *testing.T) {
	st := openSQLite(t)
	srv, b := newStreamServer(t, st, progress.StreamConfig{Retry: 1500 * time.Millisecond})
	f := newFixture(t, st)
	b.Close()
	resp := openEvents(t, srv.URL, f.job.ID, "1", false)
	evs, raw := readAll(t, resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") ||
		len(evs) != 0 || !strings.Contains(raw, "retry: 1500") {
		t.Fatalf("a stream asked while shutting down: %d %q %q, want 200, no event, the retry interval", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
}
