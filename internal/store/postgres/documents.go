package postgres

import (
	"context"

	"github.com/scriptgen/scriptgen/internal/store"
)

// chunkSearch matches with ILIKE, which the pg_trgm index serves. ILIKE folds
// the case of non-ASCII letters only under a UTF-8 locale (not under C), so
// the capital forms of such terms are looked for too.
var chunkSearch = store.ChunkSearch{
	From:      `document_chunks c JOIN documents d ON d.id = c.document_id`,
	Match:     `c.text ILIKE ?`,
	ASCIICase: true,
}

// SearchChunks searches a project's chunks through the trigram index.
func (s *Store) SearchChunks(ctx context.Context, projectID string, terms []string, limit int) ([]store.ChunkHit, error) {
	return s.SearchChunksWith(ctx, chunkSearch, projectID, terms, limit)
}
