package response_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/scriptgen/scriptgen/internal/httpx/response"
)

func TestRequestIDIsKeptWhenSaneAndMadeOtherwise(t *testing.T) {
	var seen string
	h := response.WithRequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = response.RequestID(r)
	}))
	ask := func(ids ...string) string {
		t.Helper()
		req := httptest.NewRequest("GET", "/", nil)
		for _, id := range ids {
			req.Header.Add(response.RequestIDHeader, id)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if got := rec.Header().Get(response.RequestIDHeader); got != seen || got == "" {
			t.Fatalf("ids %q: answered %q, handler saw %q", ids, got, seen)
		}
		return seen
	}
	if got := ask("proxy-7f3a:1"); got != "proxy-7f3a:1" {
		t.Errorf("a sane id became %q", got)
	}
	for _, bad := range [][]string{nil, {""}, {"two words"}, {"line\nbreak"}, {`"quoted"`}, {strings.Repeat("x", 129)}, {"a", "b"}} {
		if got := ask(bad...); got == "" || (len(bad) == 1 && got == bad[0]) || len(got) != 26 {
			t.Errorf("ids %q: request id %q, want a new one", bad, got)
		}
	}
	if ask() == ask() {
		t.Error("two requests without an id got the same one")
	}
}

func TestServerErrorTellsOnlyTheRequestID(t *testing.T) {
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	h := response.WithRequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		response.ServerError(w, r, log, errors.New("pq: password authentication failed for user \"scriptgen\""))
	}))
	req := httptest.NewRequest("GET", "/api/x", nil)
	req.Header.Set(response.RequestIDHeader, "req-42")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var body response.ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 500 || body.Error.Code != "internal" || body.Error.Message != "internal error (request id req-42)" ||
		strings.Contains(rec.Body.String(), "password") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if l := logged.String(); !strings.Contains(l, "request_id=req-42") || !strings.Contains(l, "password authentication failed") {
		t.Fatalf("log %q lacks the request id or the error", l)
	}

	// Without the middleware, the answer still has an id, and the log the same.
	logged.Reset()
	rec = httptest.NewRecorder()
	response.ServerError(rec, httptest.NewRequest("GET", "/", nil), log, errors.New("boom"))
	id := rec.Header().Get(response.RequestIDHeader)
	if id == "" || !strings.Contains(rec.Body.String(), id) || !strings.Contains(logged.String(), "request_id="+id) {
		t.Fatalf("no middleware: header %q, body %s, log %q", id, rec.Body, logged.String())
	}
}
