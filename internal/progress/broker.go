// Package progress owns live progress: it fans a job's event log out to every
// client watching it, with one database reader per job however many watch,
// and streams it as Server-Sent Events. The database stays the system of
// record (invariant 1): the broker only reads the gapless, per-job numbered
// event log, so a client that resumes after the last sequence number it saw
// gets every event exactly once and in order, whichever process serves it.
package progress

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
)

// EventSource is the store's event log, as the broker reads it.
type EventSource interface {
	ListEvents(ctx context.Context, jobID string, afterSeq int64, limit int) ([]job.Event, error)
}

// BrokerConfig tunes the broker's readers.
type BrokerConfig struct {
	// PollInterval is how often a job's reader looks for new events when
	// nothing wakes it (SQLite, or PostgreSQL while LISTEN is down).
	// Default 50ms.
	PollInterval time.Duration
	// FloorInterval is how often a reader still looks while notifications
	// work, in case one is lost. Default 1s.
	FloorInterval time.Duration
	// BatchSize bounds one read of the event log. Default 500.
	BatchSize int
}

// Broker fans each job's events out to its subscribers.
type Broker struct {
	src  EventSource
	cfg  BrokerConfig
	log  *slog.Logger
	now  func() time.Time
	live atomic.Bool // a notification source (LISTEN) is connected

	mu      sync.Mutex
	feeds   map[string]*feed
	watched chan struct{} // signalled when the first job gets a reader
	closing chan struct{}
	closed  bool
	wg      sync.WaitGroup
}

// ErrClosed is returned by Subscribe once the broker is shutting down.
var ErrClosed = errors.New("progress broker is shutting down")

// NewBroker builds a broker reading src.
func NewBroker(src EventSource, cfg BrokerConfig, log *slog.Logger) *Broker {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 50 * time.Millisecond
	}
	if cfg.FloorInterval <= 0 {
		cfg.FloorInterval = time.Second
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Broker{src: src, cfg: cfg, log: log, now: time.Now, feeds: map[string]*feed{},
		watched: make(chan struct{}, 1), closing: make(chan struct{})}
}

// Start satisfies the server's component interface; readers start on demand.
func (b *Broker) Start(context.Context) error { return nil }

// Stop ends every subscription and waits for the readers.
func (b *Broker) Stop(ctx context.Context) error {
	b.Close()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close tells every open subscription to end (the server is shutting down;
// clients resume elsewhere with their last event id). It does not wait.
func (b *Broker) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		close(b.closing)
	}
}

// Closing is closed when the broker shuts down.
func (b *Broker) Closing() <-chan struct{} { return b.closing }

// SetLive records whether a notification source is connected; while it is,
// readers poll only at the floor interval.
func (b *Broker) SetLive(live bool) {
	if b.live.Swap(live) != live && live {
		b.WakeAll() // catch up on whatever was missed while it was down
	}
}

// Live reports whether a notification source is connected.
func (b *Broker) Live() bool { return b.live.Load() }

// Wake tells the reader of a job, if any, that it has new events.
func (b *Broker) Wake(jobID string) {
	b.mu.Lock()
	f := b.feeds[jobID]
	b.mu.Unlock()
	if f != nil {
		f.wake()
	}
}

// WakeAll wakes every reader.
func (b *Broker) WakeAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, f := range b.feeds {
		f.wake()
	}
}

// Feeds counts the jobs with a running reader (for tests and metrics).
func (b *Broker) Feeds() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.feeds)
}

// Watched is signalled when a job gets a reader while none had one (for a
// notification source that runs only while someone watches).
func (b *Broker) Watched() <-chan struct{} { return b.watched }

// Subscribers counts the open subscriptions of a job.
func (b *Broker) Subscribers(jobID string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if f := b.feeds[jobID]; f != nil {
		return f.refs
	}
	return 0
}

// Subscribe follows a job's events after afterSeq. Close the subscription
// when done; the job's reader stops with its last subscriber.
func (b *Broker) Subscribe(jobID string, afterSeq int64) (*Subscription, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	f := b.feeds[jobID]
	if f == nil {
		f = newFeed(b, jobID)
		b.feeds[jobID] = f
		b.wg.Add(1)
		go f.run()
		if len(b.feeds) == 1 {
			select {
			case b.watched <- struct{}{}:
			default:
			}
		}
	}
	f.refs++
	return &Subscription{f: f, last: afterSeq}, nil
}

func (b *Broker) release(f *feed) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f.refs--
	if f.refs == 0 {
		delete(b.feeds, f.jobID)
		close(f.stop)
	}
}

