// Package contract holds the traffic of tests against api/openapi.yaml: a
// client's http.RoundTripper (Transport, Client), a test server's
// middleware (Handler) and a reverse proxy a browser opens the server
// through (Proxy) give every request and every answer to
// pb33f/libopenapi-validator, and every Server-Sent Event of an event stream
// to the schema its name has under the stream's x-events, and fail the test
// (t.Errorf with the method, path, status and the validator's words) on a
// route, a status, a field, a parameter or a header the description lacks.
//
// A test that sends bad input on purpose marks the request OffSpec: only the
// answer is checked then, and an answer to a request that no route of the
// description takes must be the JSON error shape with a status every route
// may answer (400, 404, 405, 500, 503).
package contract

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	verrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	"gopkg.in/yaml.v3"

	apispec "github.com/scriptgen/scriptgen/api"
)

// OffSpecHeader marks a request the test breaks the description with on
// purpose (OffSpec). Transport and Handler take it off before the request
// goes on; the server never sees it.
const OffSpecHeader = "X-Contract-Off-Spec"

// OffSpec marks req as deliberately invalid: its answer is checked, the
// request itself is not.
func OffSpec(req *http.Request) *http.Request {
	req.Header.Set(OffSpecHeader, "1")
	return req
}

// crossCutting are the headers of every route that the description names
// once, in its preamble: CORS (answers to an allowed origin, preflights)
// and a browser's fetch metadata.
var crossCutting = []string{
	"access-control-allow-origin", "access-control-expose-headers", "access-control-allow-methods",
	"access-control-allow-headers", "access-control-max-age", "access-control-request-method",
	"access-control-request-headers", "sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest", "sec-fetch-user",
}

type offSpecKey struct{}

// OffSpecContext marks every request made with ctx as deliberately invalid,
// for a client (a typed one) whose requests the test cannot touch: only
// the Transport sees it.
func OffSpecContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, offSpecKey{}, true)
}

func isOffSpec(req *http.Request) bool {
	return req.Header.Get(OffSpecHeader) != "" || req.Context().Value(offSpecKey{}) != nil
}

// offRouteStatuses are what any request may get besides its operation's
// answers (the description's preamble): a bad path or query, an unknown
// route, a known route asked with another method, an internal error, too
// many connections.
var offRouteStatuses = []int{400, 404, 405, 500, 503}

// spec is the description parsed once per test binary: parsing and
// building the validator's caches takes a while.
type spec struct {
	// mu serializes validations: libopenapi renders schemas lazily while it
	// validates, and two validations at once race on them (the race
	// detector caught it under concurrent requests).
	mu     sync.Mutex
	v      validator.Validator
	events map[string]*base.Schema // x-events of the event stream: name → data schema
	errorS *base.Schema            // components/schemas/Error
	sv     schema_validation.SchemaValidator
	// headers are the request headers the description names anywhere
	// (lower case), which a browser's request keeps when it is checked.
	headers map[string]bool
	err     error
}

var (
	loadOnce sync.Once
	loaded   *spec
)

func load() *spec {
	loadOnce.Do(func() { loaded = parse() })
	return loaded
}

func parse() *spec {
	s := &spec{sv: schema_validation.NewSchemaValidator()}
	doc, err := libopenapi.NewDocument(apispec.YAML)
	if err != nil {
		s.err = fmt.Errorf("parse api/openapi.yaml: %w", err)
		return s
	}
	// Security is not the contract's to judge: a server on loopback without
	// keys takes writer calls with no credential (the access matrix tests
	// who may call what). Strict mode reports an undeclared query
	// parameter, request header or response header, and a property the
	// schemas do not declare. The CORS and fetch-metadata headers belong to
	// every route (the description's preamble says so once), and
	// ?access_token= is a security scheme, which strict mode does not read.
	v, errs := validator.NewValidator(doc, config.WithoutSecurityValidation(), config.WithStrictMode(),
		config.WithStrictIgnoredHeadersExtra(append([]string{OffSpecHeader}, crossCutting...)...),
		config.WithStrictIgnorePaths("$.query.access_token"))
	if len(errs) > 0 {
		s.err = fmt.Errorf("validator of api/openapi.yaml: %v", errs)
		return s
	}
	s.v = v
	model, err := doc.BuildV3Model()
	if err != nil {
		s.err = fmt.Errorf("build api/openapi.yaml: %w", err)
		return s
	}
	schemas := model.Model.Components.Schemas
	if p := schemas.GetOrZero("Error"); p != nil {
		s.errorS = p.Schema()
	}
	if s.headers, err = headerParams(); err != nil {
		s.err = err
		return s
	}
	s.events, s.err = eventSchemas(func(name string) *base.Schema {
		if p := schemas.GetOrZero(name); p != nil {
			return p.Schema()
		}
		return nil
	})
	return s
}

