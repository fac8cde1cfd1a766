package durable

import (
	"testing"

	"github.com/hibiken/asynq"
)

func TestRedisOptDefaultsToDatabase5(t *testing.T) {
	for _, c := range []struct {
		url  string
		addr string
		db   int
	}{
		{"redis://127.0.0.1:6379", "127.0.0.1:6379", 5},
		{"redis://:secret@cache:6380", "cache:6380", 5},
		{"redis://127.0.0.1:6379/0", "127.0.0.1:6379", 0},
		{"redis://127.0.0.1:6379/7", "127.0.0.1:6379", 7},
	} {
		opt, err := RedisOpt(c.url)
		if err != nil {
			t.Fatalf("RedisOpt(%q): %v", c.url, err)
		}
		got, ok := opt.(asynq.RedisClientOpt)
		if !ok || got.Addr != c.addr || got.DB != c.db {
			t.Fatalf("RedisOpt(%q) = %+v, want addr %s db %d", c.url, opt, c.addr, c.db)
		}
	}
	if _, err := RedisOpt("redis-sentinel://127.0.0.1:26379?master=mymaster"); err != nil {
		t.Fatalf("a sentinel URL: %v", err)
	}
	for _, bad := range []string{"http://127.0.0.1:6379", "redis://127.0.0.1:6379/x", "::"} {
		if _, err := RedisOpt(bad); err == nil {
			t.Fatalf("RedisOpt(%q) accepted", bad)
		}
	}
}
