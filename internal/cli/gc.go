package cli

import (
	"runtime/debug"
)

// Long-running commands collect garbage less often than Go's default. Their Go
// heap is small — SQLite keeps its pages outside it — so with GOGC=100 the
// collector ran about thirty times a second under load, and submissions paid
// for it in latency (p99 at 2,000/s about 10 % lower with 400, in five A/B
// pairs; bench/README.md). A soft limit keeps a large heap in bounds: with
// 1,000 SSE clients on 200 generations serve keeps ~45 MiB of heap live and
// ~33 MiB of goroutine stacks, and GOGC=400 let the heap grow to whatever
// limit there was: 256 MiB put serve's RSS at 270 MiB. 100 MiB left the
// collector no room above what is live — it ran without pause, its goal
// below the heap in use — and 128 MiB keeps RSS near 150 MiB
// (bench/README.md, issue 18). Either is left alone when set in the
// environment (GOGC, GOMEMLIMIT).
const (
	gcPercent   = 400
	memoryLimit = 128 << 20
)

func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}
