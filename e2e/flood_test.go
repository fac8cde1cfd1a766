package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/sysmem"
	"github.com/scriptgen/scriptgen/internal/testenv"
	"github.com/scriptgen/scriptgen/internal/testenv/contract"
	"github.com/scriptgen/scriptgen/internal/workerflag"
)

// The flood (issue 17): one `scriptgen serve` with the default caps, an
// attacker's API key and a writer's. Flooder processes (this test binary
// re-executed, see init) open 20,000 event streams with the attacker's key on
// its jobs and hold them without reading, and 1,000 submissions that send
// their 100,000-byte bodies a byte a second. While the flood holds, /health
// must answer within 100 ms (p99 of 200 probes on fresh connections), the
// writer's job must be accepted, stream and finish, serve's RSS must stay
// within twice its GOMEMLIMIT and the automatic rollback, whose memory
// trigger is set to fire within seconds on a wrong reading, must not fire.

const (
	floodSSE       = 20000
	floodSlow      = 1000
	floodProcs     = 4 // each holds a quarter: this machine allows 20,000 descriptors a process
	floodGoMemMiB  = 256
	floodProbes    = 200
	floodProbeGap  = 50 * time.Millisecond
	floodHealthP99 = 100 * time.Millisecond
	floodRollout   = 50 // percent: the attacker's projects durable (no worker until the end), the writer's in serve
	floodLife      = 150 * time.Second
	floodHoldMin   = 36 * time.Second // past the 30 s a request has for its body: the slow bodies are cut and come back
	floodRoleEnv   = "SCRIPTGEN_E2E_FLOODER"
)

// A flooder is this test binary started again with floodRoleEnv set: it
// floods from init, before TestMain (which would build scriptgen), and exits,
// so it shows in no test list.
func init() {
	if spec := os.Getenv(floodRoleEnv); spec != "" {
		os.Exit(runFlooder(spec))
	}
}

// floodSpec is what one flooder does.
type floodSpec struct {
	Addr    string        // serve's host:port
	Source  string        // the loopback address it dials from
	Key     string        // the attacker's API key
	Jobs    []string      // the attacker's jobs whose streams it opens
	SSE     int           // event streams to open
	Slow    int           // slow bodies to keep open
	Dialers int           // event streams opened at once
	Life    time.Duration // it exits by then whatever happens
}

// floodReport is a flooder's line on its stdout.
type floodReport struct {
	Ready bool             `json:"ready,omitempty"` // every stream was tried
	Final bool             `json:"final,omitempty"` // it stopped
	Tally map[string]int64 `json:"tally"`
	// The final report's check of the attacker's answers against
	// api/openapi.yaml (attackerAnswers).
	Checked  int      `json:"checked,omitempty"`  // answers held against it
	Distinct int      `json:"distinct,omitempty"` // of which told apart by the validator
	Problems []string `json:"problems,omitempty"` // what disagreed, the first few
}

type flooder struct {
	spec floodSpec
	dial net.Dialer
	stop chan struct{}

	mu      sync.Mutex
	tally   map[string]int64
	held    []net.Conn
	answers attackerAnswers
	out     *json.Encoder
}

func (f *flooder) count(what string) {
	f.mu.Lock()
	f.tally[what]++
	f.mu.Unlock()
}

func (f *flooder) report(r floodReport) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r.Tally = map[string]int64{}
	for k, v := range f.tally {
		r.Tally[k] = v
	}
	f.out.Encode(r)
}

func (f *flooder) stopped() bool {
	select {
	case <-f.stop:
		return true
	default:
		return false
	}
}

