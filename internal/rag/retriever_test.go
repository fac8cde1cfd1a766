package rag_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/jobhandler"
	"github.com/scriptgen/scriptgen/internal/rag"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/store/sqlite"
	"github.com/scriptgen/scriptgen/internal/testenv"
)

const bible = "\uFEFF# 인물\r\n\r\n## 지수\r\n\r\n지수는 한강 근처 카페의 바리스타다. 비 오는 밤을 좋아한다.\r\n\r\n" +
	"## Minho\r\n\r\nMinho is a radio producer who never sleeps.\r\n\r\n# 장소\r\n\r\n옥상 정원은 아무의 것도 아니다.\r\n"

func openStore(t *testing.T) *sqlite.Store { return testenv.SQLite(t) }

func createDocument(t *testing.T, st store.Store, project, content string) store.Document {
	t.Helper()
	return testenv.Document(t, st, project, content)
}

// index runs the document's current job as the executor would: it claims the
// job, runs the rag_document handler and completes the job with its chunks.
func index(t *testing.T, st store.Store, project, docID string) job.Job {
	t.Helper()
	ctx := context.Background()
	d, err := st.GetDocument(ctx, project, docID)
	if err != nil {
		t.Fatal(err)
	}
	j, err := st.GetJob(ctx, d.JobID)
	if err != nil {
		t.Fatal(err)
	}
	j, err = st.ClaimDispatch(ctx, job.Dispatch{JobID: j.ID, Epoch: j.DispatchEpoch}, "test", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c, err := jobhandler.NewRAGDocument(st).Handle(ctx, j, func(ctx context.Context, p store.Progress) error { return st.ReportProgress(ctx, j.Lease(), p) })
	if err != nil {
		t.Fatalf("handle: %v", err)
	}
	done, err := st.Complete(ctx, j.Lease(), c)
	if err != nil {
		t.Fatal(err)
	}
	return done
}

func TestRetrieverFindsTheEpisodesChunks(t *testing.T) {
	st := openStore(t)
	d := createDocument(t, st, "p1", bible)
	index(t, st, "p1", d.ID)
	other := createDocument(t, st, "p2", "# 지수\n\n다른 프로젝트의 지수.")
	index(t, st, "p2", other.ID)

	r := rag.NewRetriever(st, 2)
	got, err := r.Retrieve(context.Background(), "p1", job.EpisodeData{Title: "비 오는 밤", Synopsis: "지수는 카페에서 기다린다.",
		Characters: []job.Character{{Name: "지수"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].DocumentID != d.ID || !strings.Contains(got[0].Text, "바리스타") || got[0].ChunkID == 0 {
		t.Fatalf("retrieved %+v, want the chunk about 지수 of p1", got)
	}
	none, err := r.Retrieve(context.Background(), "p3", job.EpisodeData{Title: "지수"})
	if err != nil || len(none) != 0 {
		t.Fatalf("project without documents: %+v %v", none, err)
	}
}

// FuzzSearchQuery checks that any query either is refused as a validation
// error or becomes plain terms that the real index answers without error.
func FuzzSearchQuery(f *testing.F) {
	for _, seed := range []string{"지수", `"unbalanced`, "NEAR(a b)", "a* OR b", "%_\\", "", "\x00", "\xff", "title:x -y ^z",
		strings.Repeat("가", 2000), "지수는 카페에서", "50% off"} {
		f.Add(seed)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(f.TempDir(), "fuzz.db"), clock.Real{})
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	d, _, _, err := st.CreateDocument(context.Background(), store.NewDocument{ProjectID: "p", Title: "t",
		Format: store.FormatText, Content: "x", RequestHash: "h", Backend: job.BackendBackgroundTasks})
	if err != nil {
		f.Fatal(err)
	}
	j, _ := st.ClaimDispatch(context.Background(), job.Dispatch{JobID: d.JobID, Epoch: 1}, "w", time.Minute)
	if _, err := st.Complete(context.Background(), j.Lease(), store.Completion{Result: json.RawMessage(`{}`),
		Chunks: &store.DocumentChunks{DocumentID: d.ID, Chunks: []store.NewChunk{{Text: "지수는 \"바리스타\" 50% (NEAR) a*b"}}}}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, q string) {
		terms, err := rag.ParseQuery(q)
		if err != nil {
			var ve *job.ValidationError
			if !errors.As(err, &ve) || ve.Field != "q" {
				t.Fatalf("ParseQuery(%q) error %v is not a validation error of q", q, err)
			}
			return
		}
		if len(terms) == 0 || len(terms) > store.MaxSearchTerms {
			t.Fatalf("ParseQuery(%q) gave %d terms", q, len(terms))
		}
		for _, term := range terms {
			if term == "" || !utf8.ValidString(term) || strings.ContainsAny(term, "%_\\\"*()^:-' \x00") {
				t.Fatalf("ParseQuery(%q) gave unsafe term %q", q, term)
			}
		}
		if _, err := st.SearchChunks(context.Background(), "p", terms, 10); err != nil {
			t.Fatalf("search %q (%q): %v", q, terms, err)
		}
	})
}
