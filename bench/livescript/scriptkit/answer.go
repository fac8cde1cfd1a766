// Package scriptkit holds what the live-script tests and benchmark (issue 18)
// share: a fake OpenAI-compatible model that streams a deterministic
// screenplay a token at a time and continues a partial answer, and a client
// that follows a job's event stream, reconnecting with Last-Event-ID, and
// pieces the script together from its script events.
package scriptkit

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"unicode/utf8"
)

// Answer is the model's whole answer to one episode: Tokens, concatenated,
// are Text. Each token is a separator (none for the first) followed by a
// word, so the text never ends a token with whitespace but the last, which
// ends with the newline a script ends with.
type Answer struct {
	Text   string
	Tokens []string
	// Ends[i] is where token i ends in Text, in characters (runes), and
	// ByteEnds[i] in bytes.
	Ends     []int
	ByteEnds []int
}

// Chars is the answer's length in characters.
func (a *Answer) Chars() int { return a.Ends[len(a.Ends)-1] }

// TokenAt is the index of the token holding character c (0-based).
func (a *Answer) TokenAt(c int) int {
	lo, hi := 0, len(a.Ends)
	for lo < hi {
		m := (lo + hi) / 2
		if a.Ends[m] <= c {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

var (
	places  = []string{"카페", "OFFICE", "작업실", "ROOFTOP", "버스정류장", "STUDIO", "편의점", "HOSPITAL", "골목", "APARTMENT"}
	times   = []string{"NIGHT", "DAY", "DAWN", "EVENING", "CONTINUOUS"}
	cues    = []string{"지수", "MINHO", "편집장", "DIRECTOR", "하은"}
	actions = []string{
		"Rain taps the window.", "A kettle hisses somewhere behind the counter.", "She stares at an empty page.",
		"원고는 아직 반도 안 됐다.", "The cursor blinks.", "Her phone buzzes twice, then stops.", "Neon flickers outside.",
		"Papers slide across the desk.", "The clock reads almost midnight.", "그가 문을 열고 들어온다.",
		"Nobody moves.", "창밖으로 첫차가 지나간다.", "He sets two cups down without a word.", "She deletes a line, then types it again.",
	}
	lines = []string{
		"We have until morning.", "마감은 내일 아침이야.", "I know you can finish this.", "그냥 한 장면만 더 써봐.",
		"Nobody reads the first draft anyway.", "커피 더 필요해?", "Tell me what happens next.", "주인공이 왜 떠나는지 모르겠어.",
		"Because she never wanted to stay.", "그럼 다시 처음부터 가자.", "Read me the last line.", "이번엔 진짜 끝낼 거야.",
		"You said that yesterday.", "들어봐, 이게 마지막 장면이야.",
	}
	closing = []string{"FADE", "OUT."}
)

// NewAnswer builds the answer of n tokens (at least 20) for an episode
// title, the same every time for the same title and n, different for
// another title: the title, then numbered scenes of action lines and
// dialogue under character cues, cut to n tokens and closed with FADE OUT.
// A token is a word with the space or newlines before it. The answer is made
// safe to resume anywhere: no stretch of up to 200 characters that ends at a
// token's end repeats at the start of what follows it, so the generator,
// which drops a continuation's start that repeats the end of the text so
// far, never drops a part of this answer.
func NewAnswer(title string, n int) *Answer {
	n = max(n, 20)
	h := fnv.New64a()
	h.Write([]byte(title))
	rng := rand.New(rand.NewPCG(h.Sum64(), uint64(n)))
	var recent []string // the last sentences, none of which is picked again
	pick := func(from []string) string {
		for {
			s := from[rng.IntN(len(from))]
			if !slices.Contains(recent, s) {
				recent = append(recent, s)
				if len(recent) > 4 {
					recent = recent[1:]
				}
				return s
			}
		}
	}

	type tok struct{ sep, word string }
	var toks []tok
	add := func(sep string, words ...string) {
		for i, w := range words {
			if i > 0 {
				sep = " "
			}
			toks = append(toks, tok{sep, w})
		}
	}
	say := func(sep string, from []string, sentences int) {
		var words []string
		for range sentences {
			words = append(words, strings.Fields(pick(from))...)
		}
		add(sep, words...)
	}
	add("", strings.Fields(title)...)
	scene := 0
	for len(toks) < n {
		scene++
		add("\n\n", fmt.Sprintf("%d.", scene), "INT.", places[rng.IntN(len(places))], "-", times[rng.IntN(len(times))])
		say("\n\n", actions, 1+rng.IntN(3))
		for range 1 + rng.IntN(4) {
			add("\n\n", cues[rng.IntN(len(cues))])
			say("\n", lines, 1+rng.IntN(3))
			if rng.IntN(3) == 0 {
				say("\n\n", actions, 1+rng.IntN(2))
			}
		}
	}
	toks = toks[:n-len(closing)]
	add("\n\n", closing...)

	texts := func() []string {
		out := make([]string, len(toks))
		for i, t := range toks {
			out[i] = t.sep + t.word
		}
		return out
	}
	// Number a word that repeats what ends before it until no resume point
	// has such a repeat: the number goes first, so the word no longer
	// starts with what it repeated.
	for fix := 0; ; fix++ {
		k := hazard(texts())
		if k < 0 {
			break
		}
		if fix > n {
			panic("scriptkit: cannot make the answer safe to resume")
		}
		toks[k].word = fmt.Sprintf("%d-%s", k, toks[k].word)
	}
	a := &Answer{Tokens: texts()}
	a.Tokens[len(a.Tokens)-1] += "\n"
	var b strings.Builder
	chars := 0
	for _, t := range a.Tokens {
		b.WriteString(t)
		chars += utf8.RuneCountInString(t)
		a.Ends = append(a.Ends, chars)
		a.ByteEnds = append(a.ByteEnds, b.Len())
	}
	a.Text = b.String()
	return a
}

// hazard is the first token k whose start, with what follows, begins with
// a stretch of at most 200 characters that ends where token k-1 ends (the
// generator would take it for a repeat and drop it), or -1.
func hazard(tokens []string) int {
	text := strings.Join(tokens, "")
	end := 0
	for k := 0; k < len(tokens)-1; k++ {
		end += len(tokens[k])
		before, rest := text[:end], text[end:]
		i := len(before)
		for c := 0; c < 200 && i > 0; c++ {
			_, size := utf8.DecodeLastRuneInString(before[:i])
			i -= size
			if strings.HasPrefix(rest, before[i:]) {
				return k + 1
			}
		}
	}
	return -1
}
