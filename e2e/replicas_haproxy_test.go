package e2e

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/testenv"
)

// haproxy is an HAProxy the test started in front of the serve replicas:
// round robin, each replica health-checked on GET /health, with timeouts
// that let an event stream (a ": ping" every 15 s) live.
type haproxy struct {
	t    *testing.T
	URL  string
	sock string // the runtime API (show stat)
	cmd  *exec.Cmd
	done chan struct{}
}

// haproxyConfig is the test's configuration, documented in
// docs/runbook.md's multi-replica section: a replica that stops answering
// /health with 200 leaves the rotation after two checks 300 ms apart; a
// connection refused by a dead replica is retried on another (retries,
// redispatch), as is a request whose connection the replica closed before
// answering (retry-on empty-response: safe for POST /api/generation because
// the client's Idempotency-Key makes the retry return the same job).
//
// Two backends beside it are the test's own, chosen by a request header, so
// that the client's own retry runs for real: "noretry" (X-No-Redispatch)
// balances over the same replicas but sends a request again only when its
// connection was refused, never one in flight, which a killed replica's
// death answers 502; "held" (X-Hold-On) reaches the first replica alone, so
// that the test can hold a request there while it kills it. Both close the
// server's connection after each answer (http-server-close), so that a
// replica closing an idle connection during a graceful restart is never
// mistaken for one that died with a request.
const haproxyConfig = `global
	maxconn 4096
	stats socket %s mode 600 level admin
defaults
	mode http
	timeout connect 1s
	timeout client 60s
	timeout server 60s
	timeout http-keep-alive 5s
	timeout check 2s
	retries 3
	option redispatch 1
	retry-on conn-failure empty-response
frontend scriptgen
	bind 127.0.0.1:%d
	use_backend held if { req.hdr(X-Hold-On) -m found }
	use_backend noretry if { req.hdr(X-No-Redispatch) -m found }
	default_backend replicas
backend replicas
	balance roundrobin
	option httpchk GET /health
	http-check expect status 200
	default-server inter 300ms fall 2 rise 2
%s
backend noretry
	balance roundrobin
	retry-on conn-failure
	option http-server-close
	option httpchk GET /health
	http-check expect status 200
	default-server inter 300ms fall 2 rise 2
%s
backend held
	retry-on conn-failure
	option http-server-close
	server %s %s
`

// startHAProxy starts haproxy (Debian package haproxy) in the foreground on
// a free port, balancing over servers (name → host:port).
func startHAProxy(t *testing.T, servers [][2]string) *haproxy {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		bin, err = exec.LookPath("/usr/sbin/haproxy")
	}
	testenv.Require(t, "haproxy binary (Debian package haproxy)", err)
	dir := t.TempDir()
	port := testenv.FreePort(t)
	var lines strings.Builder
	for _, s := range servers {
		fmt.Fprintf(&lines, "\tserver %s %s check\n", s[0], s[1])
	}
	h := &haproxy{t: t, URL: fmt.Sprintf("http://127.0.0.1:%d", port), sock: filepath.Join(dir, "admin.sock")}
	cfg := filepath.Join(dir, "haproxy.cfg")
	text := fmt.Sprintf(haproxyConfig, h.sock, port, lines.String(), lines.String(), servers[0][0], servers[0][1])
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "haproxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	h.cmd = exec.Command(bin, "-db", "-f", cfg)
	h.cmd.Stdout, h.cmd.Stderr = logf, logf
	if err := testenv.StartTied(h.cmd); err != nil {
		t.Fatalf("start haproxy: %v", err)
	}
	h.done = make(chan struct{})
	go func() { h.cmd.Wait(); close(h.done) }()
	t.Cleanup(func() {
		h.cmd.Process.Kill()
		<-h.done
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("--- log of haproxy ---\n%s", tail(string(b), 30))
		}
	})
	testenv.Eventually(t, 20*time.Second, func() bool {
		select {
		case <-h.done:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("haproxy exited: %s", b)
		default:
		}
		return len(h.status()) == len(servers)
	}, "haproxy's runtime API never answered")
	return h
}

// status is each server's state by name (UP, DOWN, MAINT, "UP 1/2"…) from
// the runtime API's "show stat".
func (h *haproxy) status() map[string]string {
	out := map[string]string{}
	for _, rec := range h.stat() {
		// # pxname,svname,…,status is the 18th field.
		if len(rec) > 17 && rec[0] == "replicas" && rec[1] != "BACKEND" && rec[1] != "FRONTEND" {
			out[rec[1]] = rec[17]
		}
	}
	return out
}

// statRow is the row of HAProxy's "show stat" for proxy and server name
// (BACKEND for the backend's own), nil when it cannot be read.
func (h *haproxy) statRow(proxy, name string) []string {
	for _, rec := range h.stat() {
		if len(rec) > 16 && rec[0] == proxy && rec[1] == name {
			return rec
		}
	}
	return nil
}

// stat is the rows of the runtime API's "show stat" (none when it cannot be
// read).
func (h *haproxy) stat() [][]string {
	c, err := net.DialTimeout("unix", h.sock, time.Second)
	if err != nil {
		return nil
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprint(c, "show stat\n")
	r := csv.NewReader(bufio.NewReader(c))
	r.FieldsPerRecord = -1
	var rows [][]string
	for {
		rec, err := r.Read()
		if err != nil {
			return rows
		}
		rows = append(rows, rec)
	}
}

// current is how many requests server name of backend has open now ("show
// stat" field scur).
func (h *haproxy) current(backend, name string) int {
	rec := h.statRow(backend, name)
	if rec == nil {
		return -1
	}
	var n int
	fmt.Sscan(rec[4], &n)
	return n
}

// waitServer waits until HAProxy has server name in state want (UP, DOWN).
func (h *haproxy) waitServer(name, want string, limit time.Duration) {
	h.t.Helper()
	testenv.Eventually(h.t, limit, func() bool { return h.status()[name] == want },
		"haproxy never saw %s %s: %v", name, want, h.status())
}

// retried is how many requests HAProxy sent again to another replica
// (retries and redispatches of the backend, "show stat" fields wretr and
// wredis): the requests in flight on, or refused by, a replica that died.
func (h *haproxy) retried() int {
	rec := h.statRow("replicas", "BACKEND")
	if rec == nil {
		return -1
	}
	var retr, redis int
	fmt.Sscan(rec[15], &retr)
	fmt.Sscan(rec[16], &redis)
	return retr + redis
}
