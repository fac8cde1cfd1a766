package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the name the sentinels of a SentinelGroup monitor.
const SentinelMaster = "mymaster"

// T is what a SentinelGroup needs of its owner: a test's testing.TB, or a
// benchmark program's own (bench/replicas).
type T interface {
	Helper()
	Cleanup(func())
	TempDir() string
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// SentinelGroup is a Redis that fails over, all of it the test's own: a
// master and a replica (redis-server) and three redis-sentinel processes, on
// free ports of 127.0.0.1, each in a directory of its own with a config file
// the sentinels may rewrite. Everything is killed when the test ends, or by
// the kernel if the test binary dies first.
type SentinelGroup struct {
	t T
	// Nodes are the two redis-servers, the first one the master at the start.
	Nodes     []*SentinelNode
	Sentinels []*SentinelNode
}

// SentinelNode is one process of a SentinelGroup.
type SentinelNode struct {
	Port   int
	conf   string
	log    string
	binary string
	cmd    *exec.Cmd
	exited chan struct{}
}

// Addr is host:port of the process.
func (n *SentinelNode) Addr() string { return "127.0.0.1:" + strconv.Itoa(n.Port) }

// Kill sends SIGKILL and waits for the process to exit.
func (n *SentinelNode) Kill() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	n.cmd.Process.Kill()
	<-n.exited
	n.cmd = nil
}

func (n *SentinelNode) start() error {
	cmd := exec.Command(n.binary, n.conf)
	if err := startTied(cmd); err != nil {
		return fmt.Errorf("start %s: %w", n.binary, err)
	}
	n.cmd, n.exited = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(n.exited)
	err := awaitPing(n.Addr(), n.exited, n.binary, n.Port, n.log)
	if errors.Is(err, errExited) {
		n.cmd = nil
	} else if err != nil {
		n.Kill()
	}
	return err
}

// StartSentinelGroup starts a master, its replica and three sentinels that
// monitor it as SentinelMaster with a quorum of two, and waits until the
// sentinels know the replica and each other. A master that does not answer
// for a second is failed over.
func StartSentinelGroup(t T) *SentinelGroup {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-sentinel"} {
		if _, err := exec.LookPath(bin); err != nil {
			const msg = "%s binary (Debian packages redis-server, redis-sentinel) unavailable: %v"
			if InCI() {
				t.Fatalf(msg+" (required under CI=true)", bin, err)
			}
			t.Skipf(msg+", skipping", bin, err)
		}
	}
	g := &SentinelGroup{t: t}
	t.Cleanup(g.kill)
	master := g.add(t, "redis-server", func(port int, dir string) string {
		return redisConf(port, dir, "")
	})
	g.Nodes = append(g.Nodes, master)
	g.Nodes = append(g.Nodes, g.add(t, "redis-server", func(port int, dir string) string {
		return redisConf(port, dir, fmt.Sprintf("replicaof 127.0.0.1 %d\n", master.Port))
	}))
	for range 3 {
		g.Sentinels = append(g.Sentinels, g.add(t, "redis-sentinel", func(port int, dir string) string {
			return fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n"+
				"sentinel monitor %[4]s 127.0.0.1 %[5]d 2\n"+
				"sentinel down-after-milliseconds %[4]s 1000\n"+
				"sentinel failover-timeout %[4]s 3000\n"+
				"sentinel parallel-syncs %[4]s 1\n",
				port, dir, filepath.Join(dir, "redis.log"), SentinelMaster, master.Port)
		}))
	}
	Eventually(t, 30*time.Second, func() bool { return g.settled() },
		"the sentinels never saw the replica and each other")
	return g
}

func redisConf(port int, dir, extra string) string {
	return fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\nsave \"\"\nappendonly no\n%s",
		port, dir, filepath.Join(dir, "redis.log"), extra)
}

// add writes a config for a free port and starts binary with it.
func (g *SentinelGroup) add(t T, binary string, conf func(port int, dir string) string) *SentinelNode {
	t.Helper()
	var err error
	for range 5 {
		dir := t.TempDir()
		n := &SentinelNode{binary: binary, conf: filepath.Join(dir, "redis.conf"), log: filepath.Join(dir, "redis.log")}
		if n.Port, err = freePort(); err != nil {
			break
		}
		if err = os.WriteFile(n.conf, []byte(conf(n.Port, dir)), 0o600); err != nil {
			break
		}
		if err = n.start(); err == nil {
			return n
		}
	}
	t.Fatalf("start %s: %v", binary, err)
	return nil
}

func (g *SentinelGroup) kill() {
	for _, n := range append(append([]*SentinelNode{}, g.Sentinels...), g.Nodes...) {
		n.Kill()
	}
}

