// Package loop runs one duty every interval until stopped — the shape shared
// by the reconciler, the flag refresher, the rollback controller and the worker
// heartbeat, each of which is a component with Start and Stop.
package loop

import (
	"context"
	"sync"
	"time"
)

// Loop runs a tick function on an interval in its own goroutine.
type Loop struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start runs tick every interval (and once at once when immediate) until Stop.
// The loop outlives ctx's cancellation but keeps its values.
func (l *Loop) Start(ctx context.Context, every time.Duration, immediate bool, tick func(ctx context.Context)) {
	ctx, l.cancel = context.WithCancel(context.WithoutCancel(ctx))
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		if immediate {
			tick(ctx)
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				tick(ctx)
			}
		}
	}()
}

// Stop stops the loop and waits for a running tick to return.
func (l *Loop) Stop() {
	if l.cancel != nil {
		l.cancel()
	}
	l.wg.Wait()
}
