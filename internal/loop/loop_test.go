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
	deadline := time.Now().Add(5 * time.Second)
	for n.Load() < 5 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	l.Stop()
	after := n.Load()
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