func runFlooder(raw string) int {
	var spec floodSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "flooder:", err)
		return 2
	}
	f := &flooder{
		spec:  spec,
		dial:  net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(spec.Source)}},
		stop:  make(chan struct{}),
		tally: map[string]int64{},
		out:   json.NewEncoder(os.Stdout),
	}
	var once sync.Once
	stop := func() { once.Do(func() { close(f.stop) }) }
	go func() { io.Copy(io.Discard, os.Stdin); stop() }() // the test closes stdin, or dies
	time.AfterFunc(spec.Life, stop)

	var slow sync.WaitGroup
	for range spec.Slow {
		slow.Add(1)
		go func() { defer slow.Done(); f.slowBody() }()
	}
	var next atomic.Int64
	var dialers sync.WaitGroup
	for range spec.Dialers {
		dialers.Add(1)
		go func() {
			defer dialers.Done()
			for i := int(next.Add(1)) - 1; i < spec.SSE && !f.stopped(); i = int(next.Add(1)) - 1 {
				f.stream(spec.Jobs[i%len(spec.Jobs)])
			}
		}()
	}
	dialers.Wait()
	f.report(floodReport{Ready: true})
	<-f.stop
	// Which held connections has serve closed meanwhile?
	f.mu.Lock()
	held := f.held
	f.mu.Unlock()
	buf := make([]byte, 1)
	for _, c := range held {
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		_, err := c.Read(buf)
		var ne net.Error
		if err == nil || errors.As(err, &ne) && ne.Timeout() {
			f.count("stream: still open at the end")
		} else {
			f.count("stream: closed by serve before the end")
		}
		c.Close()
	}
	slow.Wait()
	checked, distinct, problems := f.answers.check()
	f.report(floodReport{Final: true, Checked: checked, Distinct: distinct, Problems: problems})
	return 0
}

// attackerAnswers are the answers the attacker got, kept as they came and
// held against api/openapi.yaml once the flood has stopped. The validator
// takes one exchange at a time (contract's spec.mu) and costs far more
// than reading an answer's head: checking each answer as it comes would
// slow the attacker down (its 64 dialers would queue on that lock) and
// take CPU from serve while /health is timed, which would weaken what the
// test proves. Kept, every answer is still checked, after the flood.
type attackerAnswers struct {
	mu sync.Mutex
	xs []contract.Exchange
}

// add keeps the answer to the raw request rawReq; offSpec marks a request
// that breaks the description on purpose (its answer only is checked).
func (a *attackerAnswers) add(rawReq string, offSpec bool, resp *http.Response, body []byte) {
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(rawReq)))
	if err != nil {
		panic(fmt.Sprintf("the flooder's own request %q does not parse: %v", rawReq, err))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.xs = append(a.xs, contract.Exchange{Request: req, Response: &http.Response{StatusCode: resp.StatusCode, Header: resp.Header},
		Body: body, OffSpec: offSpec})
}

// check holds every answer against the description. Answers that differ
// only in their Date and X-Request-Id values (thousands of 429s, say) are
// one exchange to the validator, whose verdict does not depend on those
// two values beyond the id's length (at most 128, which is checked on every
// one): each is checked once.
func (a *attackerAnswers) check() (checked, distinct int, problems []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := contract.NewReporting(nowhere{})
	seen := map[string]bool{}
	for _, x := range a.xs {
		checked++
		if id := x.Response.Header.Get("X-Request-Id"); len(id) > 128 {
			problems = append(problems, fmt.Sprintf("%s %s (%d): X-Request-Id of %d bytes", x.Request.Method, x.Request.URL, x.Response.StatusCode, len(id)))
		}
		h := x.Response.Header.Clone()
		h.Del("Date")
		h.Set("X-Request-Id", "")
		var key strings.Builder
		fmt.Fprintf(&key, "%s %s %v %d\n", x.Request.Method, x.Request.URL.Path, x.OffSpec, x.Response.StatusCode)
		h.Write(&key)
		key.Write(x.Body)
		if seen[key.String()] {
			continue
		}
		seen[key.String()] = true
		distinct++
		for _, p := range c.Problems(x) {
			problems = append(problems, fmt.Sprintf("%s %s (%d): %s; body %.200s", x.Request.Method, x.Request.URL, x.Response.StatusCode, p, x.Body))
		}
	}
	if len(problems) > 20 {
		problems = append(problems[:20], fmt.Sprintf("… and %d more", len(problems)-20))
	}
	return checked, distinct, problems
}

