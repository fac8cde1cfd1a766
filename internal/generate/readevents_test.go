package generate

import (
	"strings"
	"testing"
	"testing/iotest"
)

// TestReadEvents: the events' data as the SSE format defines it, whatever
// the lines' length and however the reads split them; readEvents reuses its
// buffers, so each event's data is copied as it comes.
func TestReadEvents(t *testing.T) {
	long := strings.Repeat("가나다", 3000) // 27,000 bytes: past the reader's buffer
	for _, tc := range []struct {
		name   string
		stream string
		want   []string
	}{
		{"one data line each", "data: a\n\ndata: b\n\n", []string{"a", "b"}},
		{"lines joined by newlines", "data: a\ndata:b\ndata:  c\n\n", []string{"a\nb\n c"}},
		{"CRLF, comments, other fields", ": ping\r\nevent: x\r\ndata: a\r\n\r\n", []string{"a"}},
		{"an empty data line is an event", "data:\n\n", []string{""}},
		{"no data, no event", "\n\n: ping\n\n", nil},
		{"the last event without its blank line", "data: a\n\ndata: b", []string{"a", "b"}},
		{"lines longer than the buffer", "data: " + long + "\n\ndata: x\n\ndata: " + long + "!\n\n", []string{long, "x", long + "!"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, split := range []bool{false, true} {
				r := strings.NewReader(tc.stream)
				reader := iotest.OneByteReader(r)
				if !split {
					reader = r
				}
				var got []string
				reads := 0
				err := readEvents(reader, func() { reads++ }, func(data []byte) error {
					got = append(got, string(data))
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
					t.Fatalf("split %v: events %q, want %q", split, got, tc.want)
				}
				if lines := strings.Count(strings.TrimSuffix(tc.stream, "\n"), "\n") + 1; reads != lines {
					t.Fatalf("split %v: onRead called %d times, want once a line (%d)", split, reads, lines)
				}
			}
		})
	}
}
