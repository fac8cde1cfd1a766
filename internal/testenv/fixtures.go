package testenv

import (
	"context"
	"testing"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// Document stores a Markdown document of project with a queued
// background_tasks job, as a writer's upload leaves it.
func Document(t testing.TB, st store.DocumentStore, project, content string) store.Document {
	t.Helper()
	d, _, _, err := st.CreateDocument(context.Background(), store.NewDocument{
		ProjectID:   project,
		Title:       "Bible",
		Format:      store.FormatMarkdown,
		Content:     content,
		RequestHash: "h",
		Backend:     job.BackendBackgroundTasks,
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}
