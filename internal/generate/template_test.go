package generate

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/scriptgen/scriptgen/internal/job"
)

var sceneHeading = regexp.MustCompile(`(?m)^\d+\. (INT|EXT)\. .+ - .+$`)

func episode(title, synopsis string, names ...string) job.EpisodeData {
	ep := job.EpisodeData{Title: title, Synopsis: synopsis}
	for _, n := range names {
		ep.Characters = append(ep.Characters, job.Character{Name: n})
	}
	return ep
}

func request(ep job.EpisodeData, chunks ...string) Request {
	req := Request{JobID: "job-1", ProjectID: "proj", Episode: ep}
	for i, c := range chunks {
		req.Context = append(req.Context, ContextChunk{DocumentID: fmt.Sprintf("doc-%d", i), ChunkID: int64(i), Text: c})
	}
	return req
}

// newTestTemplate returns a generator whose pauses return at once (ignoring
// ctx, so the tests also prove Generate checks ctx itself) and counts them.
func newTestTemplate(t *testing.T) (*Template, *[]time.Duration) {
	t.Helper()
	var slept []time.Duration
	g := NewTemplate(TemplateConfig{
		StepDelay: 250 * time.Millisecond,
		Sleep: func(_ context.Context, d time.Duration) error {
			slept = append(slept, d)
			return nil
		},
	})
	return g, &slept
}

// recorder collects progress; fail, if set, decides what each report returns.
type recorder struct {
	got  []Progress
	fail func(Progress) error
}

func (r *recorder) progress(_ context.Context, p Progress) error {
	r.got = append(r.got, p)
	if r.fail != nil {
		return r.fail(p)
	}
	return nil
}

func generate(t *testing.T, req Request) Script {
	t.Helper()
	g, _ := newTestTemplate(t)
	s, err := g.Generate(context.Background(), req, nil)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return s
}

var requests = map[string]Request{
	"korean":        request(episode("첫 번째 거짓말", "지수는 방송국에서 밤을 새운다. 민호가 낡은 테이프를 발견한다! 둘은 진실을 마주한다.", "김지수", "박민호")),
	"english":       request(episode("The Long Night", "A producer finds an old tape. Nobody believes her. She airs it anyway.", "Jisoo", "Minho", "Director Han")),
	"no synopsis":   request(episode("빈 시놉시스", "", "Ara")),
	"no characters": request(episode("Untold", "Someone is lying. We find out who.")),
	"long synopsis": request(episode("Many Beats", strings.Repeat("Something happens again. 또 일이 생긴다. ", 40), "A", "B")),
	"with context":  request(episode("Bible", "The tape resurfaces.", "Jisoo"), "지수는 어린 시절 한강 근처에서 자랐다.", "The station was founded in 1988."),
	"empty":         request(job.EpisodeData{}),
}

func TestTemplateDeterministic(t *testing.T) {
	for name, req := range requests {
		t.Run(name, func(t *testing.T) {
			first, second := generate(t, req), generate(t, req)
			if first.Script != second.Script || first.Scenes != second.Scenes {
				t.Fatalf("same request, different scripts:\n%s\n---\n%s", first.Script, second.Script)
			}
			if first.Model != "template-v1" || first.Usage != (Usage{}) || first.Title != req.Episode.Title {
				t.Errorf("got model %q usage %+v title %q", first.Model, first.Usage, first.Title)
			}
			if first.Scenes < 3 || first.Scenes > 6 {
				t.Errorf("scenes = %d, want 3-6", first.Scenes)
			}
			if got := len(sceneHeading.FindAllString(first.Script, -1)); got != first.Scenes {
				t.Errorf("script has %d scene headings, Scenes = %d:\n%s", got, first.Scenes, first.Script)
			}
			for _, want := range []string{"TITLE: ", "FADE IN:", "FADE OUT."} {
				if !strings.Contains(first.Script, want) {
					t.Errorf("script lacks %q", want)
				}
			}
		})
	}
}

func TestTemplateDifferentInputDifferentOutput(t *testing.T) {
	base := episode("The Long Night", "A producer finds an old tape.", "Jisoo", "Minho")
	withDescription := base
	withDescription.Characters = []job.Character{{Name: "Jisoo", Description: "a night-shift writer"}, {Name: "Minho"}}
	tests := map[string]Request{
		"title":       request(episode("The Longer Night", base.Synopsis, "Jisoo", "Minho")),
		"synopsis":    request(episode(base.Title, "A producer burns an old tape.", "Jisoo", "Minho")),
		"characters":  request(episode(base.Title, base.Synopsis, "Jisoo", "Dahye")),
		"description": request(withDescription),
		"context":     request(base, "The station was founded in 1988."),
	}
	want := generate(t, request(base)).Script
	for name, req := range tests {
		t.Run(name, func(t *testing.T) {
			if got := generate(t, req).Script; got == want {
				t.Fatalf("changing the %s did not change the script", name)
			}
		})
	}
}

