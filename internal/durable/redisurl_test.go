package durable

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/scriptgen/scriptgen/internal/testenv"
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

// A database this Redis does not have stops a start; Redis being down does not.
func TestCheckRedisDB(t *testing.T) {
	raw := testenv.RedisURL(t)
	good, err := RedisOpt(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckRedisDB(t.Context(), good); err != nil {
		t.Fatalf("a database of the test's Redis: %v", err)
	}
	// One past the last database of that same server.
	c := good.MakeRedisClient().(redis.UniversalClient)
	defer c.Close()
	conf, err := c.ConfigGet(t.Context(), "databases").Result()
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + conf["databases"]
	missing, _ := RedisOpt(u.String())
	if err := CheckRedisDB(t.Context(), missing); err == nil || !strings.Contains(err.Error(), "no such database") {
		t.Fatalf("database %s of a %s-database Redis: %v, want refused", conf["databases"], conf["databases"], err)
	}
	down, _ := RedisOpt(fmt.Sprintf("redis://127.0.0.1:%d/1", testenv.FreePort(t)))
	if err := CheckRedisDB(t.Context(), down); err != nil {
		t.Fatalf("Redis down: %v, want nil (the service waits for it)", err)
	}
}