// feed is one job's reader and the events it has read so far. Its log starts
// at seq 1, so subscribers that resume from any point are served from memory.
type feed struct {
	b     *Broker
	jobID string
	refs  int // guarded by b.mu
	stop  chan struct{}
	wakec chan struct{}
	// snap is replaced, never changed, when the reader appends: a thousand
	// subscribers woken at once read it without contending for a lock.
	snap atomic.Pointer[snapshot]
}

// snapshot is the log as far as it has been read. Slices only grow by
// appending to a new snapshot, so an older one stays valid.
type snapshot struct {
	log      []job.Event   // seq 1..len(log)
	frames   [][]byte      // log[i] encoded once as an SSE event, for every subscriber
	terminal bool          // log ends with the job's terminal event
	changed  chan struct{} // closed when a newer snapshot is published
}

func newFeed(b *Broker, jobID string) *feed {
	f := &feed{b: b, jobID: jobID, stop: make(chan struct{}), wakec: make(chan struct{}, 1)}
	f.snap.Store(&snapshot{changed: make(chan struct{})})
	return f
}

func (f *feed) wake() {
	select {
	case f.wakec <- struct{}{}:
	default:
	}
}

func (f *feed) run() {
	defer f.b.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-f.stop:
		case <-f.b.closing:
		}
		cancel()
	}()
	t := time.NewTicker(f.b.cfg.PollInterval)
	defer t.Stop()
	var lastRead time.Time
	for {
		if !f.isTerminal() {
			more := f.read(ctx)
			lastRead = f.b.now()
			if more {
				continue
			}
		}
		for waiting := true; waiting; {
			select {
			case <-ctx.Done():
				return
			case <-f.wakec:
				waiting = false
			case <-t.C:
				// Poll unless nothing more will come or LISTEN will tell us.
				waiting = f.isTerminal() || (f.b.live.Load() && f.b.now().Sub(lastRead) < f.b.cfg.FloorInterval)
			}
		}
	}
}

func (f *feed) isTerminal() bool { return f.snap.Load().terminal }

// read appends what follows the log's last seq; it reports whether a full
// batch came back (there may be more). Only the feed's goroutine calls it.
func (f *feed) read(ctx context.Context) bool {
	cur := f.snap.Load()
	evs, err := f.b.src.ListEvents(ctx, f.jobID, int64(len(cur.log)), f.b.cfg.BatchSize)
	if err != nil {
		if ctx.Err() == nil {
			f.b.log.Warn("Reading job events failed; retrying", "job_id", f.jobID, "err", err)
		}
		return false
	}
	next := &snapshot{log: cur.log, frames: cur.frames, changed: make(chan struct{})}
	n := 0
	for _, e := range evs {
		// The log is gapless; stop at a gap and read it again next time.
		if e.Seq != int64(len(next.log))+1 {
			break
		}
		next.log = append(next.log, e)
		next.frames = append(next.frames, encodeEvent(nil, e))
		n++
		if e.Status.Terminal() {
			next.terminal = true
			break
		}
	}
	if n > 0 {
		f.snap.Store(next)
		close(cur.changed)
	}
	return n == len(evs) && len(evs) == f.b.cfg.BatchSize && !next.terminal
}

// Subscription is one client's view of a job's events.
type Subscription struct {
	f      *feed
	last   int64
	closed bool
}

// Last is the seq of the last event handed out.
func (s *Subscription) Last() int64 { return s.last }

// Next returns the events after the last one handed out, in order, each once,
// and a channel that is closed when more may be available. done is true once
// the terminal event has been handed out.
func (s *Subscription) Next() (evs []job.Event, more <-chan struct{}, done bool) {
	snap := s.f.snap.Load()
	if s.last < int64(len(snap.log)) {
		evs = snap.log[s.last:]
		s.last = int64(len(snap.log))
	}
	return evs, snap.changed, snap.terminal && s.last >= int64(len(snap.log))
}

// nextFrames is Next with each event already encoded as an SSE event.
func (s *Subscription) nextFrames() (frames [][]byte, more <-chan struct{}, done bool) {
	snap := s.f.snap.Load()
	if s.last < int64(len(snap.log)) {
		frames = snap.frames[s.last:]
		s.last = int64(len(snap.log))
	}
	return frames, snap.changed, snap.terminal && s.last >= int64(len(snap.log))
}

// Close ends the subscription.
func (s *Subscription) Close() {
	if !s.closed {
		s.closed = true
		s.f.b.release(s.f)
	}
}
