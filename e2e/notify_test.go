package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// hookPost is one POST the test's webhook receiver got.
type hookPost struct {
	at     time.Time
	status int // what the receiver answered
	body   []byte
	msg    map[string]any
}

// hookReceiver stands for a chat's incoming webhook: it answers 500 to the
// first POST of a rollback and 200 to every other one, and keeps them all.
// Only a rollback's is refused: serve's trigger monitor may post a state
// change of its own before the rollback, in whatever order the two race.
type hookReceiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	posts   []hookPost
	refused bool // the first rollback's POST has been answered 500
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var msg map[string]any
		json.Unmarshal(body, &msg)
		h.mu.Lock()
		status := http.StatusOK
		if msg["event"] == "rollback" && !h.refused {
			status, h.refused = http.StatusInternalServerError, true
		}
		if r.Method != "POST" || r.Header.Get("Content-Type") != "application/json" {
			status = http.StatusBadRequest
		}
		h.posts = append(h.posts, hookPost{at: time.Now(), status: status, body: body, msg: msg})
		h.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) all() []hookPost {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookPost(nil), h.posts...)
}

// delivered waits for an accepted message that match selects.
func (h *hookReceiver) delivered(t *testing.T, what string, limit time.Duration, match func(m map[string]any) bool) hookPost {
	t.Helper()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, p := range h.all() {
			if p.status == http.StatusOK && match(p.msg) {
				return p
			}
		}
	}
	var got []string
	for _, p := range h.all() {
		got = append(got, fmt.Sprintf("%d %s", p.status, p.body))
	}
	t.Fatalf("the webhook never got %s within %s; it got:\n%s", what, limit, strings.Join(got, "\n"))
	return hookPost{}
}

