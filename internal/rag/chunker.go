package rag

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// ChunkConfig sizes chunks, in runes so that Korean text (three bytes a
// syllable) gets chunks as long as English.
type ChunkConfig struct {
	// MaxRunes bounds a chunk's body (its heading line comes on top).
	MaxRunes int
	// OverlapRunes of a chunk's end open the next chunk of the same section,
	// so a passage cut between two chunks is whole in one of them.
	OverlapRunes int
}

// DefaultChunkConfig suits a context window of a few thousand tokens.
var DefaultChunkConfig = ChunkConfig{MaxRunes: 800, OverlapRunes: 120}

func (c ChunkConfig) withDefaults() ChunkConfig {
	if c.MaxRunes <= 0 {
		c.MaxRunes = DefaultChunkConfig.MaxRunes
	}
	c.MaxRunes = max(c.MaxRunes, 16)
	if c.OverlapRunes < 0 {
		c.OverlapRunes = 0
	}
	// Leave at least half of every chunk to new text.
	c.OverlapRunes = min(c.OverlapRunes, c.MaxRunes/2)
	return c
}

// Chunk is one passage of a document.
type Chunk struct {
	// Heading is the path of Markdown headings above the passage, "A > B".
	Heading string
	// Text is the heading path on its own line, when there is one, then the
	// passage; the heading is part of the text so that a search for a name
	// in a heading finds the passage under it.
	Text string
}

// Split cuts normalised text into chunks: a Markdown heading always starts a
// new chunk, paragraphs are kept whole where they fit, longer ones are cut at
// sentence ends, then at spaces, and only as a last resort inside a word.
// Plain text (markdown false) has paragraphs but no headings.
func Split(text string, markdown bool, cfg ChunkConfig) []Chunk {
	cfg = cfg.withDefaults()
	var chunks []Chunk
	for _, sec := range sections(text, markdown, false) {
		for _, body := range pack(sec.paragraphs, cfg) {
			t := body
			if sec.heading != "" {
				t = sec.heading + "\n" + body
			}
			chunks = append(chunks, Chunk{Heading: sec.heading, Text: t})
		}
	}
	if len(chunks) == 0 {
		// A document of headings only: its headings are all it says, and a
		// document without a chunk could never be found.
		for _, sec := range sections(text, markdown, true) {
			chunks = append(chunks, Chunk{Heading: sec.heading, Text: sec.heading})
		}
	}
	return chunks
}

type section struct {
	heading    string
	paragraphs []string
}

