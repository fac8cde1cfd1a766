package generate

import (
	"context"
	"strings"
	"testing"
)

func TestOverlap(t *testing.T) {
	long := strings.Repeat("가나다라마바사 ", 40) // 320 characters
	for _, tt := range []struct {
		name, sofar, head string
		want              string // the repeat dropped
	}{
		{"none", "지수가 불을", " 끈다.", ""},
		{"the last word again", "지수가 불을", "불을 끈다.", "불을"},
		{"the last words again", "지수가 불을", "지수가 불을 끈다.", "지수가 불을"},
		{"a word cut short, then whole", "I can't belie", "believe it.", "belie"},
		{"a continuation that starts with a letter of the cut word", "hel", "lo world", ""},
		{"one letter, mid-word", "그녀가 말했", "했다.", ""},
		{"a long repeat, mid-word", "the quick brown fox jumps", "uick brown fox jumps over", "uick brown fox jumps"},
		{"the whole line again", "1. INT. ROOM - DAY\n\nMinho enters.", "\n\nMinho enters. He sits.", "\n\nMinho enters."},
		{"the line with its heading", "1. INT. ROOM - DAY\n\nMinho enters.", "DAY\n\nMinho enters. He sits.", "DAY\n\nMinho enters."},
		{"bounded", long, long + "끝", string([]rune(long)[:maxOverlap])},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k, decided := overlap(tt.sofar, tt.head, false)
			if !decided || tt.head[:k] != tt.want {
				t.Fatalf("dropped %q (decided %v), want %q", tt.head[:k], decided, tt.want)
			}
		})
	}
	// While the head may still become a longer repeat, it waits.
	if _, decided := overlap("지수가 불을", "지수", false); decided {
		t.Fatal("decided on the start of a possible repeat")
	}
	if k, decided := overlap("지수가 불을", "지수", true); !decided || k != 0 {
		t.Fatalf("the final head: %d %v", k, decided)
	}
}

// TestWriterTellsOnlyWhatStays: leading whitespace goes, trailing whitespace
// waits for text and goes at the end, a continuation's repeat goes, and
// everything told is the start of the script.
func TestWriterTellsOnlyWhatStays(t *testing.T) {
	var told []string
	req := Request{Text: func(_ context.Context, d string) error {
		told = append(told, d)
		return nil
	}}
	w := newWriter(context.Background(), req, func(context.Context, Progress) error { return nil }, 100)
	w.begin()
	for _, d := range []string{"\n\n  ", "1. INT.", " ROOM\n", "\n", "지수가 불을", "  \n"} {
		if err := w.add(d); err != nil {
			t.Fatal(err)
		}
	}
	// The stream broke; the next request repeats the last word and goes on.
	w.begin()
	for _, d := range []string{"불", "을 끈다.", "\n\n"} {
		if err := w.add(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.end(); err != nil {
		t.Fatal(err)
	}
	want := "1. INT. ROOM\n\n지수가 불을 끈다.\n"
	if got := strings.Join(told, ""); got != want || w.sofar.String() != want {
		t.Fatalf("told %q, script %q, want %q", told, w.sofar.String(), want)
	}
	for _, d := range told[:len(told)-1] {
		if strings.TrimRight(d, " \n") != d {
			t.Errorf("told trailing whitespace before text followed it: %q", d)
		}
	}
}
