package sqlite

import (
	"context"

	"github.com/scriptgen/scriptgen/internal/store"
)

// chunkSearch matches through the FTS5 trigram table, whose LIKE is
// case-insensitive and indexed.
var chunkSearch = store.ChunkSearch{
	From:  `document_chunks_fts f JOIN document_chunks c ON c.id = f.rowid JOIN documents d ON d.id = c.document_id`,
	Match: `f.text LIKE ?`,
	// LIKE here ignores the case of ASCII letters only.
	ASCIICase: true,
}

// SearchChunks searches a project's chunks through the trigram index.
func (s *Store) SearchChunks(ctx context.Context, projectID string, terms []string, limit int) ([]store.ChunkHit, error) {
	return s.SearchChunksWith(ctx, chunkSearch, projectID, terms, limit)
}
