package generate

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/job"
)

const templateModel = "template-v1"

// Rune budgets keep one long synopsis sentence or passage from swamping a page.
const (
	fragmentRunes = 80
	beatRunes     = 240
	topicRunes    = 60
	nameRunes     = 40
	describeRunes = 60
)

// TemplateConfig tunes the offline generator.
type TemplateConfig struct {
	// StepDelay is the pause between stages, so that progress can be watched.
	StepDelay time.Duration
	// Sleep waits for d or until ctx ends; tests inject one that does not sleep.
	// Nil means a real sleep that honours ctx.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Template is the offline generator: it writes a screenplay-shaped script
// (title page, scene headings, action lines, dialogue) from the episode data
// and the retrieved context, deterministically, so the same request always
// gets a byte-identical script.
type Template struct {
	cfg TemplateConfig
}

// NewTemplate builds the offline generator.
func NewTemplate(cfg TemplateConfig) *Template {
	if cfg.Sleep == nil {
		cfg.Sleep = clock.Sleep
	}
	return &Template{cfg: cfg}
}

// Generate writes the script in three stages — outline, scenes, polish —
// reporting each and pausing StepDelay between them, and tells req.Text the
// text of each as it is reached: the title page after the outline, each
// scene, then the last lines. The script is the same whatever the stages, so
// a resumed request skips the stages whose text req.Resume holds already
// and tells only what follows it; a Resume that is not the start of this
// request's script (another generator's, or another version's) is set aside:
// the script is written anew, reported as Restarted, and no text is told. It
// returns the error of a cancelled ctx, of progress or of req.Text unchanged,
// so callers can match it.
func (t *Template) Generate(ctx context.Context, req Request, progress ProgressFunc) (Script, error) {
	st := stages{ctx: ctx, cfg: t.cfg, progress: progress}
	p := outline(req)
	n := len(p.scenes)
	for i := range p.scenes {
		p.writeAction(i)
	}
	p.writeDialogue()
	parts := p.render()
	script := strings.Join(parts, "")
	out := Script{Title: req.Episode.Title, Script: script, Scenes: n, Model: templateModel}
	written := 0 // bytes of script that Resume holds
	if req.Resume != "" {
		if strings.HasPrefix(script, req.Resume) {
			written = len(req.Resume)
			out.ResumedFrom = utf8.RuneCountInString(req.Resume)
		} else {
			out.Restarted = true
		}
	}
	at := 0 // where the current part starts in script
	stage := func(i int, pct int, name, msg string) error {
		part := parts[i]
		start := at
		at += len(part)
		if at <= written {
			return nil // an earlier attempt wrote it
		}
		if start < written {
			msg = fmt.Sprintf("resuming after %d characters: %s", out.ResumedFrom, msg)
		}
		if err := st.report(pct, name, msg); err != nil {
			return err
		}
		if req.Text == nil || out.Restarted {
			return nil
		}
		return req.Text(ctx, part[max(written-start, 0):])
	}
	if err := stage(0, 10, "outline", fmt.Sprintf("outlining %d scenes for %d characters", n, len(p.cast))); err != nil {
		return Script{}, err
	}
	for i := range p.scenes {
		pct := 30 + 50*i/max(n-1, 1)
		if err := stage(1+i, pct, "scenes", fmt.Sprintf("writing scene %d of %d: %s", i+1, n, p.scenes[i].heading)); err != nil {
			return Script{}, err
		}
	}
	if err := stage(n+1, 95, "polish", "formatting the screenplay"); err != nil {
		return Script{}, err
	}
	// A job cancelled while the last stage ran hands back nothing to save.
	if err := ctx.Err(); err != nil {
		return Script{}, err
	}
	return out, nil
}

// stages reports progress and keeps the pause between two reports.
type stages struct {
	ctx      context.Context
	cfg      TemplateConfig
	progress ProgressFunc
	started  bool
}

func (s *stages) report(pct int, stage, msg string) error {
	if s.started {
		if err := s.cfg.Sleep(s.ctx, s.cfg.StepDelay); err != nil {
			return err
		}
	}
	s.started = true
	// Checked here too, so cancellation holds even with an injected Sleep.
	if err := s.ctx.Err(); err != nil {
		return err
	}
	if s.progress == nil {
		return nil
	}
	return s.progress(s.ctx, Progress{Percent: pct, Stage: stage, Message: msg})
}

var locations = []string{
	"INT. 카페 - NIGHT",
	"EXT. ROOFTOP - DAY",
	"INT. 방송국 편집실 - NIGHT",
	"EXT. 한강 공원 - DUSK",
	"INT. APARTMENT KITCHEN - MORNING",
	"INT. 지하철 - DAY",
	"EXT. 골목길 - NIGHT",
	"INT. HOSPITAL CORRIDOR - DAY",
	"INT. 편의점 - LATE NIGHT",
	"EXT. BUS STOP - RAIN",
}

var entrances = []string{
	"%s enters, out of breath.",
	"%s 창가에 서 있다.",
	"%s waits, phone face down on the table.",
	"%s 조용히 문을 연다.",
	"%s sits alone, staring at nothing.",
}

// atmospheres stand in for a scene that the synopsis has no sentence left for.
var atmospheres = []string{
	"The silence stretches.",
	"비가 내리기 시작한다.",
	"Neon hums. Somewhere a train passes.",
	"시계 초침 소리만 들린다.",
}

var bibleLines = []string{
	"A line from the series bible hangs over the moment: \"%s\"",
	"설정 노트가 떠오른다: \"%s\"",
	"As the series bible has it: \"%s\"",
}

var parentheticals = []string{"", "(quietly)", "(웃으며)", "", "(beat)", "(망설이며)"}

var lineShapes = []string{
	"%s... 그게 정말이야?",
	"We don't have time for this. %s.",
	"기억나? %s.",
	"I keep thinking about it — %s.",
	"이번엔 다를 거야. %s.",
	"Then tell me the truth. %s?",
}

var defaultCast = []castMember{
	{name: "지수", cue: "지수", description: "방송국 막내 작가"},
	{name: "Minho", cue: "MINHO", description: "her stubborn producer"},
}

type castMember struct {
	name        string
	cue         string
	description string
}

type note struct {
	text   string
	source string
}

type dialogueLine struct {
	cue           string
	parenthetical string
	text          string
}

type scene struct {
	heading  string
	lead     int
	beats    []string
	topics   []string
	note     string
	action   []string
	dialogue []dialogueLine
}

// phrasing cycles through each table in an order fixed per episode, so
// neighbouring scenes do not open or talk the same way.
type phrasing struct {
	entrances, atmospheres, bibleLines []int
}

// plan is the script as it is being written; every choice in it comes from
// dice seeded by the episode, so it depends on the request and nothing else.
type plan struct {
	title      string
	cast       []castMember
	notes      []note
	scenes     []scene
	introduced []bool
	phrasing   phrasing
	dice       dice
}

func outline(req Request) *plan {
	ep := req.Episode
	title := clean(ep.Title, beatRunes)
	p := &plan{
		title: title,
		cast:  castOf(ep.Characters),
		notes: notesOf(req.Context),
		dice:  dice{state: hashOf(ep)},
	}
	if title == "" {
		p.title = "UNTITLED"
	}
	p.introduced = make([]bool, len(p.cast))

	n := 3 + p.dice.intn(4)
	order := p.dice.perm(len(locations))
	firstLead := p.dice.intn(len(p.cast))
	p.phrasing = phrasing{
		entrances:   p.dice.perm(len(entrances)),
		atmospheres: p.dice.perm(len(atmospheres)),
		bibleLines:  p.dice.perm(len(bibleLines)),
	}
	p.scenes = make([]scene, n)
	// Sentences are spread evenly and in order over the scenes, so the story
	// keeps its sequence and short synopses still reach the last scene.
	beats := sentences(ep.Synopsis)
	for j, b := range beats {
		s := &p.scenes[j*n/len(beats)]
		s.beats = append(s.beats, b)
		s.topics = append(s.topics, topic(b))
	}
	last := truncate(title, topicRunes)
	if last == "" {
		last = "그날 밤"
	}
	for i := range p.scenes {
		s := &p.scenes[i]
		s.heading = locations[order[i]]
		s.lead = (firstLead + i) % len(p.cast)
		// A scene without a sentence of its own talks about the story so far.
		if len(s.topics) == 0 {
			s.topics = []string{last}
		}
		last = s.topics[len(s.topics)-1]
		if len(p.notes) > 0 {
			s.note = p.notes[i%len(p.notes)].text
		}
	}
	return p
}

func (p *plan) writeAction(i int) {
	s := &p.scenes[i]
	who := p.cast[s.lead].cue
	if !p.introduced[s.lead] {
		p.introduced[s.lead] = true
		if d := p.cast[s.lead].description; d != "" {
			who += " (" + d + ")"
		}
	}
	ph := p.phrasing
	s.action = append(s.action, fmt.Sprintf(entrances[ph.entrances[i%len(entrances)]], who))
	s.action = append(s.action, s.beats...)
	if len(s.beats) == 0 {
		s.action = append(s.action, atmospheres[ph.atmospheres[i%len(atmospheres)]])
	}
	if s.note != "" {
		s.action = append(s.action, fmt.Sprintf(bibleLines[ph.bibleLines[i%len(bibleLines)]], s.note))
	}
}

func (p *plan) writeDialogue() {
	for i := range p.scenes {
		s := &p.scenes[i]
		lines := 2 + p.dice.intn(2)
		shapes := p.dice.perm(len(lineShapes))
		for k := range lines {
			cue := p.cast[(s.lead+k)%len(p.cast)].cue
			if k > 0 && len(p.cast) == 1 {
				cue += " (CONT'D)"
			}
			s.dialogue = append(s.dialogue, dialogueLine{
				cue:           cue,
				parenthetical: parentheticals[p.dice.intn(len(parentheticals))],
				text:          fmt.Sprintf(lineShapes[shapes[k]], s.topics[k%len(s.topics)]),
			})
		}
	}
}

// render writes the script in parts: the title page, each scene, the end.
func (p *plan) render() []string {
	var b strings.Builder
	parts := make([]string, 0, len(p.scenes)+2)
	cut := func() {
		parts = append(parts, b.String())
		b.Reset()
	}
	fmt.Fprintf(&b, "TITLE: %s\n", p.title)
	fmt.Fprintf(&b, "Written by: scriptgen (%s)\n", templateModel)
	b.WriteString("\nCAST\n")
	for _, c := range p.cast {
		if c.description == "" {
			fmt.Fprintf(&b, "  %s\n", c.cue)
		} else {
			fmt.Fprintf(&b, "  %s — %s\n", c.cue, c.description)
		}
	}
	if len(p.notes) > 0 {
		b.WriteString("\nNOTES FROM THE SERIES BIBLE\n")
		for _, n := range p.notes {
			fmt.Fprintf(&b, "  - \"%s\" (%s)\n", n.text, n.source)
		}
	}
	b.WriteString("\nFADE IN:\n")
	cut()
	for i, s := range p.scenes {
		if i > 0 {
			fmt.Fprintf(&b, "\n%sCUT TO:\n", indent(40))
		}
		fmt.Fprintf(&b, "\n%d. %s\n\n", i+1, s.heading)
		for _, a := range s.action {
			fmt.Fprintf(&b, "%s\n", a)
		}
		for _, d := range s.dialogue {
			fmt.Fprintf(&b, "\n%s%s\n", indent(20), d.cue)
			if d.parenthetical != "" {
				fmt.Fprintf(&b, "%s%s\n", indent(15), d.parenthetical)
			}
			fmt.Fprintf(&b, "%s%s\n", indent(10), d.text)
		}
		cut()
	}
	b.WriteString("\nFADE OUT.\n\nTHE END\n")
	cut()
	return parts
}

// dice is splitmix64: a fixed sequence of draws from one seed.
type dice struct{ state uint64 }

func (d *dice) intn(n int) int {
	d.state += 0x9e3779b97f4a7c15
	z := d.state
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return int(z % uint64(n))
}

func (d *dice) perm(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := d.intn(i + 1)
		out[i], out[j] = out[j], out[i]
	}
	return out
}

