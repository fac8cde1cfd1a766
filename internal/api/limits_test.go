package api

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/generate"
	"github.com/scriptgen/scriptgen/internal/limits"
	"github.com/scriptgen/scriptgen/internal/store/sqlite"
	"github.com/scriptgen/scriptgen/internal/testenv/contract"
)

// costly is a generator that reports the tokens it used, and can be held
// while a test looks at a running job.
type costly struct {
	tokens int
	hold   chan struct{}
}

func (c costly) Generate(ctx context.Context, req generate.Request, _ generate.ProgressFunc) (generate.Script, error) {
	if c.hold != nil {
		select {
		case <-c.hold:
		case <-ctx.Done():
			return generate.Script{}, ctx.Err()
		}
	}
	return generate.Script{Title: req.Episode.Title, Script: "INT. ROOM - DAY", Usage: generate.Usage{CompletionTokens: c.tokens}}, nil
}

func submitAs(e *matrixEnv, cred, project string) (int, string, http.Header) {
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/generation",
		strings.NewReader(`{"project_id":"`+project+`","episode_data":{"title":"t"}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b := new(strings.Builder)
	bufio.NewReader(resp.Body).WriteTo(b)
	return resp.StatusCode, b.String(), resp.Header
}

// A tenant's submissions beyond its burst wait for its rate, with
// Retry-After; another tenant is not held up.
func TestTenantRateLimit(t *testing.T) {
	e := newMatrixEnvWith(t, costly{}, func(cfg *Config, st *sqlite.Store) {
		cfg.Limits.Rate = limits.NewRateLimiter(st, limits.Rate{PerSecond: 0.5, Burst: 3}, nil)
	})
	for i := 0; i < 3; i++ {
		if status, body, _ := submitAs(e, e.acme, "p1"); status != 202 {
			t.Fatalf("submission %d: %d %s", i, status, body)
		}
	}
	status, body, h := submitAs(e, e.acme, "p1")
	if status != 429 || !strings.Contains(body, "rate_limited") || h.Get("Retry-After") != "2" {
		t.Fatalf("fourth submission: %d %s (Retry-After %q)", status, body, h.Get("Retry-After"))
	}
	if status, body, _ := submitAs(e, e.globex, "p1"); status != 202 {
		t.Fatalf("another tenant: %d %s", status, body)
	}
	// The acme key scoped to p2 shares acme's bucket.
	if status, _, _ := submitAs(e, e.acmeP2, "p2"); status != 429 {
		t.Fatalf("acme's other key: %d, want 429", status)
	}
}

// Once a tenant used its day's tokens, a submission is refused before it
// costs anything, and GET /api/usage shows why.
func TestTokenBudget(t *testing.T) {
	e := newMatrixEnvWith(t, costly{tokens: 150}, func(cfg *Config, _ *sqlite.Store) {
		cfg.Limits.TokensPerDay = 100
	})
	status, body, _ := submitAs(e, e.acme, "p1")
	if status != 202 {
		t.Fatalf("first: %d %s", status, body)
	}
	e.waitDone(jsonField(t, body, "id"), e.acme)
	status, body, h := submitAs(e, e.acme, "p1")
	if status != 429 || !strings.Contains(body, "budget_exhausted") || h.Get("Retry-After") == "" {
		t.Fatalf("over budget: %d %s", status, body)
	}
	_, usage := e.do("GET", "/api/usage", e.acme, "")
	if !strings.Contains(usage, `"tokens":150`) || !strings.Contains(usage, `"budget":100`) || !strings.Contains(usage, `"tenant":"acme"`) {
		t.Fatalf("usage: %s", usage)
	}
	if status, body, _ := submitAs(e, e.globex, "p1"); status != 202 {
		t.Fatalf("another tenant's budget is its own: %d %s", status, body)
	}
}

// A tenant's documents stop at its quota.
func TestDocumentQuota(t *testing.T) {
	e := newMatrixEnvWith(t, costly{}, func(cfg *Config, _ *sqlite.Store) {
		cfg.Limits.MaxDocuments = 1
		cfg.Limits.MaxDocumentBytes = 1000
	})
	if status, body := e.do("POST", "/api/projects/p1/documents", e.acme, `{"title":"a","content":"first"}`); status != 202 {
		t.Fatalf("first document: %d %s", status, body)
	}
	status, body := e.do("POST", "/api/projects/p2/documents", e.acme, `{"title":"b","content":"second"}`)
	if status != 403 || !strings.Contains(body, "document_quota_exceeded") {
		t.Fatalf("second document: %d %s", status, body)
	}
	status, body = e.do("POST", "/api/projects/p1/documents", e.globex, `{"title":"big","content":"`+strings.Repeat("x", 1001)+`"}`)
	if status != 403 || !strings.Contains(body, "would pass its quota") {
		t.Fatalf("too many bytes: %d %s", status, body)
	}
}

// A credential has at most its cap of streams open; past it the answer is
// 429 at once, and a stream that ends gives its slot back.
func TestStreamCapPerClient(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	e := newMatrixEnvWith(t, costly{hold: hold}, func(cfg *Config, _ *sqlite.Store) {
		cfg.Limits.Streams = limits.NewStreamCaps(10, 1, 5)
	})
	_, body, _ := submitAs(e, e.acme, "p1")
	id := jsonField(t, body, "id")
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/api/generation/"+id+"/events?access_token="+e.acme, nil)
	first, err := http.DefaultClient.Do(req)
	if err != nil || first.StatusCode != 200 {
		t.Fatalf("first stream: %v %v", first, err)
	}
	status, body := e.do("GET", "/api/generation/"+id+"/events", e.acme, "")
	if status != 429 || !strings.Contains(body, "too_many_streams") {
		t.Fatalf("second stream of the key: %d %s", status, body)
	}
	cancel()
	first.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", e.srv.URL+"/api/generation/"+id+"/events", nil)
		req.Header.Set("Authorization", "Bearer "+e.acme)
		ctx, stop := context.WithTimeout(context.Background(), 200*time.Millisecond)
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		if err == nil {
			code := resp.StatusCode
			resp.Body.Close()
			stop()
			if code == 200 {
				break
			}
		} else {
			stop()
		}
		if time.Now().After(deadline) {
			t.Fatal("the slot of a closed stream never came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A page of another site cannot change anything: a body that is not JSON
// is 415, and a cross-site request is 403 unless its origin is listed, in
// which case CORS lets the page read the answer.
func TestBrowsersCannotForgeCalls(t *testing.T) {
	e := newMatrixEnvWith(t, costly{}, func(cfg *Config, _ *sqlite.Store) {
		cfg.AllowedOrigins = []string{"https://app.example"}
	})
	call := func(method, path, ctype, body string, headers ...string) (int, http.Header, string) {
		req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		req.Header.Set("Authorization", "Bearer "+e.acme)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := new(strings.Builder)
		bufio.NewReader(resp.Body).WriteTo(b)
		return resp.StatusCode, resp.Header, b.String()
	}
	gen := `{"project_id":"p1","episode_data":{"title":"t"}}`
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""} {
		if status, _, body := call("POST", "/api/generation", ct, gen, contract.OffSpecHeader, "1"); status != 415 {
			t.Errorf("POST /api/generation as %q: %d %s", ct, status, body)
		}
	}
	_, _, body := call("POST", "/api/generation", "application/json", gen)
	id := jsonField(t, body, "id")
	if status, _, body := call("POST", "/api/generation/"+id+"/cancel", "application/x-www-form-urlencoded", "", contract.OffSpecHeader, "1"); status != 415 {
		t.Errorf("a form's cancel: %d %s", status, body)
	}
	status, _, body := call("POST", "/api/generation", "application/json", gen, "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site")
	if status != 403 || !strings.Contains(body, "cross_origin_refused") {
		t.Errorf("cross-site POST: %d %s", status, body)
	}
	status, h, body := call("POST", "/api/generation", "application/json", gen, "Origin", "https://app.example", "Sec-Fetch-Site", "cross-site")
	if status != 202 || h.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("listed origin: %d %v %s", status, h, body)
	}
	status, h, _ = call("OPTIONS", "/api/generation", "", "", "Origin", "https://app.example",
		"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization, content-type")
	if status != 204 || !strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight: %d %v", status, h)
	}
	status, h, _ = call("OPTIONS", "/api/generation", "", "", "Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
	if h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight of an unlisted origin got CORS: %d %v", status, h)
	}
	// Programs (no Origin, no Sec-Fetch-Site) pass as before.
	if status, _, body := call("POST", "/api/generation", "application/json", gen); status != 202 {
		t.Errorf("a program's POST: %d %s", status, body)
	}
}

// /health tells anyone its status and mode, and an operator the rest.
func TestHealthShowsDetailsToOperatorsOnly(t *testing.T) {
	e := newMatrixEnv(t)
	_, public := e.do("GET", "/health", "", "")
	_, writer := e.do("GET", "/health", e.acme, "")
	_, admin := e.do("GET", "/health", matrixAdminToken, "")
	for name, body := range map[string]string{"public": public, "writer": writer} {
		if !strings.Contains(body, `"status":"ok"`) || !strings.Contains(body, `"type":"background_tasks"`) {
			t.Errorf("%s: %s", name, body)
		}
		for _, private := range []string{"pid", "private reason", "database", "uptime"} {
			if strings.Contains(body, private) {
				t.Errorf("%s /health shows %q: %s", name, private, body)
			}
		}
	}
	for _, detail := range []string{`"pid"`, "private reason", `"database"`, `"background_tasks"`} {
		if !strings.Contains(admin, detail) {
			t.Errorf("the operator's /health lacks %s: %s", detail, admin)
		}
	}
	_, info := e.do("GET", "/api/generation/system-info", "", "")
	if strings.Contains(info, "private reason") || !strings.Contains(info, `"type":"background_tasks"`) {
		t.Errorf("public system-info: %s", info)
	}
}

// A search of more terms than SEARCH_MAX_TERMS is 400 naming q.
func TestSearchTermsBounded(t *testing.T) {
	e := newMatrixEnvWith(t, costly{}, func(cfg *Config, _ *sqlite.Store) {
		cfg.Search.MaxTerms = 3
	})
	status, body := e.do("GET", "/api/projects/p1/search?q=one+two+three+four", e.acme, "")
	if status != 400 || !strings.Contains(body, `"field":"q"`) {
		t.Fatalf("four terms: %d %s", status, body)
	}
	if status, body := e.do("GET", "/api/projects/p1/search?q=one+two+three", e.acme, ""); status != 200 {
		t.Fatalf("three terms: %d %s", status, body)
	}
}
