package contract

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"
)

// Proxy starts a reverse proxy to target (a server's base URL, such as
// http://127.0.0.1:8080) for a browser the test drives, and returns the
// proxy's base URL for the browser to open instead: every request the
// browser sends and every answer, event streams included, is held against
// the description as Handler holds them. The proxy closes when the test
// ends.
//
// Every path is checked, pages and their scripts too: the description
// covers the pages (/, /operator, /static/{path}) as well as the API. Only
// the headers a browser adds of its own accord are left alone (see
// Exchange.Browser), and /favicon.ico, which the browser asks for by
// itself, is checked as an off-spec request (its answer only).
//
// The proxy outlives its server: while target does not answer, the
// browser's connection is closed without an answer, as a dead server's
// would be, and the next request goes to target again (a test that kills
// and restarts serve on its port keeps the proxy).
func Proxy(t testing.TB, target string) string {
	t.Helper()
	return startProxy(t, target, mode{browser: true})
}

// ProxyRequests is Proxy for a test whose server is a stand-in of its own
// (a fake API serving the real pages, to drive a page through answers
// scriptgen gives rarely): the browser's requests are checked, which are
// the pages' own; the answers are the test's and are not.
func ProxyRequests(t testing.TB, target string) string {
	t.Helper()
	return startProxy(t, target, mode{browser: true, requestOnly: true})
}

func startProxy(t testing.TB, target string, m mode) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		t.Fatalf("contract.Proxy: target %q is not a base URL: %v", target, err)
	}
	tr := &http.Transport{
		DialContext:     (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		IdleConnTimeout: 30 * time.Second,
	}
	srv := httptest.NewServer(New(t).proxy(u, tr, m))
	t.Cleanup(func() {
		srv.CloseClientConnections() // a stream the browser holds open ends now
		srv.Close()
		tr.CloseIdleConnections()
	})
	return srv.URL
}

// Proxy is a reverse proxy to target through tr (http.DefaultTransport if
// nil) whose exchanges this checker holds against the description, as a
// browser's (Proxy).
func (c *Checker) Proxy(target *url.URL, tr http.RoundTripper) http.Handler {
	return c.proxy(target, tr, mode{browser: true})
}

// ProxyRequests is Proxy with only the requests checked (ProxyRequests).
func (c *Checker) ProxyRequests(target *url.URL, tr http.RoundTripper) http.Handler {
	return c.proxy(target, tr, mode{browser: true, requestOnly: true})
}

func (c *Checker) proxy(target *url.URL, tr http.RoundTripper, m mode) http.Handler {
	return c.handler(&httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // the origin the browser sees, which serve's cross-origin check compares
		},
		Transport: tr,
		// Every write reaches the browser at once: an event stream's
		// events are not held back, nor are they merged.
		FlushInterval: -1,
		ErrorHandler: func(http.ResponseWriter, *http.Request, error) {
			// No answer at all, as from a server that is down: a 502 of
			// the proxy's own would be an answer the description lacks,
			// and an EventSource that gets one stops for good.
			panic(http.ErrAbortHandler)
		},
	}, m)
}

// browserOwn says whether a browser asked for r of its own accord, not the
// page: the site's icon.
func browserOwn(r *http.Request) bool {
	return r.URL.Path == "/favicon.ico"
}
