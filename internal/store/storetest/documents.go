package storetest

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// documentTests: documents, their processing into chunks, and the search
// over the chunks.
var documentTests = []test{
	{"DocumentCreateAndIdempotency", testDocumentCreateAndIdempotency},
	{"DocumentChunksReplaced", testDocumentChunksReplaced},
	{"DocumentStaleHolderWritesNoChunks", testDocumentStaleHolderWritesNoChunks},
	{"DocumentDelete", testDocumentDelete},
	{"SearchRanksAndIsolates", testSearchRanksAndIsolates},
	{"ClaimSeesDocuments", testClaimSeesDocuments},
	{"ListDocumentsPagination", testListDocumentsPagination},
}

func (f *fixture) document(project, key, title, content string) (store.Document, job.Job) {
	f.t.Helper()
	d, j, created, err := f.s.CreateDocument(f.ctx, newDocument(project, key, title, content))
	if err != nil || !created {
		f.t.Fatalf("create document: created=%v err=%v", created, err)
	}
	return d, j
}

func newDocument(project, key, title, content string) store.NewDocument {
	return store.NewDocument{
		ProjectID:      project,
		Title:          title,
		Format:         store.FormatMarkdown,
		Content:        content,
		IdempotencyKey: key,
		RequestHash:    job.RequestHash(job.KindRAGDocument, project, []byte(title+"\x00"+content)),
		Backend:        job.BackendBackgroundTasks,
	}
}

// process claims the document's job and completes it with chunks.
func (f *fixture) process(d store.Document, chunks ...string) job.Job {
	f.t.Helper()
	j, err := f.s.ClaimDispatch(f.ctx, job.Dispatch{JobID: d.JobID, Epoch: 1}, "w", lease)
	if err != nil {
		f.t.Fatalf("claim document job: %v", err)
	}
	done, err := f.s.Complete(f.ctx, j.Lease(), completionWithChunks(d.ID, chunks...))
	if err != nil {
		f.t.Fatalf("complete document job: %v", err)
	}
	return done
}

func completionWithChunks(docID string, chunks ...string) store.Completion {
	dc := &store.DocumentChunks{DocumentID: docID}
	for _, c := range chunks {
		dc.Chunks = append(dc.Chunks, store.NewChunk{Heading: "h", Text: c})
	}
	return store.Completion{Result: json.RawMessage(`{"chunks":` + fmt.Sprint(len(chunks)) + `}`), Chunks: dc}
}

func (f *fixture) search(project string, terms ...string) []store.ChunkHit {
	f.t.Helper()
	hits, err := f.s.SearchChunks(f.ctx, project, terms, 10)
	if err != nil {
		f.t.Fatalf("search %q: %v", terms, err)
	}
	return hits
}

func testDocumentCreateAndIdempotency(f *fixture) {
	d, j := f.document("p1", "doc-1", "Bible", "# 인물\n\n지수는 바리스타다.")
	if j.Kind != job.KindRAGDocument || j.Status != job.StatusQueued || j.ProjectID != "p1" || d.JobID != j.ID {
		f.t.Fatalf("new document job: %+v for %+v", j, d)
	}
	var p store.DocumentPayload
	if err := json.Unmarshal(j.Payload, &p); err != nil || p.DocumentID != d.ID {
		f.t.Fatalf("payload %s (%v) must name document %s", j.Payload, err, d.ID)
	}
	got, err := f.s.GetDocument(f.ctx, "p1", d.ID)
	if err != nil || got.Content != "# 인물\n\n지수는 바리스타다." || got.JobStatus != job.StatusQueued || got.Title != "Bible" {
		f.t.Fatalf("get document: %+v %v", got, err)
	}
	if _, err := f.s.GetDocument(f.ctx, "p2", d.ID); !errors.Is(err, job.ErrNotFound) {
		f.t.Fatalf("document of another project: %v, want ErrNotFound", err)
	}
	again, aj, created, err := f.s.CreateDocument(f.ctx, newDocument("p1", "doc-1", "Bible", "# 인물\n\n지수는 바리스타다."))
	if err != nil || created || again.ID != d.ID || aj.ID != j.ID {
		f.t.Fatalf("replay: doc %s job %s created=%v err=%v, want %s %s", again.ID, aj.ID, created, err, d.ID, j.ID)
	}
	if _, _, _, err := f.s.CreateDocument(f.ctx, newDocument("p1", "doc-1", "Bible", "other")); !errors.Is(err, job.ErrIdempotencyMismatch) {
		f.t.Fatalf("same key, other content: %v, want ErrIdempotencyMismatch", err)
	}
	docs, _, err := f.s.ListDocuments(f.ctx, "p1", "", 0)
	if err != nil || len(docs) != 1 || docs[0].Content != "" {
		f.t.Fatalf("list: %+v %v, want one document without content", docs, err)
	}
	if n, _ := f.s.CountJobs(f.ctx, store.JobFilter{Kind: job.KindRAGDocument}); n != 1 {
		f.t.Fatalf("%d rag_document jobs, want 1", n)
	}
}

