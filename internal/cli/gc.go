package cli

import (
	"runtime/debug"
)

// Long-running commands collect garbage less often than Go's default. Their Go
// heap is small — SQLite keeps its pages outside it — so with GOGC=100 the
// collector ran about thirty times a second under load, and submissions paid
// for it in latency (p99 at 2,000/s about 10 % lower with 400, in five A/B
// pairs; bench/README.md). A soft limit keeps a large heap in bounds. Either
// is left alone when set in the environment (GOGC, GOMEMLIMIT).
const (
	gcPercent   = 400
	memoryLimit = 256 << 20
)

func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}
