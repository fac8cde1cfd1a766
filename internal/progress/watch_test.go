package progress_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/progress"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/store/postgres"
	"github.com/scriptgen/scriptgen/internal/testenv"
)

// countingSource counts the broker's queries of the store: reads of one
// job's log, and the watcher's lookups of many jobs' event_seq.
type countingSource struct {
	progress.EventSource
	reads, looks, mostIDs atomic.Int64
	slowest               atomic.Int64 // the longest lookup, in nanoseconds
}

func (c *countingSource) ListEvents(ctx context.Context, id string, after int64, limit int) ([]job.Event, error) {
	c.reads.Add(1)
	return c.EventSource.ListEvents(ctx, id, after, limit)
}

func (c *countingSource) EventSeqs(ctx context.Context, ids []string) (map[string]int64, error) {
	c.looks.Add(1)
	raise(&c.mostIDs, int64(len(ids)))
	began := time.Now()
	defer func() { raise(&c.slowest, int64(time.Since(began))) }()
	return c.EventSource.EventSeqs(ctx, ids)
}

// raise makes v at least n.
func raise(v *atomic.Int64, n int64) {
	for old := v.Load(); n > old && !v.CompareAndSwap(old, n); old = v.Load() {
	}
}

// createJobs submits n queued jobs, 16 at a time.
func createJobs(t *testing.T, st store.Store, n int) []job.Job {
	t.Helper()
	jobs := make([]job.Job, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				j, _, err := st.CreateJob(context.Background(), store.NewJob{Kind: job.KindGeneration, ProjectID: "p",
					Payload: json.RawMessage(`{}`), IdempotencyKey: fmt.Sprint("idle-", i), RequestHash: "h",
					Backend: job.BackendBackgroundTasks, MaxAttempts: 3})
				if err != nil {
					t.Error(err)
					return
				}
				jobs[i] = j
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return jobs
}

func openPostgres(t *testing.T, url string) store.Store {
	st, err := postgres.Open(context.Background(), url, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Watching 2,000 jobs that do nothing costs the store one query per 500
// jobs at each look of the broker's watcher — every 50 ms while nothing
// notifies, every second while LISTEN does — and no read of any job's log;
// a reader of its own per job polled its log every 50 ms, 40,000 queries a
// second here. A change to one job still reaches its subscriber within a
// look, and only that job's log is read.
func TestIdleStreamsCostAQueryPerLookPer500Jobs(t *testing.T) {
	const n = 2000
	t.Run("sqlite", func(t *testing.T) { testIdleStreams(t, openSQLite(t), "", n) })
	t.Run("postgres", func(t *testing.T) { testIdleStreams(t, openPostgres(t, testenv.PostgresURL(t)), "", n) })
	t.Run("postgres listening", func(t *testing.T) {
		url := testenv.PostgresURL(t)
		testIdleStreams(t, openPostgres(t, url), url, n)
	})
}

func testIdleStreams(t *testing.T, st store.Store, listenURL string, n int) {
	src := &countingSource{EventSource: st}
	cfg := progress.BrokerConfig{PollInterval: 50 * time.Millisecond, FloorInterval: time.Second}
	b := progress.NewBroker(src, cfg, nil)
	defer b.Stop(context.Background())
	interval, window := cfg.PollInterval, time.Second
	if listenURL != "" {
		l := progress.NewListener(listenURL, postgres.EventChannel, b, nil)
		l.Start(context.Background())
		defer l.Stop(context.Background())
		interval, window = cfg.FloorInterval, 3*time.Second
	}
	jobs := createJobs(t, st, n)
	subs := make([]*progress.Subscription, n)
	for i, j := range jobs {
		sub, err := b.Subscribe(j.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		subs[i] = sub
	}
	// Every subscriber has the job's first event: the readers' first reads
	// are over.
	first := make([]bool, n)
	waitFor(t, 60*time.Second, "not every subscriber got its job's first event", func() bool {
		for i, sub := range subs {
			if !first[i] {
				evs, _, _ := sub.Next()
				first[i] = len(evs) > 0
				if !first[i] {
					return false
				}
			}
		}
		return true
	})
	if listenURL != "" {
		waitFor(t, 10*time.Second, "LISTEN never connected", b.Live)
	}
	time.Sleep(interval) // a look the watcher began before now is over

	reads0, looks0 := src.reads.Load(), src.looks.Load()
	src.slowest.Store(0) // of the lookups of idle jobs, not of those queued behind the first reads
	start := time.Now()
	time.Sleep(window)
	took := time.Since(start)
	reads, looks := src.reads.Load()-reads0, src.looks.Load()-looks0
	perLook := int64((n + 499) / 500)
	most := perLook * (int64(took/interval) + 2) // a look may straddle each end
	t.Logf("%d idle jobs over %s, a look every %s: %d event_seq queries (%.0f/s), %d log reads; at most %d ids a query",
		n, took.Round(time.Millisecond), interval, looks, float64(looks)/took.Seconds(), reads, src.mostIDs.Load())
	if reads != 0 {
		t.Errorf("%d reads of idle jobs' logs, want none", reads)
	}
	if looks < perLook || looks > most {
		t.Errorf("%d event_seq queries in %s, want %d a look (%d..%d)", looks, took, perLook, perLook, most)
	}
	if m := src.mostIDs.Load(); m > 500 {
		t.Errorf("a query asked about %d jobs, want at most 500", m)
	}

	// One job changes: its subscriber gets the event within a look.
	watched := subs[n/2]
	reads0 = src.reads.Load()
	began := time.Now()
	if _, err := st.Cancel(context.Background(), jobs[n/2].ID); err != nil {
		t.Fatal(err)
	}
	changed := time.Now() // committed
	seqs := drain(t, watched, 10*time.Second)
	lag := time.Since(changed)
	checkSeqs(t, seqs, 2, 2)
	// A look's queries are slow under the race detector, SQLite's most: the
	// bound is an interval and a look (one under way may have missed the
	// change), with time for the cancel's commit and the job's read. While
	// LISTEN works, NOTIFY brings the change, not the floor.
	look := time.Duration(perLook * src.slowest.Load())
	wake := interval
	if listenURL != "" {
		wake = 0
	}
	t.Logf("a cancel (%s to commit) reached its subscriber %s after its commit; %d log reads; a look takes up to %s",
		changed.Sub(began).Round(time.Millisecond), lag.Round(time.Millisecond), src.reads.Load()-reads0, look.Round(time.Millisecond))
	if limit := wake + 2*look + 300*time.Millisecond; lag > limit {
		t.Errorf("the change took %s to reach its subscriber, want within %s and a look (%s)", lag, wake, look)
	}
	if r := src.reads.Load() - reads0; r < 1 || r > 2 {
		t.Errorf("%d log reads for one job's change, want that job's (1, or 2 if woken twice)", r)
	}
}

// On SQLite the store hands the broker the events of its commits
// (store.SQL.OnEvents, wired as the server does): a commit reaches the job's
// subscriber at once, and without the log being read back — only the
// reader's first read touches it. The watcher is as good as off here, so
// only the commit can have brought the events.
func TestSQLiteCommitWakesTheReader(t *testing.T) {
	st := openSQLite(t)
	src := &countingSource{EventSource: st}
	b := progress.NewBroker(src, progress.BrokerConfig{PollInterval: time.Hour, FloorInterval: time.Hour}, nil)
	defer b.Stop(context.Background())
	hook, ok := st.(interface{ OnEvents(func(evs ...job.Event)) })
	if !ok {
		t.Fatalf("%T does not tell of its commits", st)
	}
	hook.OnEvents(b.Publish)
	defer hook.OnEvents(nil)
	b.SetLive(true)
	f := newFixture(t, st)
	sub, err := b.Subscribe(f.job.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	waitFor(t, 5*time.Second, "no first event", func() bool { evs, _, _ := sub.Next(); return len(evs) == 1 })
	seq := int64(1)
	for _, step := range []struct {
		name string
		do   func()
	}{
		{"claim (group commit)", f.claim},
		{"progress", func() { f.progress(30) }},
		{"progress", func() { f.progress(60) }},
		{"completion (group commit)", f.complete},
	} {
		began := time.Now()
		step.do()
		seq++
		waitFor(t, 5*time.Second, step.name+": event never came", func() bool {
			evs, _, _ := sub.Next()
			if len(evs) > 0 && evs[len(evs)-1].Seq != seq {
				t.Fatalf("%s: got %+v, want seq %d", step.name, evs, seq)
			}
			return len(evs) > 0
		})
		lag := time.Since(began)
		t.Logf("%s: the subscriber had its event %s after the call began", step.name, lag.Round(100*time.Microsecond))
		if lag > 300*time.Millisecond {
			t.Errorf("%s: %s to the subscriber, want well under the 1 s floor", step.name, lag)
		}
	}
	if r := src.reads.Load(); r != 1 {
		t.Errorf("%d reads of the log, want the first one only: committed events are handed over", r)
	}
}

// An event handed to the broker past the end of what its reader has (one
// committed before the reader started, say, that it was not handed) makes
// it read the log: the subscriber gets every event once, in order.
func TestPublishedGapIsRead(t *testing.T) {
	st := openSQLite(t)
	src := &countingSource{EventSource: st}
	b := progress.NewBroker(src, progress.BrokerConfig{PollInterval: time.Hour, FloorInterval: time.Hour}, nil)
	defer b.Stop(context.Background())
	f := newFixture(t, st)
	sub, err := b.Subscribe(f.job.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	waitFor(t, 5*time.Second, "no first event", func() bool { evs, _, _ := sub.Next(); return len(evs) == 1 })
	f.claim()      // seq 2, not handed over
	f.progress(30) // seq 3
	evs, err := st.ListEvents(context.Background(), f.job.ID, 2, 10)
	if err != nil || len(evs) != 1 {
		t.Fatalf("events after 2: %v %v", evs, err)
	}
	b.Publish(evs...) // 3 only: 2 is missing
	var got []int64
	waitFor(t, 5*time.Second, "the gap was not read", func() bool {
		evs, _, _ := sub.Next()
		for _, e := range evs {
			got = append(got, e.Seq)
		}
		return len(got) >= 2
	})
	if len(got) != 2 || got[0] != 2 || got[1] != 3 {
		t.Fatalf("the subscriber got seqs %v, want [2 3]", got)
	}
}
