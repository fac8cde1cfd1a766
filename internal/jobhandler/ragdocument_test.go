package jobhandler_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/jobhandler"
	"github.com/scriptgen/scriptgen/internal/runner"
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

// run claims the document's current job, runs the handler and completes it,
// as the executor would.
func run(t *testing.T, st store.Store, h runner.Handler, project, docID string) job.Job {
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
	c, err := h.Handle(ctx, j, func(ctx context.Context, p store.Progress) error { return st.ReportProgress(ctx, j.Lease(), p) })
	if err != nil {
		t.Fatalf("handle: %v", err)
	}
	done, err := st.Complete(ctx, j.Lease(), c)
	if err != nil {
		t.Fatal(err)
	}
	return done
}

func TestRAGDocumentChunksAndReprocessingReplaces(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	h := jobhandler.NewRAGDocument(st)
	d := createDocument(t, st, "p1", bible)
	done := run(t, st, h, "p1", d.ID)
	var res jobhandler.DocumentResult
	if err := json.Unmarshal(done.Result, &res); err != nil || res.Chunks != 3 || res.DocumentID != d.ID {
		t.Fatalf("result %s: %v", done.Result, err)
	}
	hits, err := st.SearchChunks(ctx, "p1", []string{"바리스타"}, 10)
	if err != nil || len(hits) != 1 || hits[0].Heading != "인물 > 지수" || strings.Contains(hits[0].Text, "\r") {
		t.Fatalf("search: %+v %v", hits, err)
	}
	first := hits[0].ChunkID

	for range 2 {
		if _, _, err := st.ReprocessDocument(ctx, "p1", d.ID, job.BackendBackgroundTasks); err != nil {
			t.Fatal(err)
		}
		run(t, st, h, "p1", d.ID)
	}
	all, err := st.SearchChunks(ctx, "p1", []string{"인물", "장소"}, 100)
	if err != nil || len(all) != 3 {
		t.Fatalf("after re-processing twice: %d chunks, want 3: %v", len(all), err)
	}
	for _, c := range all {
		if c.ChunkID == first {
			t.Fatal("an old chunk survived re-processing")
		}
	}
}

func TestRAGDocumentOfADeletedDocumentIsPermanent(t *testing.T) {
	st := openStore(t)
	d := createDocument(t, st, "p1", bible)
	j, _ := st.GetJob(context.Background(), d.JobID)
	st.DeleteDocument(context.Background(), "p1", d.ID)
	_, err := jobhandler.NewRAGDocument(st).Handle(context.Background(), j, func(context.Context, store.Progress) error { return nil })
	if !errors.Is(err, runner.ErrPermanent) {
		t.Fatalf("deleted document: %v, want a permanent failure", err)
	}
}