func hashOf(ep job.EpisodeData) uint64 {
	h := fnv.New64a()
	write := func(s string) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	write(ep.Title)
	write(ep.Synopsis)
	for _, c := range ep.Characters {
		write(c.Name)
		write(c.Description)
	}
	return h.Sum64()
}

func castOf(cs []job.Character) []castMember {
	var out []castMember
	for _, c := range cs {
		name := clean(c.Name, nameRunes)
		if name == "" {
			continue
		}
		// Screenplays write cues in capitals; Hangul has no case and is kept as is.
		out = append(out, castMember{name: name, cue: strings.ToUpper(name), description: clean(c.Description, describeRunes)})
	}
	if len(out) == 0 {
		return defaultCast
	}
	return out
}

func notesOf(chunks []ContextChunk) []note {
	var out []note
	for _, c := range chunks {
		text := clean(c.Text, fragmentRunes)
		if text == "" {
			continue
		}
		src := fmt.Sprintf("chunk %d", c.ChunkID)
		if id := clean(c.DocumentID, nameRunes); id != "" {
			src = "document " + id + ", " + src
		}
		out = append(out, note{text: text, source: src})
	}
	return out
}

func sentences(s string) []string {
	var out []string
	add := func(part string) {
		if part = clean(part, beatRunes); strings.IndexFunc(part, unicode.IsLetter) >= 0 {
			out = append(out, part)
		}
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	start := 0
	for i, r := range s {
		switch r {
		case '.', '!', '?', '。', '！', '？', '\n':
			end := i + utf8.RuneLen(r)
			add(s[start:end])
			start = end
		}
	}
	add(s[start:])
	return out
}

// topic turns a sentence into something a character can say back.
func topic(sentence string) string {
	return truncate(strings.TrimRight(sentence, ".!?。！？… "), topicRunes)
}

// clean makes user text safe for one line of the page: valid UTF-8, whitespace
// collapsed, at most n runes.
func clean(s string, n int) string {
	return truncate(strings.Join(strings.Fields(strings.ToValidUTF8(s, "\uFFFD")), " "), n)
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

func indent(n int) string { return strings.Repeat(" ", n) }
