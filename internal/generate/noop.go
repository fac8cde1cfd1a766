package generate

import "context"

// Noop returns at once with an empty script: the generator of benchmarks,
// which measure the job system rather than the writing.
type Noop struct{}

// Generate returns a minimal script.
func (Noop) Generate(_ context.Context, req Request, _ ProgressFunc) (Script, error) {
	return Script{Title: req.Episode.Title, Model: "noop"}, nil
}
