package generate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// teller records the text a generator tells, and the order of text and
// progress; after, when above 0, it cancels its context once it has been
// told that many deltas (a run killed mid-way).
type teller struct {
	told   []string
	log    []string
	after  int
	cancel context.CancelFunc
}

func (tl *teller) text(_ context.Context, d string) error {
	tl.told = append(tl.told, d)
	tl.log = append(tl.log, "text")
	if tl.after > 0 && len(tl.told) == tl.after {
		tl.cancel()
	}
	return nil
}

func (tl *teller) progress(_ context.Context, p Progress) error {
	tl.log = append(tl.log, p.Stage)
	return nil
}

func TestTemplateTellsItsTextStageByStage(t *testing.T) {
	for name, req := range requests {
		t.Run(name, func(t *testing.T) {
			g, slept := newTestTemplate(t)
			var tl teller
			req.Text = tl.text
			s, err := g.Generate(context.Background(), req, tl.progress)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(tl.told, ""); got != s.Script {
				t.Fatalf("told %q, script %q", got, s.Script)
			}
			// The title page, each scene, the end: each after its stage's report.
			if len(tl.told) != s.Scenes+2 || !strings.HasPrefix(tl.told[0], "TITLE: ") || !strings.HasSuffix(tl.told[0], "FADE IN:\n") ||
				tl.told[len(tl.told)-1] != "\nFADE OUT.\n\nTHE END\n" {
				t.Fatalf("told %d parts %q for %d scenes", len(tl.told), tl.told, s.Scenes)
			}
			for i := 1; i <= s.Scenes; i++ {
				if !strings.HasPrefix(strings.TrimLeft(tl.told[i], " \nCUTO:"), fmt.Sprintf("%d. ", i)) {
					t.Errorf("part %d is not scene %d: %q", i, i, tl.told[i])
				}
			}
			for i := 0; i < len(tl.log); i += 2 {
				if tl.log[i] == "text" || tl.log[i+1] != "text" {
					t.Fatalf("text and progress interleave as %v, want a report then its text", tl.log)
				}
			}
			if len(*slept) != s.Scenes+1 {
				t.Errorf("paused %d times for %d stages", len(*slept), s.Scenes+2)
			}
		})
	}
}

// TestTemplateResumesExactly: a run killed after its n-th delta, run again
// with what it told as Resume, ends with the script an uninterrupted run
// writes, byte for byte, and tells only what follows Resume — skipping the
// stages (and their pauses) whose text was written.
func TestTemplateResumesExactly(t *testing.T) {
	for name, req := range requests {
		t.Run(name, func(t *testing.T) {
			whole := generate(t, req)
			parts := whole.Scenes + 2
			for n := 1; n <= parts; n++ {
				ctx, cancel := context.WithCancel(context.Background())
				g, _ := newTestTemplate(t)
				killed := teller{after: n, cancel: cancel}
				r := req
				r.Text = killed.text
				s, err := g.Generate(ctx, r, killed.progress)
				cancel()
				if !errors.Is(err, context.Canceled) || s.Script != "" {
					t.Fatalf("killed after %d deltas: %v, script %q", n, err, s.Script)
				}
				checkpoint := strings.Join(killed.told, "")

				g, slept := newTestTemplate(t)
				var again teller
				r.Resume, r.Text = checkpoint, again.text
				s, err = g.Generate(context.Background(), r, again.progress)
				if err != nil {
					t.Fatal(err)
				}
				if s.Script != whole.Script || checkpoint+strings.Join(again.told, "") != whole.Script {
					t.Fatalf("resumed after %d deltas: script %q, told %q after %q", n, s.Script, again.told, checkpoint)
				}
				if s.ResumedFrom != utf8.RuneCountInString(checkpoint) || s.Restarted || len(again.told) != parts-n {
					t.Fatalf("resumed after %d deltas: resumed from %d, restarted %v, told %d deltas", n, s.ResumedFrom, s.Restarted, len(again.told))
				}
				if len(*slept) != max(parts-n-1, 0) {
					t.Fatalf("resumed after %d deltas: paused %d times", n, len(*slept))
				}
			}
		})
	}
}

// TestTemplateResumesMidPart: a checkpoint may end anywhere (a handler
// writes every 200 characters): the rest of that part is told first.
func TestTemplateResumesMidPart(t *testing.T) {
	req := requests["with context"]
	whole := []rune(generate(t, req).Script)
	for _, cut := range []int{1, 7, len(whole) / 3, len(whole) / 2, len(whole) - 1, len(whole)} {
		g, _ := newTestTemplate(t)
		var tl teller
		r := req
		r.Resume, r.Text = string(whole[:cut]), tl.text
		s, err := g.Generate(context.Background(), r, tl.progress)
		if err != nil || s.Script != string(whole) || r.Resume+strings.Join(tl.told, "") != string(whole) || s.ResumedFrom != cut {
			t.Fatalf("cut at %d: script %q told %q resumed from %d (%v)", cut, s.Script, tl.told, s.ResumedFrom, err)
		}
		if cut == len(whole) && len(tl.log) != 0 {
			t.Fatalf("a finished script was resumed with %v", tl.log)
		}
	}
}

// TestTemplateStartsOverOnAForeignResume: a Resume this request's script does
// not start with (another generator wrote it) cannot be continued: the
// script is written anew, said to be so, and no text is told (it would
// follow text it does not continue).
func TestTemplateStartsOverOnAForeignResume(t *testing.T) {
	req := requests["korean"]
	whole := generate(t, req).Script
	g, _ := newTestTemplate(t)
	var tl teller
	req.Resume, req.Text = "1. INT. 카페 - NIGHT\n\n지수가 불을", tl.text
	s, err := g.Generate(context.Background(), req, tl.progress)
	if err != nil || s.Script != whole || !s.Restarted || s.ResumedFrom != 0 || len(tl.told) != 0 {
		t.Fatalf("script %q restarted %v resumed from %d told %q (%v)", s.Script, s.Restarted, s.ResumedFrom, tl.told, err)
	}
}

// TestTemplateTextErrorStops: an error from Text (a lost lease) stops the
// run at once, as is.
func TestTemplateTextErrorStops(t *testing.T) {
	lost := errors.New("lease lost")
	g, _ := newTestTemplate(t)
	req := requests["english"]
	var stages []string
	req.Text = func(context.Context, string) error { return lost }
	_, err := g.Generate(context.Background(), req, func(_ context.Context, p Progress) error {
		stages = append(stages, p.Stage)
		return nil
	})
	if !errors.Is(err, lost) || len(stages) != 1 {
		t.Fatalf("err %v after stages %v", err, stages)
	}
}
