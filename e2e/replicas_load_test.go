package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/testenv/contract"
)

// replicaLoad is the steady load of the multi-replica test: submitters that
// post generation jobs through the load balancer, each with an
// Idempotency-Key it retries with until the job is accepted, and an SSE
// follower on every second accepted job that resumes with Last-Event-ID
// wherever the balancer sends it.
type replicaLoad struct {
	t    *testing.T
	base string
	ctx  context.Context
	stop context.CancelFunc

	mu        sync.Mutex
	jobs      []submitted
	acceptAt  map[string]time.Time // job id → when it was accepted
	failures  []failedCall         // every 5xx and transport error
	followers []*follower
	retried   map[string]string // Idempotency-Key → the job its retry got
	// retriedBody is the body each retried key was sent with, to replay it
	// at the end (checkRetriedKeys).
	retriedBody map[string][]byte

	accepted atomic.Int64
	wg       sync.WaitGroup
}

// failedCall is a request answered 5xx, or not at all, with when it started
// and ended.
type failedCall struct {
	What       string
	Code       int
	Err        string
	Start, End time.Time
}

// follower is one SSE client of one job.
type follower struct {
	JobID      string
	Seqs       []int64
	Final      bool
	Reconnects int
	Err        string
}

func startReplicaLoad(t *testing.T, base string, submitters int, pace time.Duration) *replicaLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &replicaLoad{t: t, base: base, ctx: ctx, stop: cancel, acceptAt: map[string]time.Time{}, retried: map[string]string{},
		retriedBody: map[string][]byte{}}
	for g := range submitters {
		l.wg.Add(1)
		go l.submitter(g, pace)
	}
	t.Cleanup(cancel)
	return l
}

// submitter posts jobs until the load stops, over four projects shared by
// every submitter (so that replicas number one project's episodes at once).
// The first submitter's requests go through HAProxy's backend that never
// sends a request in flight again (X-No-Redispatch): when a replica dies
// under one of them, the client's own retry with the same key is what saves
// it.
func (l *replicaLoad) submitter(g int, pace time.Duration) {
	defer l.wg.Done()
	// Checked against the description, but for HAProxy's own answers (a
	// 502 when a replica dies under a request), which are not scriptgen's.
	client := &http.Client{Timeout: 15 * time.Second, Transport: contract.New(l.t).BalancedTransport(&http.Transport{}, "X-No-Redispatch")}
	var header []string
	if g == 0 {
		header = []string{"X-No-Redispatch", "1"}
	}
	for i := 0; l.ctx.Err() == nil; i++ {
		project := fmt.Sprintf("replicas-%d", (g+i)%4)
		key := fmt.Sprintf("replicas-%d-%d", g, i)
		id := l.submitOnce(client, project, key, i, false, header...)
		if id == "" {
			return // stopped while retrying: the key was never accepted
		}
		n := l.accepted.Add(1)
		if n%2 == 0 {
			f := &follower{JobID: id}
			l.mu.Lock()
			l.followers = append(l.followers, f)
			l.mu.Unlock()
			l.wg.Add(1)
			go l.follow(f)
		}
		select { // paces the load: it must run while the faults happen
		case <-l.ctx.Done():
		case <-time.After(pace):
		}
	}
}

