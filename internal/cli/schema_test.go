package cli

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/scriptgen/scriptgen/internal/testenv"
)

// The migration Job of deploy/kubernetes runs `scriptgen schema` before the
// replicas start: on a fresh PostgreSQL schema it applies every migration,
// and a second run (the next deployment's Job) finds nothing to do.
func TestSchemaMigratesAFreshPostgresDatabaseAndIsIdempotent(t *testing.T) {
	cleanEnv(t)
	url := testenv.PostgresURL(t)
	migrations, err := filepath.Glob("../store/postgres/migrations/*.sql")
	if err != nil || len(migrations) == 0 {
		t.Fatalf("no migrations found: %v", err)
	}
	for range 2 {
		code, out, errs := run("schema", "--database-url", url)
		if code != 0 || !strings.Contains(out, "The postgres database's schema is up to date.") {
			t.Fatalf("schema exited %d: %s %s", code, out, errs)
		}
	}
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var applied int
	if err := db.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&applied); err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	if applied != len(migrations) {
		t.Fatalf("%d migrations recorded, want %d", applied, len(migrations))
	}
	var jobs int
	if err := db.QueryRow(`SELECT count(*) FROM jobs`).Scan(&jobs); err != nil || jobs != 0 {
		t.Fatalf("jobs table: %d rows, %v", jobs, err)
	}
}

// Like serve, schema creates an SQLite database that does not exist yet.
func TestSchemaCreatesAnSQLiteDatabase(t *testing.T) {
	cleanEnv(t)
	path := filepath.Join(t.TempDir(), "new", "scriptgen.db")
	code, out, errs := run("schema", "--database-url", "sqlite:"+path)
	if code != 0 || !strings.Contains(out, "The sqlite database's schema is up to date.") {
		t.Fatalf("schema exited %d: %s %s", code, out, errs)
	}
	if code, _, errs := run("report", "--database-url", "sqlite:"+path); code != 1 || !strings.Contains(errs, "no rollback has been recorded yet") {
		t.Fatalf("report on the migrated database exited %d: %s", code, errs)
	}
}
