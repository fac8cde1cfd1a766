package jobhandler_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/scriptgen/scriptgen/internal/generate"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/jobhandler"
	"github.com/scriptgen/scriptgen/internal/runner"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/testenv"
)

// liveEnv is an executor running generation jobs with the template
// generator, on a real SQLite store.
type liveEnv struct {
	t    *testing.T
	st   store.Store
	exec *runner.Executor
	gen  *generate.Template
}

func newLiveEnv(t *testing.T, delay time.Duration) *liveEnv {
	st := testenv.SQLite(t)
	gen := generate.NewTemplate(generate.TemplateConfig{StepDelay: delay})
	exec := runner.NewExecutor(st, map[job.Kind]runner.Handler{job.KindGeneration: jobhandler.Generation{Generator: gen}},
		runner.ExecutorConfig{LeaseFor: time.Minute, Heartbeat: time.Hour}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	return &liveEnv{t: t, st: st, exec: exec, gen: gen}
}

var liveEpisode = job.EpisodeData{Title: "첫 번째 거짓말", Synopsis: "지수는 방송국에서 밤을 새운다. 민호가 낡은 테이프를 발견한다! 둘은 진실을 마주한다.",
	Characters: []job.Character{{Name: "김지수"}, {Name: "박민호"}}}

func (e *liveEnv) submit() job.Job {
	payload, _ := json.Marshal(liveEpisode)
	j, _, err := e.st.CreateJob(context.Background(), store.NewJob{
		Kind:        job.KindGeneration,
		ProjectID:   "t1/p1",
		Payload:     payload,
		RequestHash: job.RequestHash(job.KindGeneration, "t1/p1", payload),
		Backend:     job.BackendBackgroundTasks,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return j
}

func (e *liveEnv) claim() job.Job {
	j, err := e.st.ClaimNext(context.Background(), job.BackendBackgroundTasks, "w", time.Minute)
	if err != nil {
		e.t.Fatal(err)
	}
	return j
}

// whole is the script an uninterrupted run writes.
func (e *liveEnv) whole() string {
	s, err := generate.NewTemplate(generate.TemplateConfig{}).Generate(context.Background(), generate.Request{Episode: liveEpisode, Context: []generate.ContextChunk{}}, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return s.Script
}

// scriptSoFar waits until the job's checkpointed script is at least n
// characters long, and returns it.
func (e *liveEnv) scriptSoFar(id string, n int) string {
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := e.st.ScriptSoFar(context.Background(), id)
		if err != nil {
			e.t.Fatal(err)
		}
		if utf8.RuneCountInString(s) >= n {
			return s
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("script of %d characters after 10 s, want %d", utf8.RuneCountInString(s), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// scriptFromEvents is the text of the job's script events, checked to
// follow each other without a gap or an overlap.
func (e *liveEnv) scriptFromEvents(id string) string {
	evs, err := e.st.ListEvents(context.Background(), id, 0, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	var b strings.Builder
	end := 0
	for _, ev := range evs {
		if ev.Type != store.EventScript {
			continue
		}
		var d store.ScriptEventData
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			e.t.Fatal(err)
		}
		if d.Offset != end {
			e.t.Fatalf("script event %d at offset %d, the text before it ends at %d", ev.Seq, d.Offset, end)
		}
		end += utf8.RuneCountInString(d.Text)
		b.WriteString(d.Text)
	}
	return b.String()
}

// TestLiveScriptSurvivesARestart: a run stopped mid-way (its process shut
// down) releases the job with its text checkpointed; the next run continues
// that text, and the episode is byte for byte the script of an uninterrupted
// run — the checkpointed text, and the script events' texts, make it too.
func TestLiveScriptSurvivesARestart(t *testing.T) {
	e := newLiveEnv(t, 100*time.Millisecond)
	whole := e.whole()
	created := e.submit()
	first := e.claim()

	ctx, shutdown := context.WithCancel(context.Background())
	done := make(chan runner.Outcome, 1)
	go func() { done <- e.exec.Run(ctx, first) }()
	// The title page and the first scene are written; then the process stops.
	e.scriptSoFar(created.ID, utf8.RuneCountInString(whole)/4)
	shutdown()
	if o := <-done; o != runner.OutcomeReleased {
		t.Fatalf("stopped run: %v, want released", o)
	}
	checkpoint, err := e.st.ScriptSoFar(context.Background(), created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if checkpoint == "" || checkpoint == whole || !strings.HasPrefix(whole, checkpoint) {
		t.Fatalf("checkpoint of %d characters is not a part of the script's start (%d)", utf8.RuneCountInString(checkpoint), utf8.RuneCountInString(whole))
	}

	second := e.claim()
	if o := e.exec.Run(context.Background(), second); o != runner.OutcomeSucceeded {
		t.Fatalf("second run: %v", o)
	}
	done2, err := e.st.GetJob(context.Background(), created.ID)
	if err != nil {
		t.Fatal(err)
	}
	var res jobhandler.GenerationResult
	if err := json.Unmarshal(done2.Result, &res); err != nil {
		t.Fatal(err)
	}
	ep, err := e.st.GetEpisode(context.Background(), "t1/p1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if ep.Script != whole {
		t.Fatalf("the episode differs from an uninterrupted run's script:\n%s\n---\n%s", ep.Script, whole)
	}
	if res.ResumedFrom != utf8.RuneCountInString(checkpoint) || res.Restarted || res.Attempt != second.Attempt {
		t.Fatalf("result %s: want resumed from %d", done2.Result, utf8.RuneCountInString(checkpoint))
	}
	if got, _ := e.st.ScriptSoFar(context.Background(), created.ID); got != whole {
		t.Fatalf("checkpointed script differs from the episode")
	}
	if got := e.scriptFromEvents(created.ID); got != whole {
		t.Fatalf("the script events make %q", got)
	}
}

// TestLiveScriptOfACancelledRun: a job cancelled while it runs elsewhere (no
// local cancel: its run learns of it from its next write) stops at its next
// checkpoint, which is refused; the text stays as it was.
func TestLiveScriptOfACancelledRun(t *testing.T) {
	e := newLiveEnv(t, 150*time.Millisecond)
	created := e.submit()
	run := e.claim()
	done := make(chan runner.Outcome, 1)
	go func() { done <- e.exec.Run(context.Background(), run) }()
	e.scriptSoFar(created.ID, 1)
	if _, err := e.st.Cancel(context.Background(), created.ID); err != nil {
		t.Fatal(err)
	}
	before, err := e.st.ScriptSoFar(context.Background(), created.ID)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case o := <-done:
		if o != runner.OutcomeDropped {
			t.Fatalf("cancelled run: %v, want dropped", o)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cancelled run went on")
	}
	if got, _ := e.st.ScriptSoFar(context.Background(), created.ID); got != before {
		t.Fatalf("the script changed after the cancel: %d characters, was %d", utf8.RuneCountInString(got), utf8.RuneCountInString(before))
	}
	if got := e.scriptFromEvents(created.ID); got != before {
		t.Fatal("the script events do not make the stored script")
	}
	if eps, _ := e.st.ListEpisodes(context.Background(), "t1/p1", 0, 0); len(eps) != 0 {
		t.Fatalf("%d episodes saved by a cancelled job", len(eps))
	}
}
