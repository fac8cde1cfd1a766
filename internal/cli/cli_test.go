package cli

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

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
	if code := Run([]string{"serve", "--no-such-flag"}, &out, &errs); code != 1 {
		t.Fatalf("an unknown flag exited %d, want 1", code)
	}
}

func TestReportTakesItsIDBeforeOrAfterTheFlags(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "r.db")
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
	if code := Run([]string{"report", "a", "b", "--database-url", db}, &out, &errs); code != 1 || !strings.Contains(errs.String(), "one report id at most") {
		t.Fatalf("two ids exited %d: %s", code, errs.String())
	}
}
