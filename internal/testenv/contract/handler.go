package contract

import (
	"bytes"
	"net/http"
	"testing"
)

// Handler wraps a test server's handler: every request it serves, and the
// answer, is checked when the handler returns; an event stream's events are
// checked as they are written.
func Handler(t testing.TB, h http.Handler) http.Handler {
	t.Helper()
	return New(t).Handler(h)
}

// Handler is the middleware of this checker.
func (c *Checker) Handler(h http.Handler) http.Handler {
	return c.handler(h, mode{})
}

// mode is how a handler's exchanges are checked (Exchange's fields of the
// same names).
type mode struct {
	browser     bool
	requestOnly bool
}

// handler is Handler, with the exchanges checked as m says.
func (c *Checker) handler(h http.Handler, m mode) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		offSpec := r.Header.Get(OffSpecHeader) != "" || m.browser && browserOwn(r)
		r.Header.Del(OffSpecHeader)
		reqBody, body, err := readAll(r.Body)
		if err != nil {
			return // the client went away mid-body
		}
		r.Body = body
		rec := &recorder{ResponseWriter: w, c: c, label: r.Method + " " + r.URL.RequestURI(), noEvents: m.requestOnly}
		defer func() {
			p := recover()
			if rec.events != nil {
				rec.events.close()
			}
			// An answer h gave up on is not judged: a proxy whose server
			// died has none, and one whose client hung up mid-body has
			// only part of it. An event stream's head and the events that
			// passed were the server's own, and are.
			if p == nil || rec.events != nil {
				resp := &http.Response{StatusCode: rec.statusOr200(), Header: rec.sent, Request: r}
				if resp.Header == nil {
					resp.Header = w.Header().Clone()
				}
				c.check(Exchange{Request: r, RequestBody: reqBody, Response: resp, Body: rec.body.Bytes(), OffSpec: offSpec,
					Browser: m.browser, RequestOnly: m.requestOnly})
			}
			if p != nil {
				panic(p)
			}
		}()
		h.ServeHTTP(rec, r)
	})
}

// recorder passes an answer through and keeps what the client got: the
// status, the headers as sent, the body (an event stream's goes to its
// checker instead).
type recorder struct {
	http.ResponseWriter
	c      *Checker
	label  string
	status int
	sent   http.Header
	body   bytes.Buffer
	events *events
	// noEvents: an event stream's events are not checked (RequestOnly).
	noEvents bool
}

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 && status >= 200 {
		r.status = status
		r.sent = r.Header().Clone()
		if isEventStream(r.sent) && status == http.StatusOK && !r.noEvents {
			r.events = &events{c: r.c, label: r.label}
		}
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	if r.events != nil {
		r.events.Write(p)
	} else {
		r.body.Write(p)
	}
	return r.ResponseWriter.Write(p)
}

func (r *recorder) statusOr200() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// Flush serves an event stream's flushes.
func (r *recorder) Flush() {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	http.NewResponseController(r.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController the server's writer (deadlines).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
