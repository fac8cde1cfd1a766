package jobhandler

import (
	"context"
	"errors"
	"hash/fnv"
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

// maxBehind is how many characters may wait for a checkpoint before the
// generator waits for the one being written: far more than a checkpoint
// holds, so that only a database that stopped answering holds the model's
// stream back.
const maxBehind = 64 << 10

// checkpointer turns the text a generator tells into checkpoints of the
// job's script, off the generator's path: telling text never waits for a
// commit. A checkpoint is written at once when none was started within
// `every` (so the first text of a pause, and of the script, goes out at
// once), else at the next multiple of `every` on the clock after the last
// one started (due), or when `chars` characters wait, whichever comes
// first — at most about 1/every
// checkpoints a second however fast the tokens come. Checkpoints are written
// one at a time, in order, by a goroutine of their own, each at the offset
// (in characters) where the stored text ends; the text told meanwhile waits
// for the next one. A write that fails for a reason that may pass (the
// database blinked) puts its text back for the next one, after `every` — a
// checkpoint written again after its answer was lost is harmless
// (store.CheckpointScript) — and one that finds the lease lost, or the
// stored text not what it continues, stops the generator at its next delta.
type checkpointer struct {
	ctx   context.Context
	r     runner.Reporter
	every time.Duration
	phase time.Duration // where in each `every` this job's checkpoints fall due
	chars int

	mu      sync.Mutex
	offset  int             // characters stored
	pending strings.Builder // told, not stored yet
	waiting int             // its characters
	told    strings.Builder // everything told this attempt
	report  *store.Progress // the last progress told once the text began, not written yet
	started time.Time       // when the last write started
	writing chan struct{}   // closed when the write under way ends; nil when none is
	timer   *time.Timer
	failing bool  // the last write failed: the next waits for the timer
	err     error // why the generator must stop
	closed  bool
}

func newCheckpointer(ctx context.Context, r runner.Reporter, jobID, resume string, every time.Duration, chars int) *checkpointer {
	return &checkpointer{ctx: ctx, r: r, every: every, phase: phase(jobID, every), chars: chars, offset: utf8.RuneCountInString(resume)}
}

// add takes a delta of the script (a generate.TextFunc). It waits only when
// maxBehind characters wait behind a write under way.
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
	c.schedule()
	for c.waiting >= maxBehind && c.writing != nil && c.err == nil {
		done := c.writing
		c.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
		}
		c.mu.Lock()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return c.err
}

// progress takes a progress report of the generator. Before the text
// begins it is written at once, in its place among the job's events; once
// text is told it is written by the checkpoints' goroutine with the next
// checkpoint (a later report replaces one still waiting), so that the
// generator does not wait for its commit either.
func (c *checkpointer) progress(ctx context.Context, p store.Progress) error {
	c.mu.Lock()
	if c.err != nil {
		defer c.mu.Unlock()
		return c.err
	}
	if c.told.Len() == 0 && c.writing == nil {
		c.mu.Unlock()
		return c.r.Progress(ctx, p)
	}
	defer c.mu.Unlock()
	c.report = &p
	c.schedule()
	return nil
}

// schedule starts the write of the pending text when it is due, or sets
// the timer for when it will be; with c.mu held.
func (c *checkpointer) schedule() {
	if (c.waiting == 0 && c.report == nil) || c.writing != nil || c.closed || c.err != nil {
		return
	}
	wait := time.Until(due(c.started, c.every, c.phase))
	if !c.failing && (wait <= 0 || c.waiting >= c.chars) {
		c.start()
		return
	}
	if c.timer == nil {
		c.timer = time.AfterFunc(max(wait, time.Millisecond), c.tick)
	}
}

// checkpointPhases is how many groups the jobs of a process fall into by
// when their checkpoints fall due: each group's commit at its own moment of
// the interval.
const checkpointPhases = 10

// phase is where in each interval a job's checkpoints fall due: one of
// checkpointPhases moments, by its id.
func phase(jobID string, every time.Duration) time.Duration {
	h := fnv.New32a()
	h.Write([]byte(jobID))
	return time.Duration(h.Sum32()%checkpointPhases) * (every / checkpointPhases)
}

// due is when the checkpoint after one started at started is due: at the
// job's next moment of the clock-wide grid of `every` (shifted by its
// phase), at most `every` after it. The jobs of a phase, in every process on
// the same clock, then fall due at the same moment, and the group commit
// takes their checkpoints as one transaction, which writes each page they
// share once, where jobs keeping time of their own committed a few at a
// time; the phases keep each moment's readers to a share of them.
func due(started time.Time, every, phase time.Duration) time.Time {
	return started.Add(-phase).Truncate(every).Add(every + phase)
}

// tick writes what has waited its time.
func (c *checkpointer) tick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timer = nil
	c.failing = false
	c.schedule()
}

// start hands the pending text to a goroutine that writes it; with c.mu
// held and no write under way.
func (c *checkpointer) start() {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	offset, text, n := c.offset, c.pending.String(), c.waiting
	report := c.report
	c.pending.Reset()
	c.waiting = 0
	c.report = nil
	c.started = time.Now()
	done := make(chan struct{})
	c.writing = done
	go func() {
		var err error
		if report != nil {
			// A report that fails for a reason that may pass is dropped:
			// the next one says more.
			if err = c.r.Progress(c.ctx, *report); err != nil && !stops(err) {
				err = nil
			}
		}
		if err == nil && n > 0 {
			err = c.r.Script(c.ctx, offset, text)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.writing = nil
		defer close(done)
		c.wrote(offset, text, n, err)
		c.schedule()
	}()
}

// wrote records the end of the write of text (n characters) at offset;
// with c.mu held.
func (c *checkpointer) wrote(offset int, text string, n int, err error) {
	switch {
	case err == nil:
		c.offset = offset + n
	case stops(err):
		c.err = err
	case n == 0:
	default:
		// Put back before what was told meanwhile, for the next write.
		rest := c.pending.String()
		c.pending.Reset()
		c.pending.WriteString(text)
		c.pending.WriteString(rest)
		c.waiting += n
		c.failing = true
		if c.timer == nil && !c.closed {
			c.timer = time.AfterFunc(c.every, c.tick)
		}
	}
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

// close waits for the write under way, then writes what is pending (the
// last progress report, then the text) — even
// once ctx has ended, for up to closeTimeout, trying again after a failure —
// and stops the timer. Its error is the last write's, or why the generator
// was stopped.
func (c *checkpointer) close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	for c.writing != nil {
		done := c.writing
		c.mu.Unlock()
		<-done // a write ends: the store answers every request it takes
		c.mu.Lock()
	}
	if c.err != nil {
		return c.err
	}
	if c.report != nil {
		p := *c.report
		c.report = nil
		if err := c.r.Progress(ctx, p); stops(err) {
			c.err = err
			return err
		}
	}
	wait := 50 * time.Millisecond
	for c.waiting > 0 {
		offset, text, n := c.offset, c.pending.String(), c.waiting
		err := c.r.Script(ctx, offset, text)
		if err == nil {
			c.offset += n
			c.pending.Reset()
			c.waiting = 0
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
