package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// IsUnavailable reports whether err says that the database cannot be reached
// or cannot write right now, rather than that the request was wrong: the API
// answers such an error 503 (database_unavailable, with Retry-After), not 500,
// and the server counts it as writes failing (Server.WriteFailed).
func IsUnavailable(err error) bool { return UnavailableClass(err) != "" }

// UnavailableClass names, in a few words, why err says the database is
// unavailable ("cannot connect", "disk full", "database locked"…), or is ""
// when it does not say so. What it recognises:
//
//   - no connection: pgx's *pgconn.ConnectError, net errors, a closed pool or
//     connection (database/sql's "database is closed", pgconn.ErrConnClosed),
//     driver.ErrBadConn;
//   - no answer in time: context.DeadlineExceeded, however wrapped (waiting
//     for a pooled connection ends with it, and so does a statement the
//     database did not finish in the time given); context.Canceled is the
//     caller leaving and is not recognised;
//   - PostgreSQL refusing: the error classes 08 (connection exception), 53
//     (insufficient resources: disk full, out of memory, too many
//     connections), 58 (system error: I/O), 57P01-57P03 (shutting down,
//     starting up) and 25006 (a read-only transaction: a standby after a
//     failover);
//   - SQLite refusing: SQLITE_FULL, SQLITE_BUSY and SQLITE_LOCKED (which
//     reach the caller only once the busy timeout has run out), SQLITE_IOERR,
//     SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_NOMEM.
func UnavailableClass(err error) string {
	if err == nil {
		return ""
	}
	if c := sqliteClass(err); c != "" {
		return c
	}
	if c := postgresClass(err); c != "" {
		return c
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		return "cannot connect"
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, pgconn.ErrConnClosed):
		return "connection lost"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.As(err, &ne):
		return "network error"
	case strings.Contains(err.Error(), "sql: database is closed"):
		// database/sql's errDBClosed is not exported.
		return "database closed"
	}
	return ""
}

func sqliteClass(err error) string {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return ""
	}
	// Extended codes (SQLITE_IOERR_WRITE, SQLITE_READONLY_DBMOVED…) carry
	// their primary code in the low byte.
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_FULL:
		return "disk full"
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return "database locked"
	case sqlite3.SQLITE_IOERR:
		return "I/O error"
	case sqlite3.SQLITE_READONLY:
		return "read-only"
	case sqlite3.SQLITE_CANTOPEN:
		return "cannot open the database file"
	case sqlite3.SQLITE_NOMEM:
		return "out of memory"
	}
	return ""
}

func postgresClass(err error) string {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return ""
	}
	switch {
	case pe.Code == "53100":
		return "disk full"
	case pe.Code == "53200":
		return "out of memory"
	case pe.Code == "53300":
		return "too many connections"
	case strings.HasPrefix(pe.Code, "53"):
		return "insufficient resources"
	case strings.HasPrefix(pe.Code, "08"):
		return "connection lost"
	case strings.HasPrefix(pe.Code, "58"):
		return "I/O error"
	case pe.Code == "57P01", pe.Code == "57P02":
		// Also what a connection ended by pg_terminate_backend hears.
		return "connection terminated by the server"
	case pe.Code == "57P03":
		return "database starting up"
	case pe.Code == "25006":
		return "read-only"
	}
	return ""
}
