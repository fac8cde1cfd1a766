package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/database"
	"github.com/scriptgen/scriptgen/internal/durable"
	"github.com/scriptgen/scriptgen/internal/rollback"
	"github.com/scriptgen/scriptgen/internal/store"
)

// run runs `scriptgen args…` in-process and returns its exit code, stdout and
// stderr.
func run(args ...string) (int, string, string) {
	var out, errs bytes.Buffer
	code := Run(args, &out, &errs)
	return code, out.String(), errs.String()
}

// cleanEnv unsets the settings a test's command line gives, so that the
// environment the tests run in cannot change the outcome.
func cleanEnv(t *testing.T) {
	for _, k := range []string{"DATABASE_URL", "REDIS_URL", "ADMIN_TOKEN"} {
		t.Setenv(k, "")
	}
}

// newDB returns the URL of a migrated SQLite database of the test's own, as
// serve leaves it.
func newDB(t *testing.T) string {
	t.Helper()
	url := "sqlite:" + filepath.Join(t.TempDir(), "scriptgen.db")
	st, err := database.Open(t.Context(), url, clock.Real{})
	if err != nil {
		t.Fatalf("create %s: %v", url, err)
	}
	st.Close()
	return url
}

func TestCommandHelpIsNotAFailure(t *testing.T) {
	for _, cmd := range []string{"serve", "worker", "rollback", "report", "verify"} {
		var out, errs bytes.Buffer
		if code := Run([]string{cmd, "--help"}, &out, &errs); code != 0 {
			t.Fatalf("scriptgen %s --help exited %d: %s", cmd, code, errs.String())
		}
		if !strings.Contains(errs.String(), "-database-url") || strings.Contains(errs.String(), "scriptgen "+cmd+":") {
			t.Fatalf("scriptgen %s --help printed:\n%s", cmd, errs.String())
		}
	}
	var out, errs bytes.Buffer
	if code := Run([]string{"serve", "--no-such-flag"}, &out, &errs); code != 2 {
		t.Fatalf("an unknown flag exited %d, want 2", code)
	}
	if code := Run([]string{"version", "--help"}, &out, &errs); code != 0 {
		t.Fatalf("scriptgen version --help exited %d", code)
	}
}

func TestReportTakesItsIDBeforeOrAfterTheFlags(t *testing.T) {
	db := newDB(t)
	for _, args := range [][]string{
		{"report", "no-such-report", "--database-url", db},
		{"report", "--database-url", db, "no-such-report"},
	} {
		var out, errs bytes.Buffer
		if code := Run(args, &out, &errs); code != 1 || !strings.Contains(errs.String(), "report no-such-report:") {
			t.Fatalf("%q exited %d: %s", args, code, errs.String())
		}
	}
	var out, errs bytes.Buffer
	if code := Run([]string{"report", "--database-url", db}, &out, &errs); code != 1 || !strings.Contains(errs.String(), "no rollback has been recorded yet") {
		t.Fatalf("report with a spaced flag and no id exited %d: %s", code, errs.String())
	}
	errs.Reset()
	if code := Run([]string{"report", "a", "b", "--database-url", db}, &out, &errs); code != 2 || !strings.Contains(errs.String(), "one report id at most") {
		t.Fatalf("two ids exited %d: %s", code, errs.String())
	}
}

func TestOperatorCommandsNeverCreateADatabase(t *testing.T) {
	cleanEnv(t)
	t.Chdir(t.TempDir()) // where the default, ./data/scriptgen.db, must not appear
	missing := filepath.Join(t.TempDir(), "no", "dir", "x.db")
	for _, args := range [][]string{
		{"report"},
		{"report", "rb-1"},
		{"migrate"},
		{"migrate", "--list-failed"},
		{"migrate", "--retry-failed", "all"},
		{"rollback", "--reason", "typo"},
		{"rollforward", "--percent", "10"},
	} {
		for _, db := range []struct{ url, path string }{
			{"", "./data/scriptgen.db"},
			{missing, missing},
			{"sqlite:" + missing, missing},
		} {
			a := args
			if db.url != "" {
				a = append(slices.Clone(args), "--database-url", db.url)
			}
			code, _, errs := run(a...)
			if want := "no database at " + db.path + "; set DATABASE_URL or --database-url"; code != 1 || !strings.Contains(errs, want) {
				t.Fatalf("%q exited %d, want 1 and %q: %s", a, code, want, errs)
			}
		}
	}
	code, _, errs := run("report", "--database-url", "mysql://x")
	if code != 1 || !strings.Contains(errs, `scheme "mysql" is not supported`) {
		t.Fatalf("report on mysql://x exited %d: %s", code, errs)
	}
	for _, dir := range []string{"data", "mysql:", filepath.Dir(filepath.Dir(missing))} {
		if _, err := os.Stat(dir); err == nil {
			t.Fatalf("%s was created", dir)
		}
	}
}

