package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// scriptTests: the live script, checkpointed under the lease as it is
// written, one row per job, each checkpoint with its event.
var scriptTests = []test{
	{"ScriptCheckpointsAppendWithEvents", testScriptCheckpoints},
	{"ScriptCheckpointOnlyContinues", testScriptCheckpointRules},
	{"ScriptCheckpointIsFenced", testScriptCheckpointFenced},
	{"ScriptCheckpointsOfABatchAreFencedEachAlone", testScriptBatchFenced},
	{"ScriptPartsAreBounded", testScriptPartsBounded},
	{"ScriptCheckpointsOfManyJobsAtOnce", testScriptConcurrentCheckpoints},
}

// scriptBatcher is the store's commit of many jobs' checkpoints in one
// transaction, and its count of a script's rows.
type scriptBatcher interface {
	CheckpointScripts(ctx context.Context, cps []store.ScriptCheckpoint) ([]error, error)
	ScriptParts(ctx context.Context, jobID string) (int, error)
}

func (f *fixture) batcher() scriptBatcher {
	f.t.Helper()
	b, ok := f.s.(scriptBatcher)
	if !ok {
		f.t.Fatalf("%T does not commit checkpoints in batches", f.s)
	}
	return b
}

// script reads the job's script so far.
func (f *fixture) script(id string) string {
	f.t.Helper()
	text, err := f.s.ScriptSoFar(f.ctx, id)
	if err != nil {
		f.t.Fatalf("script so far: %v", err)
	}
	return text
}

// scriptEvents are the job's script events, checked to be gapless in the
// script: each starts where the one before ended.
func (f *fixture) scriptEvents(id string) []store.ScriptEventData {
	f.t.Helper()
	var out []store.ScriptEventData
	end := 0
	for _, e := range f.events(id) {
		if e.Type != store.EventScript {
			continue
		}
		var d store.ScriptEventData
		if err := json.Unmarshal(e.Data, &d); err != nil {
			f.t.Fatalf("script event %d data %s: %v", e.Seq, e.Data, err)
		}
		if e.Status != job.StatusRunning || d.Text == "" {
			f.t.Fatalf("script event %+v: want a running job's event with text", e)
		}
		if len(out) > 0 && d.Offset != end {
			f.t.Fatalf("script event at offset %d after text that ended at %d", d.Offset, end)
		}
		end = d.Offset + utf8.RuneCountInString(d.Text)
		out = append(out, d)
	}
	return out
}

func joined(evs []store.ScriptEventData) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString(e.Text)
	}
	return b.String()
}

func testScriptCheckpoints(f *fixture) {
	f.create("p1", "", job.BackendBackgroundTasks)
	j := f.claim(job.BackendBackgroundTasks, "w")
	if got := f.script(j.ID); got != "" {
		f.t.Fatalf("script of a job that wrote nothing: %q", got)
	}
	if got, err := f.s.ScriptSoFar(f.ctx, "no-such-job"); err != nil || got != "" {
		f.t.Fatalf("script of no job: %q %v", got, err)
	}
	// Offsets count characters: Hangul takes three bytes a character.
	parts := []string{"1. INT. 카페 - NIGHT\n\n", "지수가 ", "불을 끈다. ☕\n", "", "2. EXT. 한강 - NIGHT\n"}
	offset := 0
	for _, p := range parts {
		if err := f.s.CheckpointScript(f.ctx, j.Lease(), offset, p); err != nil {
			f.t.Fatalf("checkpoint %q at %d: %v", p, offset, err)
		}
		offset += utf8.RuneCountInString(p)
	}
	want := strings.Join(parts, "")
	if got := f.script(j.ID); got != want {
		f.t.Fatalf("script so far %q, want %q", got, want)
	}
	evs := f.scriptEvents(j.ID)
	if len(evs) != 4 || evs[0].Offset != 0 || evs[1].Offset != 20 || evs[2].Offset != 24 || evs[3].Offset != 33 {
		f.t.Fatalf("script events %+v: want four (the empty checkpoint writes nothing) at 0, 20, 24, 33", evs)
	}
	if joined(evs) != want {
		f.t.Fatalf("the events' texts make %q, want %q", joined(evs), want)
	}
	// The job's events stay numbered 1..n (claim, 4 scripts), and the
	// completion follows them.
	if _, err := f.s.Complete(f.ctx, j.Lease(), f.episode(j)); err != nil {
		f.t.Fatal(err)
	}
	all := f.events(j.ID)
	if len(all) != 7 || all[6].Type != job.EventResult {
		f.t.Fatalf("%d events, last %+v: want accepted, claim, 4 scripts, result", len(all), all[len(all)-1])
	}
	// The text outlives the job's success.
	if got := f.script(j.ID); got != want {
		f.t.Fatalf("script after success %q", got)
	}
}

