package jobhandler

import (
	"fmt"
	"testing"
	"time"
)

// TestCheckpointsFallDueOnAGrid: a job's next checkpoint falls due at its
// phase's next moment of the clock-wide grid — within `every` of the last
// one, never at it — and the phases spread a process's jobs over all
// checkpointPhases moments, so that the group commit takes each moment's
// checkpoints together and no moment takes them all.
func TestCheckpointsFallDueOnAGrid(t *testing.T) {
	const every = 100 * time.Millisecond
	seen := map[time.Duration]int{}
	base := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	for i := range 1000 {
		id := fmt.Sprintf("01a24f13-%04x-7af8-ba0d-cea7cc031e83", i)
		p := phase(id, every)
		if p != phase(id, every) || p < 0 || p >= every || p%(every/checkpointPhases) != 0 {
			t.Fatalf("job %s: phase %s, want one of %d steps of %s", id, p, checkpointPhases, every/checkpointPhases)
		}
		seen[p]++
		started := base.Add(time.Duration(i) * 7919 * time.Microsecond)
		d := due(started, every, p)
		if !d.After(started) || d.Sub(started) > every {
			t.Fatalf("started %s, phase %s: due %s, want within %s after it", started.Format(time.StampMicro), p, d.Format(time.StampMicro), every)
		}
		if d.Sub(base.Add(p))%every != 0 {
			t.Fatalf("started %s, phase %s: due %s is not on the phase's grid", started.Format(time.StampMicro), p, d.Format(time.StampMicro))
		}
	}
	if len(seen) != checkpointPhases {
		t.Fatalf("1,000 jobs fell into %d phases, want all %d: %v", len(seen), checkpointPhases, seen)
	}
	for p, n := range seen {
		if n > 1000/checkpointPhases*2 {
			t.Fatalf("phase %s took %d of 1,000 jobs", p, n)
		}
	}
}
