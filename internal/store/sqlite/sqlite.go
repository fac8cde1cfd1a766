// Package sqlite is the embedded store driver: one file under ./data, one
// writer connection in WAL mode beside a pool of readers, so that `scriptgen
// serve` needs nothing else installed. It keeps the store's invariants by
// serialising writes; other processes (the CLI) wait on the busy timeout.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Dialect is SQLite's.
var Dialect = store.Dialect{
	Name:         "sqlite",
	SingleWriter: true,
	IsUniqueViolation: func(err error) bool {
		var se *sqlite.Error
		return errors.As(err, &se) && (se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
	},
}

// Store is the SQLite driver.
type Store struct {
	*store.SQL
	ckpt *checkpointer
}

// Open opens (creating if needed) the database file at path and migrates it.
func Open(ctx context.Context, path string, clk clock.Clock) (*Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
	}
	w, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	r, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	sub, _ := fs.Sub(migrations, "migrations")
	if err := store.Migrate(ctx, w, sub, Dialect); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	c, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	return &Store{SQL: store.NewSQL(w, r, Dialect, clk), ckpt: startCheckpointer(c)}, nil
}

// Close closes the store; the checkpointer's connection is the last to go.
func (s *Store) Close() error {
	err := s.SQL.Close()
	return errors.Join(err, s.ckpt.Close())
}

func dsn(path string, readOnly bool) string {
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "wal_autocheckpoint(0)", "busy_timeout(15000)", "synchronous(NORMAL)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		// A statement that writes many rows inside a transaction keeps the
		// pages it changes in a statement journal, to undo itself alone if
		// it fails; left in a temporary file, that was a pwrite per page of
		// every batch of checkpoints (5 % of serve's CPU with 200
		// generations streaming, bench/README.md issue 18). In memory it
		// holds the pages one statement changes. Readers keep their sorts
		// on disk.
		q.Add("_pragma", "temp_store(MEMORY)")
	}
	return "file:" + strings.ReplaceAll(path, "?", "%3F") + "?" + q.Encode()
}
