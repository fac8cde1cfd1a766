package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/scriptgen/scriptgen/internal/web"
)

func fetch(t *testing.T, base, path string) string {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d", path, resp.StatusCode)
	}
	return string(b)
}

// The writer's page loads the Fountain converter before its own script,
// offers the finished script's copy and downloads, and listens for the
// stream's event names (progress.EventName): "failed" for a failure, never
// "error", which EventSource fires for its own connection errors.
func TestWriterPageScriptAndEventNames(t *testing.T) {
	mux := http.NewServeMux()
	pages := web.NewPages()
	mux.HandleFunc("GET /{$}", pages.Writer)
	mux.HandleFunc("GET /static/", pages.Static)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	page := fetch(t, srv.URL, "/")
	f, w := strings.Index(page, `<script src="/static/fountain.js">`), strings.Index(page, `<script src="/static/writer.js">`)
	if f < 0 || w < 0 || f > w {
		t.Fatalf("the page loads fountain.js at %d and writer.js at %d; want both, the converter first", f, w)
	}
	for _, id := range []string{"copy-script", "download-txt", "download-fountain", "script-actions", "script"} {
		if !strings.Contains(page, `id="`+id+`"`) {
			t.Errorf("the page has no #%s", id)
		}
	}
	if js := fetch(t, srv.URL, "/static/fountain.js"); !strings.Contains(js, "toFountain") {
		t.Error("fountain.js has no toFountain")
	}

	js := fetch(t, srv.URL, "/static/writer.js")
	m := regexp.MustCompile(`for \(const type of \[([^\]]*)\]\) \{?\s*es\.addEventListener`).FindStringSubmatch(js)
	if m == nil {
		t.Fatal("writer.js: no loop adding the stream's event listeners")
	}
	names := map[string]bool{}
	for _, n := range strings.Split(m[1], ",") {
		names[strings.Trim(strings.TrimSpace(n), `"`)] = true
	}
	for _, n := range []string{"status", "progress", "result", "failed", "script"} {
		if !names[n] {
			t.Errorf("writer.js does not listen for %q events (it listens for %v)", n, names)
		}
	}
	if names["error"] || strings.Contains(js, `addEventListener("error"`) {
		t.Error(`writer.js listens for "error" as a job's event`)
	}
}
