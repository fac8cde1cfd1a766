// Package progress owns live progress: it fans a job's event log out to every
// client watching it, with one database reader per job however many watch,
// and streams it as Server-Sent Events. The database stays the system of
// record (invariant 1): the broker only reads the gapless, per-job numbered
// event log, so a client that resumes after the last sequence number it saw
// gets every event exactly once and in order, whichever process serves it.
//
// A reader reads its job's log only when woken: by a notification (LISTEN/
// NOTIFY on PostgreSQL, the store's commits on SQLite), or by the broker's
// one watcher, which looks at the event_seq of every watched job in one query
// per 500 jobs — every 50 ms while nothing notifies, every second as a floor
// while something does — and wakes the readers whose job has moved. Watching
// an idle job thus costs no query of its own.
package progress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
)

// EventSource is the store's event log, as the broker reads it.
type EventSource interface {
	ListEvents(ctx context.Context, jobID string, afterSeq int64, limit int) ([]job.Event, error)
	// EventSeqs reads the seq of the last event of each job of ids; a job
	// that does not exist is absent.
	EventSeqs(ctx context.Context, ids []string) (map[string]int64, error)
}

// BrokerConfig tunes the broker's readers and its watcher.
type BrokerConfig struct {
	// PollInterval is how often the watcher looks for new events of the
	// watched jobs when nothing notifies (SQLite without its commits hooked,
	// or PostgreSQL while LISTEN is down). Default 50ms.
	PollInterval time.Duration
	// FloorInterval is how often the watcher still looks while notifications
	// work, in case one is lost. Default 1s.
	FloorInterval time.Duration
	// BatchSize bounds one read of a job's event log. Default 500.
	BatchSize int
	// WatchBatch is how many jobs one query of the watcher asks about.
	// Default 500.
	WatchBatch int
}

// Broker fans each job's events out to its subscribers.
type Broker struct {
	src  EventSource
	cfg  BrokerConfig
	log  *slog.Logger
	live atomic.Bool // a notification source (LISTEN, or the store's commits) is connected
	// ctx is the parent of the readers' and the watcher's reads; Close
	// cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	feeds    map[string]*feed
	watched  chan struct{} // signalled when the first job gets a reader
	look     chan struct{} // tells the watcher to look now
	watching bool          // the watcher runs
	closing  chan struct{}
	closed   bool
	wg       sync.WaitGroup
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
	if cfg.WatchBatch <= 0 {
		cfg.WatchBatch = 500
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Broker{src: src, cfg: cfg, log: log, ctx: ctx, cancel: cancel, feeds: map[string]*feed{},
		watched: make(chan struct{}, 1), look: make(chan struct{}, 1), closing: make(chan struct{})}
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
		b.cancel()
	}
}

// Closing is closed when the broker shuts down.
func (b *Broker) Closing() <-chan struct{} { return b.closing }

// SetLive records whether a notification source is connected; while it is,
// the watcher looks only at the floor interval. Either way it looks at once:
// for what came before the source connected, or what it may have dropped.
func (b *Broker) SetLive(live bool) {
	if b.live.Swap(live) != live {
		b.poke()
	}
}

// poke tells the watcher to look now.
func (b *Broker) poke() {
	select {
	case b.look <- struct{}{}:
	default:
	}
}

// Live reports whether a notification source is connected.
func (b *Broker) Live() bool { return b.live.Load() }

// Wake tells the readers of jobs, if any, that they have new events. It
// does not keep jobIDs (the store's OnEvents hands it its own slice).
func (b *Broker) Wake(jobIDs ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range jobIDs {
		if f := b.feeds[id]; f != nil {
			f.need(math.MaxInt64)
		}
	}
}

// Publish hands the readers of the events' jobs, if any, events just
// committed (the store's OnEvents on SQLite): a reader appends those that
// continue its log without reading it back, and reads the log for a gap.
// The events may be kept; the slice is not.
func (b *Broker) Publish(evs ...job.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range evs {
		if f := b.feeds[e.JobID]; f != nil {
			f.offer(e)
		}
	}
}

