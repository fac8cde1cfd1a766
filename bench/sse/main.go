// Command sse measures live-progress fan-out: S clients follow one job's
// Server-Sent Events stream over real HTTP while the job reports N progress
// events; every client must receive every event exactly once and in order,
// and the delivery lag (event committed → client read it) is reported as
// p50/p99/max over all deliveries. The store, broker and SSE handler run in
// this process on the real drivers (SQLite woken by its commits, PostgreSQL
// by LISTEN/NOTIFY; -no-notify polls), so one clock measures both ends.
//
// With -idle N it measures instead what watching costs when nothing happens
// (issue 17): N jobs, one SSE client on each (in a child process), none of
// them reporting; over -measure it reports this process's CPU, the store's
// queries per second (event reads, and the watcher's event_seq lookups), and
// the latency of submissions made meanwhile.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/database"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/progress"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/store/postgres"
)

func main() {
	dbURL := flag.String("database", "", "DATABASE_URL (default: a fresh SQLite file)")
	subs := flag.Int("subscribers", 1000, "concurrent SSE clients of the one job")
	events := flag.Int("events", 100, "progress events the job reports")
	every := flag.Duration("every", 20*time.Millisecond, "pause between two progress events")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile here")
	inProcess := flag.Bool("in-process", false, "run the clients in this process instead of a child process")
	clientOf := flag.String("client-of", "", "internal: run the clients against this stream URL and print deliveries")
	idle := flag.Int("idle", 0, "instead: follow this many idle jobs, one client each, and measure what watching them costs")
	measure := flag.Duration("measure", 20*time.Second, "with -idle: how long to measure")
	idleOf := flag.String("idle-client-of", "", "internal: follow the streams of the job ids read from stdin under this URL")
	flag.BoolVar(&noNotify, "no-notify", false, "neither LISTEN nor the store's commits wake the broker: it polls (as on PostgreSQL while LISTEN is down)")
	flag.Parse()
	if *idleOf != "" {
		if err := runIdleClients(*idleOf); err != nil {
			fmt.Fprintln(os.Stderr, "sse idle clients:", err)
			os.Exit(1)
		}
		return
	}
	if *idle > 0 {
		if err := runIdle(*dbURL, *idle, *measure); err != nil {
			fmt.Fprintln(os.Stderr, "sse:", err)
			os.Exit(1)
		}
		return
	}
	if *clientOf != "" {
		if err := runClients(*clientOf, *subs); err != nil {
			fmt.Fprintln(os.Stderr, "sse clients:", err)
			os.Exit(1)
		}
		return
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	if err := run(*dbURL, *subs, *events, *every, *inProcess); err != nil {
		fmt.Fprintln(os.Stderr, "sse:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

type delivery struct {
	seq int64
	at  time.Time
}

func run(dbURL string, subs, events int, every time.Duration, inProcess bool) error {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if dbURL == "" {
		dir, err := os.MkdirTemp("", "sse-bench")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		dbURL = "sqlite:" + filepath.Join(dir, "bench.db")
	}
	st, err := database.Open(ctx, dbURL, clock.Real{})
	if err != nil {
		return err
	}
	defer st.Close()

	src := &timedSource{Store: st, readAt: map[int64]time.Time{}}
	broker, mode, stop := newBroker(ctx, st, src, dbURL, log)
	defer stop()
	listens := strings.HasPrefix(dbURL, "postgres")
	mux := http.NewServeMux()
	mux.Handle("GET /api/generation/{id}/events", progress.NewStream(broker, st, progress.StreamConfig{}, log))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()

	j, _, err := st.CreateJob(ctx, store.NewJob{Kind: job.KindGeneration, ProjectID: "bench", Payload: json.RawMessage(`{}`),
		IdempotencyKey: fmt.Sprint(time.Now().UnixNano()), RequestHash: "bench", Backend: job.BackendBackgroundTasks, MaxAttempts: 1})
	if err != nil {
		return err
	}

	url := base + "/api/generation/" + j.ID + "/events"
	var got [][]delivery
	var clientsDone func() error
	if inProcess {
		clientsDone = startClients(url, subs, func(g [][]delivery) { got = g })
	} else {
		clientsDone, err = startChild(url, subs, func(g [][]delivery) { got = g })
		if err != nil {
			return err
		}
	}
	// Wait until every client holds its stream open.
	for deadline := time.Now().Add(60 * time.Second); broker.Subscribers(j.ID) < subs; {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d clients connected", broker.Subscribers(j.ID), subs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for deadline := time.Now().Add(10 * time.Second); listens && !noNotify && !broker.Live(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("LISTEN did not connect")
		}
	}

	start := time.Now()
	lease := mustClaim(ctx, st)
	for i := range events {
		time.Sleep(every)
		if err := st.ReportProgress(ctx, lease, store.Progress{Percent: i * 100 / events, Stage: "bench", Message: strconv.Itoa(i)}); err != nil {
			return err
		}
	}
	if _, err := st.Complete(ctx, lease, store.Completion{Result: json.RawMessage(`{}`)}); err != nil {
		return err
	}
	if err := clientsDone(); err != nil {
		return err
	}
	took := time.Since(start)

	evs, err := st.ListEvents(ctx, j.ID, 0, 0)
	if err != nil {
		return err
	}
	created := map[int64]time.Time{}
	for _, e := range evs {
		created[e.Seq] = e.CreatedAt
	}
	var lags, fanout []time.Duration
	var readLags []time.Duration
	for seq, at := range src.readAt {
		if seq > 1 {
			readLags = append(readLags, at.Sub(created[seq]))
		}
	}
	for i, ds := range got {
		if len(ds) != len(evs) {
			return fmt.Errorf("client %d got %d events, want %d", i, len(ds), len(evs))
		}
		for k, d := range ds {
			if d.seq != int64(k+1) {
				return fmt.Errorf("client %d: event %d has seq %d (gap or repeat)", i, k, d.seq)
			}
			if d.seq == 1 {
				continue // in the log before the clients connected: a replay, not a delivery
			}
			lags = append(lags, max(d.at.Sub(created[d.seq]), 0))
			fanout = append(fanout, d.at.Sub(src.readAt[d.seq]))
		}
	}
	pct := percentiles(lags)
	fmt.Printf("store=%s (%s) subscribers=%d events=%d every=%s: all %d clients got seq 1..%d exactly once in order in %s\n",
		st.Driver(), mode, subs, len(evs), every, subs, len(evs), took.Round(time.Millisecond))
	fmt.Printf("delivery lag over %d deliveries: p50 %s  p99 %s  max %s\n", len(lags),
		pct(0.50), pct(0.99), pct(1))
	pct = percentiles(readLags)
	fmt.Printf("  of which committed → read by the job's one reader: p50 %s  p99 %s  max %s\n", pct(0.50), pct(0.99), pct(1))
	pct = percentiles(fanout)
	fmt.Printf("  of which read → client got it (fan-out):           p50 %s  p99 %s  max %s\n", pct(0.50), pct(0.99), pct(1))
	return nil
}

// noNotify: the broker polls, woken by nothing (-no-notify).
var noNotify bool

// newBroker builds the broker over src as the server does: woken by
// LISTEN/NOTIFY on PostgreSQL (it connects once a job is watched), by the
// store's commits on SQLite when the store tells of them (OnEvents), else by
// polling.
func newBroker(ctx context.Context, st store.Store, src progress.EventSource, dbURL string, log *slog.Logger) (*progress.Broker, string, func()) {
	broker := progress.NewBroker(src, progress.BrokerConfig{}, log)
	if noNotify {
		return broker, "polling every 50ms", func() {}
	}
	if strings.HasPrefix(dbURL, "postgres") {
		l := progress.NewListener(dbURL, postgres.EventChannel, broker, log)
		l.Start(ctx)
		return broker, "LISTEN/NOTIFY", func() { l.Stop(ctx) }
	}
	// Interfaces rather than the method itself: the store hands over the
	// events it committed, or, in trees before e7b6445, tells their jobs'
	// ids (this program then needs that tree's broker, without Publish).
	if h, ok := st.(interface{ OnEvents(func(evs ...job.Event)) }); ok {
		h.OnEvents(broker.Publish)
		broker.SetLive(true)
		return broker, "handed its commits", func() {}
	}
	if h, ok := st.(interface{ OnEvents(func(jobIDs ...string)) }); ok {
		h.OnEvents(func(ids ...string) {
			for _, id := range ids {
				broker.Wake(id)
			}
		})
		broker.SetLive(true)
		return broker, "woken by its commits", func() {}
	}
	return broker, "polling every 50ms", func() {}
}

func mustClaim(ctx context.Context, st store.Store) job.Lease {
	j, err := st.ClaimNext(ctx, job.BackendBackgroundTasks, "bench", time.Hour)
	if err != nil {
		fmt.Fprintln(os.Stderr, "claim:", err)
		os.Exit(1)
	}
	return j.Lease()
}

// startClients follows url with n clients in this process; wait returns
// once every stream has ended.
func startClients(url string, n int, done func([][]delivery)) (wait func() error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	got := make([][]delivery, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = follow(client, url)
		}()
	}
	return func() error {
		wg.Wait()
		done(got)
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
		return nil
	}
}

// startChild runs the clients in a child process of this program, so that
// their work (and garbage) is not the server's, as in production.
func startChild(url string, n int, done func([][]delivery)) (wait func() error, err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-client-of", url, "-subscribers", strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return func() error {
		var got [][][2]int64
		derr := json.NewDecoder(out).Decode(&got)
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("clients: %w", err)
		}
		if derr != nil {
			return fmt.Errorf("clients' output: %w", derr)
		}
		ds := make([][]delivery, len(got))
		for i, g := range got {
			for _, d := range g {
				ds[i] = append(ds[i], delivery{seq: d[0], at: time.Unix(0, d[1])})
			}
		}
		done(ds)
		return nil
	}, nil
}

