package store

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// Migrate applies the embedded migrations of fsys (files NNN_name.sql) that the
// database has not seen yet, each in its own transaction.
func Migrate(ctx context.Context, db *sql.DB, fsys fs.FS, d Dialect) error {
	if err := applyMigration(ctx, db, nil, d, 0, "schema_migrations",
		`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)`); err != nil {
		return err
	}
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	rb := &rebinder{d: d}
	for _, name := range names {
		version, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: name must start with a number", name)
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		if err := applyMigration(ctx, db, rb, d, version, name, string(body)); err != nil {
			return err
		}
	}
	return nil
}

// applyMigration runs one migration under the dialect's migration lock, so that
// replicas starting together apply it once. A nil rebinder marks the bootstrap
// of schema_migrations itself, which is idempotent and not recorded.
func applyMigration(ctx context.Context, db *sql.DB, rb *rebinder, d Dialect, version int, name, body string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if d.MigrationLock != "" {
		if _, err := tx.ExecContext(ctx, d.MigrationLock); err != nil {
			return fmt.Errorf("take migration lock: %w", err)
		}
	}
	if rb == nil {
		if _, err := tx.ExecContext(ctx, body); err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		return tx.Commit()
	}
	var seen int
	if err := tx.QueryRowContext(ctx, rb.rebind(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), version).Scan(&seen); err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}
	if seen > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return fmt.Errorf("migration %s: %w", name, err)
	}
	if _, err := tx.ExecContext(ctx, rb.rebind(`INSERT INTO schema_migrations (version, name) VALUES (?, ?)`), version, name); err != nil {
		return fmt.Errorf("record migration %s: %w", name, err)
	}
	return tx.Commit()
}