// TestWebhookNotifications: serve runs with NOTIFY_WEBHOOK_URL pointing at a
// receiver of the test's own, which fails the first POST. `scriptgen
// rollback` (the command, as a process, with the same settings), a
// roll-forward through the API, and the Redis trigger's state changes (the
// test stops and starts its own redis-server) each arrive as JSON with text,
// event, at, source and data; the failed first POST is retried after its
// backoff and arrives exactly once; the rollback finishes without waiting for
// the failing receiver; and every accepted job finishes exactly once.
func TestWebhookNotifications(t *testing.T) {
	hook := newHookReceiver(t)
	notify := "NOTIFY_WEBHOOK_URL=" + hook.srv.URL
	c := newCluster(t, 1, notify, "AUTO_ROLLBACK=true", "ROLLBACK_INTERVAL=200ms", "GENERATOR_STEP_DELAY=20ms")
	c.setDurable(true)
	auth := []string{"Authorization", "Bearer " + adminToken}
	var jobs []submitted
	for i := range 10 {
		jobs = append(jobs, submit(t, c.serve.URL, "hook", i))
	}

	// The rollback, by the command. Its lines are read as they come, so that
	// the time of its last one can be held against the webhook's retry.
	env := []string{"DATABASE_URL=" + c.dbURL, "REDIS_URL=" + c.redis.URL(5), notify}
	cmd := exec.Command(binary, "rollback", "--reason", "e2e webhook")
	cmd.Env = childEnv(cmd.Environ(), env)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	var doneAt time.Time
	for sc := bufio.NewScanner(stdout); sc.Scan(); {
		out.WriteString(sc.Text() + "\n")
		if strings.HasPrefix(sc.Text(), "Switched in ") {
			doneAt = time.Now()
		}
	}
	if err := cmd.Wait(); err != nil || doneAt.IsZero() {
		t.Fatalf("rollback (%v):\n%s%s", err, out.String(), stderr.String())
	}
	rb := hook.delivered(t, "the rollback", 10*time.Second, func(m map[string]any) bool { return m["event"] == "rollback" })

	// The rollback's first POST was refused; the same body came again after
	// the backoff (1 s) and was accepted once; the rollback had finished
	// before that retry, so it did not wait for the receiver.
	posts := hook.all()
	var first hookPost
	retries := 0
	for _, p := range posts {
		switch {
		case p.msg["event"] != "rollback":
		case first.body == nil:
			first = p
		case bytes.Equal(p.body, first.body):
			retries++
		}
	}
	if first.status != http.StatusInternalServerError {
		t.Fatalf("the rollback's first POST was answered %d, want the receiver's 500: %s", first.status, first.body)
	}
	if retries != 1 || !bytes.Equal(rb.body, first.body) {
		t.Fatalf("the refused notification was posted again %d times, want once:\n%s", retries, first.body)
	}
	if gap := rb.at.Sub(first.at); gap < 900*time.Millisecond {
		t.Fatalf("the retry came %s after the refused POST, want the backoff (1s)", gap)
	}
	if !doneAt.Before(rb.at) {
		t.Fatalf("the rollback reported done at %s, after its notification's retry at %s: it waited for the webhook",
			doneAt.Format(time.StampMilli), rb.at.Format(time.StampMilli))
	}
	if src, _ := rb.msg["source"].(string); !strings.HasPrefix(src, "cli@") {
		t.Fatalf("the rollback's notification names its source %q, want cli@<host>", src)
	}

	// A roll-forward through serve's API: serve's own notifier.
	if code, body := request(t, "POST", c.serve.URL+"/api/admin/rollforward",
		map[string]any{"percent": 100, "reason": "e2e webhook: forward", "force": true}, auth...); code != 200 {
		t.Fatalf("rollforward: %d %v", code, body)
	}
	rf := hook.delivered(t, "the roll-forward", 10*time.Second, func(m map[string]any) bool { return m["event"] == "rollforward" })
	if src, _ := rf.msg["source"].(string); !strings.HasPrefix(src, "serve@") {
		t.Fatalf("the roll-forward's notification names its source %q, want serve@<host>", src)
	}

	// The Redis trigger: down, then up again.
	redisTrigger := func(from, to string) func(m map[string]any) bool {
		return func(m map[string]any) bool {
			d, _ := m["data"].(map[string]any)
			return m["event"] == "trigger" && d["name"] == "redis_unreachable" && d["from"] == from && d["to"] == to
		}
	}
	c.redis.Kill()
	pending := hook.delivered(t, "redis_unreachable ok → pending", 20*time.Second, redisTrigger("ok", "pending"))
	c.redis.Start()
	hook.delivered(t, "redis_unreachable pending → ok", 20*time.Second, redisTrigger("pending", "ok"))
	if text, _ := pending.msg["text"].(string); !strings.Contains(text, "redis_unreachable: ok → pending") {
		t.Fatalf("trigger text %q", text)
	}

	// Jobs after it all run too.
	for i := 10; i < 20; i++ {
		jobs = append(jobs, submit(t, c.serve.URL, "hook", i))
	}
	waitAllSucceeded(t, c.serve.URL, jobs, 120*time.Second)
	checkExactlyOnce(t, c.serve.URL, jobs)

	// Every accepted notification is a whole message, and none came twice.
	seen := map[string]int{}
	for _, p := range hook.all() {
		if p.status != http.StatusOK {
			continue
		}
		seen[string(p.body)]++
		for _, field := range []string{"text", "event", "at", "source", "data"} {
			if v, ok := p.msg[field]; !ok || v == "" || v == nil {
				t.Fatalf("notification without %q: %s", field, p.body)
			}
		}
		if _, err := time.Parse(time.RFC3339Nano, p.msg["at"].(string)); err != nil {
			t.Fatalf("notification's at %v: %v", p.msg["at"], err)
		}
	}
	for body, n := range seen {
		if n != 1 {
			t.Fatalf("notification accepted %d times, want once: %s", n, body)
		}
	}
	var events []string
	for _, p := range hook.all() {
		events = append(events, fmt.Sprintf("%d %v", p.status, p.msg["text"]))
	}
	t.Logf("%d POSTs, %d notifications accepted:\n%s", len(events), len(seen), strings.Join(events, "\n"))
}
