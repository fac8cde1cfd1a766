package config

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		check   func(*Config) bool
		wantErr bool
	}{
		{name: "defaults", check: func(c *Config) bool {
			return c.ListenAddr == "127.0.0.1:8002" && c.MaxWorkers == 4 && c.Auth == "auto" && c.MaxStreamsPerClient == 64 && c.DatabaseURL == "sqlite:./data/scriptgen.db" &&
				c.Generator == "template" && c.LeaseDuration == 30*time.Second && !c.KillSwitchOff()
		}},
		{name: "env", env: map[string]string{"MAX_WORKERS": "9", "LISTEN_ADDR": ":1"}, check: func(c *Config) bool {
			return c.MaxWorkers == 9 && c.ListenAddr == ":1"
		}},
		{name: "flag beats env", env: map[string]string{"MAX_WORKERS": "9"}, args: []string{"--max-workers", "2"}, check: func(c *Config) bool {
			return c.MaxWorkers == 2
		}},
		{name: "kill switch", env: map[string]string{"USE_DURABLE_WORKER": "false"}, check: func(c *Config) bool { return c.KillSwitchOff() }},
		{name: "second kill switch", env: map[string]string{"WORKER_SYSTEM_ENABLED": "0"}, check: func(c *Config) bool { return c.KillSwitchOff() }},
		{name: "bad switch", env: map[string]string{"USE_DURABLE_WORKER": "maybe"}, wantErr: true},
		{name: "bad workers", env: map[string]string{"MAX_WORKERS": "zero"}, wantErr: true},
		{name: "bad duration", args: []string{"--drain-timeout", "soon"}, wantErr: true},
		{name: "bad generator", env: map[string]string{"GENERATOR": "gpt"}, wantErr: true},
		{name: "stray argument", args: []string{"extra"}, wantErr: true},
		{name: "workers at the limit", env: map[string]string{"MAX_WORKERS": "1000"}, check: func(c *Config) bool { return c.MaxWorkers == 1000 }},
		{name: "workers beyond the limit", env: map[string]string{"MAX_WORKERS": "100000000"}, wantErr: true},
		{name: "memory trigger over 100 %", env: map[string]string{"ROLLBACK_MEMORY_PERCENT": "1000"}, wantErr: true},
		{name: "log level in capitals", env: map[string]string{"LOG_LEVEL": "WARN"}, check: func(c *Config) bool { return c.LogLevel == "WARN" }},
		{name: "bad log level", env: map[string]string{"LOG_LEVEL": "bogus"}, wantErr: true},
		{name: "bad log format", args: []string{"--log-format", "xml"}, wantErr: true},
		{name: "bad auth", env: map[string]string{"AUTH": "maybe"}, wantErr: true},
		{name: "auth off", env: map[string]string{"AUTH": "off"}, check: func(c *Config) bool { return c.AuthOff() }},
		{name: "origins", env: map[string]string{"ALLOWED_ORIGINS": "https://a.example, http://localhost:5173/"}, check: func(c *Config) bool {
			o := c.Origins()
			return len(o) == 2 && o[0] == "https://a.example" && o[1] == "http://localhost:5173"
		}},
		{name: "bad origin", env: map[string]string{"ALLOWED_ORIGINS": "a.example"}, wantErr: true},
		{name: "origin with a path", env: map[string]string{"ALLOWED_ORIGINS": "https://a.example/app"}, wantErr: true},
		{name: "zero means no cap", env: map[string]string{"MAX_STREAMS": "0", "TENANT_RATE": "0"}, check: func(c *Config) bool { return c.MaxStreams == 0 && c.TenantRate == 0 }},
		{name: "negative cap", env: map[string]string{"MAX_STREAMS": "-1"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("serve", tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("want an error, got %+v", c)
				}
				return
			}
			if err != nil || !tt.check(c) {
				t.Fatalf("config %+v, err %v", c, err)
			}
		})
	}
}

func TestParseArgsTakesArgumentsAmongFlags(t *testing.T) {
	for _, args := range [][]string{
		{"rb-1", "--max-workers", "3"},
		{"--max-workers", "3", "rb-1"},
		{"--max-workers=3", "rb-1"},
	} {
		c, rest, err := ParseArgs("report", args, func(string) string { return "" }, io.Discard)
		if err != nil || c.MaxWorkers != 3 || len(rest) != 1 || rest[0] != "rb-1" {
			t.Fatalf("ParseArgs(%q) = max workers %v, args %q, err %v; want 3, [rb-1]", args, c, rest, err)
		}
	}
	if _, rest, err := ParseArgs("report", []string{"a", "--max-workers", "2", "b"}, func(string) string { return "" }, io.Discard); err != nil ||
		len(rest) != 2 || rest[0] != "a" || rest[1] != "b" {
		t.Fatalf("two arguments: %q, %v", rest, err)
	}
}

func TestHelpDocumentsTheSettingsFromTheTable(t *testing.T) {
	cmd := Command{Name: "serve", Usage: "scriptgen serve [flags]", About: "Run it."}
	var b strings.Builder
	if _, err := cmd.Parse([]string{"--help"}, func(string) string { return "" }, &b); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	help := strings.Join(strings.Fields(b.String()), " ")
	if !strings.HasPrefix(help, "Usage: scriptgen serve [flags] Run it. "+SettingsHeading) {
		t.Fatalf("help:\n%s", b.String())
	}
	for _, o := range options {
		entry := "--" + FlagName(o.env) + " " + o.kind.typ + " $" + o.env
		if o.def != "" {
			entry += " default " + o.def
		}
		if !strings.Contains(help, entry+" "+strings.Join(strings.Fields(o.help), " ")) {
			t.Errorf("help does not document %s as %q and its help %q:\n%s", o.env, entry, o.help, b.String())
		}
	}
}

