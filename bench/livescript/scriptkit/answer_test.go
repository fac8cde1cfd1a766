package scriptkit

import (
	"fmt"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestAnswer(t *testing.T) {
	for _, n := range []int{20, 300, 2000} {
		for i := range 20 {
			title := fmt.Sprintf("에피소드 %d", i)
			a := NewAnswer(title, n)
			if b := NewAnswer(title, n); b.Text != a.Text {
				t.Fatalf("%q, %d tokens: two answers differ", title, n)
			}
			if len(a.Tokens) != n || strings.Join(a.Tokens, "") != a.Text || a.Chars() != utf8.RuneCountInString(a.Text) {
				t.Fatalf("%q: %d tokens, want %d, or they do not make the text", title, len(a.Tokens), n)
			}
			r, _ := utf8.DecodeRuneInString(a.Text)
			if unicode.IsSpace(r) || !strings.HasPrefix(a.Text, title) || !strings.HasSuffix(a.Text, "FADE OUT.\n") ||
				strings.TrimRightFunc(a.Text, unicode.IsSpace)+"\n" != a.Text {
				t.Fatalf("%q: the text starts %q and ends %q", title, a.Text[:10], a.Text[len(a.Text)-12:])
			}
			if k := hazard(a.Tokens); k >= 0 {
				t.Fatalf("%q, %d tokens: token %d starts with a repeat of what ends before it", title, n, k)
			}
			for k, tok := range a.Tokens[:len(a.Tokens)-1] {
				if strings.TrimRightFunc(tok, unicode.IsSpace) != tok || strings.TrimSpace(tok) == "" {
					t.Fatalf("token %d is %q: a token must end with a word", k, tok)
				}
			}
			for _, c := range []int{0, a.Ends[0] - 1, a.Ends[0], a.Chars() - 1} {
				k := a.TokenAt(c)
				if a.Ends[k] <= c || (k > 0 && a.Ends[k-1] > c) {
					t.Fatalf("TokenAt(%d) = %d, which spans up to %d", c, k, a.Ends[k])
				}
			}
		}
	}
	if NewAnswer("a", 300).Text == NewAnswer("b", 300).Text {
		t.Fatal("two titles, one answer")
	}
	if hazard([]string{"x", " he", " her"}) != 2 || hazard([]string{"x", " a", " b", " a", " b", " c"}) != 3 {
		t.Fatal("hazard misses a repeat")
	}
}
