package store

import (
	"strconv"
	"strings"
	"sync"
)

// Dialect is what differs between the SQL drivers.
type Dialect struct {
	Name string
	// Numbered placeholders ($1, $2…) instead of '?'.
	NumberedPlaceholders bool
	// SkipLocked is appended to the claim's inner select (PostgreSQL's
	// "FOR UPDATE SKIP LOCKED"); SQLite has one writer and needs nothing.
	SkipLocked string
	// MigrationLock, when set, runs first in every migration transaction.
	MigrationLock string
	// Notify, when set, is an SQL expression that announces an appended event
	// of the job whose id is idExpr to the streams of other processes, at
	// commit (PostgreSQL's pg_notify). Inserts of events are wrapped in a
	// writable CTE that evaluates it once per job of the inserted rows.
	Notify func(idExpr string) string
	// WritableCTE: the database runs INSERT and UPDATE inside WITH, so a claim
	// with its event is one statement (PostgreSQL; SQLite runs them in a
	// transaction).
	WritableCTE bool
	// ArrayParams: the driver binds a Go slice as an SQL array, so a batch of
	// rows can travel as one array per column (PostgreSQL's unnest).
	ArrayParams bool
	// SingleWriter: the database takes one write transaction at a time
	// (SQLite), so one committer serves every group commit.
	SingleWriter bool
	// IsUniqueViolation recognises the driver's unique-constraint error.
	IsUniqueViolation func(error) bool
}

type rebinder struct {
	d     Dialect
	cache sync.Map
}

// rebind turns '?' placeholders into the dialect's, once per query text.
func (r *rebinder) rebind(q string) string {
	if !r.d.NumberedPlaceholders {
		return q
	}
	if v, ok := r.cache.Load(q); ok {
		return v.(string)
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	out := b.String()
	r.cache.Store(q, out)
	return out
}
