package storetest

import (
	"encoding/json"
	"errors"
	"strings"
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