// submitOnce posts one job with its key, retrying with the same key after a
// 5xx or a transport error, and returns the accepted job's id. failed says
// that an earlier try of the key failed already; header is added to each
// request.
func (l *replicaLoad) submitOnce(client *http.Client, project, key string, i int, failed bool, header ...string) string {
	body, _ := json.Marshal(episodeBody(project, i))
	for attempt := 0; ; attempt++ {
		start := time.Now()
		req, _ := http.NewRequest("POST", l.base+"/api/generation", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		for h := 0; h+1 < len(header); h += 2 {
			req.Header.Set(header[h], header[h+1])
		}
		resp, err := client.Do(req)
		end := time.Now()
		if err != nil || resp.StatusCode >= 500 {
			fc := failedCall{What: "POST " + key, Start: start, End: end}
			if err != nil {
				fc.Err = err.Error()
			} else {
				fc.Code = resp.StatusCode
				resp.Body.Close()
			}
			l.mu.Lock()
			l.failures = append(l.failures, fc)
			l.mu.Unlock()
			failed = true
			if l.ctx.Err() != nil && attempt > 50 {
				return ""
			}
			time.Sleep(100 * time.Millisecond) // a client's back-off before its retry
			continue
		}
		var j map[string]any
		json.NewDecoder(resp.Body).Decode(&j)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			l.t.Errorf("submit %s: %d %v", key, resp.StatusCode, j)
			return ""
		}
		id, _ := j["id"].(string)
		l.mu.Lock()
		l.jobs = append(l.jobs, submitted{ID: id, Project: project})
		l.acceptAt[id] = end
		if failed {
			l.retried[key] = id
			l.retriedBody[key] = body
		}
		l.mu.Unlock()
		return id
	}
}

// follow reads a job's events through the balancer until the final one,
// reconnecting with Last-Event-ID whenever a stream ends without it.
func (l *replicaLoad) follow(f *follower) {
	defer l.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var last int64
	for ctx.Err() == nil {
		start := time.Now()
		ch, err := openStream(l.t, ctx, l.base, f.JobID, last)
		if err != nil {
			if strings.Contains(err.Error(), ": 5") {
				l.mu.Lock()
				l.failures = append(l.failures, failedCall{What: "events " + f.JobID, Err: err.Error(), Start: start, End: time.Now()})
				l.mu.Unlock()
			}
			f.Reconnects++
			time.Sleep(100 * time.Millisecond) // as EventSource waits (retry: 1000) before it reconnects
			continue
		}
		for ev := range ch {
			var seq int64
			fmt.Sscan(ev.ID, &seq)
			f.Seqs = append(f.Seqs, seq)
			last = seq
			if ev.Data.Final {
				f.Final = true
				return
			}
		}
		f.Reconnects++
	}
	f.Err = "gave up: " + fmt.Sprint(ctx.Err())
}

// count is how many jobs were accepted since the load began.
func (l *replicaLoad) count() int64 { return l.accepted.Load() }

