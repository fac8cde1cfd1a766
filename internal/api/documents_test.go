package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/scriptgen/scriptgen/internal/api"
	"github.com/scriptgen/scriptgen/internal/generate"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/jobhandler"
	"github.com/scriptgen/scriptgen/internal/rag"
	"github.com/scriptgen/scriptgen/internal/runner"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/testenv/contract"
)

// newDocEnv serves the API with documents of at most maxBytes (0: the
// default), and runs rag_document and generation jobs (with retrieval) on a
// real background_tasks pool.
func newDocEnv(t *testing.T, maxBytes int) *env {
	return startEnv(t, 2, func(st store.Store) map[job.Kind]runner.Handler {
		return map[job.Kind]runner.Handler{
			job.KindRAGDocument: jobhandler.NewRAGDocument(st),
			job.KindGeneration: jobhandler.Generation{Generator: generate.NewTemplate(generate.TemplateConfig{}),
				Retriever: rag.NewRetriever(st, 3)},
		}
	}, func(cfg *api.Config) { cfg.MaxDocumentBytes = maxBytes })
}

const bibleJSON = `{"title":"시리즈 바이블","format":"markdown","content":"# 인물\n\n## 지수\n\n지수는 한강 근처 카페의 바리스타다.\n\n## Minho\n\nMinho is a radio producer who never sleeps.\n\n# 장소\n\n옥상 정원은 아무의 것도 아니다."}`

func (e *env) upload(body string, headers ...string) (string, string) {
	e.t.Helper()
	code, out := e.do("POST", "/api/projects/p1/documents", body, headers...)
	if code != http.StatusAccepted || out["kind"] != string(job.KindRAGDocument) || out["document_id"] == nil {
		e.t.Fatalf("upload: %d %v", code, out)
	}
	return out["document_id"].(string), out["id"].(string)
}

func TestDocumentUploadProcessAndSearch(t *testing.T) {
	e := newDocEnv(t, 0)
	docID, jobID := e.upload(bibleJSON, "Idempotency-Key", "doc-1")
	done := e.waitFor(jobID, job.StatusSucceeded)
	if done["result"].(map[string]any)["chunks"] != float64(3) {
		t.Fatalf("finished job: %v", done)
	}
	code, doc := e.do("GET", "/api/projects/p1/documents/"+docID, "")
	if code != 200 || doc["status"] != "ready" || doc["chunk_count"] != float64(3) || !strings.Contains(doc["content"].(string), "바리스타") {
		t.Fatalf("document: %d %v", code, doc)
	}
	code, list := e.do("GET", "/api/projects/p1/documents", "")
	if code != 200 || len(list["items"].([]any)) != 1 || list["items"].([]any)[0].(map[string]any)["content"] != nil {
		t.Fatalf("list: %d %v", code, list)
	}
	code, res := e.do("GET", "/api/projects/p1/search?q="+url.QueryEscape("지수는 어디에?"), "")
	items, _ := res["items"].([]any)
	if code != 200 || len(items) != 1 {
		t.Fatalf("search: %d %v", code, res)
	}
	hit := items[0].(map[string]any)
	if hit["document_id"] != docID || hit["document_title"] != "시리즈 바이블" || hit["heading"] != "인물 > 지수" {
		t.Fatalf("hit: %v", hit)
	}
	if code, res := e.do("GET", "/api/projects/p2/search?q=지수", ""); code != 200 || len(res["items"].([]any)) != 0 {
		t.Fatalf("another project: %d %v", code, res)
	}

	code, again := e.do("POST", "/api/projects/p1/documents", bibleJSON, "Idempotency-Key", "doc-1")
	if code != http.StatusAccepted || again["id"] != jobID || again["document_id"] != docID {
		t.Fatalf("replay: %d %v", code, again)
	}
	other := strings.Replace(bibleJSON, "바리스타", "작가", 1)
	if code, out := e.do("POST", "/api/projects/p1/documents", other, "Idempotency-Key", "doc-1"); code != http.StatusUnprocessableEntity {
		t.Fatalf("same key, other body: %d %v", code, out)
	}
	if n := e.jobCount(); n != 1 {
		t.Fatalf("%d jobs, want 1", n)
	}
}

