package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"gopkg.in/yaml.v3"

	apispec "github.com/scriptgen/scriptgen/api"
	"github.com/scriptgen/scriptgen/internal/testenv/contract"
)

// The description the server serves (api/openapi.yaml), parsed and checked
// against the OpenAPI 3.1 schema by libopenapi.
func openAPIDoc(t *testing.T) (libopenapi.Document, *v3.Document) {
	t.Helper()
	doc, err := libopenapi.NewDocument(apispec.YAML)
	if err != nil {
		t.Fatalf("api/openapi.yaml does not parse: %v", err)
	}
	if v := doc.GetVersion(); !strings.HasPrefix(v, "3.1") {
		t.Fatalf("api/openapi.yaml is OpenAPI %s, want 3.1", v)
	}
	m, err := doc.BuildV3Model()
	if err != nil {
		t.Fatalf("api/openapi.yaml does not build: %v", err)
	}
	return doc, &m.Model
}

// specPattern is the route pattern of the tables that serves a path of the
// description: "/" is the tables' "/{$}", and a path whose last segment is
// a parameter under a subtree pattern ("/static/{path}" under "/static/")
// is that subtree's.
func specPattern(path string, subtrees map[string]bool) string {
	if path == "/" {
		return "/{$}"
	}
	if i := strings.LastIndexByte(path, '/'); i >= 0 && strings.HasPrefix(path[i+1:], "{") && subtrees[path[:i+1]] {
		return path[:i+1]
	}
	return path
}

// TestOpenAPIDescribesTheRoutes: api/openapi.yaml is a valid OpenAPI 3.1
// description that has every route of the tables, with who may call it,
// and nothing that the tables do not have.
func TestOpenAPIDescribesTheRoutes(t *testing.T) {
	doc, model := openAPIDoc(t)
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("api/openapi.yaml: %s: %s", e.Message, e.Reason)
			for _, s := range e.SchemaValidationErrors {
				t.Errorf("\t%s at %s", s.Reason, s.FieldPath)
			}
		}
	}

	routes := map[string]Route{}
	subtrees := map[string]bool{}
	for _, rt := range newAPI(Config{}).routes() {
		routes[rt.Method+" "+rt.Pattern] = rt
		if strings.HasSuffix(rt.Pattern, "/") {
			subtrees[rt.Pattern] = true
		}
	}
	described := map[string]bool{}
	for path, item := range model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			key := strings.ToUpper(method) + " " + specPattern(path, subtrees)
			rt, ok := routes[key]
			if !ok {
				t.Errorf("api/openapi.yaml has %s %s, which no route of internal/api/routes.go serves", strings.ToUpper(method), path)
				continue
			}
			described[key] = true
			checkSecurity(t, strings.ToUpper(method)+" "+path, rt.Auth, model, op)
			if op.Responses == nil || op.Responses.Codes == nil || op.Responses.Codes.Len() == 0 {
				t.Errorf("%s %s: no responses", method, path)
			}
		}
	}
	for key := range routes {
		if !described[key] {
			t.Errorf("%s is missing from api/openapi.yaml", key)
		}
	}
}

// checkSecurity: the description asks of a route's callers what its Auth
// does: nothing (Public), a writer's credential or an admin token (Writer),
// those or ?access_token= (WriterStream), an admin token only (AdminOnly),
// nothing or a token (MetricsOnly).
func checkSecurity(t *testing.T, op string, auth Auth, model *v3.Document, o *v3.Operation) {
	t.Helper()
	reqs := o.Security
	if reqs == nil {
		reqs = model.Security
	}
	var got []string
	for _, r := range reqs {
		if r.ContainsEmptyRequirement || r.Requirements == nil || r.Requirements.Len() == 0 {
			got = append(got, "none")
			continue
		}
		for name := range r.Requirements.KeysFromOldest() {
			got = append(got, name)
		}
	}
	slices.Sort(got)
	var want []string
	switch auth {
	case Public:
		// A public route may show more to an operator.
		if !slices.Contains(got, "none") {
			t.Errorf("%s is public; its security %v lacks {}", op, got)
		}
		return
	case Writer:
		want = []string{"adminBearer", "writerBearer"}
	case WriterStream:
		want = []string{"accessToken", "adminBearer", "writerBearer"}
	case AdminOnly:
		want = []string{"adminBearer"}
	case MetricsOnly:
		want = []string{"adminBearer", "metricsBearer", "none"}
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s: security %v, want %v", op, got, want)
	}
}