// nowhere is a contract.Reporter for Checker.Problems, which reports to
// none: the flooder sends its problems to the test.
type nowhere struct{}

func (nowhere) Helper()               {}
func (nowhere) Errorf(string, ...any) {}

// stream opens one event stream, reads the answer's head and holds the
// connection without reading on, unless serve closed it.
func (f *flooder) stream(jobID string) {
	c, err := f.dial.Dial("tcp", f.spec.Addr)
	if err != nil {
		f.count("stream: dial failed")
		return
	}
	rawReq := fmt.Sprintf("GET /api/generation/%s/events HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n",
		jobID, f.spec.Addr, f.spec.Key)
	io.WriteString(c, rawReq)
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 1024), nil)
	if err != nil {
		f.count("stream: no answer (" + errClass(err) + ")")
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	what, body := answerClass(resp, true)
	f.answers.add(rawReq, false, resp, body)
	f.count("stream: " + what)
	if resp.Close || resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(what, "too_many_connections") {
		c.Close()
		return
	}
	f.mu.Lock()
	f.held = append(f.held, c)
	f.mu.Unlock()
}

// slowBody keeps one submission open that sends its body a byte a second,
// and opens another when serve ends it, until the flood stops.
func (f *flooder) slowBody() {
	for !f.stopped() {
		c, err := f.dial.Dial("tcp", f.spec.Addr)
		if err != nil {
			f.count("slow: dial failed")
			f.pause(time.Second)
			continue
		}
		opened := time.Now()
		// The body never comes, and would be too large: off-spec.
		rawReq := fmt.Sprintf("POST /api/generation HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n",
			f.spec.Addr, f.spec.Key)
		io.WriteString(c, rawReq)
		f.count("slow: opened")
		answer := make(chan string, 1)
		go func() {
			resp, err := http.ReadResponse(bufio.NewReaderSize(c, 1024), nil)
			if err != nil {
				answer <- "closed without an answer (" + errClass(err) + ")"
				return
			}
			what, body := answerClass(resp, false)
			f.answers.add(rawReq, true, resp, body)
			answer <- what
		}()
		tick := time.NewTicker(time.Second)
		ended := false
		for !ended {
			select {
			case <-f.stop:
				f.count("slow: still open at the end")
				c.Close()
				<-answer
				ended = true
			case what := <-answer:
				f.count(fmt.Sprintf("slow: %s after %s", what, roundSeconds(time.Since(opened))))
				c.Close()
				ended = true
				f.pause(time.Second) // a refused one comes back a second later, not at once
			case <-tick.C:
				c.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
				if _, err := c.Write([]byte{' '}); err == nil { // JSON's leading white space
					f.count("slow: body bytes sent")
				}
			}
		}
		tick.Stop()
	}
}

func (f *flooder) pause(d time.Duration) {
	select {
	case <-f.stop:
	case <-time.After(d):
	}
}

// roundSeconds buckets a connection's life: under 1 s, else to 10 s.
func roundSeconds(d time.Duration) string {
	if d < time.Second {
		return "<1s"
	}
	return fmt.Sprintf("~%ds", int(math.Round(d.Seconds()/10))*10)
}

// answerClass names an answer, its status and error code, and returns the
// body it read (4 KiB at most); the body of a stream (200) is not read.
func answerClass(resp *http.Response, stream bool) (string, []byte) {
	if resp.StatusCode == http.StatusOK && stream {
		return "200 held", nil
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	json.Unmarshal(raw, &body)
	what := fmt.Sprintf("%d %s", resp.StatusCode, body.Error.Code)
	if body.Error.Code == "too_many_streams" { // which of its caps
		switch {
		case strings.Contains(body.Error.Message, "credential"):
			what += " (per credential)"
		case strings.Contains(body.Error.Message, "job"):
			what += " (per job)"
		default:
			what += " (in all)"
		}
	}
	return what, raw
}

func errClass(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	case strings.Contains(err.Error(), "reset"):
		return "reset"
	}
	return "error"
}