func TestDocumentRawBodyUpload(t *testing.T) {
	e := newDocEnv(t, 0)
	tests := []struct{ contentType, format string }{
		{"text/markdown; charset=utf-8", "markdown"},
		{"text/plain", "text"},
	}
	for _, tt := range tests {
		code, out := e.do("POST", "/api/projects/p1/documents?title="+url.QueryEscape("등대 노트"),
			"# Places\r\n\r\nThe lighthouse at the end of the pier.", "Content-Type", tt.contentType)
		if code != http.StatusAccepted {
			t.Fatalf("%s upload: %d %v", tt.contentType, code, out)
		}
		doc := out["document"].(map[string]any)
		if doc["format"] != tt.format || doc["title"] != "등대 노트" {
			t.Fatalf("%s upload: %v", tt.contentType, doc)
		}
		e.waitFor(out["id"].(string), job.StatusSucceeded)
	}
	_, res := e.do("GET", "/api/projects/p1/search?q=lighthouse", "")
	items := res["items"].([]any)
	if len(items) != 2 || items[0].(map[string]any)["heading"] == items[1].(map[string]any)["heading"] {
		t.Fatalf("markdown has a heading, text does not: %v", items)
	}
}

func TestDocumentBadInputChangesNothing(t *testing.T) {
	e := newDocEnv(t, 1024)
	tests := []struct {
		name, path, body, contentType string
		want                          int
	}{
		{"empty content", "/api/projects/p1/documents", `{"title":"t","content":""}`, "application/json", 400},
		{"blank content", "/api/projects/p1/documents", `{"title":"t","content":" \n\r\n\t "}`, "application/json", 400},
		{"NUL escaped in JSON", "/api/projects/p1/documents", `{"title":"t","content":"a\u0000b"}`, "application/json", 400},
		{"binary raw body", "/api/projects/p1/documents?title=t", "PK\x03\x04\x00\x00binary", "text/plain", 400},
		{"invalid UTF-8 raw", "/api/projects/p1/documents?title=t", "caf\xe9", "text/plain", 400},
		{"invalid UTF-8 JSON", "/api/projects/p1/documents", "{\"title\":\"t\",\"content\":\"caf\xe9\"}", "application/json", 400},
		{"oversized raw", "/api/projects/p1/documents?title=t", strings.Repeat("가", 400), "text/plain", 413},
		{"oversized JSON", "/api/projects/p1/documents", `{"title":"t","content":"` + strings.Repeat("a", 1025) + `"}`, "application/json", 413},
		{"oversized JSON body", "/api/projects/p1/documents", `{"title":"t","content":"` + strings.Repeat(`\u0041`, 20000) + `"}`, "application/json", 413},
		{"missing title", "/api/projects/p1/documents", `{"content":"text"}`, "application/json", 400},
		{"raw without title", "/api/projects/p1/documents", "text", "text/plain", 400},
		{"bad format", "/api/projects/p1/documents", `{"title":"t","content":"x","format":"pdf"}`, "application/json", 400},
		{"unknown field", "/api/projects/p1/documents", `{"title":"t","content":"x","extra":1}`, "application/json", 400},
		{"title given twice", "/api/projects/p1/documents", `{"title":"t","content":"x","title":"u"}`, "application/json", 400},
		{"field in capitals", "/api/projects/p1/documents", `{"TITLE":"t","content":"x"}`, "application/json", 400},
		{"trailing data", "/api/projects/p1/documents", `{"title":"t","content":"x"} {}`, "application/json", 400},
		{"malformed JSON", "/api/projects/p1/documents", `{"title":`, "application/json", 400},
		{"bad content type", "/api/projects/p1/documents", `x`, "application/pdf", 415},
		{"another charset", "/api/projects/p1/documents?title=t", "caf\xe9", "text/plain; charset=iso-8859-1", 415},
		{"JSON in another charset", "/api/projects/p1/documents", `{"title":"t","content":"x"}`, "application/json; charset=latin1", 415},
		{"bad project", "/api/projects/-bad!/documents", `{"title":"t","content":"x"}`, "application/json", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := e.do("POST", tt.path, tt.body, "Content-Type", tt.contentType, contract.OffSpecHeader, "1")
			if code != tt.want || out["error"] == nil {
				t.Fatalf("%d %v, want %d with an error", code, out, tt.want)
			}
		})
	}
	if n := e.jobCount(); n != 0 {
		t.Fatalf("bad input made %d jobs", n)
	}
	if _, list := e.do("GET", "/api/projects/p1/documents", ""); len(list["items"].([]any)) != 0 {
		t.Fatalf("bad input made documents: %v", list)
	}
	for _, q := range []string{"", "q=", "q=%20%20", "q=" + url.QueryEscape(`"*()^-:`), "q=%ff", "q=a%00b",
		"q=" + strings.Repeat("x", 1001), "q=x&limit=0", "q=x&limit=abc"} {
		code, out := e.do("GET", "/api/projects/p1/search?"+q, "", contract.OffSpecHeader, "1")
		if code != 400 || out["error"] == nil {
			t.Fatalf("search ?%.40s: %d %v, want 400", q, code, out)
		}
	}
	for _, path := range []string{"/api/projects/p1/documents/nope", "/api/projects/p1/documents/" + strings.Repeat("x", 100)} {
		if code, _ := e.do("GET", path, "", contract.OffSpecHeader, "1"); code != 404 {
			t.Fatalf("GET %s: %d, want 404", path, code)
		}
	}
}