func testScriptCheckpointRules(f *fixture) {
	f.create("p1", "", job.BackendBackgroundTasks)
	j := f.claim(job.BackendBackgroundTasks, "w")
	l := j.Lease()
	refused := func(what string, offset int, text string, want error) {
		f.t.Helper()
		before, evs := f.script(j.ID), len(f.events(j.ID))
		if err := f.s.CheckpointScript(f.ctx, l, offset, text); !errors.Is(err, want) {
			f.t.Fatalf("%s: %v, want %v", what, err, want)
		}
		if got := f.script(j.ID); got != before {
			f.t.Fatalf("%s changed the script: %q, was %q", what, got, before)
		}
		if n := len(f.events(j.ID)); n != evs {
			f.t.Fatalf("%s appended an event", what)
		}
	}
	refused("a first checkpoint past 0", 3, "abc", store.ErrScriptConflict)
	refused("a negative offset", -1, "abc", store.ErrScriptConflict)
	if err := f.s.CheckpointScript(f.ctx, l, 0, "가나다"); err != nil {
		f.t.Fatal(err)
	}
	refused("a gap", 4, "라", store.ErrScriptConflict)
	refused("another text at 0", 0, "abc", store.ErrScriptConflict)
	refused("another text at the middle", 1, "X다라", store.ErrScriptConflict)
	refused("past the bound", 3, strings.Repeat("x", store.MaxScriptChars), store.ErrScriptTooLong)

	// A checkpoint written again (its answer was lost) changes nothing.
	evs := len(f.scriptEvents(j.ID))
	for _, again := range []struct {
		offset int
		text   string
	}{{0, "가나다"}, {1, "나"}, {3, ""}} {
		if err := f.s.CheckpointScript(f.ctx, l, again.offset, again.text); err != nil {
			f.t.Fatalf("checkpoint %q at %d again: %v", again.text, again.offset, err)
		}
	}
	if got := f.script(j.ID); got != "가나다" || len(f.scriptEvents(j.ID)) != evs {
		f.t.Fatalf("repeated checkpoints: script %q", got)
	}
	// One that repeats the stored tail and goes on appends only what is new,
	// and its event starts at the stored end.
	if err := f.s.CheckpointScript(f.ctx, l, 1, "나다라마"); err != nil {
		f.t.Fatal(err)
	}
	got := f.scriptEvents(j.ID)
	if s := f.script(j.ID); s != "가나다라마" || got[len(got)-1] != (store.ScriptEventData{Offset: 3, Text: "라마"}) {
		f.t.Fatalf("overlapping checkpoint: script %q, events %+v", s, got)
	}
	if joined(got) != "가나다라마" {
		f.t.Fatalf("events make %q", joined(got))
	}
}

func testScriptCheckpointFenced(f *fixture) {
	f.create("p1", "", job.BackendBackgroundTasks)
	first := f.claim(job.BackendBackgroundTasks, "dead")
	if err := f.s.CheckpointScript(f.ctx, first.Lease(), 0, "1. INT. ROOM - DAY\n"); err != nil {
		f.t.Fatal(err)
	}
	f.clk.Advance(lease + time.Second)
	if _, err := f.s.ExpireLeases(f.ctx); err != nil {
		f.t.Fatal(err)
	}
	// The job is queued again: no lease is held, so nobody appends.
	if err := f.s.CheckpointScript(f.ctx, first.Lease(), 19, "Late."); !errors.Is(err, job.ErrStaleLease) {
		f.t.Fatalf("checkpoint of an expired lease: %v, want ErrStaleLease", err)
	}
	second := f.claim(job.BackendBackgroundTasks, "alive")
	resume := f.script(second.ID)
	if resume != "1. INT. ROOM - DAY\n" {
		f.t.Fatalf("the second attempt resumes from %q", resume)
	}
	evs := len(f.events(second.ID))
	// The first attempt, still running somewhere, cannot append to the
	// second's text, at its end or anywhere else.
	for _, offset := range []int{19, 0} {
		if err := f.s.CheckpointScript(f.ctx, first.Lease(), offset, "Stale."); !errors.Is(err, job.ErrStaleLease) {
			f.t.Fatalf("stale checkpoint at %d: %v, want ErrStaleLease", offset, err)
		}
	}
	if got := f.script(second.ID); got != resume || len(f.events(second.ID)) != evs {
		f.t.Fatalf("a stale checkpoint changed the script (%q) or the log", got)
	}
	if err := f.s.CheckpointScript(f.ctx, second.Lease(), utf8.RuneCountInString(resume), "Fresh.\n"); err != nil {
		f.t.Fatal(err)
	}
	if err := f.s.CheckpointScript(f.ctx, first.Lease(), 26, "Stale."); !errors.Is(err, job.ErrStaleLease) {
		f.t.Fatalf("stale checkpoint after the fresh one: %v", err)
	}
	if got := f.script(second.ID); got != "1. INT. ROOM - DAY\nFresh.\n" {
		f.t.Fatalf("script %q", got)
	}
	// Once the job has finished, or was cancelled, its lease holds nothing.
	if _, err := f.s.Complete(f.ctx, second.Lease(), f.episode(second)); err != nil {
		f.t.Fatal(err)
	}
	if err := f.s.CheckpointScript(f.ctx, second.Lease(), 26, "After."); !errors.Is(err, job.ErrStaleLease) {
		f.t.Fatalf("checkpoint after success: %v", err)
	}
	f.create("p1", "", job.BackendBackgroundTasks)
	third := f.claim(job.BackendBackgroundTasks, "w")
	if _, err := f.s.Cancel(f.ctx, third.ID); err != nil {
		f.t.Fatal(err)
	}
	if err := f.s.CheckpointScript(f.ctx, third.Lease(), 0, "x"); !errors.Is(err, job.ErrStaleLease) {
		f.t.Fatalf("checkpoint after cancel: %v", err)
	}
	if got := f.script(third.ID); got != "" {
		f.t.Fatalf("cancelled job's script %q", got)
	}
	if got := joined(f.scriptEvents(second.ID)); got != "1. INT. ROOM - DAY\nFresh.\n" {
		f.t.Fatalf("events make %q", got)
	}
}

