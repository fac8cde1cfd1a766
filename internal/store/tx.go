package store

import (
	"context"
	"database/sql"
	"sync"

	"github.com/scriptgen/scriptgen/internal/job"
)

// Tx is a write transaction whose statements are prepared once per query
// text and reused: parsing SQL was a third of a submission's cost on SQLite.
type Tx struct {
	*sql.Tx
	s      *SQL
	events []job.Event // the events it appended, for OnEvents (onevents.go)
}

// The writer caches statements up to this length — multi-row statements of a
// group commit come in as many lengths as batch sizes — and at most
// maxCachedStmts of them, so that the cache stays a few megabytes.
const (
	maxCachedQuery = 32768
	maxCachedStmts = 256
)

type stmtCache struct {
	mu     sync.Mutex
	stmts  map[string]*sql.Stmt
	wanted map[string]bool
}

// prepared returns the writer's statement for q, or nil the first time: a
// statement cannot be prepared on the pool while this transaction may hold its
// only connection, so it is prepared once the transaction is over.
func (s *SQL) prepared(q string) *sql.Stmt {
	if len(q) > maxCachedQuery {
		return nil // long generated lists (migrations) vary in length: not worth keeping
	}
	s.stmts.mu.Lock()
	defer s.stmts.mu.Unlock()
	if st, ok := s.stmts.stmts[q]; ok {
		return st
	}
	if len(s.stmts.stmts)+len(s.stmts.wanted) >= maxCachedStmts {
		return nil
	}
	if s.stmts.wanted == nil {
		s.stmts.wanted = map[string]bool{}
	}
	s.stmts.wanted[q] = true
	return nil
}

// prepareWanted prepares the statements transactions asked for.
func (s *SQL) prepareWanted(ctx context.Context) {
	s.stmts.mu.Lock()
	wanted := s.stmts.wanted
	s.stmts.wanted = nil
	s.stmts.mu.Unlock()
	for q := range wanted {
		st, err := s.W.PrepareContext(ctx, q)
		if err != nil {
			continue // it runs unprepared
		}
		s.stmts.mu.Lock()
		if s.stmts.stmts == nil {
			s.stmts.stmts = map[string]*sql.Stmt{}
		}
		if _, dup := s.stmts.stmts[q]; dup {
			st.Close()
		} else {
			s.stmts.stmts[q] = st
		}
		s.stmts.mu.Unlock()
	}
}

// ClearCaches drops the prepared statements (POST /api/admin/cleanup).
func (s *SQL) ClearCaches() { s.closeStatements() }

func (s *SQL) closeStatements() {
	s.stmts.mu.Lock()
	for _, st := range s.stmts.stmts {
		st.Close()
	}
	s.stmts.stmts = nil
	s.stmts.mu.Unlock()
	s.reads.mu.Lock()
	for _, st := range s.reads.stmts {
		st.Close()
	}
	s.reads.stmts = nil
	s.reads.mu.Unlock()
}

// ExecContext runs q as a cached statement of the transaction.
func (t *Tx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if st := t.s.prepared(q); st != nil {
		return t.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, q, args...)
}

// QueryContext runs q as a cached statement of the transaction.
func (t *Tx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := t.s.prepared(q); st != nil {
		return t.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, q, args...)
}

// QueryRowContext runs q as a cached statement of the transaction.
func (t *Tx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := t.s.prepared(q); st != nil {
		return t.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, q, args...)
}

// readStmts caches the reader pool's prepared statements.
type readStmts struct {
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

func (s *SQL) readStmt(ctx context.Context, q string) *sql.Stmt {
	if len(q) > maxCachedQuery {
		return nil
	}
	s.reads.mu.Lock()
	defer s.reads.mu.Unlock()
	if st, ok := s.reads.stmts[q]; ok {
		return st
	}
	st, err := s.R.PrepareContext(ctx, q)
	if err != nil {
		return nil
	}
	if s.reads.stmts == nil {
		s.reads.stmts = map[string]*sql.Stmt{}
	}
	s.reads.stmts[q] = st
	return st
}

// query runs a read ('?' placeholders) as a cached statement of the reader pool.
func (s *SQL) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	q = s.Q(q)
	if st := s.readStmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return s.R.QueryContext(ctx, q, args...)
}

// queryRow is query for one row.
func (s *SQL) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	q = s.Q(q)
	if st := s.readStmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.R.QueryRowContext(ctx, q, args...)
}
