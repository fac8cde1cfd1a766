package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"

	"github.com/scriptgen/scriptgen/internal/httpx/response"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/tracing"
)

// jobHandler serves the generation jobs: submit, list, read and cancel.
type jobHandler struct {
	domainErrors
	limits     *tenantLimits
	stream     http.Handler
	store      store.Store
	dispatcher Dispatcher
	canceller  Canceller
	inFlight   sync.Map // idempotency keys being processed by this replica
	// maxAttempts is how often a new job is tried (0: the default).
	maxAttempts int
}

// JobJSON is a job as the API shows it.
type JobJSON struct {
	ID          string          `json:"id"`
	Kind        job.Kind        `json:"kind"`
	ProjectID   string          `json:"project_id"`
	Status      job.Status      `json:"status"`
	Stage       string          `json:"stage"`
	Progress    int             `json:"progress"`
	Attempt     int             `json:"attempt"`
	MaxAttempts int             `json:"max_attempts"`
	Backend     job.Backend     `json:"backend"`
	Epoch       int64           `json:"dispatch_epoch"`
	Worker      string          `json:"worker,omitempty"`
	Payload     json.RawMessage `json:"payload"`
	Result      json.RawMessage `json:"result"`
	Error       string          `json:"error"`
	CreatedAt   *time.Time      `json:"created_at"`
	StartedAt   *time.Time      `json:"started_at"`
	FinishedAt  *time.Time      `json:"finished_at"`
	// RetryAt is when a job queued again after a failed attempt may run
	// its next attempt (its backoff); absent when it may run now.
	RetryAt *time.Time `json:"retry_at,omitempty"`
	Links   JobLinks   `json:"links"`
	// ScriptSoFar is the length, in characters (Unicode code points), of
	// the script the job has checkpointed, and Script that text with
	// ?include=script: GET /api/generation/{id} only.
	ScriptSoFar *int    `json:"script_so_far,omitempty"`
	Script      *string `json:"script,omitempty"`
}

