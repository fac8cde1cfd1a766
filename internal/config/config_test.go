package config

import (
	"io"
	"testing"
	"time"
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
			return c.ListenAddr == ":8002" && c.MaxWorkers == 4 && c.DatabaseURL == "sqlite:./data/scriptgen.db" &&
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
