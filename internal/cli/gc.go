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
// below the heap in use — 128 MiB kept RSS near 160 MiB, and 112 MiB keeps
// it at 146 MiB, for about a tenth more of serve's CPU (bench/README.md,
// issue 18; RSS also holds ~35 MiB outside the Go runtime: the binary's code
// and SQLite's page caches). Either is left alone when set in the
// environment (GOGC, GOMEMLIMIT).
const (
	gcPercent   = 400
	memoryLimit = 112 << 20
)

func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}