// WakeAll wakes every reader.
func (b *Broker) WakeAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, f := range b.feeds {
		f.need(math.MaxInt64)
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
		if !b.watching {
			b.watching = true
			b.wg.Add(1)
			go b.watch()
		}
		if len(b.feeds) == 1 {
			select {
			case b.watched <- struct{}{}:
			default:
			}
			b.poke() // the watcher waits while no job is watched
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
		f.cancel()
	}
}

// watch is the broker's one watcher. Every PollInterval, or FloorInterval
// while a notification source is live, and whenever poked, it asks the store
// for the event_seq of every watched job that has not ended, in one query per
// WatchBatch jobs, and wakes the readers whose job has events they have not
// read. It waits while no job is watched.
func (b *Broker) watch() {
	defer b.wg.Done()
	var w watchBuf
	t := time.NewTimer(b.cfg.PollInterval)
	defer t.Stop()
	for {
		interval := b.cfg.PollInterval
		if b.live.Load() {
			interval = b.cfg.FloorInterval
		}
		t.Reset(interval)
		select {
		case <-b.closing:
			return
		case <-b.look:
		case <-t.C:
		}
		if b.lookOnce(&w) {
			continue
		}
		select { // nothing watched: wait for Subscribe's poke
		case <-b.closing:
			return
		case <-b.look:
		}
	}
}

// watchBuf is the watcher's memory, reused from one look to the next.
type watchBuf struct {
	feeds   []*feed
	ids     []string
	failing bool // the last query failed (logged once until one succeeds)
}

// lookOnce asks the store about every watched job that has not ended and
// wakes those with unread events; it reports whether any job is watched.
func (b *Broker) lookOnce(w *watchBuf) bool {
	b.mu.Lock()
	watched := len(b.feeds) > 0
	for _, f := range b.feeds {
		if !f.isTerminal() {
			w.feeds = append(w.feeds, f)
		}
	}
	b.mu.Unlock()
	defer func() {
		clear(w.feeds) // no reference to a released feed outlives the look
		w.feeds = w.feeds[:0]
	}()
	for start := 0; start < len(w.feeds); start += b.cfg.WatchBatch {
		part := w.feeds[start:min(start+b.cfg.WatchBatch, len(w.feeds))]
		w.ids = w.ids[:0]
		for _, f := range part {
			w.ids = append(w.ids, f.jobID)
		}
		seqs, err := b.src.EventSeqs(b.ctx, w.ids)
		if err != nil {
			if b.ctx.Err() == nil && !w.failing {
				b.log.Warn("Looking for new job events failed; retrying", "jobs", len(w.feeds), "err", err)
			}
			w.failing = true
			break
		}
		if w.failing {
			b.log.Info("Looking for new job events works again", "jobs", len(w.feeds))
			w.failing = false
		}
		for _, f := range part {
			if seq := seqs[f.jobID]; seq > f.readSeq() {
				f.need(seq)
			}
		}
	}
	clear(w.ids)
	return watched
}

// feed is one job's reader and the events it has read so far. Its log starts
// at seq 1, so subscribers that resume from any point are served from memory.
type feed struct {
	b      *Broker
	jobID  string
	refs   int             // guarded by b.mu
	ctx    context.Context // of its reads; cancelled with its last subscriber or by Close
	cancel context.CancelFunc
	wakec  chan struct{}
	// wanted is the highest seq known to be in the database (MaxInt64: read
	// to see); the reader reads the log while it has read less.
	wanted atomic.Int64
	// offered are committed events handed in by Publish, not yet taken.
	offerMu sync.Mutex
	offered []job.Event
	// snap is replaced, never changed, when the reader appends: a thousand
	// subscribers woken at once read it without contending for a lock.
	snap atomic.Pointer[snapshot]
}

