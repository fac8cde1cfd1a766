package generate

import (
	"context"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxOverlap bounds, in characters, how much of the text so far a resumed
// request's continuation may repeat and have dropped.
const maxOverlap = 200

// anyOverlap is the length from which a repeat is dropped wherever it
// starts; a shorter one only when it starts a word (see overlap).
const anyOverlap = 10

// writer is the script of one streamed call as it is written: the text told
// so far (Request.Resume, then every delta told to Request.Text), and, for
// the request under way, what it received but has not told yet. Its rules
// make the told text always the start of the final script:
//
//   - the script starts with no whitespace, and whitespace at the end of what
//     was received is held until text follows it, so the end of the answer is
//     trimmed without taking anything back; the script ends with one newline;
//   - a request that continues text holds the start of its answer until it
//     knows how much of it repeats the end of that text (models often start
//     a continuation by repeating the last words), and drops the repeat;
//   - NUL characters are dropped (PostgreSQL cannot store them).
type writer struct {
	ctx      context.Context
	text     TextFunc
	progress ProgressFunc
	expected int // tokens, to measure progress against

	sofar strings.Builder // told
	space string          // whitespace received after the told text
	head  string          // a continuation's start, until its repeat is known
	// deciding: the request under way continues text and has not yet
	// shown how much of it it repeats.
	deciding bool

	deltas      int // received in this call, about a token each
	lastPercent int
}

func newWriter(ctx context.Context, req Request, progress ProgressFunc, expected int) *writer {
	w := &writer{ctx: ctx, text: req.Text, progress: progress, expected: expected, lastPercent: 5}
	w.sofar.WriteString(req.Resume)
	return w
}

// begin starts a request: it continues what was told, and whatever the last
// one received and did not tell is forgotten (it will come again).
func (w *writer) begin() {
	w.space, w.head = "", ""
	w.deciding = w.sofar.Len() > 0
}

// add takes a content delta of the request under way.
func (w *writer) add(delta string) error {
	w.deltas++
	if err := w.report(); err != nil {
		return err
	}
	delta = strings.ReplaceAll(delta, "\x00", "")
	if w.deciding {
		w.head += delta
		k, decided := overlap(w.sofar.String(), w.head, false)
		if !decided {
			return nil
		}
		delta, w.head, w.deciding = w.head[k:], "", false
	}
	return w.tell(delta)
}

// end finishes the request's answer: the held start is decided with what
// came, the held whitespace dropped, and the script ends with a newline.
func (w *writer) end() error {
	if w.deciding {
		k, _ := overlap(w.sofar.String(), w.head, true)
		d := w.head[k:]
		w.head, w.deciding = "", false
		if err := w.tell(d); err != nil {
			return err
		}
	}
	w.space = ""
	if w.sofar.Len() == 0 {
		return &attemptError{err: fmt.Errorf("model returned no text"), retryable: true}
	}
	if strings.HasSuffix(w.sofar.String(), "\n") {
		return nil
	}
	return w.emit("\n")
}

// tell tells d, but for the whitespace it ends with, which waits for more
// text, and the whitespace the script would start with, which goes.
func (w *writer) tell(d string) error {
	if w.sofar.Len() == 0 {
		d = strings.TrimLeftFunc(d, unicode.IsSpace)
	}
	if d == "" {
		return nil
	}
	s := w.space + d
	body := strings.TrimRightFunc(s, unicode.IsSpace)
	w.space = s[len(body):]
	if body == "" {
		return nil
	}
	return w.emit(body)
}

func (w *writer) emit(s string) error {
	if w.text != nil {
		if err := w.text(w.ctx, s); err != nil {
			return progressError{err}
		}
	}
	w.sofar.WriteString(s)
	return nil
}

// report tells progress every five percent.
func (w *writer) report() error {
	pct := 10 + 85*min(w.deltas, w.expected)/w.expected
	if pct < w.lastPercent+5 {
		return nil
	}
	w.lastPercent = pct
	writing := Progress{
		Percent: pct,
		Stage:   "writing",
		Message: fmt.Sprintf("received %d tokens", w.deltas),
	}
	if err := w.progress(w.ctx, writing); err != nil {
		return progressError{err}
	}
	return nil
}

// overlap says how many bytes at the start of head, a continuation of
// sofar, repeat the end of sofar: the longest repeat of at most maxOverlap
// characters, which must start a word in sofar (the character before it, or
// its own first one, is no letter or digit) unless it is anyOverlap
// characters long or more — so that a continuation that rightly starts with
// the letter a word was cut before ("hel" + "lo") keeps it. decided is false
// while a longer repeat may still come: head is the start of a candidate
// that is longer than head. With final, head is all there is.
func overlap(sofar, head string, final bool) (k int, decided bool) {
	best := 0
	i := len(sofar)
	for n := 1; n <= maxOverlap && i > 0; n++ {
		_, size := utf8.DecodeLastRuneInString(sofar[:i])
		i -= size
		suffix := sofar[i:]
		if n < anyOverlap && !wordStart(sofar, i) {
			continue
		}
		switch {
		case strings.HasPrefix(head, suffix):
			best = len(suffix)
		case !final && len(head) < len(suffix) && strings.HasPrefix(suffix, head):
			return 0, false
		}
	}
	return best, true
}

// wordStart reports whether a word starts at byte i of s, or something that
// is no letter or digit does.
func wordStart(s string, i int) bool {
	r, _ := utf8.DecodeRuneInString(s[i:])
	if !isWordRune(r) || i == 0 {
		return true
	}
	prev, _ := utf8.DecodeLastRuneInString(s[:i])
	return !isWordRune(prev)
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }
