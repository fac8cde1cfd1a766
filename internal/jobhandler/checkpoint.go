package jobhandler

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/runner"
	"github.com/scriptgen/scriptgen/internal/store"
)

// closeTimeout bounds the last checkpoint of an attempt, which is written
// even when the attempt's context has ended (a shutdown: the text is saved
// for the next attempt before the job is released).
const closeTimeout = 5 * time.Second

// checkpointer coalesces the text a generator tells into checkpoints of the
// job's script: the text waits until it is `chars` characters long or has
// waited `every`, whichever comes first, so a job writes about ten
// checkpoints a second however fast the tokens come. Checkpoints are written
// one at a time, in order, each at the offset (in characters) where the
// stored text ends. A write that fails for a reason that may pass (the
// database blinked) keeps its text for the next one — a checkpoint written
// again after its answer was lost is harmless (store.CheckpointScript) — and
// one that finds the lease lost, or the stored text not what it continues,
// stops the generator.
type checkpointer struct {
	ctx   context.Context
	r     runner.Reporter
	every time.Duration
	chars int

	mu      sync.Mutex
	offset  int             // characters stored
	pending strings.Builder // told, not stored yet
	waiting int             // its characters
	told    strings.Builder // everything told this attempt
	timer   *time.Timer
	failing bool  // the last write failed: the next waits for the timer
	err     error // why the generator must stop
	closed  bool
}

func newCheckpointer(ctx context.Context, r runner.Reporter, resume string, every time.Duration, chars int) *checkpointer {
	return &checkpointer{ctx: ctx, r: r, every: every, chars: chars, offset: utf8.RuneCountInString(resume)}
}

// add takes a delta of the script (a generate.TextFunc).
func (c *checkpointer) add(ctx context.Context, delta string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if delta == "" {
		return nil
	}
	c.told.WriteString(delta)
	c.pending.WriteString(delta)
	c.waiting += utf8.RuneCountInString(delta)
	// The script's first text is written at once: its reader sees it start as the model does.
	if (c.waiting >= c.chars || c.offset == 0) && !c.failing {
		return c.flush(ctx)
	}
	if c.timer == nil {
		c.timer = time.AfterFunc(c.every, c.tick)
	}
	return nil
}

// tick writes what has waited its time.
func (c *checkpointer) tick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timer = nil
	if c.closed || c.err != nil {
		return
	}
	_ = c.flush(c.ctx)
}

// flush writes the pending text; with c.mu held. It returns the error that
// stops the generator, if any.
func (c *checkpointer) flush(ctx context.Context) error {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if c.waiting == 0 {
		return nil
	}
	err := c.write(ctx)
	switch {
	case err == nil:
		return nil
	case stops(err):
		c.err = err
		return err
	default:
		// Kept for the next write, after a pause.
		c.failing = true
		if !c.closed {
			c.timer = time.AfterFunc(c.every, c.tick)
		}
		return nil
	}
}

// write checkpoints the pending text.
func (c *checkpointer) write(ctx context.Context) error {
	if err := c.r.Script(ctx, c.offset, c.pending.String()); err != nil {
		return err
	}
	c.offset += c.waiting
	c.pending.Reset()
	c.waiting = 0
	c.failing = false
	return nil
}

// stops reports whether a checkpoint's error ends the attempt: trying again
// would not help.
func stops(err error) bool {
	return errors.Is(err, job.ErrStaleLease) || errors.Is(err, store.ErrScriptConflict) || errors.Is(err, store.ErrScriptTooLong)
}

// written is everything told this attempt.
func (c *checkpointer) written() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.told.String()
}

// close writes what is pending — even once ctx has ended, for up to
// closeTimeout, trying again after a failure — and stops the timer. Its
// error is the write's, or why the generator was stopped.
func (c *checkpointer) close(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if c.err != nil {
		return c.err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	wait := 50 * time.Millisecond
	for c.waiting > 0 {
		err := c.write(ctx)
		if err == nil {
			break
		}
		if stops(err) {
			c.err = err
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
	return nil
}
