// Package database picks the store driver from DATABASE_URL: an SQLite file by
// default, PostgreSQL for postgres:// URLs.
package database

import (
	"context"
	"strings"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/store/postgres"
	"github.com/scriptgen/scriptgen/internal/store/sqlite"
)

// DefaultURL is the SQLite file used when DATABASE_URL is unset.
const DefaultURL = "sqlite:./data/scriptgen.db"

// Open opens and migrates the database that url names: postgres://… or
// postgresql://… for PostgreSQL; sqlite:PATH, file:PATH or a plain path for SQLite.
func Open(ctx context.Context, url string, clk clock.Clock) (store.Store, error) {
	if url == "" {
		url = DefaultURL
	}
	if strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://") {
		return postgres.Open(ctx, url, clk)
	}
	path := strings.TrimPrefix(strings.TrimPrefix(url, "sqlite:"), "file:")
	path = strings.TrimPrefix(path, "//")
	return sqlite.Open(ctx, path, clk)
}
