package contract_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/testenv/contract"
)

// collector keeps what a checker reports, for a test of the checker.
type collector struct {
	mu   sync.Mutex
	errs []string
}

func (c *collector) Helper() {}
func (c *collector) Errorf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

func (c *collector) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.errs
	c.errs = nil
	return out
}

const (
	goodError = `{"error":{"code":"not_found","message":"no such job"}}`
	goodEvent = `{"seq":1,"type":"progress","status":"running","progress":10,"stage":"outline","message":"","data":null,"created_at":"2026-12-06T23:00:00Z"}`
)

// fake answers as the test's table says, the real server's shapes or not.
func fake(status int, contentType, body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		for _, part := range strings.SplitAfter(body, "\n\n") {
			io.WriteString(w, part)
			http.NewResponseController(w).Flush()
		}
	})
}

// TestCheckerHasTeeth: through the middleware and through the transport, an
// undocumented route, status, field, event name or event field is reported
// with its method and path; documented answers, and the error answer to a
// request marked off-spec, are not.
func TestCheckerHasTeeth(t *testing.T) {
	sse := "text/event-stream"
	cases := []struct {
		name            string
		method, path    string
		offSpec         bool
		status          int
		contentType     string
		body            string
		wantReport      bool
		wantReportMatch string
	}{
		{"a documented error", "GET", "/api/generation/j1", false, 404, "application/json", goodError, false, ""},
		{"an undocumented field", "GET", "/api/generation/j1", false, 404, "application/json",
			`{"error":{"code":"not_found","message":"x","extra":1}}`, true, "GET /api/generation/j1 (404)"},
		{"an undocumented status", "GET", "/api/generation/j1", false, 418, "application/json", goodError, true, "(418)"},
		{"an undocumented route", "GET", "/api/nothing", false, 404, "application/json", goodError, true, "/api/nothing"},
		{"an undocumented query parameter", "GET", "/api/generation/j1?verbose=1", false, 404, "application/json", goodError, true, "verbose"},
		{"an off-spec request's error", "PATCH", "/api/generation", true, 405, "application/json", goodError, false, ""},
		{"an off-spec request's odd status", "PATCH", "/api/generation", true, 418, "application/json", goodError, true, "418"},
		{"an off-spec request's odd body", "GET", "/api/nothing", true, 404, "application/json", `{"oops":1}`, true, "/api/nothing"},
		{"a documented stream", "GET", "/api/generation/j1/events", false, 200, sse,
			"retry: 1000\n\n: ping\n\nid: 1\nevent: progress\ndata: " + goodEvent + "\n\n", false, ""},
		{"an undocumented event", "GET", "/api/generation/j1/events", false, 200, sse,
			"id: 1\nevent: error\ndata: " + goodEvent + "\n\n", true, `event "error" is not in`},
		{"an unnamed event", "GET", "/api/generation/j1/events", false, 200, sse,
			"id: 1\ndata: " + goodEvent + "\n\n", true, `event "message" is not in`},
		{"an event with a field more", "GET", "/api/generation/j1/events", false, 200, sse,
			"id: 1\nevent: progress\ndata: " + strings.Replace(goodEvent, `"seq":1`, `"seq":1,"x":2`, 1) + "\n\n", true, "event progress (id 1)"},
	}
	for _, via := range []string{"handler", "transport", "proxy"} {
		for _, tc := range cases {
			t.Run(via+"/"+tc.name, func(t *testing.T) {
				rep := &collector{}
				c := contract.NewReporting(rep)
				h := fake(tc.status, tc.contentType, tc.body)
				client := http.DefaultClient
				switch via {
				case "handler":
					h = c.Handler(h)
				case "transport":
					client = &http.Client{Transport: c.Transport(nil)}
				case "proxy":
					backend := httptest.NewServer(h)
					defer backend.Close()
					h = c.Proxy(mustURL(t, backend.URL), nil)
				}
				srv := httptest.NewServer(h)
				defer srv.Close()
				req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
				if via == "proxy" {
					browserHeaders(req)
				}
				if tc.offSpec {
					contract.OffSpec(req)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.ReadAll(resp.Body)
				resp.Body.Close()
				srv.Close() // the handler's check has run
				got := rep.take()
				if tc.wantReport != (len(got) > 0) {
					t.Fatalf("reported %q, want a report: %v", got, tc.wantReport)
				}
				if tc.wantReport && !strings.Contains(strings.Join(got, "\n"), tc.wantReportMatch) {
					t.Errorf("report %q does not name %q", got, tc.wantReportMatch)
				}
			})
		}
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// browserHeaders adds what Chromium sends of its own accord, which no
// description lists.
func browserHeaders(req *http.Request) {
	for k, v := range map[string]string{
		"Accept":                    "*/*",
		"Accept-Language":           "en-US,en;q=0.9",
		"Cache-Control":             "no-cache",
		"Sec-Ch-Ua":                 `"Chromium";v="131", "Not_A Brand";v="24"`,
		"Sec-Ch-Ua-Mobile":          "?0",
		"Sec-Ch-Ua-Platform":        `"Linux"`,
		"Sec-Fetch-Site":            "same-origin",
		"Upgrade-Insecure-Requests": "1",
		"Priority":                  "u=1, i",
		"Origin":                    "http://" + req.Host,
		"Cookie":                    "a=b",
	} {
		req.Header.Set(k, v)
	}
}

// TestProxyIsABrowsersProxy: the proxy holds a browser's traffic to the
// description without judging the headers a browser adds, still judges the
// headers the description names, passes an event stream through event by
// event with Last-Event-ID, and outlives its server: while the server is
// down the browser's connection closes without an answer (no 502 of the
// proxy's own), and once it is back the proxy serves again.
func TestProxyIsABrowsersProxy(t *testing.T) {
	rep := &collector{}
	c := contract.NewReporting(rep)
	release := make(chan struct{})
	var lastID atomic.Value
	backendMux := http.NewServeMux()
	backendMux.HandleFunc("GET /api/generation/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		lastID.Store(r.Header.Get("Last-Event-ID"))
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "retry: 1000\n\nid: 4\nevent: progress\ndata: "+strings.Replace(goodEvent, `"seq":1`, `"seq":4`, 1)+"\n\n")
		http.NewResponseController(w).Flush()
		<-release
	})
	backendMux.HandleFunc("GET /api/generation/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, goodError)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	backend := &httptest.Server{Listener: ln, Config: &http.Server{Handler: backendMux}}
	backend.Start()
	defer func() { backend.Close() }()
	proxy := httptest.NewServer(c.Proxy(mustURL(t, "http://"+addr), nil))
	defer proxy.Close()

	get := func(path string, headers ...string) (*http.Response, error) {
		req, _ := http.NewRequest("GET", proxy.URL+path, nil)
		browserHeaders(req)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		return http.DefaultClient.Do(req)
	}

	// The first event arrives while the server still holds the stream.
	resp, err := get("/api/generation/j1/events", "Last-Event-ID", "3")
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan string, 1)
	go func() {
		br := bufio.NewReader(resp.Body)
		var got strings.Builder
		for !strings.Contains(got.String(), "event: progress") {
			line, err := br.ReadString('\n')
			if err != nil {
				break
			}
			got.WriteString(line)
		}
		first <- got.String()
	}()
	select {
	case got := <-first:
		if !strings.Contains(got, "id: 4") {
			t.Fatalf("stream through the proxy began %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy held the stream's first event back")
	}
	close(release)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got, _ := lastID.Load().(string); got != "3" {
		t.Errorf("the server got Last-Event-ID %q, want 3", got)
	}
	if got := rep.take(); len(got) > 0 {
		t.Fatalf("a browser's documented traffic was reported: %q", got)
	}

	// A header the description names is still judged: Last-Event-ID is a seq.
	resp, err = get("/api/generation/j1/events", "Last-Event-ID", "x")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got := strings.Join(rep.take(), "\n"); !strings.Contains(got, "Last-Event-ID") {
		t.Fatalf("Last-Event-ID: x was not reported (%q)", got)
	}

	// The server goes down: no answer at all, and nothing to report.
	backend.Close()
	if resp, err := get("/api/generation/j1"); err == nil {
		resp.Body.Close()
		t.Fatalf("with its server down the proxy answered %d, want the connection closed", resp.StatusCode)
	}
	if got := rep.take(); len(got) > 0 {
		t.Fatalf("a dead server was reported: %q", got)
	}
	// It comes back on its port, serving something the description lacks.
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	backend = &httptest.Server{Listener: ln, Config: &http.Server{Handler: fake(http.StatusTeapot, "application/json", goodError)}}
	backend.Start()
	resp, err = get("/api/generation/j1")
	if err != nil {
		t.Fatalf("after its server came back: %v", err)
	}
	// Read to the end, as a browser does: a client that hangs up before
	// the body has passed makes the proxy give up on the answer, and an
	// answer given up on is not judged.
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	proxy.Close()
	if got := rep.take(); len(got) != 1 || !strings.Contains(got[0], "GET /api/generation/j1 (418)") {
		t.Fatalf("after the restart, an undocumented status was reported %q, want once", got)
	}
}

// TestProxyRequestsChecksThePagesRequests: in front of a stand-in server,
// the page's requests are held against the description (an undocumented
// query parameter is reported) and the stand-in's answers are not.
func TestProxyRequestsChecksThePagesRequests(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		wantReport string
	}{
		{"a documented request, a stand-in's odd answer", "/api/generation/j1?include=script", ""},
		{"an undocumented query parameter", "/api/generation/j1?verbose=1", "verbose"},
		{"an undocumented route", "/api/nothing", "/api/nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := &collector{}
			c := contract.NewReporting(rep)
			backend := httptest.NewServer(fake(http.StatusTeapot, "application/json", `{"made":"up"}`))
			defer backend.Close()
			proxy := httptest.NewServer(c.ProxyRequests(mustURL(t, backend.URL), nil))
			req, _ := http.NewRequest("GET", proxy.URL+tc.path, nil)
			browserHeaders(req)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			proxy.Close()
			got := strings.Join(rep.take(), "\n")
			if tc.wantReport == "" && got != "" || tc.wantReport != "" && !strings.Contains(got, tc.wantReport) {
				t.Fatalf("reported %q, want a report naming %q", got, tc.wantReport)
			}
		})
	}
}

