package durable

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/testenv"
)

// The redis-sentinel:// form: every sentinel, the master's name, database 5
// unless the path or ?db= names another, the URL's password for the master
// and the sentinels (unless ?sentinel_password= gives theirs).
func TestRedisOptSentinelURL(t *testing.T) {
	for _, c := range []struct {
		url               string
		addrs             []string
		db                int
		password, sentPwd string
	}{
		{"redis-sentinel://10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379?master=mymaster", []string{"10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"}, 5, "", ""},
		{"redis-sentinel://s1:26379/3?master=mymaster", []string{"s1:26379"}, 3, "", ""},
		{"redis-sentinel://s1:26379?master=mymaster&db=0", []string{"s1:26379"}, 0, "", ""},
		{"redis-sentinel://:pw@s1:26379?master=mymaster", []string{"s1:26379"}, 5, "pw", "pw"},
		{"redis-sentinel://:pw@s1:26379?master=mymaster&sentinel_password=", []string{"s1:26379"}, 5, "pw", ""},
	} {
		opt, err := RedisOpt(c.url)
		if err != nil {
			t.Fatalf("RedisOpt(%q): %v", c.url, err)
		}
		got, ok := opt.(asynq.RedisFailoverClientOpt)
		if !ok || got.MasterName != "mymaster" || len(got.SentinelAddrs) != len(c.addrs) || got.DB != c.db ||
			got.Password != c.password || got.SentinelPassword != c.sentPwd {
			t.Fatalf("RedisOpt(%q) = %+v, want sentinels %v db %d password %q/%q", c.url, opt, c.addrs, c.db, c.password, c.sentPwd)
		}
		for i, a := range c.addrs {
			if got.SentinelAddrs[i] != a {
				t.Fatalf("RedisOpt(%q): sentinels %v, want %v", c.url, got.SentinelAddrs, c.addrs)
			}
		}
	}
	for _, bad := range []string{
		"redis-sentinel://s1:26379",                   // no master name
		"redis-sentinel://s1?master=mymaster",         // no port
		"redis-sentinel://s1:26379/x?master=mymaster", // not a database
		"redis-sentinel://s1:26379?master=m&db=-1",    // not a database
	} {
		if _, err := RedisOpt(bad); err == nil {
			t.Fatalf("RedisOpt(%q) accepted", bad)
		}
	}
}

// TestSentinelURLFollowsAFailover: with a real master, replica and three
// sentinels, a dispatcher built from the redis-sentinel:// URL enqueues on
// the master's database 5, then — after SENTINEL FAILOVER, and after the new
// master is killed with SIGKILL — on whichever node the sentinels promoted,
// without being rebuilt.
func TestSentinelURLFollowsAFailover(t *testing.T) {
	g := testenv.StartSentinelGroup(t)
	opt, err := RedisOpt(g.URL(DefaultRedisDB))
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckRedisDB(t.Context(), opt); err != nil {
		t.Fatal(err)
	}
	d := NewDispatcher(opt)
	defer d.Stop(context.Background())
	n := 0
	// enqueued dispatches one more job, retrying while the client finds the
	// new master, and checks that its task is on node's database 5.
	enqueued := func(node *testenv.SentinelNode) {
		t.Helper()
		n++
		j := job.Job{ID: "sentinel-job-" + string(rune('a'+n)), Kind: job.KindGeneration, DispatchEpoch: 1}
		testenv.Eventually(t, 30*time.Second, func() bool { return d.Dispatch(t.Context(), j) == nil },
			"job %d was never enqueued through the sentinels", n)
		c := redis.NewClient(&redis.Options{Addr: node.Addr(), DB: DefaultRedisDB})
		defer c.Close()
		key := "asynq:{" + QueueFor(j.Kind) + "}:t:" + TaskID(j.Dispatch())
		if got, err := c.Exists(t.Context(), key).Result(); err != nil || got != 1 {
			t.Fatalf("job %d: task %s not on %s database %d (%d, %v)", n, key, node.Addr(), DefaultRedisDB, got, err)
		}
	}
	first := g.Master()
	enqueued(first)
	promoted := g.Failover()
	if promoted == first {
		t.Fatal("SENTINEL FAILOVER kept the same master")
	}
	enqueued(promoted)
	promoted.Kill()
	survivor := g.WaitNewMaster(promoted.Addr())
	if survivor != first {
		t.Fatalf("after the kill the sentinels promoted %s, want %s", survivor.Addr(), first.Addr())
	}
	enqueued(survivor)
}
