package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/scriptgen/scriptgen/internal/web"
)

func TestPagesAndAssets(t *testing.T) {
	mux := http.NewServeMux()
	pages := web.NewPages()
	mux.HandleFunc("GET /{$}", pages.Writer)
	mux.HandleFunc("GET /operator", pages.Operator)
	mux.HandleFunc("GET /static/", pages.Static)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, tc := range []struct {
		path, contentType, contains string
	}{
		{"/", "text/html; charset=utf-8", `<meta charset="utf-8">`},
		{"/", "text/html; charset=utf-8", "대본"},
		{"/operator", "text/html; charset=utf-8", "Admin token"},
		{"/static/app.css", "text/css; charset=utf-8", ".progress"},
		{"/static/app.css", "text/css; charset=utf-8", ".state-inconclusive"},
		{"/static/writer.js", "text/javascript; charset=utf-8", "Idempotency-Key"},
		{"/static/operator.js", "text/javascript; charset=utf-8", "Authorization"},
		{"/static/operator.js", "text/javascript; charset=utf-8", "/api/admin/jobs/"},
		{"/operator", "text/html; charset=utf-8", `id="failed"`},
		{"/static/common.js", "text/javascript; charset=utf-8", "getRandomValues"},
	} {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tc.contentType || !strings.Contains(string(b), tc.contains) {
			t.Errorf("%s: %d %q, want 200 %q containing %q", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), tc.contentType, tc.contains)
		}
	}
	resp, _ := http.Get(srv.URL + "/static/missing.js")
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("missing asset: %d, want 404", resp.StatusCode)
	}
}
