package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/database"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/progress"
	"github.com/scriptgen/scriptgen/internal/store"
)

// runIdle follows n jobs that report nothing, one SSE client each, and
// measures over measure what that costs this process: CPU, the store's
// queries, and the latency of submissions made meanwhile.
func runIdle(dbURL string, n int, measure time.Duration) error {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if dbURL == "" {
		dir, err := os.MkdirTemp("", "sse-idle")
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
	src := &countingSource{Store: st}
	broker, mode, stop := newBroker(ctx, st, src, dbURL, log)
	defer stop()
	mux := http.NewServeMux()
	mux.Handle("GET /api/generation/{id}/events", progress.NewStream(broker, st, progress.StreamConfig{}, log))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()
	defer broker.Close()

	ids, err := createJobs(ctx, st, n)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, "-idle-client-of", "http://"+ln.Addr().String())
	cmd.Stdin = strings.NewReader(strings.Join(ids, "\n") + "\n")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for deadline := time.Now().Add(120 * time.Second); broker.Feeds() < n; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d streams open", broker.Feeds(), n)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); strings.HasPrefix(dbURL, "postgres") && !noNotify && !broker.Live(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("LISTEN did not connect")
		}
	}
	time.Sleep(2 * time.Second) // the readers' first reads are over

	reads0, seqs0 := src.reads.Load(), src.seqs.Load()
	cpu0, start := cpuTime(), time.Now()
	var lat []time.Duration
	tick := time.NewTicker(100 * time.Millisecond)
	for time.Since(start) < measure {
		<-tick.C
		t := time.Now()
		if _, err := createJobs(ctx, st, 1); err != nil {
			return err
		}
		lat = append(lat, time.Since(t))
	}
	tick.Stop()
	wall, cpu := time.Since(start), cpuTime()-cpu0
	reads, seqs := src.reads.Load()-reads0, src.seqs.Load()-seqs0
	pct := percentiles(lat)
	fmt.Printf("store=%s (%s) idle streams=%d over %s: serve CPU %.1f%% of one core; store queries %.0f/s (event reads %.0f/s, event_seq lookups %.0f/s)\n",
		st.Driver(), mode, n, wall.Round(time.Second), 100*cpu.Seconds()/wall.Seconds(),
		float64(reads+seqs)/wall.Seconds(), float64(reads)/wall.Seconds(), float64(seqs)/wall.Seconds())
	fmt.Printf("submissions meanwhile (%d, 10/s): p50 %s  p99 %s  max %s\n", len(lat), pct(0.50), pct(0.99), pct(1))
	return nil
}

// createJobs submits n jobs, 16 at a time, and returns their ids.
func createJobs(ctx context.Context, st store.Store, n int) ([]string, error) {
	ids := make([]string, n)
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, 16) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				j, _, err := st.CreateJob(ctx, store.NewJob{Kind: job.KindGeneration, ProjectID: "bench", Payload: json.RawMessage(`{}`),
					IdempotencyKey: fmt.Sprint("idle-", time.Now().UnixNano(), "-", i), RequestHash: "bench",
					Backend: job.BackendBackgroundTasks, MaxAttempts: 1})
				ids[i], errs[i] = j.ID, err
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// cpuTime is the CPU this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runIdleClients is the child of runIdle: a stream for each job id on stdin,
// read and dropped until the parent kills it.
func runIdleClients(base string) error {
	var ids []string
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if id := strings.TrimSpace(sc.Text()); id != "" {
			ids = append(ids, id)
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: len(ids)}}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get(base + "/api/generation/" + id + "/events")
			if err != nil {
				fmt.Fprintln(os.Stderr, "stream", id+":", err)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				fmt.Fprintln(os.Stderr, "stream", id+": status", strconv.Itoa(resp.StatusCode))
				return
			}
			io.Copy(io.Discard, resp.Body)
		}()
	}
	wg.Wait()
	return nil
}

// countingSource counts the broker's queries of the store.
type countingSource struct {
	store.Store
	reads, seqs atomic.Int64
}

func (c *countingSource) ListEvents(ctx context.Context, id string, after int64, limit int) ([]job.Event, error) {
	c.reads.Add(1)
	return c.Store.ListEvents(ctx, id, after, limit)
}

// EventSeqs passes the watcher's lookups on, where the store has them (an
// interface, so that this program builds on trees from before them).
func (c *countingSource) EventSeqs(ctx context.Context, ids []string) (map[string]int64, error) {
	c.seqs.Add(1)
	es, ok := c.Store.(interface {
		EventSeqs(ctx context.Context, ids []string) (map[string]int64, error)
	})
	if !ok {
		return nil, fmt.Errorf("the store has no EventSeqs")
	}
	return es.EventSeqs(ctx, ids)
}
