package api

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A client that announces a body and stalls gets an answer when the body
// deadline passes, instead of holding its connection for ever; a handler
// that has read its body keeps running past that deadline.
func TestBodyDeadline(t *testing.T) {
	slowDone := make(chan string, 1)
	a := newAPI(Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), BodyTimeout: 300 * time.Millisecond})
	mux := http.NewServeMux()
	a.register(mux)
	// A handler that reads its body and then outlives the body's deadline
	// (as a rollback does).
	mux.HandleFunc("POST /test/slow", func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		select {
		case <-time.After(800 * time.Millisecond):
			slowDone <- "finished"
			w.WriteHeader(http.StatusNoContent)
		case <-r.Context().Done():
			slowDone <- "cancelled"
		}
	})
	srv := httptest.NewServer(a.serve(mux))
	defer srv.Close()

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	io.WriteString(conn, "POST /api/generation HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"pro")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("no answer to a stalled body after %s: %v", time.Since(start).Round(time.Millisecond), err)
	}
	if !strings.HasPrefix(status, "HTTP/1.1 400") {
		t.Fatalf("stalled body answered %q, want 400", status)
	}
	if took := time.Since(start); took < 250*time.Millisecond || took > 3*time.Second {
		t.Fatalf("answered after %s, want about the 300 ms deadline", took)
	}

	resp, err := http.Post(srv.URL+"/test/slow", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := <-slowDone; got != "finished" || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("a handler that outlived the body deadline was %s (status %d)", got, resp.StatusCode)
	}
}
