package cli

import (
	"slices"
	"strings"
	"testing"

	"github.com/scriptgen/scriptgen/internal/config"
)

// ownFlags are each command's own flags, as its --help must show them first.
// A new command gets its line here.
var ownFlags = map[string][]string{
	"serve":       nil,
	"worker":      nil,
	"rollback":    {"json", "reason"},
	"rollforward": {"force", "percent", "reason"},
	"migrate":     {"list-failed", "retry-failed", "source", "target"},
	"verify":      {"flag-stale-after", "json", "url"},
	"status":      {"interval", "url", "watch"},
	"jobs":        {"cancel-project", "limit", "retry", "status", "url"},
	"report":      nil,
	"schema":      nil,
	"version":     nil,
	"keys":        {"json", "name", "projects", "tenant"},
	"purge":       {"batch", "older-than"},
}

func TestEachCommandsHelpShowsItsOwnFlagsThenTheServerSettings(t *testing.T) {
	cleanEnv(t)
	for _, c := range commands() {
		own, listed := ownFlags[c.name]
		if !listed {
			t.Errorf("command %s: give its own flags in ownFlags", c.name)
			continue
		}
		code, out, help := run(c.name, "--help")
		if code != 0 || out != "" {
			t.Errorf("%s --help exited %d, stdout %q", c.name, code, out)
		}
		usage := "Usage: scriptgen " + c.name
		if !strings.HasPrefix(help, usage) {
			t.Errorf("%s --help does not start with %q:\n%s", c.name, usage, help)
			continue
		}
		// The summary comes next, as a sentence.
		if first := strings.SplitN(help, "\n\n", 3)[1]; !strings.EqualFold(strings.Join(strings.Fields(first), " "), c.summary+".") {
			t.Errorf("%s --help: second paragraph %q, want the summary %q", c.name, first, c.summary)
		}
		heading := strings.Index(help, config.SettingsHeading)
		if c.noSettings {
			if heading >= 0 || strings.Contains(help, "--database-url") {
				t.Errorf("%s takes no server settings, yet its help lists them:\n%s", c.name, help)
			}
			heading = len(help)
		} else if heading < 0 {
			t.Errorf("%s --help has no %q:\n%s", c.name, config.SettingsHeading, help)
			continue
		}
		flags := strings.Index(help, "\nFlags:\n")
		if len(own) == 0 && flags >= 0 {
			t.Errorf("%s --help shows own flags, want none:\n%s", c.name, help)
		}
		if len(own) > 0 && (flags < 0 || flags > heading) {
			t.Errorf("%s --help: its own flags are not before the server settings:\n%s", c.name, help)
		}
		for _, f := range own {
			if i := strings.Index(help, "\n  --"+f); i < flags || i > heading {
				t.Errorf("%s --help: --%s is not among its own flags:\n%s", c.name, f, help)
			}
		}
		if c.noSettings {
			continue
		}
		// The settings it reads are documented after the heading; the others
		// are only named, after them.
		settings := help[heading:]
		for _, env := range config.Names() {
			reads := c.settings == nil || slices.Contains(c.settings, env)
			documented := strings.Contains(settings, "\n  --"+config.FlagName(env)+" ") && strings.Contains(settings, "$"+env)
			named := strings.Contains(settings, "--"+config.FlagName(env))
			if reads != documented || !named {
				t.Errorf("%s --help: %s documented %v, named %v; it reads it: %v\n%s", c.name, env, documented, named, reads, settings)
			}
		}
	}
}

func TestVersionHelpSaysWhatItPrints(t *testing.T) {
	code, _, help := run("version", "--help")
	if code != 0 {
		t.Fatalf("version --help exited %d", code)
	}
	flat := strings.Join(strings.Fields(help), " ")
	for _, want := range []string{"Usage: scriptgen version", "version stamped at build time", versionVar, "pseudo-version Go stamps from the commit", "first 12 hex digits of the commit", "module version", "no flags, no arguments"} {
		if !strings.Contains(flat, want) {
			t.Errorf("version --help does not say %q:\n%s", want, help)
		}
	}
	if code, _, errs := run("version", "--database-url", "x"); code != 2 || !strings.Contains(errs, "unknown flag --database-url") {
		t.Errorf("version --database-url x exited %d: %s", code, errs)
	}
}