// waitMore waits until n more jobs were accepted: the load goes on.
func (l *replicaLoad) waitMore(n int64, what string) {
	l.t.Helper()
	mark := l.count()
	deadline := time.Now().Add(60 * time.Second)
	for l.count() < mark+n {
		if time.Now().After(deadline) {
			l.t.Fatalf("%s: only %d of %d more jobs accepted in 60s", what, l.count()-mark, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// end stops the submitters and waits for every follower to finish.
func (l *replicaLoad) end() {
	l.stop()
	l.wg.Wait()
}

// checkFollowers: every follower got its job's events 1..n exactly once, in
// order, ending with the final one, however often it had to reconnect.
func (l *replicaLoad) checkFollowers() (followed, resumed int) {
	l.t.Helper()
	for _, f := range l.followers {
		if !f.Final || f.Err != "" {
			l.t.Fatalf("follower of %s never saw the final event (%s); saw %v", f.JobID, f.Err, f.Seqs)
		}
		for i, s := range f.Seqs {
			if s != int64(i+1) {
				l.t.Fatalf("follower of %s saw events %v: want 1..%d exactly once, in order", f.JobID, f.Seqs, len(f.Seqs))
			}
		}
		followed++
		if f.Reconnects > 0 {
			resumed++
		}
	}
	return followed, resumed
}

// inFlightAt splits the failed calls into those in flight at one of the
// kill times (started before it, ended after it) and the rest.
func (l *replicaLoad) inFlightAt(kills []time.Time) (inFlight, other []failedCall) {
	for _, f := range l.failures {
		hit := false
		for _, k := range kills {
			hit = hit || (!f.Start.After(k) && !f.End.Before(k))
		}
		if hit {
			inFlight = append(inFlight, f)
		} else {
			other = append(other, f)
		}
	}
	return inFlight, other
}

// acceptedAfter is the first n jobs accepted after t, in the order of their
// acceptance.
func (l *replicaLoad) acceptedAfter(t time.Time, n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []string
	for _, j := range l.jobs { // in the order they were accepted
		if l.acceptAt[j.ID].After(t) && len(ids) < n {
			ids = append(ids, j.ID)
		}
	}
	return ids
}

// submitHeldOnKill holds a submission in flight on the replica behind
// HAProxy's "held" backend — its headers and half its body sent, the replica
// reading the rest — runs kill while it is held, and returns when the
// client, having seen that try fail (HAProxy answers 502, or the connection
// breaks), retried with the same Idempotency-Key and had its job accepted.
// It returns when kill ran: a request caught in flight by construction,
// however fast the load's own requests are.
func (l *replicaLoad) submitHeldOnKill(lb *haproxy, server string, kill func()) time.Time {
	l.t.Helper()
	const project, key, i = "replicas-held", "replicas-held-0", 0
	body, _ := json.Marshal(episodeBody(project, i))
	// Written by hand on a connection of its own: an http.Client would keep
	// the headers and the first half of the body in its buffer until the
	// whole body were there.
	u, _ := url.Parse(l.base)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		l.t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST /api/generation HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nIdempotency-Key: %s\r\n"+
		"X-Hold-On: %s\r\nContent-Length: %d\r\n\r\n", u.Host, key, server, len(body))
	conn.Write(body[:len(body)/2])
	deadline := time.Now().Add(10 * time.Second)
	for lb.current("held", server) < 1 {
		if time.Now().After(deadline) {
			l.t.Fatalf("the held submission never reached %s", server)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the replica is reading the body
	killedAt := time.Now()
	kill()
	// The rest of the body has no replica left to read it.
	conn.Write(body[len(body)/2:])
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fc := failedCall{What: "POST " + key + " (held)", Start: start}
	if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil {
		fc.Err = err.Error()
	} else {
		resp.Body.Close()
		if fc.Code = resp.StatusCode; fc.Code < 500 {
			l.t.Fatalf("the submission held on %s was answered %d although %s died before it had its body", server, fc.Code, server)
		}
	}
	fc.End = time.Now()
	l.mu.Lock()
	l.failures = append(l.failures, fc)
	l.mu.Unlock()
	client := &http.Client{Timeout: 15 * time.Second, Transport: contract.New(l.t).BalancedTransport(&http.Transport{}, "X-No-Redispatch")}
	if id := l.submitOnce(client, project, key, i, true, "X-No-Redispatch", "1"); id == "" {
		l.t.Fatalf("the retry of %s got no job", key)
	}
	return killedAt
}

// checkRetriedKeys: the client's retry branch ran (a request failed and was
// tried again with its key), and every retried key maps to exactly one job:
// replayed once more now, it answers the job its retry got, marked
// Idempotent-Replayed.
func (l *replicaLoad) checkRetriedKeys() {
	l.t.Helper()
	if len(l.retried) == 0 {
		l.t.Fatal("no submission was retried by its client: the retry branch never ran")
	}
	client := &http.Client{Timeout: 15 * time.Second, Transport: contract.New(l.t).BalancedTransport(nil)}
	for key, id := range l.retried {
		req, _ := http.NewRequest("POST", l.base+"/api/generation", bytes.NewReader(l.retriedBody[key]))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := client.Do(req)
		if err != nil {
			l.t.Fatalf("replay of %s: %v", key, err)
		}
		var j map[string]any
		json.NewDecoder(resp.Body).Decode(&j)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Idempotent-Replayed") != "true" || j["id"] != id {
			l.t.Fatalf("replay of the retried key %s: %d replayed=%q job %v, want 202 replayed of its job %s",
				key, resp.StatusCode, resp.Header.Get("Idempotent-Replayed"), j["id"], id)
		}
	}
}