// snapshot is the log as far as it has been read. Slices only grow by
// appending to a new snapshot, so an older one stays valid.
type snapshot struct {
	// log is seq 1..len(log), each event by its head: the event itself is
	// kept only as its frame, encoded once for every subscriber. A watched
	// generation holds hundreds of script events, and 200 of them held
	// every event twice (the event and its frame): 30 MB of serve's heap at
	// 1,000 followers (bench/README.md, issue 18).
	log []eventHead
	// frames are the last events of log encoded once as SSE events, for
	// every subscriber: frames[i] is the event of seq base+1+i. Only the
	// last keptFrames (to 2×keptFrames) are kept: subscribers keep up, and
	// one further behind (a client that resumes from an old id, or opens a
	// long job's stream) reads the rest from the store (nextFrames). 200
	// generations' every frame was 18 MB of serve's heap at 1,000 followers,
	// which the collector, held to GOMEMLIMIT, paid for in lag
	// (bench/README.md, issue 18).
	frames   [][]byte
	base     int64
	terminal bool          // log ends with the job's terminal event
	changed  chan struct{} // closed when a newer snapshot is published
}

// keptFrames is how many of a job's last events the feed keeps encoded:
// about ten seconds of a streaming generation's checkpoints.
const keptFrames = 128

func newFeed(b *Broker, jobID string) *feed {
	f := &feed{b: b, jobID: jobID, wakec: make(chan struct{}, 1)}
	f.wanted.Store(math.MaxInt64) // its first read
	f.ctx, f.cancel = context.WithCancel(b.ctx)
	f.snap.Store(&snapshot{changed: make(chan struct{})})
	return f
}

// need tells the reader that the log holds seq: it reads up to there.
func (f *feed) need(seq int64) {
	for {
		cur := f.wanted.Load()
		if cur >= seq || f.wanted.CompareAndSwap(cur, seq) {
			break
		}
	}
	f.wake()
}

// offer hands the reader a committed event.
func (f *feed) offer(e job.Event) {
	f.offerMu.Lock()
	f.offered = append(f.offered, e)
	f.offerMu.Unlock()
	f.wake()
}

func (f *feed) wake() {
	select {
	case f.wakec <- struct{}{}:
	default:
	}
}

// run reads the job's log when the feed starts and whenever it is woken —
// by a notification or by the watcher — and appends the events offered to
// it, until its last subscriber leaves or the broker closes. It has no timer
// of its own.
func (f *feed) run() {
	defer f.b.wg.Done()
	defer f.cancel()
	for {
		f.takeOffered()
		if !f.isTerminal() && f.readSeq() < f.wanted.Load() {
			// Whatever is asked for from now on, the read below may miss.
			f.wanted.Store(0)
			for !f.isTerminal() && f.read(f.ctx) {
			}
		}
		select {
		case <-f.ctx.Done():
			return
		case <-f.wakec:
		}
	}
}

func (f *feed) isTerminal() bool { return f.snap.Load().terminal }

// readSeq is the seq of the last event read.
func (f *feed) readSeq() int64 { return int64(len(f.snap.Load().log)) }

// takeOffered appends the offered events that continue the log; one
// beyond its end means events it was not offered: the log is read. Only the
// feed's goroutine calls it.
func (f *feed) takeOffered() {
	f.offerMu.Lock()
	evs := f.offered
	f.offered = nil
	f.offerMu.Unlock()
	if len(evs) == 0 {
		return
	}
	if _, gap := f.append(evs); gap {
		f.need(math.MaxInt64)
	}
}

// read appends what follows the log's last seq; it reports whether a full
// batch came back (there may be more). Only the feed's goroutine calls it.
func (f *feed) read(ctx context.Context) bool {
	evs, err := f.b.src.ListEvents(ctx, f.jobID, f.readSeq(), f.b.cfg.BatchSize)
	if err != nil {
		if ctx.Err() == nil {
			f.b.log.Warn("Reading job events failed; retrying", "job_id", f.jobID, "err", err)
		}
		return false
	}
	n, _ := f.append(evs)
	return n == len(evs) && len(evs) == f.b.cfg.BatchSize && !f.isTerminal()
}

