package rag

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNormalize(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"bom and crlf", "\uFEFF# 제목\r\n\r\n본문\r\n", "# 제목\n\n본문"},
		{"lone cr", "a\rb", "a\nb"},
		{"trailing space and controls", "  line one  \x00\x07\n\tline two\t\n\n", "line one\n\tline two"},
		{"nfd hangul composes", "\u1100\u1161\u11a8", "각"},
		{"plain", "hello", "hello"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Normalize(tt.in); got != tt.want {
				t.Fatalf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	small := ChunkConfig{MaxRunes: 40, OverlapRunes: 10}
	tests := []struct {
		name     string
		text     string
		markdown bool
		cfg      ChunkConfig
		want     []Chunk
	}{
		{
			name:     "headings start chunks and make a path",
			text:     "# 인물\n\n## 지수\n\n지수는 바리스타다.\n\n## Minho\n\nMinho writes at night.\n\n# 장소\n\n한강 공원.",
			markdown: true, cfg: DefaultChunkConfig,
			want: []Chunk{
				{Heading: "인물 > 지수", Text: "인물 > 지수\n지수는 바리스타다."},
				{Heading: "인물 > Minho", Text: "인물 > Minho\nMinho writes at night."},
				{Heading: "장소", Text: "장소\n한강 공원."},
			},
		},
		{
			name: "small paragraphs share a chunk",
			text: "첫째 문단.\n\n둘째 문단.", markdown: false, cfg: DefaultChunkConfig,
			want: []Chunk{{Text: "첫째 문단.\n\n둘째 문단."}},
		},
		{
			name: "plain text keeps hashes as text",
			text: "# not a heading\n\nbody", markdown: false, cfg: DefaultChunkConfig,
			want: []Chunk{{Text: "# not a heading\n\nbody"}},
		},
		{
			name: "fenced code is not split at hashes",
			text: "# Code\n\n```\n# comment\n\nx = 1\n```", markdown: true, cfg: DefaultChunkConfig,
			want: []Chunk{{Heading: "Code", Text: "Code\n```\n# comment\n\nx = 1\n```"}},
		},
		{
			name: "paragraphs over the limit overlap",
			text: "하나 둘 셋 넷 다섯 여섯.\n\n일곱 여덟 아홉 열 열하나.\n\n열둘 열셋 열넷 열다섯.", markdown: false, cfg: small,
			want: []Chunk{
				{Text: "하나 둘 셋 넷 다섯 여섯.\n\n일곱 여덟 아홉 열 열하나."},
				{Text: "아홉 열 열하나.\n\n열둘 열셋 열넷 열다섯."},
			},
		},
		{
			name: "heading without body makes no chunk",
			text: "# Empty\n\n# Full\n\ntext", markdown: true, cfg: DefaultChunkConfig,
			want: []Chunk{{Heading: "Full", Text: "Full\ntext"}},
		},
		{
			// It used to make no chunk at all: nothing of it could be found.
			name: "headings only make a chunk each, for those without subsections",
			text: "# 지수\n## 민호의 비밀\n# 카페", markdown: true, cfg: DefaultChunkConfig,
			want: []Chunk{{Heading: "지수 > 민호의 비밀", Text: "지수 > 민호의 비밀"}, {Heading: "카페", Text: "카페"}},
		},
		{name: "empty", text: "", markdown: true, cfg: DefaultChunkConfig, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Split(tt.text, tt.markdown, tt.cfg)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d chunks %q, want %d %q", len(got), got, len(tt.want), tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("chunk %d = %q, want %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// A long Korean text with no paragraph breaks is cut into chunks within the
// limit, on rune boundaries, losing no word and repeating only the overlap.
func TestSplitLongKoreanKeepsEveryWord(t *testing.T) {
	var words []string
	for i := range 400 {
		words = append(words, []string{"지수는", "카페에서", "민호를", "기다렸다", "비가", "내리는", "밤이었다"}[i%7]+string(rune('가'+i)))
	}
	text := strings.Join(words, " ")
	cfg := ChunkConfig{MaxRunes: 120, OverlapRunes: 30}
	chunks := Split(text, true, cfg)
	if len(chunks) < 10 {
		t.Fatalf("%d chunks for %d runes", len(chunks), utf8.RuneCountInString(text))
	}
	seen := map[string]bool{}
	for i, c := range chunks {
		if !utf8.ValidString(c.Text) {
			t.Fatalf("chunk %d is not valid UTF-8", i)
		}
		if n := utf8.RuneCountInString(c.Text); n > cfg.MaxRunes {
			t.Fatalf("chunk %d has %d runes, limit %d", i, n, cfg.MaxRunes)
		}
		for _, w := range strings.Fields(c.Text) {
			seen[w] = true
		}
		if i > 0 {
			prev := strings.Fields(chunks[i-1].Text)
			if first := strings.Fields(c.Text)[0]; !containsWord(prev, first) {
				t.Fatalf("chunk %d opens with %q, which is not in chunk %d: no overlap", i, first, i-1)
			}
		}
	}
	for _, w := range words {
		if !seen[w] {
			t.Fatalf("word %q lost", w)
		}
	}
}

func containsWord(ws []string, w string) bool {
	for _, x := range ws {
		if x == w {
			return true
		}
	}
	return false
}

func TestTerms(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"지수는 카페에서 Minho를", []string{"지수", "카페", "minho"}},
		{`"quoted" OR NEAR(a b) title:x*`, []string{"quoted", "or", "near", "a", "b", "title", "x"}},
		{"50% off_now", []string{"50", "off", "now"}},
		{"지수 지수 JISU jisu", []string{"지수", "jisu"}},
		{"***", nil},
		{"아이", []string{"아이"}},
	}
	for _, tt := range tests {
		got := Terms(tt.in)
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("Terms(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseQueryRejects(t *testing.T) {
	for _, q := range []string{"", "   ", "\"*()^", "a\x00b", "\xff\xfe", strings.Repeat("가", 400)} {
		if terms, err := ParseQuery(q); err == nil {
			t.Errorf("ParseQuery(%q) = %q, want an error", q, terms)
		}
	}
	if terms, err := ParseQuery(strings.Repeat("word ", 100) + strings.Repeat("x", 10)); err != nil || len(terms) != 2 {
		t.Errorf("repeated words: %q %v", terms, err)
	}
}
