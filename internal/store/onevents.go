package store

import (
	"encoding/json"
	"sync/atomic"

	"github.com/scriptgen/scriptgen/internal/job"
)

// eventHook is the one function of this process told of committed events.
type eventHook struct {
	fn atomic.Pointer[func(evs ...job.Event)]
}

// OnEvents registers fn (nil: none) to be told, after each commit that
// appended events to jobs' logs, those events, in the order they were
// appended. It is how a single-process SQLite server hands its streams what
// was committed at once, without their reading it back (PostgreSQL
// announces events to every process with NOTIFY instead). fn runs on the
// committing goroutine, so it must be quick; it may keep the events but not
// the slice, and must not change them.
//
// Every event that SQLite appends is appended in a transaction (inTx, the
// group commits among them), so fn hears of all of them. On PostgreSQL the
// statements that append and announce events on their own (group-committed
// submissions, claims and completions) do not tell fn: there NOTIFY is the
// source, and fn is best left unset.
func (s *SQL) OnEvents(fn func(evs ...job.Event)) {
	if fn == nil {
		s.onEvents.fn.Store(nil)
		return
	}
	s.onEvents.fn.Store(&fn)
}

// appended notes, when someone listens, that ex — a transaction — appended
// event e.
func (s *SQL) appended(ex execer, e job.Event) {
	if s.onEvents.fn.Load() == nil {
		return
	}
	if tx, ok := ex.(*Tx); ok {
		// As ListEvents would read it back.
		if len(e.Data) == 0 {
			e.Data = json.RawMessage("null")
		}
		e.CreatedAt = fromMicros(micros(e.CreatedAt))
		tx.events = append(tx.events, e)
	}
}

// committed tells the listener of the events tx appended, now committed.
func (s *SQL) committed(tx *Tx) {
	if len(tx.events) == 0 {
		return
	}
	if fn := s.onEvents.fn.Load(); fn != nil {
		(*fn)(tx.events...)
	}
	tx.events = nil
}