// append publishes a snapshot with the events of evs that continue the log,
// up to the terminal one; it returns how many of evs it took or found
// there already, and whether it stopped at a gap (an event past the log's
// end: the log is gapless, so what is missing is read again).
func (f *feed) append(evs []job.Event) (int, bool) {
	cur := f.snap.Load()
	next := &snapshot{log: cur.log, frames: cur.frames, base: cur.base, terminal: cur.terminal, changed: make(chan struct{})}
	n, gap := 0, false
	for _, e := range evs {
		if next.terminal {
			break
		}
		if e.Seq <= int64(len(next.log)) {
			n++ // read already
			continue
		}
		if e.Seq != int64(len(next.log))+1 {
			gap = true
			break
		}
		next.log = append(next.log, eventHead{seq: e.Seq, typ: e.Type, status: e.Status})
		next.frames = append(next.frames, encodeEvent(nil, e))
		n++
		if e.Status.Terminal() {
			next.terminal = true
		}
	}
	if len(next.frames) > 2*keptFrames {
		// A new array: older snapshots, which subscribers may be reading,
		// keep theirs.
		drop := len(next.frames) - keptFrames
		next.frames = append([][]byte(nil), next.frames[drop:]...)
		next.base += int64(drop)
	}
	if len(next.log) > len(cur.log) {
		f.snap.Store(next)
		close(cur.changed)
	}
	return n, gap
}

// eventHead is what the log keeps of an event besides its frame.
type eventHead struct {
	seq    int64
	typ    job.EventType
	status job.Status
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
// by their job id, seq, type and status (the rest of an event is in its
// frame, which is what an event stream sends), and a channel that is closed
// when more may be available. done is true once the terminal event has been
// handed out.
func (s *Subscription) Next() (evs []job.Event, more <-chan struct{}, done bool) {
	snap := s.f.snap.Load()
	if s.last < int64(len(snap.log)) {
		for _, h := range snap.log[s.last:] {
			evs = append(evs, job.Event{JobID: s.f.jobID, Seq: h.seq, Type: h.typ, Status: h.status})
		}
		s.last = int64(len(snap.log))
	}
	return evs, snap.changed, snap.terminal && s.last >= int64(len(snap.log))
}

// nextFrames is Next with each event already encoded as an SSE event. The
// events of a subscription further behind than the feed's frames are read
// from the store, a batch at a time, and more is then closed: there is more
// at once.
func (s *Subscription) nextFrames(ctx context.Context) (frames [][]byte, more <-chan struct{}, done bool, err error) {
	snap := s.f.snap.Load()
	if s.last < snap.base {
		return s.readFrames(ctx, snap.base)
	}
	if s.last < int64(len(snap.log)) {
		frames = snap.frames[s.last-snap.base:]
		s.last = int64(len(snap.log))
	}
	return frames, snap.changed, snap.terminal && s.last >= int64(len(snap.log)), nil
}

// closed is a channel that is always closed.
var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// readFrames reads from the store the events after the subscription's last
// one, up to seq upTo, which the feed has read already: the log is gapless,
// so they are the ones it read.
func (s *Subscription) readFrames(ctx context.Context, upTo int64) ([][]byte, <-chan struct{}, bool, error) {
	evs, err := s.f.b.src.ListEvents(ctx, s.f.jobID, s.last, int(min(upTo-s.last, int64(s.f.b.cfg.BatchSize))))
	if err != nil {
		return nil, nil, false, err
	}
	var frames [][]byte
	for _, e := range evs {
		if e.Seq != s.last+1 || e.Seq > upTo {
			break
		}
		frames = append(frames, encodeEvent(nil, e))
		s.last = e.Seq
	}
	if len(frames) == 0 {
		return nil, nil, false, fmt.Errorf("job %s: the store has no event %d, which its log read", s.f.jobID, s.last+1)
	}
	return frames, closed, false, nil
}

// Close ends the subscription.
func (s *Subscription) Close() {
	if !s.closed {
		s.closed = true
		s.f.b.release(s.f)
	}
}