func TestTopHelpListsTheCommands(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		code, out, help := run(args...)
		if code != 0 || out != "" || !strings.HasPrefix(help, "Usage: scriptgen <command>") {
			t.Fatalf("scriptgen %s exited %d:\n%s", args[0], code, help)
		}
		for _, c := range commands() {
			if !strings.Contains(help, "\n  "+c.name+strings.Repeat(" ", 13-len(c.name))+c.summary+"\n") {
				t.Errorf("scriptgen %s does not list %s with its summary:\n%s", args[0], c.name, help)
			}
		}
	}
	if code, _, help := run(); code != 2 || !strings.HasPrefix(help, "Usage: scriptgen <command>") {
		t.Errorf("scriptgen alone exited %d:\n%s", code, help)
	}
	_, _, want := run("report", "--help")
	if code, _, help := run("help", "report"); code != 0 || help != want {
		t.Errorf("scriptgen help report exited %d:\n%s\nwant:\n%s", code, help, want)
	}
}

func TestCommandLineMistakesExit2WithAClearError(t *testing.T) {
	cleanEnv(t)
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"bogus"}, []string{`scriptgen: unknown command "bogus"`, "Usage: scriptgen <command>"}},
		{[]string{"help", "bogus"}, []string{`scriptgen: unknown command "bogus"`}},
		{[]string{"--database-url", "x", "report"}, []string{"scriptgen: --database-url before a command: flags go after it", "scriptgen help"}},
		{[]string{"report", "--no-such-flag"}, []string{"scriptgen report: unknown flag --no-such-flag\nRun 'scriptgen report --help' for its usage.\n"}},
		{[]string{"rollback", "--reason"}, []string{"scriptgen rollback: --reason needs a value\n"}},
		{[]string{"status", "--watch=maybe"}, []string{`scriptgen status: invalid boolean value "maybe" for --watch: `}},
		{[]string{"rollforward", "--percent", "x"}, []string{`scriptgen rollforward: invalid value "x" for --percent: want a whole number from 0 to 100`}},
		{[]string{"rollforward"}, []string{"scriptgen rollforward: --percent is required, from 0 to 100"}},
		{[]string{"serve", "extra"}, []string{`scriptgen serve: takes no arguments, got ["extra"]`}},
	}
	for _, tt := range tests {
		code, out, errs := run(tt.args...)
		if code != 2 || out != "" {
			t.Errorf("%q exited %d, want 2; stdout %q", tt.args, code, out)
		}
		for _, want := range tt.want {
			if !strings.Contains(errs, want) {
				t.Errorf("%q printed %q, want %q", tt.args, errs, want)
			}
		}
		if strings.Contains(errs, config.SettingsHeading) {
			t.Errorf("%q printed the whole help: %s", tt.args, errs)
		}
	}
}

func TestEveryCommandTakesEverySettingFlag(t *testing.T) {
	cleanEnv(t)
	db := newDB(t)
	// report reads only DATABASE_URL, but takes the others, as before.
	code, _, errs := run("report", "--max-workers", "3", "--listen-addr", ":1", "--log-format", "json", "--database-url", db)
	if code != 1 || !strings.Contains(errs, "no rollback has been recorded yet") {
		t.Fatalf("report with the flags of other settings exited %d: %s", code, errs)
	}
	t.Setenv("GENERATOR", "gpt")
	if code, _, errs := run("report", "--database-url", db); code != 2 || !strings.Contains(errs, `GENERATOR="gpt"`) {
		t.Fatalf("report with a bad GENERATOR exited %d: %s", code, errs)
	}
	if code, out, errs := run("version"); code != 0 || out == "" {
		t.Fatalf("version with a bad GENERATOR exited %d: %s", code, errs)
	}
}
