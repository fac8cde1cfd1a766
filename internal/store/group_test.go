package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// testGroup is a group whose batches fail when they hold a request of 3.
func testGroup(batches *[][]int, mu *sync.Mutex) *group[int, string] {
	return &group[int, string]{max: 16, autocommit: true,
		apply: func(_ context.Context, _ execer, qs []int, as []string) error {
			mu.Lock()
			*batches = append(*batches, slices.Clone(qs))
			mu.Unlock()
			if slices.Contains(qs, 3) {
				return errors.New("the batch fails")
			}
			for i, q := range qs {
				as[i] = fmt.Sprintf("batch %d", q)
			}
			return nil
		},
		failed: func(err error) string { return "failed: " + err.Error() },
	}
}

// queued waits until g holds n requests.
func queued(t *testing.T, g *group[int, string], n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d requests queued", n), func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.queue) == n
	})
}

// waitFor polls cond every 10 ms until it holds, and fails the test when it
// still does not after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 5 s", what)
		}
		<-tick.C
	}
}

// TestGroupCommit: requests that wait together are committed as one batch and
// each gets its own answer; when the batch fails, every request of it is
// retried as a batch of one in a transaction of its own, so only the failing
// one fails; a request still waiting when the store closes gets ErrClosed.
func TestGroupCommit(t *testing.T) {
	db, err := sql.Open("sqlite", ":memory:") // the retries' transactions
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	s := NewSQL(db, db, Dialect{}, nil)
	var mu sync.Mutex
	var batches [][]int

	// submit hands qs to a new group and starts its committer once all wait.
	submit := func(qs ...int) map[int]string {
		g := testGroup(&batches, &mu)
		wake := make(chan struct{}, 1)
		g.setWake(wake)
		answers := map[int]string{}
		var wg sync.WaitGroup
		for _, q := range qs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a, err := g.do(s, q)
				if err != nil {
					t.Errorf("request %d: %v", q, err)
				}
				mu.Lock()
				answers[q] = a
				mu.Unlock()
			}()
		}
		queued(t, g, len(qs))
		s.batchers.Add(1)
		go s.committer(wake, []source{g})
		wg.Wait()
		return answers
	}

	answers := submit(1, 2, 4, 5)
	if len(batches) != 1 || len(batches[0]) != 4 {
		t.Fatalf("batches %v: want the four waiting requests in one", batches)
	}
	for _, q := range []int{1, 2, 4, 5} {
		if answers[q] != fmt.Sprintf("batch %d", q) {
			t.Fatalf("answers %v: each request wants its own answer of the batch", answers)
		}
	}

	answers = submit(6, 3, 7)
	want := map[int]string{6: "batch 6", 3: "failed: the batch fails", 7: "batch 7"}
	if len(batches) != 5 || len(batches[1]) != 3 {
		t.Fatalf("batches %v: want the three waiting requests in one, then each alone", batches)
	}
	for q, w := range want {
		if answers[q] != w {
			t.Fatalf("answers %v, want %v: a failed batch must answer each request alone", answers, want)
		}
	}

	// A request nobody takes any more: the store closes under it.
	close(s.closing)
	s.batchers.Wait()
	g := testGroup(&batches, &mu)
	g.setWake(make(chan struct{}, 1))
	done := make(chan error, 1)
	go func() {
		_, err := g.do(s, 8)
		done <- err
	}()
	queued(t, g, 1)
	close(s.stopped)
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("request after close: %v, want ErrClosed", err)
	}
}
