package rag_test

import (
	"context"
	"testing"

	"github.com/scriptgen/scriptgen/internal/rag"
)

// TestSearchFindsNonASCIINamesInCapitals: a query is lower-cased by
// rag.Terms; a document that writes a non-ASCII name in capitals, or with a
// capital first letter, is still found on SQLite, whose LIKE folds ASCII
// only (it found nothing), as on PostgreSQL (ILIKE).
func TestSearchFindsNonASCIINamesInCapitals(t *testing.T) {
	st := openStore(t)
	d := createDocument(t, st, "p1", "# Cast\n\nÉLODIE runs the ΩMEGA bakery with Maël at night.")
	index(t, st, "p1", d.ID)
	for _, q := range []string{"ÉLODIE", "Élodie", "élodie", "ΩMEGA", "ωmega", "MAËL"} {
		terms, err := rag.ParseQuery(q)
		if err != nil {
			t.Fatal(err)
		}
		hits, err := st.SearchChunks(context.Background(), "p1", terms, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(hits) != 1 {
			t.Errorf("search %q (terms %q): %d hits, want the one chunk that holds it", q, terms, len(hits))
		}
	}
}