func TestMigrateRefusesBadOptions(t *testing.T) {
	cleanEnv(t)
	db := newDB(t)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--retry-failed", ""}, 2, "-retry-failed: want a job id or 'all'"},
		{[]string{"--retry-failed="}, 2, "-retry-failed: want a job id or 'all'"},
		{[]string{"--list-failed", "--source", "bogus"}, 2, `--source: unknown backend "bogus"`},
		{[]string{"--list-failed", "--target", "bogus"}, 2, `--target: unknown backend "bogus"`},
		{[]string{"--retry-failed", "all", "--source", "bogus"}, 2, `--source: unknown backend "bogus"`},
		{[]string{"--list-failed", "--retry-failed", "all"}, 2, "exclude each other"},
		{[]string{"--list-failed"}, 0, ""},
	}
	for _, tt := range tests {
		code, _, errs := run(append([]string{"migrate", "--database-url", db}, tt.args...)...)
		if code != tt.code || !strings.Contains(errs, tt.want) {
			t.Fatalf("migrate %q exited %d, want %d and %q: %s", tt.args, code, tt.code, tt.want, errs)
		}
	}
}

func TestRollbackRefusesABadReasonFirst(t *testing.T) {
	cleanEnv(t)
	db := newDB(t)
	for _, reason := range []string{"a\x07b", "a\xffb", strings.Repeat("a", 1001)} {
		for _, args := range [][]string{
			{"rollback", "--reason", reason},
			{"rollback", "--reason", reason, "--json"},
			{"rollforward", "--percent", "10", "--reason", reason},
		} {
			code, out, errs := run(append(args, "--database-url", db)...)
			if code != 2 || out != "" || !strings.Contains(errs, "reason: ") {
				t.Fatalf("%s with reason %q exited %d, want 2 and only an error; stdout:\n%s\nstderr:\n%s", args[0], reason, code, out, errs)
			}
		}
	}
	if code, _, errs := run("report", "--database-url", db); code != 1 || !strings.Contains(errs, "no rollback has been recorded yet") {
		t.Fatalf("a refused rollback left a record: report exited %d: %s", code, errs)
	}
}

func TestVersionTakesNoArguments(t *testing.T) {
	if code, out, errs := run("version"); code != 0 || out == "" {
		t.Fatalf("version exited %d: %s", code, errs)
	}
	if code, out, errs := run("version", "extra"); code != 2 || out != "" || !strings.Contains(errs, `takes no arguments, got ["extra"]`) {
		t.Fatalf("version extra exited %d: %s%s", code, out, errs)
	}
}

// TestRollbackSaysWhatToDoWithTheWorkers: the rollback leaves the durable
// workers running; its output says to stop them, how many are up, in the
// words of verify's check (rollback.StopWorkers), how, and where the runbook
// explains it. With none up it says only to verify. Then a roll-forward
// refused for want of Redis leaves the rollback as the report's latest record.
func TestRollbackSaysWhatToDoWithTheWorkers(t *testing.T) {
	cleanEnv(t)
	db := newDB(t)
	st, err := database.Open(t.Context(), db, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, id := range []string{"worker-a", "worker-b"} {
		if err := st.RegisterWorker(t.Context(), store.WorkerProcess{ID: id, Role: durable.RoleWorker, Host: "h", PID: 1}); err != nil {
			t.Fatal(err)
		}
	}
	beat := func() { // as live workers do, so that the rollback's count finds them up
		for _, id := range []string{"worker-a", "worker-b"} {
			if err := st.HeartbeatWorker(t.Context(), id, nil); err != nil {
				t.Error(err)
			}
		}
	}
	beat()
	stopBeats := make(chan struct{})
	beating := make(chan struct{})
	go func() {
		defer close(beating)
		for {
			select {
			case <-stopBeats:
				return
			case <-time.After(300 * time.Millisecond):
				beat()
			}
		}
	}()
	code, out, errs := run("rollback", "--reason", "workers crash-looping", "--database-url", db)
	close(stopBeats)
	<-beating
	if code != 0 {
		t.Fatalf("rollback exited %d: %s%s", code, out, errs)
	}
	for _, want := range []string{"Next: " + rollback.StopWorkers(2), "(the rollback does not stop them, and scriptgen verify fails until they stop)",
		"systemctl stop 'scriptgen-worker@*'", "kubectl scale deployment/scriptgen-worker --replicas=0", "docs/runbook.md step 4",
		"Next: " + rollback.VerifyStep} {
		if !strings.Contains(out, want) {
			t.Fatalf("rollback output lacks %q:\n%s", want, out)
		}
	}
	for _, id := range []string{"worker-a", "worker-b"} {
		if err := st.StopWorker(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	}
	if code, out, errs := run("rollback", "--reason", "again, workers stopped", "--database-url", db); code != 0 ||
		strings.Contains(out, "stop the durable workers") || !strings.Contains(out, "Next: "+rollback.VerifyStep) {
		t.Fatalf("rollback with the workers stopped exited %d, want no advice to stop them:\n%s%s", code, out, errs)
	}
	if code, out, _ := run("rollforward", "--percent", "10", "--reason", "too soon", "--database-url", db); code != 1 || !strings.Contains(out, "no durable side") {
		t.Fatalf("roll-forward without REDIS_URL exited %d: %s", code, out)
	}
	if code, out, errs := run("report", "--database-url", db); code != 0 || !strings.Contains(out, "kind: rollback") {
		t.Fatalf("report after a refused roll-forward exited %d, want the rollback's:\n%s%s", code, out, errs)
	}
}
