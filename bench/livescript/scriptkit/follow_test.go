package scriptkit

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// logServer serves a fixed log of events, resuming after Last-Event-ID,
// ending each stream after perStream events (the server going away), and
// answering 204 to a client that has the final event.
type logServer struct {
	events    []string // data of events 1..n; the last one is final
	names     []string
	perStream int
	mu        sync.Mutex
	asked     []string // Last-Event-ID of each request
}

func (s *logServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	last, _ := strconv.Atoi(r.Header.Get("Last-Event-ID"))
	s.mu.Lock()
	s.asked = append(s.asked, r.Header.Get("Last-Event-ID"))
	s.mu.Unlock()
	if last >= len(s.events) {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fmt.Fprint(w, "retry: 1000\n\n: ping\n\n")
	for i := last; i < len(s.events) && i < last+s.perStream; i++ {
		fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", i+1, s.names[i], s.events[i])
	}
}

// scriptLog is a job's log whose script events hold pieces, flat or nested.
func scriptLog(pieces []string, nested bool) *logServer {
	s := &logServer{}
	add := func(name, data string) {
		s.names = append(s.names, name)
		s.events = append(s.events, data)
	}
	add("status", `{"seq":1,"type":"status","status":"running"}`)
	off := 0
	for _, p := range pieces {
		seq := len(s.events) + 1
		if nested {
			add("script", fmt.Sprintf(`{"seq":%d,"type":"script","status":"running","data":{"offset":%d,"text":%q}}`, seq, off, p))
		} else {
			add("script", fmt.Sprintf(`{"seq":%d,"offset":%d,"text":%q}`, seq, off, p))
		}
		off += len([]rune(p))
	}
	add("result", fmt.Sprintf(`{"seq":%d,"type":"result","status":"succeeded","final":true}`, len(s.events)+1))
	return s
}

func TestFollower(t *testing.T) {
	pieces := []string{"에피소드 1\n\n", "1. INT. 카페", " - NIGHT\n\n지수\n", "마감은 내일 아침이야."}
	want := strings.Join(pieces, "")
	for _, tc := range []struct {
		name      string
		nested    bool
		perStream int
		drop      int
	}{
		{"flat", false, 100, 0},
		{"nested", true, 100, 0},
		{"server ends streams", false, 2, 0},
		{"client drops", true, 100, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := scriptLog(pieces, tc.nested)
			s.perStream = tc.perStream
			srv := httptest.NewServer(s)
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var seen []int
			f := &Follower{Base: srv.URL, JobID: "j1", DropEvery: tc.drop, Retry: time.Millisecond,
				OnScript: func(_ int64, offset int, text string, _ time.Time) { seen = append(seen, offset) }}
			got, err := f.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got.Script != want || len(got.Problems) > 0 || !got.Final || got.Status != "succeeded" ||
				got.LastSeq != int64(len(s.events)) || got.ScriptEvents != len(pieces) || len(seen) != len(pieces) {
				t.Fatalf("followed %+v", got)
			}
			if tc.perStream < 100 && got.ServerEnds == 0 || tc.drop > 0 && got.Drops == 0 {
				t.Fatalf("no reconnect: %+v", got)
			}
			for i, id := range s.asked[1:] {
				if id == "" {
					t.Fatalf("reconnect %d sent no Last-Event-ID", i+1)
				}
			}
		})
	}

	// A gap and a repeat are problems.
	s := scriptLog([]string{"abc", "def"}, false)
	s.events[1] = `{"seq":2,"offset":1,"text":"abc"}`
	s.events[2] = `{"seq":3,"offset":9,"text":"def"}`
	s.perStream = 100
	srv := httptest.NewServer(s)
	defer srv.Close()
	got, err := (&Follower{Base: srv.URL, JobID: "j1"}).Run(context.Background())
	if err != nil || len(got.Problems) != 2 {
		t.Fatalf("%v: problems %q", err, got.Problems)
	}
}