// settled: every sentinel knows a replica of the master and two other
// sentinels.
func (g *SentinelGroup) settled() bool {
	for _, s := range g.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr()})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		m, err := c.Master(ctx, SentinelMaster).Result()
		cancel()
		c.Close()
		if err != nil || m["num-slaves"] == "0" || m["num-other-sentinels"] != "2" {
			return false
		}
	}
	return true
}

// URL is the REDIS_URL of the group: every sentinel, the master's name and
// database db.
func (g *SentinelGroup) URL(db int) string {
	hosts := ""
	for i, s := range g.Sentinels {
		if i > 0 {
			hosts += ","
		}
		hosts += s.Addr()
	}
	return fmt.Sprintf("redis-sentinel://%s/%d?master=%s", hosts, db, SentinelMaster)
}

// MasterAddr is the master's address as the first sentinel that answers
// tells it.
func (g *SentinelGroup) MasterAddr() string {
	for _, s := range g.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr()})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		addr, err := c.GetMasterAddrByName(ctx, SentinelMaster).Result()
		cancel()
		c.Close()
		if err == nil && len(addr) == 2 {
			return net.JoinHostPort(addr[0], addr[1])
		}
	}
	return ""
}

// Master is the node the sentinels call master now.
func (g *SentinelGroup) Master() *SentinelNode {
	addr := g.MasterAddr()
	for _, n := range g.Nodes {
		if n.Addr() == addr {
			return n
		}
	}
	g.t.Fatalf("the sentinels name master %q, none of the group's nodes", addr)
	return nil
}

// Failover asks a sentinel to fail the master over (SENTINEL FAILOVER) and
// waits until every sentinel names another master that answers as one; it
// returns the new master.
func (g *SentinelGroup) Failover() *SentinelNode {
	g.t.Helper()
	old := g.MasterAddr()
	c := redis.NewSentinelClient(&redis.Options{Addr: g.Sentinels[0].Addr()})
	defer c.Close()
	// A sentinel refuses while the replica is not yet usable (just
	// restarted, still syncing): ask again until it accepts.
	Eventually(g.t, 30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return c.Failover(ctx, SentinelMaster).Err() == nil
	}, "SENTINEL FAILOVER was never accepted")
	return g.WaitNewMaster(old)
}

// WaitNewMaster waits until every sentinel names a master other than old
// and that master answers as one, and returns it.
func (g *SentinelGroup) WaitNewMaster(old string) *SentinelNode {
	g.t.Helper()
	var now *SentinelNode
	Eventually(g.t, 60*time.Second, func() bool {
		addr := ""
		for _, s := range g.Sentinels {
			if s.cmd == nil {
				continue
			}
			c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr()})
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			a, err := c.GetMasterAddrByName(ctx, SentinelMaster).Result()
			cancel()
			c.Close()
			if err != nil || len(a) != 2 || net.JoinHostPort(a[0], a[1]) == old || (addr != "" && net.JoinHostPort(a[0], a[1]) != addr) {
				return false
			}
			addr = net.JoinHostPort(a[0], a[1])
		}
		for _, n := range g.Nodes {
			if n.Addr() == addr && n.role() == "master" {
				now = n
				return true
			}
		}
		return false
	}, "the sentinels did not agree on a new master after %s", old)
	return now
}

func (n *SentinelNode) role() string {
	c := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	r, err := c.Do(ctx, "ROLE").Slice()
	if err != nil || len(r) == 0 {
		return ""
	}
	s, _ := r[0].(string)
	return s
}

// StartTied starts a process the test needs (an haproxy…) so that the kernel
// kills it if the test binary dies before the test could.
func StartTied(cmd *exec.Cmd) error { return startTied(cmd) }

// WaitReplicaSynced waits until a node other than the master replicates it
// (master_link_status:up), so that killing the master leaves one to promote.
func (g *SentinelGroup) WaitReplicaSynced() {
	g.t.Helper()
	master := g.MasterAddr()
	Eventually(g.t, 30*time.Second, func() bool {
		for _, n := range g.Nodes {
			if n.cmd == nil || n.Addr() == master {
				continue
			}
			c := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			info, err := c.Info(ctx, "replication").Result()
			cancel()
			c.Close()
			if err == nil && strings.Contains(info, "master_link_status:up") && strings.Contains(info, "master_port:"+master[strings.LastIndexByte(master, ':')+1:]) {
				return true
			}
		}
		return false
	}, "no replica of the master %s is in sync", master)
}

// Restart starts a killed node again on its port, with its configuration as
// the sentinels last rewrote it.
func (n *SentinelNode) Restart(t T) {
	t.Helper()
	if err := n.start(); err != nil {
		t.Fatalf("restart %s: %v", n.Addr(), err)
	}
}
