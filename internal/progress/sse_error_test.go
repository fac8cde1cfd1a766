package progress_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/progress"
)

// brokenJobs fails every read with an error the client must not see.
type brokenJobs struct{}

func (brokenJobs) GetJob(context.Context, string) (job.Job, error) {
	return job.Job{}, errors.New("dial tcp 10.0.0.7:5432: connect: connection refused")
}

// A stream whose job cannot be read answers a 500 that names the request's id
// and not the error, which goes to the log with that id.
func TestStreamStoreFailureIsAGeneric500(t *testing.T) {
	var logged bytes.Buffer
	stream := progress.NewStream(nil, brokenJobs{}, progress.StreamConfig{}, slog.New(slog.NewTextHandler(&logged, nil)))
	mux := http.NewServeMux()
	mux.Handle("GET /api/generation/{id}/events", stream)
	req := httptest.NewRequest("GET", "/api/generation/j1/events", nil)
	req.Header.Set("X-Request-Id", "sse-1")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	var body struct {
		Error struct{ Code, Message string }
	}
	json.NewDecoder(rec.Body).Decode(&body)
	if rec.Code != 500 || body.Error.Code != "internal" || body.Error.Message != "internal error (request id sse-1)" {
		t.Fatalf("%d %+v, want 500 internal naming the request id", rec.Code, body)
	}
	if l := logged.String(); !strings.Contains(l, "connection refused") || !strings.Contains(l, "request_id=sse-1") {
		t.Fatalf("log %q lacks the error or the request id", l)
	}
}
