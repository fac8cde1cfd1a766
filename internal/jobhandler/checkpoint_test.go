package jobhandler_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/scriptgen/scriptgen/internal/generate"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/jobhandler"
	"github.com/scriptgen/scriptgen/internal/store"
)

// scripts is a runner.Reporter that keeps the script in memory, as the
// store does: a checkpoint must continue the stored end. fail, when set,
// decides the error of the n-th write (from 1).
type scripts struct {
	mu      sync.Mutex
	stored  string
	writes  int
	refused int
	fail    func(n int) error
	// onProgress, when set, is called with each progress report (outside
	// the lock) and decides its error.
	onProgress func(store.Progress) error
	reports    []store.Progress
}

func (s *scripts) Progress(_ context.Context, p store.Progress) error {
	if s.onProgress != nil {
		if err := s.onProgress(p); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reports = append(s.reports, p)
	return nil
}

func (s *scripts) Script(_ context.Context, offset int, text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if s.fail != nil {
		if err := s.fail(s.writes); err != nil {
			s.refused++
			return err
		}
	}
	if offset != utf8.RuneCountInString(s.stored) {
		return store.ErrScriptConflict
	}
	s.stored += text
	return nil
}

func (s *scripts) ScriptSoFar(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stored, nil
}

func (s *scripts) counts() (writes int, stored string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes, s.stored
}

// streamer tells n deltas of text, pausing between them, and writes the
// script they make after Resume.
type streamer struct {
	n     int
	text  string
	pause time.Duration
	told  *atomic.Int64
}

func (g streamer) Generate(ctx context.Context, req generate.Request, _ generate.ProgressFunc) (generate.Script, error) {
	var b strings.Builder
	b.WriteString(req.Resume)
	for range g.n {
		if g.pause > 0 {
			time.Sleep(g.pause)
		}
		if err := req.Text(ctx, g.text); err != nil {
			return generate.Script{}, err
		}
		if g.told != nil {
			g.told.Add(1)
		}
		b.WriteString(g.text)
	}
	return generate.Script{Title: req.Episode.Title, Script: b.String(), Model: "streamer"}, nil
}

func generationJob() job.Job {
	return job.Job{ID: "j1", ProjectID: "p1", Kind: job.KindGeneration, Attempt: 1, Payload: json.RawMessage(`{"title":"비 오는 밤","characters":["지수"]}`)}
}

// TestCheckpointsAreCoalesced: a 2,000-token answer is checkpointed a few
// dozen times, by size when the tokens pour in and by time when they
// trickle, never once a token; the checkpoints make the script exactly.
func TestCheckpointsAreCoalesced(t *testing.T) {
	for _, tt := range []struct {
		name  string
		n     int
		text  string
		pause time.Duration
	}{
		{"poured", 2000, "토큰 ", 0},
		{"trickled", 1000, "a", time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var r scripts
			start := time.Now()
			c, err := jobhandler.Generation{Generator: streamer{n: tt.n, text: tt.text, pause: tt.pause}}.HandleLive(context.Background(), generationJob(), &r)
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			writes, stored := r.counts()
			chars := tt.n * utf8.RuneCountInString(tt.text)
			if stored != c.Episode.Script || utf8.RuneCountInString(stored) != chars {
				t.Fatalf("stored %d characters, episode %d, want %d", utf8.RuneCountInString(stored), utf8.RuneCountInString(c.Episode.Script), chars)
			}
			bound := chars/jobhandler.DefaultFlushChars + int(took/jobhandler.DefaultFlushEvery) + 2
			if writes > bound || writes >= tt.n/10 {
				t.Fatalf("%d checkpoints for %d deltas of %d characters in %s, want at most %d", writes, tt.n, chars, took, bound)
			}
			t.Logf("%d deltas, %d characters, %s: %d checkpoints", tt.n, chars, took.Round(time.Millisecond), writes)
		})
	}
}