func testDocumentChunksReplaced(f *fixture) {
	d, _ := f.document("p1", "", "Bible", "x")
	done := f.process(d, "지수는 카페의 바리스타다.", "Minho keeps the rooftop garden.")
	if done.Status != job.StatusSucceeded {
		f.t.Fatalf("job %+v", done)
	}
	first := f.search("p1", "지수")
	if len(first) != 1 || first[0].DocumentID != d.ID || first[0].DocumentTitle != "Bible" {
		f.t.Fatalf("search 지수: %+v", first)
	}
	got, _ := f.s.GetDocument(f.ctx, "p1", d.ID)
	if got.ChunkCount != 2 || got.JobStatus != job.StatusSucceeded {
		f.t.Fatalf("processed document: %+v", got)
	}

	// Re-processing replaces the chunks; it never adds to them.
	_, rj, err := f.s.ReprocessDocument(f.ctx, "p1", d.ID, job.BackendBackgroundTasks)
	if err != nil {
		f.t.Fatal(err)
	}
	d.JobID = rj.ID
	f.process(d, "지수는 카페의 바리스타다.", "Minho keeps the rooftop garden.")
	again := f.search("p1", "지수", "minho")
	if len(again) != 2 {
		f.t.Fatalf("after re-processing: %d hits, want 2: %+v", len(again), again)
	}
	for _, h := range again {
		if h.ChunkID == first[0].ChunkID {
			f.t.Fatalf("chunk %d survived re-processing", h.ChunkID)
		}
	}
	got, _ = f.s.GetDocument(f.ctx, "p1", d.ID)
	if got.ChunkCount != 2 || got.JobID != rj.ID {
		f.t.Fatalf("re-processed document: %+v", got)
	}
}

func testDocumentStaleHolderWritesNoChunks(f *fixture) {
	d, _ := f.document("p1", "", "Bible", "x")
	j, err := f.s.ClaimDispatch(f.ctx, job.Dispatch{JobID: d.JobID, Epoch: 1}, "w", lease)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.s.Release(f.ctx, j.Lease(), "test"); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.s.Complete(f.ctx, j.Lease(), completionWithChunks(d.ID, "stale chunk")); !errors.Is(err, job.ErrStaleLease) {
		f.t.Fatalf("stale completion: %v, want ErrStaleLease", err)
	}
	if hits := f.search("p1", "stale"); len(hits) != 0 {
		f.t.Fatalf("stale holder wrote chunks: %+v", hits)
	}
}

func testDocumentDelete(f *fixture) {
	d, _ := f.document("p1", "", "Bible", "x")
	f.process(d, "the lighthouse keeper", "the lighthouse at night")
	other, _ := f.document("p1", "", "Other", "y")
	if _, err := f.s.DeleteDocument(f.ctx, "p2", d.ID); !errors.Is(err, job.ErrNotFound) {
		f.t.Fatalf("delete through another project: %v, want ErrNotFound", err)
	}
	if _, err := f.s.DeleteDocument(f.ctx, "p1", d.ID); err != nil {
		f.t.Fatal(err)
	}
	if hits := f.search("p1", "lighthouse"); len(hits) != 0 {
		f.t.Fatalf("chunks of a deleted document still found: %+v", hits)
	}
	if _, err := f.s.GetDocument(f.ctx, "p1", d.ID); !errors.Is(err, job.ErrNotFound) {
		f.t.Fatalf("get deleted: %v", err)
	}
	if _, err := f.s.DeleteDocument(f.ctx, "p1", d.ID); !errors.Is(err, job.ErrNotFound) {
		f.t.Fatalf("delete twice: %v", err)
	}
	// A job that finishes after its document was deleted saves nothing.
	f.s.DeleteDocument(f.ctx, "p1", other.ID)
	if done := f.process(other, "orphan lighthouse"); done.Status != job.StatusSucceeded {
		f.t.Fatalf("job of a deleted document: %+v", done)
	}
	if hits := f.search("p1", "orphan"); len(hits) != 0 {
		f.t.Fatalf("chunks saved for a deleted document: %+v", hits)
	}
}

