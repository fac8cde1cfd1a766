// Package postgres is the store driver for more than one process or host:
// claims use FOR UPDATE SKIP LOCKED so that replicas never take the same job,
// and migrations run under an advisory lock so that replicas starting together
// apply each one once.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Dialect is PostgreSQL's.
var Dialect = store.Dialect{
	Name:                 "postgres",
	NumberedPlaceholders: true,
	SkipLocked:           "FOR UPDATE SKIP LOCKED",
	MigrationLock:        "SELECT pg_advisory_xact_lock(727224)",
	WritableCTE:          true,
	ArrayParams:          true,
	Notify:               func(id string) string { return "pg_notify('" + EventChannel + "', " + id + ")" },
	IsUniqueViolation: func(err error) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "23505"
	},
}

// EventChannel is the LISTEN/NOTIFY channel on which every appended job event
// is announced, with the job id as payload.
const EventChannel = "scriptgen_job_events"

// Store is the PostgreSQL driver.
type Store struct {
	*store.SQL
	URL string
}

// Open connects to url (postgres://…) and migrates the database.
func Open(ctx context.Context, url string, clk clock.Clock) (*Store, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	sub, _ := fs.Sub(migrations, "migrations")
	if err := store.Migrate(ctx, db, sub, Dialect); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate postgres: %w", err)
	}
	return &Store{SQL: store.NewSQL(db, db, Dialect, clk), URL: url}, nil
}
