package clock

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestSleep: Sleep waits its time, and no longer than its context lives.
func TestSleep(t *testing.T) {
	start := time.Now()
	if err := Sleep(context.Background(), 20*time.Millisecond); err != nil || time.Since(start) < 20*time.Millisecond {
		t.Fatalf("Sleep(20ms) = %v after %s", err, time.Since(start))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	start = time.Now()
	if err := Sleep(ctx, time.Minute); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("Sleep(1m) under a 10ms context = %v after %s", err, time.Since(start))
	}
	if err := Sleep(ctx, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Sleep(0) on an ended context = %v", err)
	}
}