// JobLinks are a job's routes. A struct, not a map: a page of 50 jobs
// encodes in about half the time without a map to sort and allocate per job
// (bench/README.md, issue 21's list check). Fields in the keys' sorted
// order, as a map was written.
type JobLinks struct {
	Cancel string `json:"cancel"`
	Events string `json:"events"`
	Self   string `json:"self"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// NewJobJSON renders a job for the caller of r, who sees its project by the
// name it gave it.
func NewJobJSON(r *http.Request, j job.Job) JobJSON {
	base := "/api/generation/" + j.ID
	return JobJSON{
		ID:          j.ID,
		Kind:        j.Kind,
		ProjectID:   external(r, j.ProjectID),
		Status:      j.Status,
		Stage:       j.Stage,
		Progress:    j.Progress,
		Attempt:     j.Attempt,
		MaxAttempts: j.MaxAttempts,
		Backend:     j.Backend,
		Epoch:       j.DispatchEpoch,
		Worker:      j.LeaseOwner,
		Payload:     j.Payload,
		Result:      j.Result,
		Error:       j.Error,
		CreatedAt:   timePtr(j.CreatedAt),
		StartedAt:   timePtr(j.StartedAt),
		FinishedAt:  timePtr(j.FinishedAt),
		RetryAt:     timePtr(j.RetryAt),
		Links:       JobLinks{Cancel: base + "/cancel", Events: base + "/events", Self: base},
	}
}

// submit takes a generation request (POST /api/generation): 202 with the
// queued job, or the job an earlier request with the same Idempotency-Key
// made.
func (h *jobHandler) submit(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	key, err := idempotencyKey(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := requireJSON(r); err != nil {
		h.fail(w, r, err)
		return
	}
	req, err := job.DecodeGenerationRequest(http.MaxBytesReader(w, r.Body, job.MaxBodyBytes+1))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	project, err := projectKey(r, req.ProjectID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	key = principal(r).IdempotencyKey(key)
	if key != "" {
		if _, busy := h.inFlight.LoadOrStore(key, struct{}{}); busy {
			h.fail(w, r, job.ErrIdempotencyInFlight)
			return
		}
		defer h.inFlight.Delete(key)
	}
	if err := h.limits.admitJob(r); err != nil {
		h.fail(w, r, err)
		return
	}
	payload := req.Payload()
	j, created, err := h.store.CreateJob(r.Context(), store.NewJob{
		Kind:           job.KindGeneration,
		ProjectID:      project,
		Payload:        payload,
		IdempotencyKey: key,
		RequestHash:    job.RequestHash(job.KindGeneration, project, payload),
		Backend:        h.dispatcher.BackendFor(project),
		MaxAttempts:    h.maxAttempts,
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/generation/"+j.ID)
	if !created {
		w.Header().Set("Idempotent-Replayed", "true")
		response.Accepted(w, NewJobJSON(r, j))
		return
	}
	dispatchNew(r, h.dispatcher, j, start)
	response.Accepted(w, NewJobJSON(r, j))
}

// dispatchNew dispatches a job the request created, under the job's root
// span: its trace starts with the request (from start) and goes on wherever
// the job runs (internal/tracing).
func dispatchNew(r *http.Request, d Dispatcher, j job.Job, start time.Time) {
	ctx, span := tracing.StartRoot(tracing.Incoming(r), j.ID, tracing.SpanSubmit, trace.WithTimestamp(start),
		trace.WithAttributes(tracing.AttrKind.String(string(j.Kind)), tracing.AttrProject.String(j.ProjectID)))
	defer span.End()
	d.Dispatch(ctx, j)
}

// idempotencyKey reads the Idempotency-Key header: "" when it is absent, and
// when present exactly one valid key (two keys would make the request's
// identity ambiguous).
func idempotencyKey(r *http.Request) (string, error) {
	vs, present := r.Header["Idempotency-Key"]
	if !present {
		return "", nil
	}
	if len(vs) != 1 {
		return "", &job.ValidationError{Field: "Idempotency-Key", Message: "must be sent once"}
	}
	return vs[0], job.ValidateIdempotencyKey(vs[0])
}

// job reads the job of the path, if it is the caller's: another tenant's
// job is answered as a missing one.
func (h *jobHandler) job(r *http.Request) (job.Job, error) {
	j, err := h.store.GetJob(r.Context(), r.PathValue("id"))
	if errors.Is(err, job.ErrNotFound) {
		return j, errNoJob
	}
	if err != nil {
		return j, err
	}
	return j, ownJob(r, j)
}

// get answers GET /api/generation/{id}: the job, with the length of its
// script so far, and that text too with ?include=script.
func (h *jobHandler) get(w http.ResponseWriter, r *http.Request) {
	include, given := r.URL.Query()["include"]
	if given && (len(include) != 1 || include[0] != "script") {
		h.fail(w, r, &job.ValidationError{Field: "include", Message: "must be script"})
		return
	}
	j, err := h.job(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	text, err := h.store.ScriptSoFar(r.Context(), j.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := NewJobJSON(r, j)
	n := utf8.RuneCountInString(text)
	out.ScriptSoFar = &n
	if given {
		out.Script = &text
	}
	response.OK(w, out)
}

// cancel cancels a job that has not finished, and stops its run here at once.
func (h *jobHandler) cancel(w http.ResponseWriter, r *http.Request) {
	if err := jsonOrEmptyBody(r); err != nil {
		h.fail(w, r, err)
		return
	}
	if _, err := h.job(r); err != nil {
		h.fail(w, r, err)
		return
	}
	j, err := h.store.Cancel(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.canceller.CancelLocal(j.ID)
	response.OK(w, NewJobJSON(r, j))
}

// events streams the job's events (progress.Stream), once the job is known
// to be the caller's and a stream slot is free.
func (h *jobHandler) events(w http.ResponseWriter, r *http.Request) {
	if _, err := h.job(r); err != nil {
		h.fail(w, r, err)
		return
	}
	release, err := h.limits.openStream(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer release()
	h.stream.ServeHTTP(w, r)
}

// limitParam reads ?limit= within 1..max (default def).
func limitParam(r *http.Request, def, max int) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, nil
	}
	n, ok := decimal(v)
	if !ok || n < 1 || n > max {
		return 0, &job.ValidationError{Field: "limit", Message: "must be an integer from 1 to " + strconv.Itoa(max)}
	}
	return n, nil
}

// decimal reads a number written as this API writes one: digits only, with
// no sign and no leading zero, so that each value has one spelling ("+1" and
// "01" are not 1).
func decimal(s string) (int, bool) {
	if s == "" || len(s) > 18 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

// list pages through the jobs, newest first, filtered by project, status
// and kind.
func (h *jobHandler) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.JobFilter{
		Status: job.Status(q.Get("status")),
		Cursor: q.Get("cursor"),
		Kind:   job.Kind(q.Get("kind")),
	}
	if err := scopeFilter(r, &f, q.Get("project_id")); err != nil {
		h.fail(w, r, err)
		return
	}
	if q.Get("project_id") == "" {
		// verify's reserved project is seen only when named.
		f.ExcludeProjectID = job.VerifyProject
	}
	if f.Status != "" && !f.Status.Valid() {
		h.fail(w, r, &job.ValidationError{Field: "status", Message: "must be queued, running, succeeded, failed or cancelled"})
		return
	}
	if f.Kind != "" && f.Kind != job.KindGeneration && f.Kind != job.KindRAGDocument {
		h.fail(w, r, &job.ValidationError{Field: "kind", Message: "must be generation or rag_document"})
		return
	}
	if len(f.Cursor) > 64 {
		h.fail(w, r, &job.ValidationError{Field: "cursor", Message: "is not a cursor this API gave"})
		return
	}
	var err error
	if f.Limit, err = limitParam(r, store.DefaultPage, 200); err != nil {
		h.fail(w, r, err)
		return
	}
	jobs, next, err := h.store.ListJobs(r.Context(), f)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	items := make([]JobJSON, len(jobs))
	for i, j := range jobs {
		items[i] = NewJobJSON(r, j)
	}
	response.OK(w, map[string]any{"items": items, "next_cursor": next})
}
