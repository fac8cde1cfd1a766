package rag_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/rag"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/store/postgres"
	"github.com/scriptgen/scriptgen/internal/store/sqlite"
	"github.com/scriptgen/scriptgen/internal/testenv"
)

func wantTermsRefused(t *testing.T, err error, limit int) {
	t.Helper()
	var ve *job.ValidationError
	if !errors.As(err, &ve) || ve.Field != "q" || !strings.Contains(ve.Message, fmt.Sprint(limit)) {
		t.Fatalf("error %v, want a validation error of q that names the limit %d", err, limit)
	}
}

// TestSearchTakesAtMostMaxTerms: the ninth distinct term is refused, not
// cut off, by ParseQuery and by a searcher of the default limits; a
// searcher's own limit is its configuration's.
func TestSearchTakesAtMostMaxTerms(t *testing.T) {
	st := openStore(t)
	d := createDocument(t, st, "p1", bible)
	index(t, st, "p1", d.ID)
	eight := "지수 minho 카페 바리스타 radio producer 옥상 정원"
	nine := eight + " 한강"

	if terms, err := rag.ParseQuery(eight); err != nil || len(terms) != 8 {
		t.Fatalf("ParseQuery of 8 terms: %q %v", terms, err)
	}
	_, err := rag.ParseQuery(nine)
	wantTermsRefused(t, err, 8)
	// Repeated words are one term.
	if terms, err := rag.ParseQuery(eight + " 지수 MINHO minho"); err != nil || len(terms) != 8 {
		t.Fatalf("ParseQuery of 8 distinct terms: %q %v", terms, err)
	}

	s := rag.NewSearcher(st, rag.SearchLimits{})
	if got := s.Limits(); got != rag.DefaultSearchLimits() {
		t.Fatalf("limits %+v, want the defaults %+v", got, rag.DefaultSearchLimits())
	}
	terms, hits, err := s.Search(context.Background(), "p1", eight, 10)
	if err != nil || len(terms) != 8 || len(hits) == 0 {
		t.Fatalf("search of 8 terms: %q, %d hits, %v", terms, len(hits), err)
	}
	_, _, err = s.Search(context.Background(), "p1", nine, 10)
	wantTermsRefused(t, err, 8)
	_, err = s.SearchTerms(context.Background(), "p1", strings.Fields(nine), 10)
	wantTermsRefused(t, err, 8)

	three := rag.NewSearcher(st, rag.SearchLimits{MaxTerms: 3})
	if _, _, err := three.Search(context.Background(), "p1", "지수 minho 카페", 10); err != nil {
		t.Fatal(err)
	}
	_, _, err = three.Search(context.Background(), "p1", "지수 minho 카페 바리스타", 10)
	wantTermsRefused(t, err, 3)
}

// TestSearcherKeepsToHalfTheReaderPool: SQLite has 8 readers, so at most 4
// searches run at once however many are configured.
func TestSearcherKeepsToHalfTheReaderPool(t *testing.T) {
	s := rag.NewSearcher(openStore(t), rag.SearchLimits{Concurrency: 20})
	if got := s.Limits().Concurrency; got != 4 {
		t.Fatalf("concurrency %d over 8 readers, want 4", got)
	}
}

// blockingSearcher is a store whose searches wait until released.
type blockingSearcher struct {
	running atomic.Int32
	release chan struct{}
}

func (b *blockingSearcher) SearchChunks(ctx context.Context, _ string, _ []string, _ int) ([]store.ChunkHit, error) {
	b.running.Add(1)
	defer b.running.Add(-1)
	select {
	case <-b.release:
		return []store.ChunkHit{}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TestSearchBusyAtOnce: with 4 searches running, the fifth fails at once
// with ErrSearchBusy; once one ends, a search runs again.
func TestSearchBusyAtOnce(t *testing.T) {
	b := &blockingSearcher{release: make(chan struct{})}
	s := rag.NewSearcher(b, rag.SearchLimits{Timeout: time.Minute})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := s.SearchTerms(context.Background(), "p", []string{"a"}, 10); err != nil {
				t.Error(err)
			}
		})
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return b.running.Load() == 4 }, "4 searches running")
	start := time.Now()
	_, err := s.SearchTerms(context.Background(), "p", []string{"a"}, 10)
	if !errors.Is(err, rag.ErrSearchBusy) || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("the fifth search: %v after %s, want ErrSearchBusy at once", err, time.Since(start))
	}
	b.release <- struct{}{}
	testenv.Eventually(t, 5*time.Second, func() bool { return b.running.Load() == 3 }, "one search done")
	close(b.release)
	// The searcher frees the ended search's slot just after the search itself
	// returns: until then a new search may still be told busy, never anything else.
	var err2 error
	testenv.Eventually(t, 5*time.Second, func() bool {
		_, err2 = s.SearchTerms(context.Background(), "p", []string{"a"}, 10)
		return !errors.Is(err2, rag.ErrSearchBusy)
	}, "a search once one ended")
	if err2 != nil {
		t.Fatalf("a search once one ended: %v", err2)
	}
	wg.Wait()
}

