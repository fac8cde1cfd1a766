// Package database picks the store driver from DATABASE_URL: an SQLite file by
// default, PostgreSQL for postgres:// URLs. A URL it cannot place is an error,
// never a new database: a typo must not leave an empty one behind.
package database

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/store/postgres"
	"github.com/scriptgen/scriptgen/internal/store/sqlite"
)

// DefaultURL is the SQLite file used when DATABASE_URL is unset.
const DefaultURL = "sqlite:./data/scriptgen.db"

// ErrNoDatabase is OpenExisting's answer for an SQLite file that does not exist.
var ErrNoDatabase = errors.New("no database")

// scheme matches the start of a URL such as mysql://…; a plain path has none.
var scheme = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*)://`)

// Open opens and migrates the database that url names: postgres://… or
// postgresql://… for PostgreSQL; sqlite:PATH, file:PATH or a plain path for
// SQLite, whose file and directory it creates if needed, as serve does on a
// fresh machine.
func Open(ctx context.Context, url string, clk clock.Clock) (store.Store, error) {
	return open(ctx, url, clk, true)
}

// OpenExisting is Open for commands that work on the database a service
// already uses (report, rollback, migrate…): it refuses an SQLite file that
// does not exist with ErrNoDatabase, where Open would create an empty one.
func OpenExisting(ctx context.Context, url string, clk clock.Clock) (store.Store, error) {
	return open(ctx, url, clk, false)
}

func open(ctx context.Context, url string, clk clock.Clock, create bool) (store.Store, error) {
	if url == "" {
		url = DefaultURL
	}
	isPostgres, path, err := parse(url)
	if err != nil {
		return nil, err
	}
	if isPostgres {
		return postgres.Open(ctx, url, clk)
	}
	if !create {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w at %s", ErrNoDatabase, path)
		} else if err != nil {
			return nil, fmt.Errorf("database %s: %w", path, err)
		}
	}
	return sqlite.Open(ctx, path, clk)
}

// parse tells a PostgreSQL URL from an SQLite path, and returns the path.
func parse(url string) (isPostgres bool, path string, err error) {
	if m := scheme.FindStringSubmatch(url); m != nil {
		switch m[1] {
		case "postgres", "postgresql":
			return true, "", nil
		case "sqlite", "file":
		default:
			// Only the scheme: the rest may hold a password.
			return false, "", fmt.Errorf("database URL scheme %q is not supported: want postgres://…, postgresql://…, sqlite:PATH, file:PATH or a plain path", m[1])
		}
	}
	path = strings.TrimPrefix(strings.TrimPrefix(url, "sqlite:"), "file:")
	path = strings.TrimPrefix(path, "//")
	if path == "" {
		return false, "", fmt.Errorf("database URL %q names no SQLite file", url)
	}
	return false, path, nil
}
