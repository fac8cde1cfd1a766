package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/testenv"
	"github.com/scriptgen/scriptgen/internal/testenv/contract"
)

// streamEvent is one event of GET /api/generation/{id}/events.
type streamEvent struct {
	ID    string
	Event string
	Data  struct {
		Seq      int64  `json:"seq"`
		Type     string `json:"type"`
		Status   string `json:"status"`
		Progress int    `json:"progress"`
		Stage    string `json:"stage"`
		Message  string `json:"message"`
		Final    bool   `json:"final"`
		// A script event's data is {"seq", "offset", "text"}.
		Offset int    `json:"offset"`
		Text   string `json:"text"`
	}
}

func (e streamEvent) key() string {
	return fmt.Sprintf("%d/%s/%s/%s/%s/%d/%q", e.Data.Seq, e.Data.Type, e.Data.Status, e.Data.Stage, e.Data.Message, e.Data.Offset, e.Data.Text)
}

// openStream reads a job's event stream from after lastID into a channel
// that is closed when the stream ends (terminal event, shutdown or crash, or
// at once on 204: the job is finished and lastID is its last event).
func openStream(t *testing.T, ctx context.Context, base, id string, lastID int64) (<-chan streamEvent, error) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/generation/"+id+"/events", nil)
	if lastID > 0 {
		req.Header.Set("Last-Event-ID", fmt.Sprint(lastID))
	}
	resp, err := contract.Client(t).Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNoContent { // a finished job whose last event the client has
		resp.Body.Close()
		out := make(chan streamEvent)
		close(out)
		return out, nil
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		resp.Body.Close()
		return nil, fmt.Errorf("events of %s: %d %s", id, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := make(chan streamEvent, 100)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		var ev streamEvent
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case line == "" && ev.ID != "":
				out <- ev
				ev = streamEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.ID = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.Event = line[7:]
			case strings.HasPrefix(line, "data: "):
				if err := json.Unmarshal([]byte(line[6:]), &ev.Data); err != nil {
					t.Errorf("bad event data %q: %v", line, err)
					return
				}
			}
		}
	}()
	return out, nil
}

// openStreamRetrying reconnects like a client would while the server is down.
func openStreamRetrying(t *testing.T, ctx context.Context, base, id string, lastID int64) <-chan streamEvent {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ch, err := openStream(t, ctx, base, id, lastID)
		if err == nil {
			return ch
		}
		if time.Now().After(deadline) {
			t.Fatalf("could not reconnect: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSSEResumesAcrossRestart follows a job's stream, restarts the serving
// process mid-job, resumes with Last-Event-ID, and checks that the events
// seen make 1..n exactly once, in order, ending in the terminal event.
func TestSSEResumesAcrossRestart(t *testing.T) {
	for _, tc := range []struct {
		name    string
		db      func(t testing.TB) string
		restart func(p *proc)
	}{
		{"sqlite/kill-9", nil, func(p *proc) { p.kill() }},
		{"sqlite/sigterm", nil, func(p *proc) { p.stop(30 * time.Second) }},
		{"postgres/kill-9", testenv.PostgresURL, func(p *proc) { p.kill() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			extra := []string{"GENERATOR_STEP_DELAY=250ms", "DRAIN_TIMEOUT=1s", "LEASE_DURATION=2s"}
			if tc.db != nil {
				extra = append(extra, "DATABASE_URL="+tc.db(t))
			}
			srv := startProc(t, "serve", serveEnv(t, extra...), "serve")
			j := submit(t, srv.URL, "sse-restart", 1)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()

			var seen []streamEvent
			first := openStreamRetrying(t, ctx, srv.URL, j.ID, 0)
			for ev := range first {
				seen = append(seen, ev)
				if ev.Data.Stage == "scenes" { // mid-job
					break
				}
			}
			if len(seen) == 0 || seen[len(seen)-1].Data.Stage != "scenes" {
				t.Fatalf("stream ended before the job was mid-way: %v", seen)
			}
			tc.restart(srv)
			for ev := range first { // whatever was in flight when it went down
				seen = append(seen, ev)
			}
			srv.restart()
			last := seen[len(seen)-1].Data.Seq
			for ev := range openStreamRetrying(t, ctx, srv.URL, j.ID, last) {
				seen = append(seen, ev)
			}

			for i, ev := range seen {
				// A script event's data has no type; every other event's type is its name.
				named := ev.Event == ev.Data.Type || (ev.Event == "script" && ev.Data.Type == "")
				if ev.Data.Seq != int64(i+1) || ev.ID != fmt.Sprint(ev.Data.Seq) || !named || ev.Event == "error" ||
					ev.Data.Final != (i == len(seen)-1) {
					t.Fatalf("event %d is %+v: want seq %d (no gap, no repeat) with matching id and event, final only at the end", i, ev, i+1)
				}
			}
			end := seen[len(seen)-1]
			if end.Data.Status != "succeeded" || end.Event != "result" || !end.Data.Final {
				t.Fatalf("last event %+v, want the final result of a succeeded job", end)
			}
			// What the client pieced together is the job's whole log.
			var replay []streamEvent
			for ev := range openStreamRetrying(t, ctx, srv.URL, j.ID, 0) {
				replay = append(replay, ev)
			}
			if len(replay) != len(seen) {
				t.Fatalf("replay has %d events, the resumed client saw %d", len(replay), len(seen))
			}
			for i := range replay {
				if replay[i].key() != seen[i].key() {
					t.Fatalf("event %d: replay %s, resumed client %s", i+1, replay[i].key(), seen[i].key())
				}
			}
			t.Logf("%d events across the restart, resumed after seq %d", len(seen), last)
			waitAllSucceeded(t, srv.URL, []submitted{j}, 60*time.Second)
			checkExactlyOnce(t, srv.URL, []submitted{j})
		})
	}
}