// floodRun is the flooder processes of a test.
type floodRun struct {
	t     *testing.T
	procs []*exec.Cmd
	stdin []io.WriteCloser
	lines chan floodReport
	done  sync.WaitGroup
	// checked, distinct and problems sum the final reports' checks of the
	// attacker's answers.
	checked, distinct int
	problems          []string
}

func startFlood(t *testing.T, spec floodSpec, procs int) *floodRun {
	t.Helper()
	fr := &floodRun{t: t, lines: make(chan floodReport, 4*procs)}
	sse, slow := spec.SSE, spec.Slow
	for i := range procs {
		s := spec
		s.SSE = sse/procs + btoi(i < sse%procs)
		s.Slow = slow/procs + btoi(i < slow%procs)
		s.Source = fmt.Sprintf("127.0.0.%d", 11+i) // its own source ports
		raw, _ := json.Marshal(s)
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), floodRoleEnv+"="+string(raw))
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		logf, err := os.CreateTemp(t.TempDir(), fmt.Sprintf("flooder-%d-*.log", i))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = logf
		if err := cmd.Start(); err != nil {
			t.Fatalf("start flooder %d: %v", i, err)
		}
		fr.procs, fr.stdin = append(fr.procs, cmd), append(fr.stdin, stdin)
		fr.done.Add(1)
		go func() {
			defer fr.done.Done()
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				var r floodReport
				if json.Unmarshal(sc.Bytes(), &r) == nil {
					fr.lines <- r
				}
			}
		}()
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			if t.Failed() {
				b, _ := os.ReadFile(logf.Name())
				if len(b) > 0 {
					t.Logf("--- stderr of flooder %d ---\n%s", i, tail(string(b), 30))
				}
			}
		})
	}
	return fr
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// wait sums the reports of every flooder that ready or final picks, within
// limit.
func (fr *floodRun) wait(pick func(floodReport) bool, limit time.Duration) map[string]int64 {
	fr.t.Helper()
	sum := map[string]int64{}
	deadline := time.After(limit)
	for n := 0; n < len(fr.procs); {
		select {
		case r := <-fr.lines:
			if !pick(r) {
				continue
			}
			n++
			for k, v := range r.Tally {
				sum[k] += v
			}
			fr.checked += r.Checked
			fr.distinct += r.Distinct
			fr.problems = append(fr.problems, r.Problems...)
		case <-deadline:
			fr.t.Fatalf("%d of %d flooders reported within %s; so far %v", n, len(fr.procs), limit, sum)
		}
	}
	return sum
}

// stop tells the flooders to stop and sums their final reports.
func (fr *floodRun) stop() map[string]int64 {
	for _, w := range fr.stdin {
		w.Close()
	}
	return fr.wait(func(r floodReport) bool { return r.Final }, 30*time.Second)
}

func logTally(t *testing.T, label string, tally map[string]int64) {
	keys := make([]string, 0, len(tally))
	for k := range tally {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %-60s %6d", k, tally[k])
	}
	t.Logf("%s:%s", label, b.String())
}

// productionBinary is scriptgen built without the race detector: the flood
// measures serve's memory, which the race detector multiplies (a race build
// held 1.2 GiB under this flood where the production build holds under
// 200 MiB, and its memory trigger fired for real). The test binary and the
// flooders keep the race detector when the test has it.
func productionBinary(t *testing.T) string {
	t.Helper()
	if os.Getenv("E2E_NO_RACE") != "" {
		return binary
	}
	path := binary + "-norace"
	if _, err := os.Stat(path); err == nil {
		return path
	}
	build := exec.Command("go", "build", "-o", path, "../cmd/scriptgen")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build scriptgen without -race: %v\n%s", err, out)
	}
	return path
}