func TestTemplateRendersText(t *testing.T) {
	tests := []struct {
		name string
		ep   job.EpisodeData
		want []string
	}{
		{
			name: "korean",
			ep:   episode("첫 번째 거짓말", "지수는 방송국에서 밤을 새운다. 민호가 낡은 테이프를 발견한다.", "김지수", "박민호"),
			want: []string{"TITLE: 첫 번째 거짓말", "김지수", "박민호", "지수는 방송국에서 밤을 새운다.", "민호가 낡은 테이프를 발견한다."},
		},
		{
			name: "latin cues in capitals",
			ep:   episode("Night", "She waits.", "Jisoo", "김민호"),
			want: []string{"\n" + indent(20) + "JISOO\n", "김민호"},
		},
		{
			name: "invented cast",
			ep:   episode("혼자", "아무도 없다."),
			want: []string{"지수", "MINHO"},
		},
		{
			name: "descriptions on the cast list",
			ep:   job.EpisodeData{Title: "T", Characters: []job.Character{{Name: "한결", Description: "전직 기자"}}},
			want: []string{"한결 — 전직 기자"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := generate(t, request(tt.ep)).Script
			if !utf8.ValidString(s) {
				t.Fatal("script is not valid UTF-8")
			}
			for _, w := range tt.want {
				if !strings.Contains(s, w) {
					t.Errorf("script lacks %q:\n%s", w, s)
				}
			}
		})
	}
}

func TestTemplateUsesEverySynopsisSentence(t *testing.T) {
	var parts []string
	for i := range 12 {
		parts = append(parts, fmt.Sprintf("Beat number %d happens.", i))
	}
	s := generate(t, request(episode("Beats", strings.Join(parts, " "), "A"))).Script
	last := -1
	for _, p := range parts {
		at := strings.Index(s, p)
		if at < 0 {
			t.Fatalf("script lacks %q", p)
		}
		if at < last {
			t.Errorf("%q is out of the synopsis order", p)
		}
		last = at
	}
}

func TestTemplateProgress(t *testing.T) {
	g, slept := newTestTemplate(t)
	var r recorder
	s, err := g.Generate(context.Background(), requests["korean"], r.progress)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	var stages []string
	for i, p := range r.got {
		if i == 0 || stages[len(stages)-1] != p.Stage {
			stages = append(stages, p.Stage)
		}
		if i > 0 && p.Percent < r.got[i-1].Percent {
			t.Errorf("percent went down: %+v after %+v", p, r.got[i-1])
		}
		if p.Message == "" {
			t.Errorf("progress %+v has no message", p)
		}
	}
	if got, want := strings.Join(stages, ","), "outline,scenes,polish"; got != want {
		t.Errorf("stages = %s, want %s", got, want)
	}
	n := len(r.got)
	if n != s.Scenes+2 {
		t.Fatalf("got %d reports for %d scenes: %+v", n, s.Scenes, r.got)
	}
	if r.got[0].Percent != 10 || r.got[1].Percent != 30 || r.got[n-2].Percent != 80 || r.got[n-1].Percent != 95 {
		t.Errorf("percents = %+v", r.got)
	}
	if len(*slept) != n-1 {
		t.Errorf("paused %d times between %d stages", len(*slept), n)
	}
	for _, d := range *slept {
		if d != 250*time.Millisecond {
			t.Errorf("paused %v, want the StepDelay", d)
		}
	}
}

func TestTemplateStops(t *testing.T) {
	errLeaseLost := errors.New("lease lost")
	tests := []struct {
		stage  string
		cancel bool
		want   error
	}{
		{stage: "outline", cancel: true, want: context.Canceled},
		{stage: "scenes", cancel: true, want: context.Canceled},
		{stage: "polish", cancel: true, want: context.Canceled},
		{stage: "outline", want: errLeaseLost},
		{stage: "scenes", want: errLeaseLost},
		{stage: "polish", want: errLeaseLost},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%v", tt.stage, tt.want), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			g, _ := newTestTemplate(t)
			r := recorder{fail: func(p Progress) error {
				if p.Stage != tt.stage {
					return nil
				}
				if tt.cancel {
					cancel()
					return nil
				}
				return errLeaseLost
			}}
			s, err := g.Generate(ctx, requests["english"], r.progress)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if s.Script != "" || s.Title != "" {
				t.Errorf("stopped generation returned a script: %+v", s)
			}
			if last := r.got[len(r.got)-1]; last.Stage != tt.stage || (tt.stage == "scenes" && last.Percent != 30) {
				t.Errorf("went on after stopping at the first %s report: last report %+v", tt.stage, last)
			}
		})
	}
}

func TestTemplateCancelledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	g, _ := newTestTemplate(t)
	var r recorder
	if _, err := g.Generate(ctx, requests["english"], r.progress); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if len(r.got) != 0 {
		t.Errorf("reported progress after cancellation: %+v", r.got)
	}
}

func TestTemplateCancelInterruptsDelay(t *testing.T) {
	g := NewTemplate(TemplateConfig{StepDelay: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := g.Generate(ctx, requests["english"], func(context.Context, Progress) error {
			cancel()
			return nil
		})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancellation did not interrupt the StepDelay pause")
	}
}

func TestTemplateContext(t *testing.T) {
	long := strings.Repeat("가", 80) + "이 뒤는 잘린다"
	req := request(episode("Bible", "The tape resurfaces. She hides it.", "Jisoo"),
		long,
		"The station\nwas founded in 1988.",
		"   ",
	)
	s := generate(t, req).Script
	if !strings.Contains(s, "NOTES FROM THE SERIES BIBLE") {
		t.Fatalf("script lacks the bible notes:\n%s", s)
	}
	for _, want := range []string{`"` + strings.Repeat("가", 80) + `…"`, `"The station was founded in 1988."`, "document doc-1, chunk 1"} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "잘린다") {
		t.Error("a passage was not cut at 80 runes")
	}
	if strings.Contains(s, "doc-2") || strings.Contains(s, `""`) {
		t.Errorf("a blank passage was quoted:\n%s", s)
	}
	_, scenes, _ := strings.Cut(s, "FADE IN:")
	if !strings.Contains(scenes, strings.Repeat("가", 80)) {
		t.Errorf("no passage was woven into a scene:\n%s", scenes)
	}
}

func TestNoop(t *testing.T) {
	var r recorder
	s, err := Noop{}.Generate(context.Background(), requests["korean"], r.progress)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if s.Title != "첫 번째 거짓말" || s.Model != "noop" || s.Script != "" || s.Usage != (Usage{}) {
		t.Errorf("got %+v", s)
	}
	if len(r.got) != 0 {
		t.Errorf("noop reported progress: %+v", r.got)
	}

	// With a text, it tells it at once, or what follows the resumed part.
	for _, tt := range []struct {
		resume, told string
		restarted    bool
	}{{"", "TITLE: 밤\n", false}, {"TITLE", ": 밤\n", false}, {"TITLE: 밤\n", "", false}, {"other", "", true}} {
		req := requests["korean"]
		req.Resume = tt.resume
		var told []string
		req.Text = func(_ context.Context, d string) error {
			told = append(told, d)
			return nil
		}
		s, err := Noop{Text: "TITLE: 밤\n"}.Generate(context.Background(), req, nil)
		if err != nil || s.Script != "TITLE: 밤\n" || strings.Join(told, "") != tt.told || len(told) > 1 || s.Restarted != tt.restarted {
			t.Errorf("resume %q: script %q told %q restarted %v (%v)", tt.resume, s.Script, told, s.Restarted, err)
		}
	}
}

func FuzzTemplate(f *testing.F) {
	f.Add("첫 번째 거짓말", "지수는 밤을 새운다. 민호가 테이프를 찾는다!", "김지수", "Minho", "지수는 한강 근처에서 자랐다.")
	f.Add("", "", "", "", "")
	f.Add("...", "?!。\n\n", " ", "\t", "\x00\xff")
	f.Add(strings.Repeat("가", 300), strings.Repeat("a. ", 500), strings.Repeat("名", 200), "ß", strings.Repeat("🎬", 100))
	f.Fuzz(func(t *testing.T, title, synopsis, name1, name2, chunk string) {
		valid := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
		ep := job.EpisodeData{Title: valid(title), Synopsis: valid(synopsis), Characters: []job.Character{{Name: valid(name1)}, {Name: valid(name2), Description: valid(chunk)}}}
		s := generate(t, request(ep, valid(chunk)))
		if !utf8.ValidString(s.Script) {
			t.Fatalf("script is not valid UTF-8: %q", s.Script)
		}
		if s.Scenes < 3 || s.Scenes > 6 {
			t.Fatalf("scenes = %d", s.Scenes)
		}
	})
}