func TestDeleteDocumentRemovesChunks(t *testing.T) {
	e := newDocEnv(t, 0)
	docID, jobID := e.upload(bibleJSON)
	e.waitFor(jobID, job.StatusSucceeded)
	if code, out := e.do("DELETE", "/api/projects/p2/documents/"+docID, ""); code != 404 {
		t.Fatalf("delete through another project: %d %v", code, out)
	}
	if code, out := e.do("DELETE", "/api/projects/p1/documents/"+docID, ""); code != 200 || out["deleted"] != true {
		t.Fatalf("delete: %d %v", code, out)
	}
	if code, _ := e.do("GET", "/api/projects/p1/documents/"+docID, ""); code != 404 {
		t.Fatalf("get after delete: %d", code)
	}
	if _, res := e.do("GET", "/api/projects/p1/search?q=지수", ""); len(res["items"].([]any)) != 0 {
		t.Fatalf("chunks of a deleted document found: %v", res)
	}
	if code, _ := e.do("DELETE", "/api/projects/p1/documents/"+docID, ""); code != 404 {
		t.Fatalf("delete twice: %d", code)
	}
}

func TestReprocessReplacesChunks(t *testing.T) {
	e := newDocEnv(t, 0)
	docID, jobID := e.upload(bibleJSON)
	e.waitFor(jobID, job.StatusSucceeded)
	code, out := e.do("POST", "/api/projects/p1/documents/"+docID+"/reprocess", "")
	if code != http.StatusAccepted || out["id"] == jobID {
		t.Fatalf("reprocess: %d %v", code, out)
	}
	e.waitFor(out["id"].(string), job.StatusSucceeded)
	_, res := e.do("GET", "/api/projects/p1/search?q="+url.QueryEscape("인물 장소"), "")
	if n := len(res["items"].([]any)); n != 3 {
		t.Fatalf("%d chunks after re-processing, want 3", n)
	}
}

func TestGenerationUsesRetrievedChunks(t *testing.T) {
	e := newDocEnv(t, 0)
	docID, jobID := e.upload(bibleJSON)
	e.waitFor(jobID, job.StatusSucceeded)
	_, j := e.do("POST", "/api/generation", `{"project_id":"p1","episode_data":{"title":"비 오는 밤","synopsis":"지수가 카페 문을 닫는다.","characters":["지수"]}}`)
	done := e.waitFor(j["id"].(string), job.StatusSucceeded)
	used := done["result"].(map[string]any)["context_chunks"].([]any)
	if len(used) == 0 || used[0].(map[string]any)["document_id"] != docID {
		t.Fatalf("context_chunks %v, want chunks of %s", used, docID)
	}
	_, ep := e.do("GET", "/api/projects/p1/episodes/1", "")
	if !strings.Contains(ep["script"].(string), "바리스타") {
		t.Fatalf("script does not use the bible:\n%s", ep["script"])
	}
}