// Where the API writes an error's code: response.Error(w, status, "code",
// …), InternalProblem(…, "code", …), a limitError's code, writeValidation's
// status and code, the access
// package's Code constants, writeOperation's two codes, the connection
// limit's canned answer.
var errorCodeSites = []*regexp.Regexp{
	regexp.MustCompile(`response\.Error\([^,]+,[^,]+,\s*"([a-z_]+)"`),
	regexp.MustCompile(`InternalProblem\([^"]*"([a-z_]+)"`),
	regexp.MustCompile(`\bcode:\s*"([a-z_]+)"`),
	regexp.MustCompile(`\bcode :?= [^,]+, "([a-z_]+)"`),
	regexp.MustCompile(`\bCode[A-Za-z]*\s*=\s*"([a-z_]+)"`),
	regexp.MustCompile(`"([a-z_]+)", "([a-z_]+)"\)\s*$`),
	regexp.MustCompile(`\{"error":\{"code":"([a-z_]+)"`),
}

// TestOpenAPIErrorCodes: the description's ErrorCode enum is every code the
// service writes, and no other.
func TestOpenAPIErrorCodes(t *testing.T) {
	_, model := openAPIDoc(t)
	var enum []string
	for _, n := range model.Components.Schemas.GetOrZero("ErrorCode").Schema().Enum {
		enum = append(enum, n.Value)
	}
	written := map[string]string{}
	for _, dir := range []string{".", "../access", "../progress", "../limits", "../httpx/response"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(string(b), "\n") {
				for _, re := range errorCodeSites {
					for _, m := range re.FindAllStringSubmatch(line, -1) {
						for _, code := range m[1:] {
							written[code] = f
						}
					}
				}
			}
		}
	}
	if len(written) < 20 {
		t.Fatalf("found only %d error codes in the sources: %v", len(written), written)
	}
	for code, f := range written {
		if !slices.Contains(enum, code) {
			t.Errorf("%s writes error code %q, which ErrorCode in api/openapi.yaml lacks", f, code)
		}
	}
	for _, code := range enum {
		if _, ok := written[code]; !ok {
			t.Errorf("ErrorCode in api/openapi.yaml has %q, which no source writes", code)
		}
	}
}

// answerChecker sends requests to a matrixEnv and holds each answer, with its
// request, against the description: a status, a header, a field or a value
// the description does not have fails the test.
type answerChecker struct {
	t *testing.T
	e *matrixEnv
	c *contract.Checker
}

type call struct {
	method, path, cred string
	contentType, body  string
	header             map[string]string
	// offSpec: the request itself breaks the description (a test of bad
	// input); only the answer is checked.
	offSpec bool
}