// TestBalancedTransportJudgesScriptgensAnswersOnly: through a load balancer,
// an answer without scriptgen's X-Request-Id is the balancer's and only its
// request is checked; an answer that carries it is judged in full.
func TestBalancedTransportJudgesScriptgensAnswersOnly(t *testing.T) {
	for _, tc := range []struct {
		name, path, requestID string
		wantReport            string
	}{
		{"the balancer's 502", "/api/generation/j1", "", ""},
		{"the balancer's 502 to an undocumented request", "/api/generation/j1?verbose=1", "", "verbose"},
		{"scriptgen's undocumented 502", "/api/generation/j1", "r1", "502"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := &collector{}
			c := contract.NewReporting(rep)
			backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.requestID != "" {
					w.Header().Set("X-Request-Id", tc.requestID)
				}
				fake(http.StatusBadGateway, "text/html", "<html>502 Bad Gateway</html>").ServeHTTP(w, r)
			}))
			defer backend.Close()
			client := &http.Client{Transport: c.BalancedTransport(nil)}
			resp, err := client.Get(backend.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			got := strings.Join(rep.take(), "\n")
			if tc.wantReport == "" && got != "" || tc.wantReport != "" && !strings.Contains(got, tc.wantReport) {
				t.Fatalf("reported %q, want a report naming %q", got, tc.wantReport)
			}
		})
	}
}