// startBuilt is startProc for the scriptgen at bin.
func startBuilt(t *testing.T, bin, name string, env []string, args ...string) *proc {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), name+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, args: args, env: env, log: &procLog{f: f}}
	for _, e := range env {
		if addr, ok := strings.CutPrefix(e, "LISTEN_ADDR="); ok {
			p.URL = ""
			if addr != "" {
				p.URL = "http://" + addr
			}
		}
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = childEnv(os.Environ(), env)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		cmd.Wait()
		close(done)
	}(p.cmd, p.done)
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- log of %s ---\n%s", p.name, tail(p.log.String(), 60))
		}
	})
	if p.URL != "" {
		p.waitHealthy()
	}
	return p
}

// createKey makes an API key with `scriptgen keys create` on the database.
func createKey(t *testing.T, bin string, env []string, tenant, name string) string {
	t.Helper()
	cmd := exec.Command(bin, "keys", "create", "--tenant", tenant, "--name", name, "--json")
	cmd.Env = childEnv(os.Environ(), env)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("keys create: %v: %s", err, out)
	}
	var k struct{ Key string }
	if err := json.Unmarshal(out, &k); err != nil || k.Key == "" {
		t.Fatalf("keys create printed %q: %v", out, err)
	}
	return k.Key
}

// projectIn names a project of tenant whose worker-system bucket is below
// (or not below) percent, so that its jobs go where the test wants them.
func projectIn(t *testing.T, tenant, prefix string, percent int, below bool) string {
	for i := range 1000 {
		p := fmt.Sprintf("%s-%d", prefix, i)
		if (workerflag.Bucket(tenant+"/"+p) < percent) == below {
			return p
		}
	}
	t.Fatalf("no project %s-N of %s in the buckets wanted", prefix, tenant)
	return ""
}

// keyedJob is an accepted job and the key of its tenant.
type keyedJob struct {
	submitted
	Key string
}

func submitAs(t *testing.T, c *http.Client, base, key, project string, i int) (keyedJob, map[string]any) {
	t.Helper()
	code, j := requestWith(t, c, "POST", base+"/api/generation", episodeBody(project, i),
		"Authorization", "Bearer "+key, "Idempotency-Key", fmt.Sprintf("%s-%d", project, i))
	if code != http.StatusAccepted {
		t.Fatalf("submit %s %d: %d %v", project, i, code, j)
	}
	return keyedJob{submitted{ID: j["id"].(string), Project: project}, key}, j
}

// requestWith is request on a client of the caller's.
func requestWith(t *testing.T, c *http.Client, method, url string, body any, headers ...string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, url, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := c.Do(req.WithContext(ctx))
	if err != nil {
		return 0, map[string]any{"transport_error": err.Error()}
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// followStream reads a job's event stream with key until its end and
// returns its events.
func followStream(ctx context.Context, c *http.Client, base, key, id string) ([]streamEvent, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/generation/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("events of %s: %d %s", id, resp.StatusCode, b)
	}
	var out []streamEvent
	var ev streamEvent
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return out, nil
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && ev.ID != "":
			out = append(out, ev)
			ev = streamEvent{}
		case strings.HasPrefix(line, "id: "):
			ev.ID = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.Event = line[7:]
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(line[6:]), &ev.Data); err != nil {
				return out, fmt.Errorf("bad event data %q: %v", line, err)
			}
		}
	}
}

