package api_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/api"
	"github.com/scriptgen/scriptgen/internal/generate"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/jobhandler"
	"github.com/scriptgen/scriptgen/internal/runner"
	"github.com/scriptgen/scriptgen/internal/store"
)

// failFirst is a generation handler whose first run fails for good (a
// model that refused, say) and whose later runs generate.
type failFirst struct {
	failed atomic.Bool
	next   runner.Handler
}

func (h *failFirst) Handle(ctx context.Context, j job.Job, report runner.ReportFunc) (store.Completion, error) {
	if h.failed.CompareAndSwap(false, true) {
		return store.Completion{}, fmt.Errorf("the model refused: %w", runner.ErrPermanent)
	}
	return h.next.Handle(ctx, j, report)
}

// TestRetryAFailedJob: a job that failed for good is listed with
// ?status=failed, retried by the operator (its attempts start over), and
// then succeeds, saving its episode once; a job that did not fail is 409.
func TestRetryAFailedJob(t *testing.T) {
	h := &failFirst{next: jobhandler.Generation{Generator: generate.NewTemplate(generate.TemplateConfig{})}}
	e := startEnv(t, 1, func(store.Store) map[job.Kind]runner.Handler {
		return map[job.Kind]runner.Handler{job.KindGeneration: h}
	}, func(cfg *api.Config) { cfg.AdminToken = testAdminToken })
	admin := []string{"Authorization", "Bearer " + testAdminToken}
	code, j := e.do("POST", "/api/generation", `{"project_id":"p1","episode_data":{"title":"t"}}`, admin...)
	if code != 202 {
		t.Fatalf("submit: %d %v", code, j)
	}
	id := j["id"].(string)
	status := func() string {
		_, g := e.do("GET", "/api/generation/"+id, "", admin...)
		s, _ := g["status"].(string)
		return s
	}
	waitUntil(t, 10*time.Second, "the job to fail", func() bool { return status() == "failed" })
	if _, list := e.do("GET", "/api/generation?status=failed", "", admin...); len(list["items"].([]any)) != 1 {
		t.Fatalf("failed jobs: %v, want the one", list)
	}
	code, r := e.do("POST", "/api/admin/jobs/"+id+"/retry", "", admin...)
	if code != 200 || r["status"] != "queued" || r["attempt"] != float64(0) {
		t.Fatalf("retry: %d %v", code, r)
	}
	waitUntil(t, 10*time.Second, "the retried job to succeed", func() bool { return status() == "succeeded" })
	if code, _ := e.do("GET", "/api/projects/p1/episodes/1", "", admin...); code != 200 {
		t.Fatalf("episode 1 of the retried job: %d", code)
	}
	if code, r := e.do("POST", "/api/admin/jobs/"+id+"/retry", "", admin...); code != 409 {
		t.Fatalf("retry of a succeeded job: %d %v, want 409", code, r)
	}
	evs, err := e.store.ListEvents(context.Background(), id, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	retried := false
	for _, ev := range evs {
		retried = retried || ev.Message == "retried by an operator"
	}
	if !retried {
		t.Fatalf("the event log does not record the retry: %+v", evs)
	}
}

// blocking is a handler that runs until its job is cancelled.
type blocking struct{}

func (blocking) Handle(ctx context.Context, _ job.Job, _ runner.ReportFunc) (store.Completion, error) {
	<-ctx.Done()
	return store.Completion{}, ctx.Err()
}

// TestCancelManyByFilter: the queued and running jobs of one project are
// cancelled in one call (the running one stops), another project's are not;
// a call without a filter is refused.
func TestCancelManyByFilter(t *testing.T) {
	e := startEnv(t, 1, func(store.Store) map[job.Kind]runner.Handler {
		return map[job.Kind]runner.Handler{job.KindGeneration: blocking{}}
	}, func(cfg *api.Config) { cfg.AdminToken = testAdminToken })
	admin := []string{"Authorization", "Bearer " + testAdminToken}
	var p1 []string
	for i := range 3 {
		_, j := e.do("POST", "/api/generation", fmt.Sprintf(`{"project_id":"p1","episode_data":{"title":"t%d"}}`, i), admin...)
		p1 = append(p1, j["id"].(string))
	}
	_, other := e.do("POST", "/api/generation", `{"project_id":"p2","episode_data":{"title":"x"}}`, admin...)
	if code, r := e.do("POST", "/api/admin/jobs/cancel", `{}`, admin...); code != 400 {
		t.Fatalf("cancel without a filter: %d %v, want 400", code, r)
	}
	code, r := e.do("POST", "/api/admin/jobs/cancel", `{"project_id":"p1"}`, admin...)
	if code != 200 || r["cancelled"] != float64(3) {
		t.Fatalf("cancel p1: %d %v, want 3 cancelled", code, r)
	}
	for _, id := range p1 {
		if j, _ := e.store.GetJob(context.Background(), id); j.Status != job.StatusCancelled {
			t.Fatalf("job %s of p1 is %s", id, j.Status)
		}
	}
	if j, _ := e.store.GetJob(context.Background(), other["id"].(string)); j.Status == job.StatusCancelled {
		t.Fatal("p2's job was cancelled by a filter naming p1")
	}
}

// failOnce is a generation handler whose first run fails in a way that may
// pass (retryable).
type failOnce struct{ failed atomic.Bool }

func (h *failOnce) Handle(context.Context, job.Job, runner.ReportFunc) (store.Completion, error) {
	if h.failed.CompareAndSwap(false, true) {
		return store.Completion{}, fmt.Errorf("the model timed out")
	}
	return store.Completion{}, fmt.Errorf("the second attempt ran before its backoff")
}

// TestRetryAtShowsTheBackoff: a job queued again after a failed attempt shows
// when its next attempt is due (retry_at), its event log says so, and it is
// not run before.
func TestRetryAtShowsTheBackoff(t *testing.T) {
	h := &failOnce{}
	e := startEnv(t, 1, func(store.Store) map[job.Kind]runner.Handler {
		return map[job.Kind]runner.Handler{job.KindGeneration: h}
	}, func(cfg *api.Config) { cfg.AdminToken = testAdminToken })
	e.store.SetBackoff(job.Backoff{Base: time.Hour, Cap: time.Hour})
	admin := []string{"Authorization", "Bearer " + testAdminToken}
	start := time.Now()
	code, j := e.do("POST", "/api/generation", `{"project_id":"p1","episode_data":{"title":"t"}}`, admin...)
	if code != 202 {
		t.Fatalf("submit: %d %v", code, j)
	}
	if _, ok := j["retry_at"]; ok {
		t.Fatalf("a new job shows retry_at: %v", j)
	}
	id := j["id"].(string)
	var g map[string]any
	waitUntil(t, 10*time.Second, "the first attempt to fail", func() bool {
		_, g = e.do("GET", "/api/generation/"+id, "", admin...)
		return g["status"] == "queued" && g["attempt"] == float64(1)
	})
	at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(g["retry_at"]))
	if err != nil || at.Before(start.Add(time.Hour)) || at.After(time.Now().Add(time.Hour)) {
		t.Fatalf("retry_at %v (%v), want an hour after the failure", g["retry_at"], err)
	}
	evs, err := e.store.ListEvents(context.Background(), id, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if last := evs[len(evs)-1].Message; last != "attempt failed, will retry: the model timed out; attempt 2 of 3 in 1h0m0s" {
		t.Fatalf("the retry's event says %q", last)
	}
	time.Sleep(200 * time.Millisecond) // polls of the pool meanwhile
	if _, g = e.do("GET", "/api/generation/"+id, "", admin...); g["status"] != "queued" || g["attempt"] != float64(1) {
		t.Fatalf("the job moved during its backoff: %v", g)
	}
}
