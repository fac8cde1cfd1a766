package generate

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/scriptgen/scriptgen/internal/job"
)

// TemplateConfig tunes the offline generator.
type TemplateConfig struct {
	// StepDelay is the pause between stages, so that progress can be watched.
	StepDelay time.Duration
	// Sleep waits for d or until ctx ends; tests inject one that does not sleep.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Template is the offline generator: it writes a screenplay-shaped script
// (scene headings, action lines, dialogue) from the episode data alone,
// deterministically, so the same episode always gets the same script.
type Template struct {
	cfg TemplateConfig
}

// NewTemplate builds the offline generator.
func NewTemplate(cfg TemplateConfig) *Template {
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	return &Template{cfg: cfg}
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

var locations = []string{
	"INT. 카페 - NIGHT", "EXT. ROOFTOP - DAY", "INT. 방송국 편집실 - NIGHT", "EXT. 한강 공원 - DUSK",
	"INT. APARTMENT KITCHEN - MORNING", "INT. 지하철 - DAY", "EXT. 골목길 - NIGHT", "INT. HOSPITAL CORRIDOR - DAY",
}

var parentheticals = []string{"", "(quietly)", "(웃으며)", "", "(beat)", "(망설이며)"}

var lineShapes = []string{
	"%s... 그게 정말이야?",
	"We don't have time for this. %s.",
	"기억나? %s.",
	"I keep thinking about %s.",
	"이번엔 다를 거야. %s.",
	"Then tell me the truth about %s.",
}

// Generate writes the script, reporting its stages as it goes.
func (t *Template) Generate(ctx context.Context, req Request, progress ProgressFunc) (Script, error) {
	ep := req.Episode
	seed := hashOf(ep)
	// pick chooses deterministically among n options.
	pick := func(shift, add, n int) int { return int((seed>>uint(shift) + uint64(add)) % uint64(n)) }
	sceneCount := 3 + pick(0, 0, 4)
	chars := characterNames(ep.Characters)
	beats := sentences(ep.Synopsis)
	if len(beats) == 0 {
		beats = []string{ep.Title}
	}

	step := func(pct int, stage, msg string) error {
		if err := progress(ctx, Progress{Percent: pct, Stage: stage, Message: msg}); err != nil {
			return err
		}
		return t.cfg.Sleep(ctx, t.cfg.StepDelay)
	}
	if err := step(10, "outline", fmt.Sprintf("outlining %d scenes", sceneCount)); err != nil {
		return Script{}, err
	}

	var b strings.Builder
	fmt.Fprintf(&b, "TITLE: %s\n", ep.Title)
	if len(chars) > 0 {
		fmt.Fprintf(&b, "CAST: %s\n", strings.Join(chars, ", "))
	}
	b.WriteString("\nFADE IN:\n")
	if len(req.Context) > 0 {
		b.WriteString("\nNOTES FROM THE SERIES BIBLE:\n")
		for _, c := range req.Context {
			fmt.Fprintf(&b, "  - \"%s\"\n", truncate(oneLine(c.Text), 80))
		}
	}
	for i := range sceneCount {
		pct := 30 + 40*i/max(sceneCount-1, 1)
		if err := step(pct, "scenes", fmt.Sprintf("writing scene %d of %d", i+1, sceneCount)); err != nil {
			return Script{}, err
		}
		loc := locations[pick(8, i, len(locations))]
		fmt.Fprintf(&b, "\n%d. %s\n\n", i+1, loc)
		beat := beats[i%len(beats)]
		fmt.Fprintf(&b, "%s\n", action(beat, chars, i))
		if len(req.Context) > 0 {
			c := req.Context[i%len(req.Context)]
			fmt.Fprintf(&b, "As the bible has it: \"%s\"\n", truncate(oneLine(c.Text), 80))
		}
		for k := range 2 + pick(i+3, 0, 2) {
			speaker := chars[(i+k)%len(chars)]
			fmt.Fprintf(&b, "\n%s%s\n", indent(20), cue(speaker))
			if p := parentheticals[pick(k+i, k, len(parentheticals))]; p != "" {
				fmt.Fprintf(&b, "%s%s\n", indent(15), p)
			}
			shape := lineShapes[pick(2*k+i, i+k, len(lineShapes))]
			fmt.Fprintf(&b, "%s%s\n", indent(10), fmt.Sprintf(shape, truncate(strings.TrimRight(beat, ".!?。"), 60)))
		}
	}
	if err := step(80, "dialogue", "tightening dialogue"); err != nil {
		return Script{}, err
	}
	if err := step(95, "polish", "formatting the screenplay"); err != nil {
		return Script{}, err
	}
	b.WriteString("\nFADE OUT.\n")
	return Script{Title: ep.Title, Script: b.String(), Scenes: sceneCount, Model: "template-v1"}, nil
}

func hashOf(ep job.EpisodeData) uint64 {
	h := fnv.New64a()
	h.Write([]byte(ep.Title))
	h.Write([]byte{0})
	h.Write([]byte(ep.Synopsis))
	for _, c := range ep.Characters {
		h.Write([]byte{0})
		h.Write([]byte(c.Name))
	}
	return h.Sum64()
}

func characterNames(cs []job.Character) []string {
	var out []string
	for _, c := range cs {
		if n := strings.TrimSpace(c.Name); n != "" {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		out = []string{"지수", "Minho"}
	}
	return out
}

// cue is a dialogue cue: latin names in capitals, as screenplays write them.
func cue(name string) string { return strings.ToUpper(name) }

func action(beat string, chars []string, i int) string {
	return fmt.Sprintf("%s enters. %s", chars[i%len(chars)], beat)
}

func sentences(s string) []string {
	var out []string
	start := 0
	for i, r := range s {
		if r == '.' || r == '!' || r == '?' || r == '。' || r == '\n' {
			if part := strings.TrimSpace(s[start : i+utf8.RuneLen(r)]); strings.IndexFunc(part, unicode.IsLetter) >= 0 {
				out = append(out, part)
			}
			start = i + utf8.RuneLen(r)
		}
	}
	if part := strings.TrimSpace(s[start:]); strings.IndexFunc(part, unicode.IsLetter) >= 0 {
		out = append(out, part)
	}
	return out
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

func indent(n int) string { return strings.Repeat(" ", n) }