// runClients is the child: it prints [[seq, unix nanos]…] per client.
func runClients(url string, n int) error {
	var got [][]delivery
	if err := startClients(url, n, func(g [][]delivery) { got = g })(); err != nil {
		return err
	}
	out := make([][][2]int64, len(got))
	for i, ds := range got {
		for _, d := range ds {
			out[i] = append(out[i], [2]int64{d.seq, d.at.UnixNano()})
		}
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// follow reads one stream to its end, noting when each event arrived.
func follow(client *http.Client, url string) ([]delivery, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	out := make([]delivery, 0, 128)
	r := bufio.NewReader(resp.Body)
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return out, nil
		}
		if id, ok := bytes.CutPrefix(line, []byte("id: ")); ok {
			seq, _ := strconv.ParseInt(string(bytes.TrimSpace(id)), 10, 64)
			out = append(out, delivery{seq: seq, at: time.Now()})
		}
	}
}

func percentiles(ds []time.Duration) func(p float64) time.Duration {
	sort.Slice(ds, func(a, b int) bool { return ds[a] < ds[b] })
	return func(p float64) time.Duration {
		if len(ds) == 0 {
			return 0
		}
		return ds[int(p*float64(len(ds)-1))].Round(100 * time.Microsecond)
	}
}

// timedSource notes when the broker's reader first saw each event.
type timedSource struct {
	store.Store
	mu     sync.Mutex
	readAt map[int64]time.Time
}

func (t *timedSource) ListEvents(ctx context.Context, id string, after int64, limit int) ([]job.Event, error) {
	evs, err := t.Store.ListEvents(ctx, id, after, limit)
	now := time.Now()
	t.mu.Lock()
	for _, e := range evs {
		if _, ok := t.readAt[e.Seq]; !ok {
			t.readAt[e.Seq] = now
		}
	}
	t.mu.Unlock()
	return evs, err
}