// TestSearchCallersContext: a caller that leaves gets its own context's
// error, not ErrSearchTimeout.
func TestSearchCallersContext(t *testing.T) {
	s := rag.NewSearcher(&blockingSearcher{release: make(chan struct{})}, rag.SearchLimits{Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := s.SearchTerms(ctx, "p", []string{"a"}, 10)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rag.ErrSearchTimeout) {
		t.Fatalf("error %v, want the caller's deadline", err)
	}
}

// heavy is a project whose chunks make a search of short terms scan them
// all, on a store of its own.
type heavy struct {
	st      store.Store
	sql     *store.SQL
	project string
	terms   []string
	// full is how long the search of terms takes unbounded.
	full time.Duration
}

// heavyTerms are two-letter terms: too short for a trigram index, so each is
// matched against every chunk of the project, and in three casings (a
// non-ASCII cased letter is also looked for in capitals and capitalised).
var heavyTerms = []string{"éa", "ëb", "ωc", "ψd", "ça", "ñb", "øc", "åd"}

// fill gives the project chunks of hexadecimal text (which none of
// heavyTerms matches) through insert, a statement with the document id and
// the project as its two parameters, and times the search.
func fill(t *testing.T, st store.Store, s *store.SQL, insert string) heavy {
	t.Helper()
	const project = "heavy"
	d := createDocument(t, st, project, "# seed\n\nseed")
	start := time.Now()
	if _, err := s.W.ExecContext(context.Background(), s.Q(insert), d.ID, project); err != nil {
		t.Fatal(err)
	}
	filled := time.Since(start)
	h := heavy{st: st, sql: s, project: project, terms: heavyTerms}
	start = time.Now()
	hits, err := st.SearchChunks(context.Background(), project, h.terms, 10)
	h.full = time.Since(start)
	if err != nil || len(hits) != 0 {
		t.Fatalf("the unbounded search: %d hits, %v", len(hits), err)
	}
	t.Logf("filled in %s; the search takes %s unbounded", filled.Round(time.Millisecond), h.full.Round(time.Millisecond))
	if h.full < 300*time.Millisecond {
		t.Fatalf("the search took only %s: not heavy enough to test its bounds", h.full)
	}
	return h
}

// TestSearchBoundsOnPostgres: see searchBounds.
func TestSearchBoundsOnPostgres(t *testing.T) {
	st, err := postgres.Open(context.Background(), testenv.PostgresURL(t), clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := fill(t, st, st.SQL, `INSERT INTO document_chunks (document_id, project_id, seq, heading, text)
		SELECT ?, ?, g, '', repeat(md5(g::text), 8) FROM generate_series(1, 30000) g`)
	searchBounds(t, h)
}

// TestSearchBoundsOnSQLite: see searchBounds.
func TestSearchBoundsOnSQLite(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "heavy.db"), clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rows := 60000
	if raceDetector {
		rows = 3000
	}
	h := fill(t, st, st.SQL, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < `+strconv.Itoa(rows)+`)
		INSERT INTO document_chunks (document_id, project_id, seq, heading, text)
		SELECT ?, ?, i, '', lower(hex(randomblob(128))) FROM n`)
	searchBounds(t, h)
}

// activeSearches counts the searches PostgreSQL is running.
const activeSearches = `SELECT count(*) FROM pg_stat_activity
	WHERE state = 'active' AND query LIKE '%document_chunks c JOIN%' AND pid <> pg_backend_pid()`

// searchBounds: on a project whose search scans every chunk, a search is cut
// at its time limit (in the database too), the fifth search at once is
// refused, and ten clients searching as fast as they can leave /health's
// ping its answer within 100 ms.
func searchBounds(t *testing.T, h heavy) {
	ctx := context.Background()
	t.Run("cut at the time limit", func(t *testing.T) {
		timeout := min(h.full/5, 200*time.Millisecond)
		s := rag.NewSearcher(h.st, rag.SearchLimits{Timeout: timeout})
		start := time.Now()
		_, err := s.SearchTerms(ctx, h.project, h.terms, 10)
		took := time.Since(start)
		if !errors.Is(err, rag.ErrSearchTimeout) {
			t.Fatalf("error %v after %s, want ErrSearchTimeout", err, took)
		}
		t.Logf("cut after %s: %v", took.Round(time.Millisecond), err)
		if took > timeout+300*time.Millisecond || took > h.full*3/4 {
			t.Fatalf("the search ended %s after it began, its limit being %s (unbounded: %s)", took, timeout, h.full)
		}
		if h.st.Driver() == "postgres" {
			// The server stopped the query too.
			var n int
			testenv.Eventually(t, time.Second, func() bool {
				return h.sql.R.QueryRowContext(ctx, activeSearches).Scan(&n) == nil && n == 0
			}, "a search still runs on the server")
			// Its statement timeout did, before the context: the connection
			// stays in the pool.
			open := h.sql.R.Stats().OpenConnections
			tctx, cancel := context.WithTimeout(ctx, timeout)
			_, err := h.st.SearchChunks(tctx, h.project, h.terms, 10)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("the store's search under a deadline: %v, want DeadlineExceeded", err)
			}
			// The statement timeout is set to end the query a little before
			// the context; on a loaded machine the context can still win,
			// and pgx then cancels the query and drops the connection.
			if !strings.Contains(err.Error(), "57014") {
				t.Logf("the context ended before the statement timeout (a loaded machine): %v", err)
			} else if now := h.sql.R.Stats().OpenConnections; now != open {
				t.Fatalf("open connections %d → %d: the search's connection was dropped", open, now)
			}
		}
		pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		if err := h.st.Ping(pctx); err != nil {
			t.Fatalf("ping after the timeout: %v", err)
		}
	})

	t.Run("the fifth search is busy", func(t *testing.T) {
		s := rag.NewSearcher(h.st, rag.SearchLimits{Timeout: time.Minute})
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		defer wg.Wait()
		defer cancel()
		var running atomic.Int32
		for range 4 {
			wg.Go(func() {
				running.Add(1)
				s.SearchTerms(ctx, h.project, h.terms, 10)
			})
		}
		testenv.Eventually(t, 5*time.Second, func() bool { return running.Load() == 4 }, "four searches started")
		if h.st.Driver() == "postgres" {
			var n int
			testenv.Eventually(t, 5*time.Second, func() bool {
				return h.sql.R.QueryRowContext(ctx, activeSearches).Scan(&n) == nil && n == 4
			}, "four searches running on the server")
		} else {
			time.Sleep(h.full / 10) // they run for h.full
		}
		start := time.Now()
		_, err := s.SearchTerms(context.Background(), h.project, h.terms, 10)
		if !errors.Is(err, rag.ErrSearchBusy) || time.Since(start) > 50*time.Millisecond {
			t.Fatalf("the fifth search: %v after %s, want ErrSearchBusy at once", err, time.Since(start))
		}
	})

	t.Run("ten searching clients leave the ping its connection", func(t *testing.T) {
		// A serving process's pool has connections open; so has this one, so
		// that the pings measure waiting for one rather than dialling
		// (hundreds of ms on PostgreSQL beside four busy backends).
		var conns []*sql.Conn
		for range 8 {
			c, err := h.sql.R.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		for _, c := range conns {
			c.Close()
		}
		s := rag.NewSearcher(h.st, rag.SearchLimits{Timeout: 2 * time.Second})
		ctx, stop := context.WithCancel(ctx)
		var busy, timedOut, done atomic.Int32
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				for ctx.Err() == nil {
					_, err := s.SearchTerms(ctx, h.project, h.terms, 10)
					switch {
					case errors.Is(err, rag.ErrSearchBusy):
						busy.Add(1)
						time.Sleep(5 * time.Millisecond)
					case errors.Is(err, rag.ErrSearchTimeout):
						timedOut.Add(1)
					case err == nil:
						done.Add(1)
					case ctx.Err() == nil:
						t.Error(err)
					}
				}
			})
		}
		var pings []time.Duration
		for range 20 {
			time.Sleep(50 * time.Millisecond)
			pctx, cancel := context.WithTimeout(context.Background(), time.Second)
			start := time.Now()
			err := h.st.Ping(pctx)
			pings = append(pings, time.Since(start))
			cancel()
			if err != nil {
				t.Errorf("ping: %v", err)
			}
		}
		stop()
		wg.Wait()
		slices.Sort(pings)
		t.Logf("searches: %d done, %d timed out, %d refused as busy; pings: median %s, slowest %s",
			done.Load(), timedOut.Load(), busy.Load(), pings[len(pings)/2], pings[len(pings)-1])
		if busy.Load() == 0 {
			t.Error("no search was refused as busy")
		}
		// A ping that waited for a search's connection would wait seconds.
		// Under the race detector the searches on SQLite, instrumented Go
		// code, take the CPU from the ping too.
		limit := 100 * time.Millisecond
		if raceDetector && h.st.Driver() == "sqlite" {
			limit = 300 * time.Millisecond
		}
		if slowest := pings[len(pings)-1]; slowest > limit {
			t.Errorf("a ping took %s while the searches ran", slowest)
		}
	})
}
