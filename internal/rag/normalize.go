package rag

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Normalize makes text comparable, whatever editor wrote it: it drops a byte
// order mark, turns CRLF and CR into LF, drops control characters other than
// newline and tab, removes trailing space on every line, composes Unicode to
// NFC (a Hangul syllable typed on macOS arrives as separate jamo and would
// never match a query) and trims the whole.
func Normalize(s string) string {
	s = strings.TrimPrefix(s, "\uFEFF")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = norm.NFC.String(s)
	s = strings.Map(func(r rune) rune {
		if r == '\uFEFF' || (unicode.IsControl(r) && r != '\n' && r != '\t') {
			return -1
		}
		return r
	}, s)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRightFunc(l, unicode.IsSpace)
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}
