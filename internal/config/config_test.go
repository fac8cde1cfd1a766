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