// eventSchemas reads the x-events of the event stream's text/event-stream
// answer: each event's name and the component schema of its data.
func eventSchemas(component func(string) *base.Schema) (map[string]*base.Schema, error) {
	var raw struct {
		Paths map[string]map[string]struct {
			Responses map[string]struct {
				Content map[string]struct {
					Events map[string]struct {
						Data struct {
							Ref string `yaml:"$ref"`
						} `yaml:"data"`
					} `yaml:"x-events"`
				} `yaml:"content"`
			} `yaml:"responses"`
		} `yaml:"paths"`
	}
	if err := yaml.Unmarshal(apispec.YAML, &raw); err != nil {
		return nil, fmt.Errorf("read x-events: %w", err)
	}
	out := map[string]*base.Schema{}
	for _, item := range raw.Paths {
		for _, op := range item {
			for _, r := range op.Responses {
				for _, media := range r.Content {
					for name, ev := range media.Events {
						s := component(strings.TrimPrefix(ev.Data.Ref, "#/components/schemas/"))
						if s == nil {
							return nil, fmt.Errorf("x-events %s names %q, which is not a schema", name, ev.Data.Ref)
						}
						out[name] = s
					}
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("api/openapi.yaml has no x-events")
	}
	return out, nil
}

// headerParams are the names (lower case) of every header parameter of
// the description, and the headers a request body is read by.
func headerParams() (map[string]bool, error) {
	var doc any
	if err := yaml.Unmarshal(apispec.YAML, &doc); err != nil {
		return nil, fmt.Errorf("read header parameters: %w", err)
	}
	out := map[string]bool{"content-type": true, "content-length": true}
	var walk func(any)
	walk = func(n any) {
		switch n := n.(type) {
		case map[string]any:
			if n["in"] == "header" {
				if name, ok := n["name"].(string); ok {
					out[strings.ToLower(name)] = true
				}
			}
			for _, v := range n {
				walk(v)
			}
		case []any:
			for _, v := range n {
				walk(v)
			}
		}
	}
	walk(doc)
	return out, nil
}

// Reporter is where disagreements go: a *testing.T (or B).
type Reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

// Checker holds traffic against the description and reports to t.
type Checker struct {
	t    Reporter
	s    *spec
	done atomic.Bool // the test has ended: a late stream's report has nowhere to go
}

// New is a Checker reporting to t; it fails t at once when the description
// does not load.
func New(t testing.TB) *Checker {
	t.Helper()
	c := NewReporting(t)
	if c.s.err != nil {
		t.Fatal(c.s.err)
	}
	t.Cleanup(func() { c.done.Store(true) })
	return c
}

// NewReporting is a Checker reporting to r (a test of the checker itself
// collects what it reports).
func NewReporting(r Reporter) *Checker {
	return &Checker{t: r, s: load()}
}

// Exchange is one request with its answer, as Check takes it: body is the
// answer's whole body (an event stream's goes to Events instead).
type Exchange struct {
	Request     *http.Request
	RequestBody []byte
	Response    *http.Response
	Body        []byte
	OffSpec     bool
	// Browser says a browser sent the request: the headers it adds of its
	// own accord (Sec-Ch-Ua, Upgrade-Insecure-Requests, Priority…), which
	// no API describes, are not judged; the headers the description names
	// are, and so is everything else of the exchange.
	Browser bool
	// RequestOnly says the answer is a stand-in's (a test's fake server
	// in front of which a browser runs the real pages), not scriptgen's:
	// only the request is checked.
	RequestOnly bool
}

// Problems are the ways x disagrees with the description (none: it agrees).
func (c *Checker) Problems(x Exchange) []string {
	if c.s.err != nil {
		return []string{c.s.err.Error()}
	}
	req := x.Request.Clone(x.Request.Context())
	req.Header.Del(OffSpecHeader)
	if x.Browser {
		for name := range req.Header {
			if !c.s.headers[strings.ToLower(name)] {
				req.Header.Del(name)
			}
		}
	}
	req.Body = io.NopCloser(bytes.NewReader(x.RequestBody))
	resp := *x.Response
	resp.Request = req
	resp.Body = io.NopCloser(bytes.NewReader(x.Body))
	var verrs []*verrors.ValidationError
	if req.Method == http.MethodOptions {
		return preflight(x.Response.StatusCode, x.Body)
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if x.RequestOnly {
		if x.OffSpec {
			return nil
		}
		_, verrs = c.s.v.ValidateHttpRequest(req)
		return describe(verrs)
	}
	if x.OffSpec {
		if _, errs := c.s.v.ValidateHttpRequest(req); routeMissing(errs) {
			return c.offRoute(resp.StatusCode, x.Body)
		}
		_, verrs = c.s.v.ValidateHttpResponse(req, &resp)
	} else {
		_, verrs = c.s.v.ValidateHttpRequestResponse(req, &resp)
	}
	return describe(verrs)
}

// routeMissing says whether errs say the description has no operation for
// the request's path and method.
func routeMissing(errs []*verrors.ValidationError) bool {
	for _, e := range errs {
		if e.IsPathMissingError() || e.IsOperationMissingError() {
			return true
		}
	}
	return false
}

// preflight checks the answer to an OPTIONS request, which the description
// leaves to its preamble (CORS): 204 without a body, or a 405.
func preflight(status int, body []byte) []string {
	if status == http.StatusNoContent && len(body) == 0 || status == http.StatusMethodNotAllowed {
		return nil
	}
	return []string{fmt.Sprintf("an OPTIONS request got %d (want 204 without a body, or 405)", status)}
}

// offRoute checks the answer to a request no operation takes: the JSON
// error shape with a status any request may get.
func (c *Checker) offRoute(status int, body []byte) []string {
	if !slices.Contains(offRouteStatuses, status) {
		return []string{fmt.Sprintf("status %d is not one any request may get (%v)", status, offRouteStatuses)}
	}
	if ok, errs := c.s.sv.ValidateSchemaBytes(c.s.errorS, body); !ok {
		return describe(errs)
	}
	return nil
}

func describe(verrs []*verrors.ValidationError) []string {
	var out []string
	for _, e := range verrs {
		out = append(out, e.Message+": "+e.Reason)
		for _, s := range e.SchemaValidationErrors {
			out = append(out, "  "+s.Reason+" at "+s.FieldPath)
		}
	}
	return out
}

// errorf reports to the test while it runs.
func (c *Checker) errorf(format string, args ...any) {
	if !c.done.Load() {
		c.t.Helper()
		c.t.Errorf(format, args...)
	}
}

// check reports x's problems to the test.
func (c *Checker) check(x Exchange) {
	if problems := c.Problems(x); len(problems) > 0 {
		c.errorf("%s %s (%d) disagrees with api/openapi.yaml:\n\t%s\n\tbody: %.400s", x.Request.Method, x.Request.URL.RequestURI(),
			x.Response.StatusCode, strings.Join(problems, "\n\t"), x.Body)
	}
}

// isEventStream says whether an answer is an event stream, whose events
// are checked one by one as they pass.
func isEventStream(h http.Header) bool {
	return strings.HasPrefix(h.Get("Content-Type"), "text/event-stream")
}

// events parses an event stream as it passes and checks each event's name
// and data against x-events. It is written here because the validator does
// not read event streams, and the format is four kinds of line.
type events struct {
	c      *Checker
	label  string // method and path, for the report
	buf    []byte
	name   string
	data   []string
	id     string
	LastID string
	Names  []string
}

func (e *events) Write(p []byte) (int, error) {
	e.buf = append(e.buf, p...)
	for {
		i := bytes.IndexByte(e.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		e.line(strings.TrimSuffix(string(e.buf[:i]), "\r"))
		e.buf = e.buf[i+1:]
	}
}

func (e *events) line(l string) {
	field, value, _ := strings.Cut(l, ":")
	value = strings.TrimPrefix(value, " ")
	switch {
	case l == "":
		e.dispatch()
	case field == "": // a comment (": ping")
	case field == "event":
		e.name = value
	case field == "data":
		e.data = append(e.data, value)
	case field == "id":
		e.id = value
	case field == "retry":
	default:
		e.c.errorf("%s: event stream line %q has a field the description does not name", e.label, l)
	}
}

// dispatch checks the event the lines so far make, as an EventSource would
// dispatch it.
func (e *events) dispatch() {
	defer func() { e.name, e.data = "", nil }()
	if e.data == nil {
		return
	}
	data := strings.Join(e.data, "\n")
	name := e.name
	if name == "" {
		name = "message"
	}
	e.Names = append(e.Names, name)
	e.LastID = e.id
	schema, ok := e.c.s.events[name]
	if !ok {
		e.c.errorf("%s: event %q is not in the stream's x-events: %.300s", e.label, name, data)
		return
	}
	e.c.s.mu.Lock()
	ok, errs := e.c.s.sv.ValidateSchemaString(schema, data)
	e.c.s.mu.Unlock()
	if !ok {
		e.c.errorf("%s: event %s (id %s) disagrees with api/openapi.yaml:\n\t%s\n\tdata: %.400s", e.label, name, e.id,
			strings.Join(describe(errs), "\n\t"), data)
	}
}

// close ends the stream: an event cut short (a restart, a client that
// went away) is not one the server meant, and is not checked.
func (e *events) close() {
	e.buf, e.name, e.data = nil, "", nil
}

// readAll reads r whole into a buffer, for both the checker and whoever
// reads it next.
func readAll(r io.ReadCloser) ([]byte, io.ReadCloser, error) {
	if r == nil || r == http.NoBody {
		return nil, http.NoBody, nil
	}
	b, err := io.ReadAll(r)
	r.Close()
	return b, io.NopCloser(bytes.NewReader(b)), err
}
