package limits

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
)

func TestStreamCaps(t *testing.T) {
	c := NewStreamCaps(3, 2, 2)
	r1, over := c.Acquire("a", "j1")
	if over != "" {
		t.Fatal(over)
	}
	r2, _ := c.Acquire("a", "j2")
	if _, over := c.Acquire("a", "j3"); over != "client" {
		t.Fatalf("third stream of a client: %q", over)
	}
	r3, _ := c.Acquire("b", "j1")
	if _, over := c.Acquire("c", "j9"); over != "total" {
		t.Fatalf("fourth stream: %q", over)
	}
	r1()
	r1() // a second release changes nothing
	if _, over := c.Acquire("c", "j1"); over != "" {
		t.Fatalf("after a release: %q", over)
	}
	if _, over := c.Acquire("d", "j1"); over != "total" {
		t.Fatalf("full again: %q", over)
	}
	r2()
	r3()
	if c.Open() != 1 {
		t.Fatalf("open %d", c.Open())
	}
	perJob := NewStreamCaps(0, 0, 1)
	perJob.Acquire("a", "j")
	if _, over := perJob.Acquire("b", "j"); over != "job" {
		t.Fatalf("second stream of a job: %q", over)
	}
}

func TestListenerAnswersOverTheCap(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	health := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"status":"ok"}`) })
	l := LimitListener(inner, 2, health)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(l)
	defer srv.Close()

	var held []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	waitFor(t, func() bool { return l.Open() == 2 })
	c, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Error struct{ Code string } }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("body: %v", err)
	}
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || body.Error.Code != "too_many_connections" {
		t.Fatalf("over the cap: %d %v %+v", resp.StatusCode, resp.Header, body)
	}
	if l.Refused() != 1 {
		t.Fatalf("refused %d", l.Refused())
	}
	// With an Overflow handler, /health is answered over the cap, and
	// anything else still gets the 503.
	for path, want := range map[string]int{"/health": 200, "/api/generation": 503} {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s over the cap: %v", path, err)
		}
		if resp.StatusCode != want || !resp.Close {
			t.Fatalf("%s over the cap: %d (close %v), want %d and a closed connection", path, resp.StatusCode, resp.Close, want)
		}
		c.Close()
	}
	if l.Refused() != 3 {
		t.Fatalf("refused %d", l.Refused())
	}
	// A slot freed is a slot taken again.
	held[0].Close()
	waitFor(t, func() bool { return l.Open() == 1 })
	resp2, err := http.Get("http://" + inner.Addr().String())
	if err != nil || resp2.StatusCode != 200 {
		t.Fatalf("under the cap again: %v %v", resp2, err)
	}
	resp2.Body.Close()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestGCRA(t *testing.T) {
	now := time.Unix(1000, 0)
	var tat time.Time
	interval := 100 * time.Millisecond
	// A burst of 5 goes through at once, the sixth waits one interval.
	for i := 0; i < 5; i++ {
		var ok bool
		tat, ok, _ = GCRA(tat, now, interval, 5)
		if !ok {
			t.Fatalf("token %d refused", i)
		}
	}
	_, ok, wait := GCRA(tat, now, interval, 5)
	if ok || wait != interval {
		t.Fatalf("sixth: ok %v wait %v", ok, wait)
	}
	// After one interval one more token is there, and only one.
	now = now.Add(interval)
	tat, ok, _ = GCRA(tat, now, interval, 5)
	if !ok {
		t.Fatal("token after an interval refused")
	}
	if _, ok, _ := GCRA(tat, now, interval, 5); ok {
		t.Fatal("two tokens after one interval")
	}
	if got := RetryAfterSeconds(1500 * time.Millisecond); got != 2 {
		t.Fatalf("RetryAfterSeconds %d", got)
	}
}

// memBuckets applies GCRA in memory and counts its calls.
type memBuckets struct {
	tat   map[string]time.Time
	calls int
}

func (m *memBuckets) TakeTokens(_ context.Context, key string, count int, interval time.Duration, burst int, now time.Time) (bool, time.Duration, error) {
	m.calls++
	cur := m.tat[key]
	if cur.Before(now) {
		cur = now
	}
	next := cur.Add(time.Duration(count) * interval)
	if next.Add(-time.Duration(burst) * interval).After(now) {
		return false, next.Add(-time.Duration(burst) * interval).Sub(now), nil
	}
	m.tat[key] = next
	return true, 0, nil
}

// A busy tenant's tokens come in blocks: one write per tenth of a second of
// its rate, not one per submission; and the rate still holds.
func TestRateLimiterLeasesBlocks(t *testing.T) {
	b := &memBuckets{tat: map[string]time.Time{}}
	c := clock.NewFake(time.Unix(1000, 0))
	l := NewRateLimiter(b, Rate{PerSecond: 1000, Burst: 2000}, c)
	allowed := 0
	for i := 0; i < 2500; i++ {
		if ok, _, err := l.Allow(context.Background(), "acme"); err != nil {
			t.Fatal(err)
		} else if ok {
			allowed++
		}
	}
	if allowed != 2000 {
		t.Fatalf("allowed %d of 2,500 at once, want the burst of 2,000", allowed)
	}
	if b.calls > 40 {
		t.Fatalf("%d calls to the shared bucket for 2,500 submissions; want blocks of 100", b.calls)
	}
	// A second later, another second's worth.
	c.Advance(time.Second)
	allowed = 0
	for i := 0; i < 1500; i++ {
		if ok, _, _ := l.Allow(context.Background(), "acme"); ok {
			allowed++
		}
	}
	if allowed < 900 || allowed > 1000 {
		t.Fatalf("allowed %d after a second at 1,000/s", allowed)
	}
}