func TestHelpShowsOwnFlagsThenTheSettingsItReads(t *testing.T) {
	var n int
	cmd := Command{Name: "report", Usage: "scriptgen report [flags] [ID]", Settings: []string{"REDIS_URL"},
		Flags: func(fs *flag.FlagSet) { fs.IntVar(&n, "count", 7, "how many `N`") }}
	var b strings.Builder
	if _, _, err := cmd.ParseArgs([]string{"rb-1", "-h"}, func(string) string { return "" }, &b); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	help := b.String()
	own, heading := strings.Index(help, "\nFlags:\n  --count N  default 7\n        how many N\n"), strings.Index(help, SettingsHeading)
	redis, other := strings.Index(help, "  --redis-url string  $REDIS_URL\n"), strings.Index(help, "does not use")
	if own < 0 || heading < own || redis < heading || other < redis || strings.Contains(help, "$DATABASE_URL") ||
		!strings.Contains(help[other:], "--database-url, ") {
		t.Fatalf("help:\n%s", help)
	}
	// It still takes every setting.
	c, rest, err := cmd.ParseArgs([]string{"--max-workers", "3", "rb-1", "--count=2"}, func(string) string { return "" }, io.Discard)
	if err != nil || c.MaxWorkers != 3 || n != 2 || len(rest) != 1 {
		t.Fatalf("ParseArgs: %+v %q %v, count %d", c, rest, err, n)
	}
}

func TestNoSettingsTakesNone(t *testing.T) {
	cmd := Command{Name: "version", Usage: "scriptgen version", NoSettings: true}
	bad := func(string) string { return "bogus" } // every variable wrong: none is read
	if _, err := cmd.Parse(nil, bad, io.Discard); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if _, err := cmd.Parse([]string{"--database-url", "x"}, bad, io.Discard); err == nil || err.Error() != "unknown flag --database-url" {
		t.Fatalf("--database-url: %v", err)
	}
	var b strings.Builder
	cmd.Parse([]string{"--help"}, bad, &b)
	if b.String() != "Usage: scriptgen version\n" {
		t.Fatalf("help: %q", b.String())
	}
}

func TestFlagErrorsSayTwoDashes(t *testing.T) {
	for args, want := range map[string]string{
		"--bogus":             "unknown flag --bogus",
		"--max-workers":       "--max-workers needs a value",
		"--max-workers=x":     `invalid value "x" for --max-workers: must be a positive integer`,
		"--drain-timeout=-1s": `invalid value "-1s" for --drain-timeout: must be a duration such as 500ms or 30s`,
	} {
		_, err := Parse("serve", []string{args}, func(string) string { return "" }, io.Discard)
		if err == nil || err.Error() != want {
			t.Errorf("%s: %v, want %s", args, err, want)
		}
	}
}

func TestACommandReadingAnUnknownSettingPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	Command{Name: "x", Settings: []string{"NO_SUCH"}}.Parse(nil, func(string) string { return "" }, io.Discard)
}

// JOB_BACKOFF_BASE and JOB_BACKOFF_CAP: 1s and 1m by default, 0 retries at
// once, and a cap below the base or either beyond its bound is refused with
// an error that names the setting.
func TestBackoffSettings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    job.Backoff
		wantErr string
	}{
		{name: "defaults", want: job.Backoff{Base: time.Second, Cap: time.Minute}},
		{name: "set", env: map[string]string{"JOB_BACKOFF_BASE": "250ms", "JOB_BACKOFF_CAP": "10s"},
			want: job.Backoff{Base: 250 * time.Millisecond, Cap: 10 * time.Second}},
		{name: "zero base retries at once", env: map[string]string{"JOB_BACKOFF_BASE": "0"}, want: job.Backoff{Cap: time.Minute}},
		{name: "cap equal to the base", env: map[string]string{"JOB_BACKOFF_BASE": "1h", "JOB_BACKOFF_CAP": "1h"},
			want: job.Backoff{Base: time.Hour, Cap: time.Hour}},
		{name: "cap below the base", env: map[string]string{"JOB_BACKOFF_BASE": "2m"},
			wantErr: "JOB_BACKOFF_CAP=1m0s: must be at least JOB_BACKOFF_BASE (2m0s)"},
		{name: "base beyond its bound", env: map[string]string{"JOB_BACKOFF_BASE": "2h", "JOB_BACKOFF_CAP": "3h"},
			wantErr: "JOB_BACKOFF_BASE=2h0m0s: must be from 0 (retry at once) to 1h0m0s"},
		{name: "cap beyond its bound", env: map[string]string{"JOB_BACKOFF_CAP": "25h"},
			wantErr: "JOB_BACKOFF_CAP=25h0m0s: must be at least JOB_BACKOFF_BASE (1s) and at most 24h0m0s"},
		{name: "negative base", env: map[string]string{"JOB_BACKOFF_BASE": "-1s"}, wantErr: "JOB_BACKOFF_BASE=\"-1s\": must be a duration"},
		{name: "not a duration", env: map[string]string{"JOB_BACKOFF_CAP": "soon"}, wantErr: "JOB_BACKOFF_CAP=\"soon\": must be a duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("serve", nil, func(k string) string { return tc.env[k] }, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Backoff() != tc.want {
				t.Fatalf("backoff %+v, want %+v", c.Backoff(), tc.want)
			}
		})
	}
}