func (c call) request(base string) *http.Request {
	req, _ := http.NewRequest(c.method, base+c.path, strings.NewReader(c.body))
	if c.body == "" {
		req.Body = http.NoBody
	}
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	if c.cred != "" {
		req.Header.Set("Authorization", "Bearer "+c.cred)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	if c.offSpec {
		contract.OffSpec(req) // the test server's contract checks the answer only
	}
	return req
}

// do sends c, checks the answer is want and what the description says, and
// returns its body.
func (a *answerChecker) do(c call, want int) []byte {
	a.t.Helper()
	resp, err := http.DefaultClient.Do(c.request(a.e.srv.URL))
	if err != nil {
		a.t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		a.t.Fatalf("%s %s: %d, want %d: %.300s", c.method, c.path, resp.StatusCode, want, body)
	}
	if errs := a.check(c, resp, body); len(errs) > 0 {
		a.t.Errorf("%s %s (%d) disagrees with api/openapi.yaml:\n\t%s\n\tbody: %.400s", c.method, c.path, resp.StatusCode,
			strings.Join(errs, "\n\t"), body)
	}
	return body
}

// check holds the request c and the answer resp with body against the
// description, returning what disagrees.
func (a *answerChecker) check(c call, resp *http.Response, body []byte) []string {
	return a.c.Problems(contract.Exchange{Request: c.request(a.e.srv.URL), RequestBody: []byte(c.body),
		Response: resp, Body: body, OffSpec: c.offSpec})
}

// TestOpenAPIAnswers: real answers of the API in-process (a SQLite store, a
// real pool, keys, the real authenticator) are what api/openapi.yaml says:
// submit, read and list jobs, their event stream, errors, health, usage, a
// project and its episodes, documents in JSON and in Markdown, a search, the
// description itself and the admin's keys. And the check has teeth: an
// answer with a field or a status the description lacks fails it.
func TestOpenAPIAnswers(t *testing.T) {
	_, model := openAPIDoc(t)
	e := newMatrixEnv(t)
	a := &answerChecker{t: t, e: e, c: contract.New(t)}
	const jsonType = "application/json"
	gen := `{"project_id":"p1","episode_data":{"title":"첫 만남","synopsis":"두 사람이 카페에서 만난다.","characters":["지수",{"name":"Minho","description":"barista"}]}}`

	// Jobs.
	submit := call{method: "POST", path: "/api/generation", cred: e.acme, contentType: jsonType, body: gen,
		header: map[string]string{"Idempotency-Key": "openapi-1"}}
	job := a.do(submit, 202)
	id := jsonField(t, string(job), "id")
	a.do(submit, 202) // replayed
	e.waitDone(id, e.acme)
	a.do(call{method: "GET", path: "/api/generation/" + id, cred: e.acme}, 200)
	a.do(call{method: "GET", path: "/api/generation/" + id + "?include=script", cred: e.acme}, 200)
	a.do(call{method: "GET", path: "/api/generation?project_id=p1&limit=10", cred: e.acme}, 200)
	a.do(call{method: "POST", path: "/api/generation/" + id + "/cancel", cred: e.acme}, 409)
	a.do(call{method: "GET", path: "/api/generation/no-such-job", cred: e.acme}, 404)
	a.do(call{method: "GET", path: "/api/generation/" + id, cred: e.globex}, 404)
	a.do(call{method: "POST", path: "/api/generation", cred: e.acme, contentType: jsonType, body: `{"project_id":"p1"}`, offSpec: true}, 400)
	a.do(call{method: "POST", path: "/api/generation", cred: e.acme, contentType: "text/plain", body: gen, offSpec: true}, 415)
	a.do(call{method: "POST", path: "/api/generation", contentType: jsonType, body: gen, offSpec: true}, 401)
	a.do(call{method: "POST", path: "/api/generation", cred: e.acme, contentType: jsonType, body: gen,
		header: map[string]string{"Idempotency-Key": "openapi-1"}}, 202)
	a.do(call{method: "POST", path: "/api/generation", cred: e.acme, contentType: jsonType,
		body: `{"project_id":"p1","episode_data":{"title":"another"}}`, header: map[string]string{"Idempotency-Key": "openapi-1"}}, 422)
	checkEvents(t, a, model, id)

	// Projects, episodes, the system.
	a.do(call{method: "GET", path: "/api/projects/p1", cred: e.acme}, 200)
	a.do(call{method: "GET", path: "/api/projects/p1/episodes?limit=1", cred: e.acme}, 200)
	a.do(call{method: "GET", path: "/api/projects/p1/episodes/1", cred: e.acme}, 200)
	a.do(call{method: "GET", path: "/api/usage", cred: e.acme}, 200)
	a.do(call{method: "GET", path: "/api/usage", offSpec: true}, 401)
	a.do(call{method: "GET", path: "/health"}, 200)
	a.do(call{method: "GET", path: "/api/generation/system-info"}, 200)
	a.do(call{method: "GET", path: "/api/openapi.yaml"}, 200)

	// Documents: JSON, Markdown with ?title=, the list, one, a search.
	created := a.do(call{method: "POST", path: "/api/projects/p1/documents", cred: e.acme, contentType: jsonType,
		body: `{"title":"bible","content":"# World\n\nSeoul, a café by the river."}`}, 202)
	a.do(call{method: "POST", path: "/api/projects/p1/documents?title=notes", cred: e.acme, contentType: "text/markdown; charset=utf-8",
		body: "# Notes\n\nMinho works at the café.", header: map[string]string{"Idempotency-Key": "openapi-doc"}}, 202)
	e.waitDone(jsonField(t, string(created), "id"), e.acme)
	docID := jsonField(t, string(created), "document_id")
	a.do(call{method: "GET", path: "/api/projects/p1/documents", cred: e.acme}, 200)
	a.do(call{method: "GET", path: "/api/projects/p1/documents/" + docID, cred: e.acme}, 200)
	a.do(call{method: "GET", path: "/api/projects/p1/search?q=café", cred: e.acme}, 200)
	a.do(call{method: "POST", path: "/api/projects/p1/documents", cred: e.acme, contentType: "application/pdf", body: "%PDF", offSpec: true}, 415)

	// The admin's keys.
	a.do(call{method: "POST", path: "/api/admin/keys", cred: matrixAdminToken, contentType: jsonType, body: `{"tenant":"initech","name":"openapi"}`}, 201)
	a.do(call{method: "GET", path: "/api/admin/keys", cred: matrixAdminToken}, 200)
	a.do(call{method: "GET", path: "/api/admin/keys", cred: e.acme}, 403)

	// Teeth: the job's answer with a field more, without a field, or under
	// a status the description lacks, disagrees.
	get := call{method: "GET", path: "/api/generation/" + id, cred: e.acme}
	var m map[string]any
	json.Unmarshal(job, &m)
	extra := map[string]any{"undocumented": 1}
	for k, v := range m {
		extra[k] = v
	}
	withExtra, _ := json.Marshal(extra)
	delete(m, "links")
	without, _ := json.Marshal(m)
	for name, tc := range map[string]struct {
		status int
		body   []byte
	}{
		"an undocumented field": {200, withExtra},
		"a missing field":       {200, without},
		"an undocumented code":  {418, job},
	} {
		resp := &http.Response{StatusCode: tc.status, Header: http.Header{"Content-Type": {jsonType}}}
		if errs := a.check(get, resp, tc.body); len(errs) == 0 {
			t.Errorf("an answer with %s passed the check", name)
		}
	}
}

// checkEvents reads the finished job's whole stream and holds each event's
// data against the schema the description names for its event (x-events),
// and a resume after the last event (204) against the route.
func checkEvents(t *testing.T, a *answerChecker, model *v3.Document, id string) {
	t.Helper()
	var spec map[string]any
	if err := yaml.Unmarshal(apispec.YAML, &spec); err != nil {
		t.Fatal(err)
	}
	media := dig(spec, "paths", "/api/generation/{id}/events", "get", "responses", "200", "content", "text/event-stream")
	events, _ := dig(media, "x-events").(map[string]any)
	if len(events) == 0 {
		t.Fatalf("the events route's text/event-stream has no x-events")
	}
	sv := schema_validation.NewSchemaValidator()
	c := call{method: "GET", path: "/api/generation/" + id + "/events", cred: a.e.acme}
	resp, err := http.DefaultClient.Do(c.request(a.e.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body) // the stream ends after the final event
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("events: %d %s", resp.StatusCode, body)
	}
	if errs := a.check(c, resp, body); len(errs) > 0 {
		t.Errorf("events: %s", strings.Join(errs, "\n\t"))
	}
	seen := map[string]int{}
	var name, last string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			last = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data := strings.TrimPrefix(line, "data: ")
			ref, _ := dig(events, name, "data", "$ref").(string)
			if ref == "" {
				t.Errorf("event %q is not in x-events: %s", name, data)
				continue
			}
			schema := model.Components.Schemas.GetOrZero(strings.TrimPrefix(ref, "#/components/schemas/"))
			if schema == nil {
				t.Fatalf("x-events %s names %s, which is not a schema", name, ref)
			}
			seen[name]++
			if ok, verrs := sv.ValidateSchemaString(schema.Schema(), data); !ok {
				for _, e := range verrs {
					for _, s := range e.SchemaValidationErrors {
						t.Errorf("event %s %s: %s at %s", name, data, s.Reason, s.FieldPath)
					}
				}
			}
		}
	}
	for _, n := range []string{"status", "progress", "script", "result"} {
		if seen[n] == 0 {
			t.Errorf("the stream of a succeeded job had no %s event: %v", n, seen)
		}
	}
	a.do(call{method: "GET", path: c.path, cred: a.e.acme, header: map[string]string{"Last-Event-ID": last}}, 204)
	a.do(call{method: "GET", path: c.path + "?access_token=" + a.e.acme + "&last_event_id=" + last}, 204)
	a.do(call{method: "GET", path: c.path, cred: a.e.acme, header: map[string]string{"Last-Event-ID": "x"}, offSpec: true}, 400)
}

// dig walks a YAML document by keys.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}