// sections splits text at Markdown headings (outside fenced code) and each
// section into paragraphs at blank lines. A heading with nothing under it is
// left out, unless bare: then one with no subsection either is a section
// without paragraphs.
func sections(text string, markdown, bare bool) []section {
	var out []section
	var path []string // heading titles by level, path[0] is level 1
	cur := section{}
	var para []string
	inFence := false
	flushPara := func() {
		if p := strings.TrimSpace(strings.Join(para, "\n")); p != "" {
			cur.paragraphs = append(cur.paragraphs, p)
		}
		para = nil
	}
	level := 0 // of the current section's heading
	// flushSection ends the current section where a heading of next's level
	// (0: the end of the text) begins. With bare, a heading with nothing under
	// it, not even a subsection, is a section of its own.
	flushSection := func(next int) {
		flushPara()
		if len(cur.paragraphs) > 0 || (bare && cur.heading != "" && (next == 0 || next <= level)) {
			out = append(out, cur)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if markdown && (strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~")) {
			inFence = !inFence
		}
		if markdown && !inFence {
			if next, title, ok := heading(trimmed); ok {
				flushSection(next)
				for len(path) < next {
					path = append(path, "")
				}
				path = append(path[:next-1], title)
				cur, level = section{heading: joinPath(path)}, next
				continue
			}
		}
		if trimmed == "" && !inFence {
			flushPara()
			continue
		}
		para = append(para, line)
	}
	flushSection(0)
	return out
}

// heading recognises an ATX heading: 1-6 '#', a space, a title.
func heading(line string) (level int, title string, ok bool) {
	for level < len(line) && line[level] == '#' {
		level++
	}
	if level == 0 || level > 6 || level >= len(line) || line[level] != ' ' {
		return 0, "", false
	}
	title = strings.TrimSpace(strings.TrimRight(strings.TrimSpace(line[level:]), "#"))
	return level, title, title != ""
}

func joinPath(path []string) string {
	var parts []string
	for _, p := range path {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, " > ")
}

// pack joins a section's paragraphs into chunk bodies of at most MaxRunes,
// each after the first opening with the end of the one before.
func pack(paragraphs []string, cfg ChunkConfig) []string {
	var pieces []string
	for _, p := range paragraphs {
		// Room for the overlap and the blank line after it.
		pieces = append(pieces, splitLong(p, cfg.MaxRunes-cfg.OverlapRunes-2)...)
	}
	var out []string
	var cur []string
	curLen, fresh := 0, false
	emit := func() {
		if fresh {
			out = append(out, strings.Join(cur, "\n\n"))
		}
	}
	for _, p := range pieces {
		n := utf8.RuneCountInString(p)
		if fresh && curLen+2+n > cfg.MaxRunes {
			emit()
			cur, curLen, fresh = nil, 0, false
			if tail := overlapTail(out[len(out)-1], cfg.OverlapRunes); tail != "" {
				cur, curLen = []string{tail}, utf8.RuneCountInString(tail)
			}
		}
		if len(cur) > 0 {
			curLen += 2
		}
		cur = append(cur, p)
		curLen += n
		fresh = true
	}
	emit()
	return out
}

// splitLong cuts a paragraph longer than limit runes at sentence ends, then
// at spaces, then anywhere; never inside a rune.
func splitLong(p string, limit int) []string {
	if utf8.RuneCountInString(p) <= limit {
		return []string{p}
	}
	var out []string
	var cur strings.Builder
	curLen := 0
	for _, s := range sentencesOf(p) {
		n := utf8.RuneCountInString(s)
		if curLen > 0 && curLen+1+n > limit {
			out = append(out, cur.String())
			cur.Reset()
			curLen = 0
		}
		if n > limit {
			parts := hardSplit(s, limit)
			out = append(out, parts[:len(parts)-1]...)
			s = parts[len(parts)-1]
			n = utf8.RuneCountInString(s)
		}
		if curLen > 0 {
			cur.WriteByte(' ')
			curLen++
		}
		cur.WriteString(s)
		curLen += n
	}
	if curLen > 0 {
		out = append(out, cur.String())
	}
	return out
}

// sentencesOf splits after '.', '!', '?', '。' or a newline followed by space.
func sentencesOf(p string) []string {
	var out []string
	rs := []rune(p)
	start := 0
	for i, r := range rs {
		end := r == '\n' || ((r == '.' || r == '!' || r == '?' || r == '。') && (i+1 == len(rs) || unicode.IsSpace(rs[i+1])))
		if end {
			if s := strings.TrimSpace(string(rs[start : i+1])); s != "" {
				out = append(out, s)
			}
			start = i + 1
		}
	}
	if s := strings.TrimSpace(string(rs[start:])); s != "" {
		out = append(out, s)
	}
	return out
}

// hardSplit cuts s into pieces of at most limit runes, at the last space
// before the limit where there is one.
func hardSplit(s string, limit int) []string {
	rs := []rune(s)
	var out []string
	for len(rs) > limit {
		cut := limit
		for i := limit; i > limit/2; i-- {
			if unicode.IsSpace(rs[i]) {
				cut = i
				break
			}
		}
		out = append(out, strings.TrimSpace(string(rs[:cut])))
		rs = []rune(strings.TrimLeftFunc(string(rs[cut:]), unicode.IsSpace))
	}
	return append(out, string(rs))
}

// overlapTail is the last n runes of s, started at a word boundary so the
// next chunk does not open mid-word.
func overlapTail(s string, n int) string {
	if n <= 0 {
		return ""
	}
	rs := []rune(s)
	if len(rs) <= n {
		return ""
	}
	start := len(rs) - n
	for i := start; i < len(rs); i++ {
		if unicode.IsSpace(rs[i]) {
			return strings.TrimSpace(string(rs[i:]))
		}
	}
	return strings.TrimSpace(string(rs[start:]))
}