func testSearchRanksAndIsolates(f *fixture) {
	d, _ := f.document("p1", "", "Bible", "x")
	f.process(d,
		"Minho opens the café at dawn.",
		"지수는 한강 공원에서 Minho를 기다린다.",
		"The rooftop garden belongs to nobody.",
		"50% off, under_score and back\\slash.",
		"ÉLODIE and Maël run the ΩMEGA bakery.",
	)
	o, _ := f.document("p2", "", "Elsewhere", "y")
	f.process(o, "지수 is in another project.")

	hits := f.search("p1", "지수", "minho", "한강")
	if len(hits) != 2 || hits[0].Seq != 1 || hits[1].Seq != 0 || hits[0].Score <= hits[1].Score {
		f.t.Fatalf("ranking: %+v, want the chunk with every term first, then the one with minho", hits)
	}
	if hits := f.search("p2", "지수"); len(hits) != 1 || hits[0].DocumentID != o.ID {
		f.t.Fatalf("project p2: %+v", hits)
	}
	if hits := f.search("p1", "MINHO"); len(hits) != 2 {
		f.t.Fatalf("case-insensitive: %+v", hits)
	}
	// A search's terms come lower-cased (rag.Terms); names written in
	// capitals, or with a capital first letter, are found whatever letters
	// the store's match folds (SQLite's LIKE folds ASCII only).
	for _, term := range []string{"élodie", "maël", "ωmega"} {
		if hits := f.search("p1", term); len(hits) != 1 || hits[0].Seq != 4 {
			f.t.Fatalf("search %q: %+v, want the chunk that writes it in capitals", term, hits)
		}
	}
	// Wildcards are text, never patterns: "%" alone matches nothing.
	for _, q := range [][]string{{"%"}, {"_"}, {`\`}, {""}, {}} {
		if hits := f.search("p1", q...); len(hits) != 0 {
			f.t.Fatalf("search %q matched %d chunks, want none", q, len(hits))
		}
	}
	if hits := f.search("p1", "50%"); len(hits) != 1 {
		f.t.Fatalf("search 50%%: %+v", hits)
	}
	if hits := f.search("p1", `"unbalanced`, "NEAR(", "a*", "-"); len(hits) != 0 {
		f.t.Fatalf("FTS syntax as text: %+v", hits)
	}
}

func testListDocumentsPagination(f *fixture) {
	var ids []string
	for i := range 5 {
		d, _ := f.document("p1", "", fmt.Sprintf("doc %d", i), "x")
		ids = append(ids, d.ID)
	}
	f.document("p2", "", "other", "x")
	var seen []string
	cursor := ""
	for {
		docs, next, err := f.s.ListDocuments(f.ctx, "p1", cursor, 2)
		if err != nil {
			f.t.Fatal(err)
		}
		for _, d := range docs {
			seen = append(seen, d.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != 5 || seen[0] != ids[4] || seen[4] != ids[0] {
		f.t.Fatalf("pages gave %v, want %v newest first", seen, ids)
	}
}

// testClaimSeesDocuments: a claim that marks its job NoDocuments (PostgreSQL's
// claims look, of dispatches and of background jobs alike) is right, and the
// run of a job whose project has chunks is never told otherwise.
func testClaimSeesDocuments(f *fixture) {
	claims := map[job.Backend]func(job.Job) (job.Job, error){
		job.BackendDurable: func(j job.Job) (job.Job, error) {
			return f.s.ClaimDispatch(f.ctx, job.Dispatch{JobID: j.ID, Epoch: j.DispatchEpoch}, "w", lease)
		},
		job.BackendBackgroundTasks: func(job.Job) (job.Job, error) {
			return f.s.ClaimNext(f.ctx, job.BackendBackgroundTasks, "w", lease)
		},
	}
	for backend, claim := range claims {
		project := "nodocs-" + string(backend)
		j, err := claim(f.create(project, "", backend))
		if err != nil {
			f.t.Fatal(err)
		}
		if looks := f.s.Driver() == "postgres"; j.NoDocuments != looks {
			f.t.Fatalf("%s claim in a project without documents: NoDocuments=%v, want %v", backend, j.NoDocuments, looks)
		}
		d, _ := f.document(project, "", "Bible", "지수는 바리스타다.")
		f.process(d, "지수는 바리스타다.")
		j, err = claim(f.create(project, "", backend))
		if err != nil || j.NoDocuments {
			f.t.Fatalf("%s claim in a project with chunks: NoDocuments=%v (%v), want false", backend, j.NoDocuments, err)
		}
	}
}
