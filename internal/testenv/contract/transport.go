package contract

import (
	"bytes"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/scriptgen/scriptgen/internal/httpx/response"
)

// clients are the tests' checked clients, one per test, however many
// helpers ask for it.
var clients sync.Map // testing.TB → *http.Client

// Client is an http.Client whose every exchange the test's checker holds
// against the description: one per test.
func Client(t testing.TB) *http.Client {
	t.Helper()
	if c, ok := clients.Load(t); ok {
		return c.(*http.Client)
	}
	c := &http.Client{Transport: New(t).Transport(nil)}
	if prev, loaded := clients.LoadOrStore(t, c); loaded {
		return prev.(*http.Client)
	}
	t.Cleanup(func() { clients.Delete(t) })
	return c
}

// Transport wraps base (http.DefaultTransport if nil): every request it
// carries, and the answer, is checked; an event stream's events are checked
// as the caller reads them.
func (c *Checker) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{c: c, base: base}
}

// BalancedTransport is Transport for a test that talks to scriptgen through
// a load balancer (HAProxy): an answer without the X-Request-Id header that
// scriptgen puts on every answer is the balancer's own (a 502 or 503 when a
// replica died under the request), and only its request is checked. The
// headers named in forBalancer are the test's words to the balancer, not to
// scriptgen: they are sent, and not judged.
func (c *Checker) BalancedTransport(base http.RoundTripper, forBalancer ...string) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{c: c, base: base, balanced: true, forBalancer: forBalancer}
}

type transport struct {
	c           *Checker
	base        http.RoundTripper
	balanced    bool
	forBalancer []string
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	offSpec := isOffSpec(req)
	out := req.Clone(req.Context()) // a RoundTripper must not change req
	out.Header.Del(OffSpecHeader)
	reqBody, body, err := readAll(req.Body)
	if err != nil {
		return nil, err
	}
	out.Body = body
	if len(reqBody) > 0 {
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(reqBody)), nil }
	}
	resp, err := tr.base.RoundTrip(out)
	if err != nil {
		return resp, err
	}
	x := Exchange{Request: out, RequestBody: reqBody, Response: resp, OffSpec: offSpec,
		RequestOnly: tr.balanced && resp.Header.Get(response.RequestIDHeader) == ""}
	if len(tr.forBalancer) > 0 {
		x.Request = out.Clone(out.Context())
		for _, h := range tr.forBalancer {
			x.Request.Header.Del(h)
		}
	}
	if isEventStream(resp.Header) && resp.StatusCode == http.StatusOK {
		tr.c.check(x) // status and headers now; the events as they are read
		resp.Body = &streamBody{rc: resp.Body, ev: &events{c: tr.c, label: req.Method + " " + req.URL.RequestURI()}}
		return resp, nil
	}
	x.Body, resp.Body, err = readAll(resp.Body)
	if err != nil {
		return nil, err
	}
	tr.c.check(x)
	return resp, nil
}

// streamBody is an event stream's body whose bytes pass through the event
// checker as the caller reads them.
type streamBody struct {
	rc io.ReadCloser
	ev *events
}

func (s *streamBody) Read(p []byte) (int, error) {
	n, err := s.rc.Read(p)
	s.ev.Write(p[:n])
	return n, err
}

func (s *streamBody) Close() error {
	s.ev.close()
	return s.rc.Close()
}
