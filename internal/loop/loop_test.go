package loop

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestLoopTicksUntilStopped(t *testing.T) {
	var n atomic.Int64
	var l Loop
	l.Start(context.Background(), time.Millisecond, true, func(context.Context) { n.Add(1) })
	waitFor(t, "five ticks", func() bool { return n.Load() >= 5 })
	l.Stop()
	after := n.Load()
	// Twenty intervals with nothing to wait for: what must not happen is a
	// tick after Stop returned.
	time.Sleep(20 * time.Millisecond)
	if after < 5 || n.Load() != after {
		t.Fatalf("ticks: %d before stop, %d after", after, n.Load())
	}
}

func TestImmediateTickRunsFirst(t *testing.T) {
	ran := make(chan struct{}, 1)
	var l Loop
	l.Start(context.Background(), time.Hour, true, func(context.Context) { ran <- struct{}{} })
	defer l.Stop()
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("the immediate tick did not run")
	}
}

// waitFor polls cond every 10 ms until it holds, and fails the test when it
// still does not after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 5 s", what)
		}
		<-tick.C
	}
}