// TestCheckpointsWaitForASlowGenerator: text that waits is written after
// FlushEvery even when nothing follows it.
func TestCheckpointsWaitForASlowGenerator(t *testing.T) {
	var r scripts
	var told atomic.Int64
	done := make(chan error, 1)
	go func() {
		_, err := jobhandler.Generation{Generator: streamer{n: 2, text: "지수가 ", pause: 400 * time.Millisecond, told: &told}}.HandleLive(context.Background(), generationJob(), &r)
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, stored := r.counts(); stored == "지수가 " {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first delta was not checkpointed while the generator paused")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if writes, stored := r.counts(); writes != 2 || stored != "지수가 지수가 " {
		t.Fatalf("%d writes, stored %q", writes, stored)
	}
}

// TestGenerationContinuesTheCheckpoint: an attempt starts from the stored
// text, asks the generator to continue it, and returns the script an
// uninterrupted attempt writes; the stored text ends as the episode's.
func TestGenerationContinuesTheCheckpoint(t *testing.T) {
	h := jobhandler.Generation{Generator: generate.NewTemplate(generate.TemplateConfig{})}
	whole, err := h.HandleLive(context.Background(), generationJob(), &scripts{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{1, 100, utf8.RuneCountInString(whole.Episode.Script) - 3} {
		r := scripts{stored: string([]rune(whole.Episode.Script)[:cut])}
		j := generationJob()
		j.Attempt = 2
		c, err := h.HandleLive(context.Background(), j, &r)
		if err != nil {
			t.Fatal(err)
		}
		if c.Episode.Script != whole.Episode.Script || r.stored != c.Episode.Script {
			t.Fatalf("resumed at %d: episode %q, stored %q", cut, c.Episode.Script, r.stored)
		}
		var res jobhandler.GenerationResult
		if err := json.Unmarshal(c.Result, &res); err != nil || res.ResumedFrom != cut || res.Attempt != 2 || res.Restarted ||
			res.Chars != utf8.RuneCountInString(c.Episode.Script) {
			t.Fatalf("result %s (%v)", c.Result, err)
		}
	}
}

// TestGenerationSetsAForeignCheckpointAside: a generator that cannot continue
// the stored text writes the script anew; the result says so.
func TestGenerationSetsAForeignCheckpointAside(t *testing.T) {
	r := scripts{stored: "1. INT. 다른 생성기 - NIGHT\n"}
	c, err := jobhandler.Generation{Generator: generate.NewTemplate(generate.TemplateConfig{})}.HandleLive(context.Background(), generationJob(), &r)
	if err != nil {
		t.Fatal(err)
	}
	var res jobhandler.GenerationResult
	if err := json.Unmarshal(c.Result, &res); err != nil || !res.Restarted || res.ResumedFrom != 0 || !strings.HasPrefix(c.Episode.Script, "TITLE: ") {
		t.Fatalf("result %s, script %.40q (%v)", c.Result, c.Episode.Script, err)
	}
	if r.stored != "1. INT. 다른 생성기 - NIGHT\n" {
		t.Fatalf("stored %q: text was appended to a script it does not continue", r.stored)
	}
}

// TestGenerationCheckpointsAScriptItWasNotTold: a generator that reports no
// text has its script checkpointed whole at the end.
func TestGenerationCheckpointsAScriptItWasNotTold(t *testing.T) {
	var r scripts
	c, err := jobhandler.Generation{Generator: generate.Noop{Text: "TITLE: x\n"}}.HandleLive(context.Background(), generationJob(), &r)
	if err != nil || r.stored != "TITLE: x\n" || c.Episode.Script != r.stored {
		t.Fatalf("stored %q episode %+v (%v)", r.stored, c.Episode, err)
	}
	var quiet scripts
	c, err = jobhandler.Generation{Generator: silent{}}.HandleLive(context.Background(), generationJob(), &quiet)
	if err != nil || quiet.stored != "1. INT. ROOM - DAY\n" || quiet.writes != 1 || c.Episode.Script != quiet.stored {
		t.Fatalf("stored %q in %d writes (%v)", quiet.stored, quiet.writes, err)
	}
}

// silent writes a script without telling its text.
type silent struct{}

func (silent) Generate(_ context.Context, req generate.Request, _ generate.ProgressFunc) (generate.Script, error) {
	return generate.Script{Title: req.Episode.Title, Script: "1. INT. ROOM - DAY\n"}, nil
}

// TestGenerationStopsOnALostLease: a checkpoint that finds the lease lost
// stops the generator at its next delta; the attempt fails with
// job.ErrStaleLease.
func TestGenerationStopsOnALostLease(t *testing.T) {
	var told atomic.Int64
	var toldWhenRefused int64
	r := scripts{fail: func(int) error {
		toldWhenRefused = told.Load()
		return job.ErrStaleLease
	}}
	_, err := jobhandler.Generation{Generator: streamer{n: 2000, text: "토큰 ", pause: time.Millisecond, told: &told}}.HandleLive(context.Background(), generationJob(), &r)
	if !errors.Is(err, job.ErrStaleLease) {
		t.Fatalf("err %v, want ErrStaleLease", err)
	}
	// The refusal reaches the generator at the delta after it: the
	// generator stops there, long before its end, and nothing is written
	// again.
	if r.writes != 1 || told.Load() >= 2000 {
		t.Fatalf("%d writes, %d deltas told, %d when the lease was found lost: the generator went on", r.writes, told.Load(), toldWhenRefused)
	}
	t.Logf("%d deltas told when the lease was found lost, %d in all", toldWhenRefused, told.Load())
}

// TestGeneratorDoesNotWaitForACommit: a checkpoint that takes long to
// commit does not hold the generator back: the text told meanwhile waits
// for the next checkpoint, which writes it in one go once the slow one is
// done, and the script is stored whole, in order.
func TestGeneratorDoesNotWaitForACommit(t *testing.T) {
	release := make(chan struct{})
	var told atomic.Int64
	var toldWhileBlocked int64
	r := scripts{fail: func(n int) error {
		if n == 1 {
			<-release // the first commit hangs until the generator has told everything
			toldWhileBlocked = told.Load()
		}
		return nil
	}}
	gen := streamer{n: 500, text: "토큰 ", told: &told}
	done := make(chan error, 1)
	var c store.Completion
	go func() {
		var err error
		c, err = jobhandler.Generation{Generator: gen}.HandleLive(context.Background(), generationJob(), &r)
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for told.Load() < 500 {
		if time.Now().After(deadline) {
			t.Fatalf("the generator told %d of 500 deltas while a checkpoint was being committed", told.Load())
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	writes, stored := r.counts()
	if toldWhileBlocked != 500 || stored != c.Episode.Script || stored != strings.Repeat("토큰 ", 500) || writes != 2 {
		t.Fatalf("told %d while the first commit hung; %d writes, stored %d characters", toldWhileBlocked, writes, utf8.RuneCountInString(stored))
	}
}

// TestCheckpointOutlastsABlink: a checkpoint the database refuses keeps its
// text for the next one, and the script is stored whole.
func TestCheckpointOutlastsABlink(t *testing.T) {
	r := scripts{fail: func(n int) error {
		if n == 2 || n == 3 {
			return errors.New("connection refused")
		}
		return nil
	}}
	c, err := jobhandler.Generation{Generator: streamer{n: 300, text: "토큰 ", pause: 100 * time.Microsecond}}.HandleLive(context.Background(), generationJob(), &r)
	if err != nil {
		t.Fatal(err)
	}
	if r.refused != 2 || r.stored != c.Episode.Script || r.stored != strings.Repeat("토큰 ", 300) {
		t.Fatalf("refused %d, stored %d characters of %d", r.refused, utf8.RuneCountInString(r.stored), utf8.RuneCountInString(c.Episode.Script))
	}
}

// TestGenerationSavesWhatItWroteWhenStopped: an attempt stopped mid-way (a
// shutdown) checkpoints what it had not, so the next one continues it.
func TestGenerationSavesWhatItWroteWhenStopped(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var r scripts
	n := 0
	gen := tellThenWait{n: 3, cancel: cancel, told: &n}
	_, err := jobhandler.Generation{Generator: gen, FlushEvery: time.Hour}.HandleLive(ctx, generationJob(), &r)
	if !errors.Is(err, context.Canceled) || r.stored != "abc" {
		t.Fatalf("err %v, stored %q", err, r.stored)
	}
}

// tellThenWait tells n one-letter deltas, then cancels and waits for its
// context.
type tellThenWait struct {
	n      int
	cancel context.CancelFunc
	told   *int
}

func (g tellThenWait) Generate(ctx context.Context, req generate.Request, _ generate.ProgressFunc) (generate.Script, error) {
	for i := range g.n {
		if err := req.Text(ctx, string(rune('a'+i))); err != nil {
			return generate.Script{}, err
		}
	}
	g.cancel()
	<-ctx.Done()
	return generate.Script{}, ctx.Err()
}

// TestProgressOnceTextFlowsDoesNotWait: a progress report told after the
// text began is written beside the checkpoints, not on the generator's
// path: a report whose commit hangs does not stop the text; one told before
// the text is written in its place, at once. Every report is written.
func TestProgressOnceTextFlowsDoesNotWait(t *testing.T) {
	release := make(chan struct{})
	var told atomic.Int64
	var toldWhileHung int64
	r := scripts{onProgress: func(p store.Progress) error {
		if p.Stage == "writing" {
			<-release
			toldWhileHung = told.Load()
		}
		return nil
	}}
	gen := reporter{n: 200, told: &told}
	done := make(chan error, 1)
	go func() {
		_, err := jobhandler.Generation{Generator: gen}.HandleLive(context.Background(), generationJob(), &r)
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for told.Load() < 200 {
		if time.Now().After(deadline) {
			t.Fatalf("the generator told %d of 200 deltas while a progress report was being committed", told.Load())
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_, stored := r.counts()
	r.mu.Lock()
	defer r.mu.Unlock()
	if toldWhileHung != 200 || stored != strings.Repeat("말 ", 200) || len(r.reports) != 2 ||
		r.reports[0].Stage != "prompt" || r.reports[1].Stage != "writing" {
		t.Fatalf("told %d while the report hung; stored %d characters; reports %+v", toldWhileHung, utf8.RuneCountInString(stored), r.reports)
	}
}

// reporter reports a stage, tells n deltas, and reports progress half-way.
type reporter struct {
	n    int
	told *atomic.Int64
}

func (g reporter) Generate(ctx context.Context, req generate.Request, progress generate.ProgressFunc) (generate.Script, error) {
	if err := progress(ctx, generate.Progress{Percent: 5, Stage: "prompt"}); err != nil {
		return generate.Script{}, err
	}
	var b strings.Builder
	for i := range g.n {
		if i == g.n/2 {
			if err := progress(ctx, generate.Progress{Percent: 50, Stage: "writing"}); err != nil {
				return generate.Script{}, err
			}
		}
		if err := req.Text(ctx, "말 "); err != nil {
			return generate.Script{}, err
		}
		g.told.Add(1)
		b.WriteString("말 ")
	}
	return generate.Script{Title: req.Episode.Title, Script: b.String(), Model: "reporter"}, nil
}
