package store

import "sync/atomic"

// eventHook is the one function of this process told of committed events.
type eventHook struct {
	fn atomic.Pointer[func(jobIDs ...string)]
}

// OnEvents registers fn (nil: none) to be told, after each commit that
// appended events to jobs' logs, the ids of those jobs: a job once per event,
// in the order they were appended. It is how a single-process SQLite server
// wakes its streams at once rather than at their next poll (PostgreSQL
// announces events to every process with NOTIFY instead). fn runs on the
// committing goroutine, so it must be quick, and must not keep jobIDs.
//
// Every event that SQLite appends is appended in a transaction (inTx, the
// group commits among them), so fn hears of all of them. On PostgreSQL the
// statements that append and announce events on their own (group-committed
// submissions, claims and completions) do not tell fn: there NOTIFY is the
// source, and fn is best left unset.
func (s *SQL) OnEvents(fn func(jobIDs ...string)) {
	if fn == nil {
		s.onEvents.fn.Store(nil)
		return
	}
	s.onEvents.fn.Store(&fn)
}

// appended notes, when someone listens, that ex — a transaction — appended
// an event of job id.
func (s *SQL) appended(ex execer, id string) {
	if s.onEvents.fn.Load() == nil {
		return
	}
	if tx, ok := ex.(*Tx); ok {
		tx.events = append(tx.events, id)
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
