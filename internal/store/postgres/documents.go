package postgres

import (
	"context"

	"github.com/scriptgen/scriptgen/internal/store"
)

// chunkSearch matches with ILIKE, which the pg_trgm index serves.
var chunkSearch = store.ChunkSearch{
	From:  `document_chunks c JOIN documents d ON d.id = c.document_id`,
	Match: `c.text ILIKE ?`,
}

// SearchChunks searches a project's chunks through the trigram index.
func (s *Store) SearchChunks(ctx context.Context, projectID string, terms []string, limit int) ([]store.ChunkHit, error) {
	return s.SearchChunksWith(ctx, chunkSearch, projectID, terms, limit)
}
