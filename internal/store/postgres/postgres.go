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
	neturl "net/url"
	"strconv"
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

// DefaultPoolSize is how many connections a process opens at most, unless
// its URL says otherwise (pool_max_conns).
const DefaultPoolSize = 32

// PoolSize reads the pool_max_conns parameter of url (pgxpool's name for it),
// which PostgreSQL itself must not see, and returns url without it: a process
// opens at most that many connections (DefaultPoolSize without it), so that
// replicas and workers together stay under the server's max_connections.
func PoolSize(url string) (string, int, error) {
	u, err := neturl.Parse(url)
	if err != nil {
		// Not err itself: it quotes the URL, password and all.
		var ue *neturl.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", 0, fmt.Errorf("DATABASE_URL is not a valid URL: %w", err)
	}
	q := u.Query()
	if !q.Has("pool_max_conns") {
		return url, DefaultPoolSize, nil
	}
	v := q.Get("pool_max_conns")
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 || len(q["pool_max_conns"]) > 1 {
		return "", 0, fmt.Errorf("DATABASE_URL: pool_max_conns %q must be one integer from 1 to 1000", v)
	}
	q.Del("pool_max_conns")
	u.RawQuery = q.Encode()
	return u.String(), n, nil
}

// Open connects to url (postgres://…) and migrates the database.
func Open(ctx context.Context, url string, clk clock.Clock) (*Store, error) {
	url, size, err := PoolSize(url)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	db.SetMaxOpenConns(size)
	db.SetMaxIdleConns(size)
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
