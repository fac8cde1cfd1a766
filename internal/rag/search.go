package rag

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// The defaults of SearchLimits (SEARCH_MAX_TERMS, SEARCH_TIMEOUT,
// SEARCH_CONCURRENCY).
const (
	DefaultMaxTerms          = 8
	DefaultSearchTimeout     = 2 * time.Second
	DefaultSearchConcurrency = 4
)

// SearchLimits bound the document searches of one replica, so that no client
// can hold the database with them: ten searches of 16 terms at once each took
// 14-27 s and kept /health from its database.
type SearchLimits struct {
	// MaxTerms: a query with more distinct terms is refused (a
	// *job.ValidationError of field "q").
	MaxTerms int
	// Timeout: a search that runs longer is stopped, in the database too,
	// and fails with ErrSearchTimeout.
	Timeout time.Duration
	// Concurrency: searches running at once; one more fails at once with
	// ErrSearchBusy. NewSearcher keeps it to half the store's reader pool at
	// most, so that searches never take every connection.
	Concurrency int
}

// DefaultSearchLimits are 8 terms, 2 s and 4 searches at once.
func DefaultSearchLimits() SearchLimits {
	return SearchLimits{MaxTerms: DefaultMaxTerms, Timeout: DefaultSearchTimeout, Concurrency: DefaultSearchConcurrency}
}

// The errors of a search that did not run to its end; the API answers them
// 429 with Retry-After and 503.
var (
	// ErrSearchBusy: this replica runs as many searches as it may.
	ErrSearchBusy = errors.New("too many searches are running; try again shortly")
	// ErrSearchTimeout: the search ran out of its time limit and was stopped.
	ErrSearchTimeout = errors.New("the search took longer than its time limit")
)

// Searcher runs the searches of a project's documents within SearchLimits.
// Build one per process: its concurrency bound is its own.
type Searcher struct {
	store  ChunkSearcher
	limits SearchLimits
	slots  chan struct{}
}

// readPool is what a store may tell of its connections for reads
// (store.SQL's ReadConnections).
type readPool interface{ ReadConnections() int }

// NewSearcher builds a searcher over the store. A limit that is not positive
// takes its default; the concurrency is at most half the store's reader pool
// (when the store tells it), at least 1.
func NewSearcher(st ChunkSearcher, limits SearchLimits) *Searcher {
	def := DefaultSearchLimits()
	if limits.MaxTerms <= 0 {
		limits.MaxTerms = def.MaxTerms
	}
	limits.MaxTerms = min(limits.MaxTerms, store.MaxSearchTerms)
	if limits.Timeout <= 0 {
		limits.Timeout = def.Timeout
	}
	if limits.Concurrency <= 0 {
		limits.Concurrency = def.Concurrency
	}
	if p, ok := st.(readPool); ok {
		if n := p.ReadConnections(); n > 0 {
			limits.Concurrency = max(min(limits.Concurrency, n/2), 1)
		}
	}
	return &Searcher{store: st, limits: limits, slots: make(chan struct{}, limits.Concurrency)}
}

// Limits are the searcher's limits as it applies them.
func (s *Searcher) Limits() SearchLimits { return s.limits }

// ParseQuery is ParseQuery with the searcher's limit on terms.
func (s *Searcher) ParseQuery(q string) ([]string, error) { return parseQuery(q, s.limits.MaxTerms) }

// Search parses the query q and ranks the project's chunks for it: the terms
// searched for and at most limit hits, best first. Its errors are a
// *job.ValidationError of field "q" (a bad query, or one of too many terms),
// ErrSearchBusy, ErrSearchTimeout, the caller's own context's error, or the
// store's.
func (s *Searcher) Search(ctx context.Context, projectID, q string, limit int) ([]string, []store.ChunkHit, error) {
	terms, err := s.ParseQuery(q)
	if err != nil {
		return nil, nil, err
	}
	hits, err := s.SearchTerms(ctx, projectID, terms, limit)
	if err != nil {
		return nil, nil, err
	}
	return terms, hits, nil
}

// SearchTerms is Search for terms already parsed (ParseQuery); more terms
// than MaxTerms are refused as in Search.
func (s *Searcher) SearchTerms(ctx context.Context, projectID string, terms []string, limit int) ([]store.ChunkHit, error) {
	if len(terms) > s.limits.MaxTerms {
		return nil, &job.ValidationError{Field: "q", Message: fmt.Sprintf("has more than %d terms; a search takes at most %d",
			s.limits.MaxTerms, s.limits.MaxTerms)}
	}
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		return nil, ErrSearchBusy
	}
	sctx, cancel := context.WithTimeout(ctx, s.limits.Timeout)
	defer cancel()
	hits, err := s.store.SearchChunks(sctx, projectID, terms, limit)
	switch {
	case err == nil:
		return hits, nil
	case ctx.Err() != nil:
		// The caller left, or its own deadline came first.
		return nil, fmt.Errorf("search chunks of %s: %w", projectID, ctx.Err())
	case errors.Is(sctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("%w (%s)", ErrSearchTimeout, s.limits.Timeout)
	}
	return nil, err
}