// testScriptBatchFenced: checkpoints of several jobs committed in one
// transaction are each fenced by their own lease and checked against their
// own script. A stale attempt's checkpoint in the batch, and one that does
// not continue its script, are refused and write nothing; the others of the
// batch are committed, each job's events numbered without a gap.
func testScriptBatchFenced(f *fixture) {
	b := f.batcher()
	f.create("p1", "", job.BackendBackgroundTasks)
	stale := f.claim(job.BackendBackgroundTasks, "dead")
	if err := f.s.CheckpointScript(f.ctx, stale.Lease(), 0, "A1 "); err != nil {
		f.t.Fatal(err)
	}
	f.clk.Advance(lease + time.Second)
	if _, err := f.s.ExpireLeases(f.ctx); err != nil {
		f.t.Fatal(err)
	}
	fresh := f.claim(job.BackendBackgroundTasks, "alive")
	f.create("p1", "", job.BackendBackgroundTasks)
	other := f.claim(job.BackendBackgroundTasks, "alive")
	f.create("p1", "", job.BackendBackgroundTasks)
	third := f.claim(job.BackendBackgroundTasks, "alive")
	if fresh.ID != stale.ID || other.ID == fresh.ID || third.ID == other.ID {
		f.t.Fatalf("jobs %s %s %s %s", stale.ID, fresh.ID, other.ID, third.ID)
	}
	logs := map[string]int{}
	for _, id := range []string{fresh.ID, other.ID, third.ID} {
		logs[id] = len(f.events(id))
	}
	answers, err := b.CheckpointScripts(f.ctx, []store.ScriptCheckpoint{
		{Lease: stale.Lease(), Offset: 3, Text: "stale "},   // the first attempt, still running somewhere
		{Lease: other.Lease(), Offset: 0, Text: "B1 "},      // another job's first text
		{Lease: fresh.Lease(), Offset: 3, Text: "A2 "},      // the new attempt continues the job's text
		{Lease: third.Lease(), Offset: 5, Text: "gap"},      // beyond the stored end
		{Lease: other.Lease(), Offset: 3, Text: "B2 "},      // the same job again, after its first
		{Lease: stale.Lease(), Offset: 0, Text: "A1 over "}, // stale anywhere
		{Lease: fresh.Lease(), Offset: 3, Text: "A2 A3 "},   // repeats A2 and goes on
	})
	if err != nil {
		f.t.Fatalf("the batch failed: %v", err)
	}
	want := []error{job.ErrStaleLease, nil, nil, store.ErrScriptConflict, nil, job.ErrStaleLease, nil}
	for i := range want {
		if (want[i] == nil) != (answers[i] == nil) || (want[i] != nil && !errors.Is(answers[i], want[i])) {
			f.t.Fatalf("checkpoint %d of the batch: %v, want %v (all: %v)", i, answers[i], want[i], answers)
		}
	}
	for id, text := range map[string]string{fresh.ID: "A1 A2 A3 ", other.ID: "B1 B2 ", third.ID: ""} {
		if got := f.script(id); got != text {
			f.t.Fatalf("job %s: script %q, want %q", id, got, text)
		}
		if got := joined(f.scriptEvents(id)); got != text {
			f.t.Fatalf("job %s: its events make %q, want %q", id, got, text)
		}
	}
	// Gapless: the events' seqs follow one another (f.events checks), and
	// each appended checkpoint added one event.
	for id, added := range map[string]int{fresh.ID: 2, other.ID: 2, third.ID: 0} {
		if n := len(f.events(id)) - logs[id]; n != added {
			f.t.Fatalf("job %s: %d events appended by the batch, want %d", id, n, added)
		}
	}
	// The jobs' next writes number their events after the batch's.
	if _, err := f.s.Complete(f.ctx, other.Lease(), f.episode(other)); err != nil {
		f.t.Fatal(err)
	}
	evs := f.events(other.ID)
	if last := evs[len(evs)-1]; last.Type != job.EventResult || last.Seq != int64(len(evs)) {
		f.t.Fatalf("the completion after the batch: %+v of %d events", last, len(evs))
	}
}