// checkFinishedOnce checks each job with its tenant's key: it succeeded,
// its log holds one result, and its project's episodes are 1..n, one per job.
func checkFinishedOnce(t *testing.T, c *http.Client, base string, jobs []keyedJob, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for _, j := range jobs {
		for {
			code, got := requestWith(t, c, "GET", base+"/api/generation/"+j.ID, nil, "Authorization", "Bearer "+j.Key)
			if code == 200 && got["status"] == "succeeded" {
				break
			}
			if code == 200 && (got["status"] == "failed" || got["status"] == "cancelled") {
				t.Fatalf("job %s ended %v: %v", j.ID, got["status"], got["error"])
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %s did not succeed within %s: %d %v", j.ID, limit, code, got)
			}
			time.Sleep(100 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		evs, err := followStream(ctx, c, base, j.Key, j.ID)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		results := 0
		for i, ev := range evs {
			if ev.Data.Seq != int64(i+1) {
				t.Fatalf("job %s: event %d has seq %d", j.ID, i+1, ev.Data.Seq)
			}
			if ev.Event == "result" {
				results++
			}
		}
		if results != 1 || evs[len(evs)-1].Data.Status != "succeeded" {
			t.Fatalf("job %s: %d result events, last %+v; want one, succeeded", j.ID, results, evs[len(evs)-1])
		}
	}
	byProject := map[string][]keyedJob{}
	for _, j := range jobs {
		byProject[j.Project] = append(byProject[j.Project], j)
	}
	for project, js := range byProject {
		code, page := requestWith(t, c, "GET", base+"/api/projects/"+project+"/episodes?limit=200", nil, "Authorization", "Bearer "+js[0].Key)
		if code != 200 {
			t.Fatalf("episodes of %s: %d %v", project, code, page)
		}
		items, _ := page["items"].([]any)
		seen := map[string]int{}
		for i, it := range items {
			ep := it.(map[string]any)
			if int(ep["number"].(float64)) != i+1 {
				t.Fatalf("project %s: episode %v where %d was due", project, ep["number"], i+1)
			}
			seen[ep["job_id"].(string)]++
		}
		if len(items) != len(js) {
			t.Fatalf("project %s: %d episodes for %d jobs", project, len(items), len(js))
		}
		for _, j := range js {
			if seen[j.ID] != 1 {
				t.Fatalf("project %s: job %s saved %d episodes", project, j.ID, seen[j.ID])
			}
		}
	}
}

// writeUnderFlood submits a writer's job in background_tasks and follows its
// stream to its success; it returns the job and the number of events.
func writeUnderFlood(c *http.Client, base, key, project string) (keyedJob, int, error) {
	b, _ := json.Marshal(episodeBody(project, 0))
	req, _ := http.NewRequest("POST", base+"/api/generation", strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Idempotency-Key", project+"-0")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.Do(req.WithContext(ctx))
	if err != nil {
		return keyedJob{}, 0, err
	}
	var j map[string]any
	json.NewDecoder(resp.Body).Decode(&j)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return keyedJob{}, 0, fmt.Errorf("submit: %d %v", resp.StatusCode, j)
	}
	if j["backend"] != "background_tasks" {
		return keyedJob{}, 0, fmt.Errorf("its job went to %v, want background_tasks", j["backend"])
	}
	kj := keyedJob{submitted{ID: j["id"].(string), Project: project}, key}
	evs, err := followStream(ctx, c, base, key, kj.ID)
	if err != nil {
		return kj, 0, fmt.Errorf("its stream: %w", err)
	}
	if len(evs) == 0 || evs[len(evs)-1].Data.Status != "succeeded" {
		return kj, 0, fmt.Errorf("its stream ended with %v, want its job's success", evs)
	}
	return kj, len(evs), nil
}

// rssMax samples VmRSS of pid every 100 ms until stop.
func rssMax(pid int, stop <-chan struct{}) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var peak int64
		for {
			if rss, err := sysmem.ProcessRSS(pid); err == nil && rss > peak {
				peak = rss
			}
			select {
			case <-stop:
				out <- peak
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return out
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(math.Ceil(p*float64(len(s))))-1]
}

func TestFlood(t *testing.T) {
	redis := testenv.StartRedis(t)
	// The memory trigger fires above this share of serve's limit, held for
	// 2 s: just above what 2 × GOMEMLIMIT is of it, so that the host's memory
	// in use (what the trigger once read, and what the flooders fill) would
	// fire it within the test.
	usage, err := sysmem.ProcessUsage()
	if err != nil {
		t.Fatal(err)
	}
	memBound := int64(2 * floodGoMemMiB << 20)
	memPercent := min(100, int(100*memBound/usage.Limit)+1)
	env := serveEnv(t, "REDIS_URL="+redis.URL(5), "ADMIN_TOKEN="+adminToken, "GOMEMLIMIT="+fmt.Sprint(floodGoMemMiB)+"MiB",
		"AUTO_ROLLBACK=true", "ROLLBACK_INTERVAL=500ms", "ROLLBACK_MEMORY_PERCENT="+fmt.Sprint(memPercent), "ROLLBACK_MEMORY_FOR=2s",
		"LOG_LEVEL=warn")
	bin := productionBinary(t)
	attackerKey := createKey(t, bin, env, "attacker", "flood")
	writerKey := createKey(t, bin, env, "writer", "legit")
	srv := startBuilt(t, bin, "serve", env, "serve")
	addr := strings.TrimPrefix(srv.URL, "http://")
	admin := []string{"Authorization", "Bearer " + adminToken}
	client := &http.Client{Transport: contract.New(t).Transport(&http.Transport{MaxIdleConnsPerHost: 4})}
	t.Cleanup(client.CloseIdleConnections)

	// The durable worker on for half the projects: the controller's triggers
	// are live, the attacker's jobs wait for a worker that comes at the end,
	// the writer's run in serve.
	flag := map[string]any{"enabled": true, "rollout_percent": floodRollout, "reason": "flood test"}
	if code, body := requestWith(t, client, "PUT", srv.URL+"/api/admin/worker-system", flag, admin...); code != 200 {
		t.Fatalf("set the flag: %d %v", code, body)
	}
	attackerProject := projectIn(t, "attacker", "flood", floodRollout, true)
	writerProject := projectIn(t, "writer", "novel", floodRollout, false)
	var jobs, attackerJobs []keyedJob
	var ids []string
	for i := range 4 { // the flood takes turns: the credential's 64 streams are met before a job's 32
		j, body := submitAs(t, client, srv.URL, attackerKey, attackerProject, i)
		if body["backend"] != "durable" {
			t.Fatalf("attacker's job on %v, want durable", body["backend"])
		}
		jobs, attackerJobs, ids = append(jobs, j), append(attackerJobs, j), append(ids, j.ID)
	}

	stopRSS := make(chan struct{})
	var stopOnce sync.Once
	stopSampling := func() { stopOnce.Do(func() { close(stopRSS) }) }
	t.Cleanup(stopSampling)
	peak := rssMax(srv.cmd.Process.Pid, stopRSS)
	floodStart := time.Now()
	flood := startFlood(t, floodSpec{Addr: addr, Key: attackerKey, Jobs: ids, SSE: floodSSE, Slow: floodSlow,
		Dialers: 64, Life: floodLife}, floodProcs)
	ramp := flood.wait(func(r floodReport) bool { return r.Ready }, 60*time.Second)
	t.Logf("flood in place after %s", time.Since(floodStart).Round(time.Millisecond))
	logTally(t, "the flood's streams as answered", ramp)

	// While it holds: /health on fresh connections, as a load balancer asks.
	probe := &http.Client{Transport: contract.New(t).Transport(&http.Transport{DisableKeepAlives: true}), Timeout: 5 * time.Second}
	var lat []time.Duration
	probeCodes := map[string]int{}
	probesDone := make(chan struct{})
	go func() {
		defer close(probesDone)
		for i := range floodProbes {
			start := time.Now()
			resp, err := probe.Get(srv.URL + "/health")
			code := "error"
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				code = fmt.Sprint(resp.StatusCode)
			}
			lat = append(lat, time.Since(start))
			probeCodes[code]++
			if i < floodProbes-1 {
				time.Sleep(floodProbeGap)
			}
		}
	}()

	// The writer: a job accepted, its stream followed to the end.
	writer := &http.Client{Transport: contract.New(t).Transport(&http.Transport{})}
	t.Cleanup(writer.CloseIdleConnections)
	wj, n, err := writeUnderFlood(writer, srv.URL, writerKey, writerProject)
	if wj.ID != "" {
		jobs = append(jobs, wj)
	}
	if err != nil {
		t.Errorf("the writer under the flood: %v", err)
	} else {
		t.Logf("the writer's job was accepted, streamed %d events and succeeded under the flood", n)
	}

	// The memory trigger is live: the controller reads it while the flood holds.
	var memReading any
	hostPercent := math.NaN()
	for deadline := time.Now().Add(10 * time.Second); memReading == nil && time.Now().Before(deadline); {
		_, stats := requestWith(t, probe, "GET", srv.URL+"/api/admin/stats", nil, admin...)
		ts, _ := stats["triggers"].([]any)
		for _, tr := range ts {
			if tr, _ := tr.(map[string]any); tr["name"] == "system_memory" && tr["state"] != "unknown" {
				memReading = tr
			}
		}
		if m, ok := stats["memory"].(map[string]any); ok {
			hostPercent, _ = m["host_percent"].(float64)
		}
		if memReading == nil {
			time.Sleep(500 * time.Millisecond)
		}
	}
	if memReading == nil {
		t.Error("the controller's reading of the memory trigger could not be had under the flood")
	}
	t.Logf("memory trigger under the flood: %v; the host's memory in use: %.1f%%", memReading, hostPercent)
	if !(hostPercent > float64(memPercent)) {
		t.Logf("the host's memory in use is under the trigger's %d%%: this run cannot tell the trigger reads this process alone", memPercent)
	}

	<-probesDone
	time.Sleep(time.Until(floodStart.Add(floodHoldMin)))
	t.Logf("the flood held for %s", time.Since(floodStart).Round(time.Second))
	end := flood.stop()
	stopSampling()
	rss := <-peak
	logTally(t, "the flood at its end", end)
	t.Logf("the attacker's answers: %d held against api/openapi.yaml after the flood (%d distinct to the validator)", flood.checked, flood.distinct)
	if flood.checked == 0 {
		t.Error("no answer of the attacker's was held against api/openapi.yaml")
	}
	for _, p := range flood.problems {
		t.Errorf("an answer to the attacker disagrees with api/openapi.yaml: %s", p)
	}

	p99 := percentile(lat, 0.99)
	t.Logf("/health under the flood: %d probes, p50 %s, p99 %s, max %s, answers %v", len(lat),
		percentile(lat, 0.5).Round(10*time.Microsecond), p99.Round(10*time.Microsecond), percentile(lat, 1).Round(10*time.Microsecond), probeCodes)
	t.Logf("serve's peak RSS: %.1f MiB (GOMEMLIMIT %d MiB, bound %d MiB)", float64(rss)/(1<<20), floodGoMemMiB, memBound>>20)
	if probeCodes["200"] != floodProbes {
		t.Errorf("/health answered %v under the flood, want %d × 200", probeCodes, floodProbes)
	}
	if p99 >= floodHealthP99 {
		t.Errorf("/health p99 %s under the flood, want < %s", p99, floodHealthP99)
	}
	if rss > memBound {
		t.Errorf("serve's RSS reached %.1f MiB, over 2 × GOMEMLIMIT", float64(rss)/(1<<20))
	}
	if ramp["stream: 200 held"] == 0 {
		t.Error("no stream of the flood was held: the flood did not reach the handler")
	}

	// No rollback, and the flag as it was set.
	_, hist := requestWith(t, client, "GET", srv.URL+"/api/admin/rollbacks", nil, admin...)
	if items, _ := hist["items"].([]any); len(items) != 0 {
		t.Fatalf("the flood set off a rollback: %v", items)
	}
	_, ws := requestWith(t, client, "GET", srv.URL+"/api/admin/worker-system", nil, admin...)
	if ws["enabled"] != true || ws["rollout_percent"] != float64(floodRollout) {
		t.Fatalf("the flag changed under the flood: %v", ws)
	}

	// A durable worker runs the attacker's jobs; every job finished once.
	wenv := append(append([]string(nil), env...), "LISTEN_ADDR=")
	worker := startBuilt(t, bin, "worker", wenv, "worker")
	checkFinishedOnce(t, client, srv.URL, jobs, 60*time.Second)
	worker.stop(30 * time.Second)
	t.Logf("%d jobs (%d of the attacker's, %d of the writer's) finished exactly once", len(jobs), len(attackerJobs), len(jobs)-len(attackerJobs))
}
