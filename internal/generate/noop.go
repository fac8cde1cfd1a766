package generate

import (
	"context"
	"strings"
	"unicode/utf8"
)

// Noop returns at once: the generator of benchmarks, which measure the job
// system rather than the writing. Its script is Text (empty by default, so
// that a benchmark's job writes no checkpoint), told to Request.Text at once.
type Noop struct {
	Text string
}

// Generate returns the script Text, continuing the request's Resume when
// Text starts with it (and starting over otherwise, like the template).
func (n Noop) Generate(ctx context.Context, req Request, _ ProgressFunc) (Script, error) {
	s := Script{Title: req.Episode.Title, Script: n.Text, Model: "noop"}
	rest := n.Text
	switch {
	case req.Resume == "":
	case strings.HasPrefix(n.Text, req.Resume):
		s.ResumedFrom = utf8.RuneCountInString(req.Resume)
		rest = n.Text[len(req.Resume):]
	default:
		s.Restarted = true
		rest = ""
	}
	if rest != "" && req.Text != nil {
		if err := req.Text(ctx, rest); err != nil {
			return Script{}, err
		}
	}
	return s, nil
}