// testScriptPartsBounded: a script checkpointed many times is held in at
// most 31 rows whatever its length, and reads back whole after each merge.
func testScriptPartsBounded(f *fixture) {
	b := f.batcher()
	f.create("p1", "", job.BackendBackgroundTasks)
	j := f.claim(job.BackendBackgroundTasks, "w")
	var want strings.Builder
	most := 0
	for i := range 200 {
		text := fmt.Sprintf("%d. 장면 %d\n", i, i)
		if err := f.s.CheckpointScript(f.ctx, j.Lease(), utf8.RuneCountInString(want.String()), text); err != nil {
			f.t.Fatalf("checkpoint %d: %v", i, err)
		}
		want.WriteString(text)
		n, err := b.ScriptParts(f.ctx, j.ID)
		if err != nil {
			f.t.Fatal(err)
		}
		most = max(most, n)
		if i%37 == 0 || n == 1 {
			if got := f.script(j.ID); got != want.String() {
				f.t.Fatalf("after checkpoint %d (%d rows): script of %d characters, want %d", i, n, utf8.RuneCountInString(got), utf8.RuneCountInString(want.String()))
			}
		}
	}
	if most > 31 || most < 2 {
		f.t.Fatalf("the script took up to %d rows, want at most 31 (and more than one between merges)", most)
	}
	if got := f.script(j.ID); got != want.String() || joined(f.scriptEvents(j.ID)) != want.String() {
		f.t.Fatal("the script, or its events, is not what was checkpointed")
	}
	// A checkpoint that repeats text from before the last merge is checked
	// against the merged text.
	if err := f.s.CheckpointScript(f.ctx, j.Lease(), 0, "0. 다른 장면"); !errors.Is(err, store.ErrScriptConflict) {
		f.t.Fatalf("a checkpoint that rewrites the start: %v, want ErrScriptConflict", err)
	}
	if err := f.s.CheckpointScript(f.ctx, j.Lease(), 0, want.String()+"끝"); err != nil {
		f.t.Fatal(err)
	}
	if got := f.script(j.ID); got != want.String()+"끝" {
		f.t.Fatalf("script ends %q", got[len(got)-10:])
	}
}

// testScriptConcurrentCheckpoints: many jobs checkpointing at once — the
// group commit puts them in shared transactions — each get exactly their
// text, with gapless events.
func testScriptConcurrentCheckpoints(f *fixture) {
	const jobs, writes = 12, 25
	var leases []job.Lease
	for range jobs {
		f.create("p1", "", job.BackendBackgroundTasks)
		j := f.claim(job.BackendBackgroundTasks, "w")
		leases = append(leases, j.Lease())
	}
	var wg sync.WaitGroup
	errs := make(chan error, jobs)
	for n, l := range leases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			offset := 0
			for i := range writes {
				text := fmt.Sprintf("%d:%d ", n, i)
				if err := f.s.CheckpointScript(f.ctx, l, offset, text); err != nil {
					errs <- fmt.Errorf("job %d checkpoint %d: %w", n, i, err)
					return
				}
				offset += utf8.RuneCountInString(text)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		f.t.Fatal(err)
	}
	for n, l := range leases {
		var want strings.Builder
		for i := range writes {
			fmt.Fprintf(&want, "%d:%d ", n, i)
		}
		if got := f.script(l.JobID); got != want.String() || joined(f.scriptEvents(l.JobID)) != want.String() {
			f.t.Fatalf("job %d: script %q", n, got)
		}
	}
}
