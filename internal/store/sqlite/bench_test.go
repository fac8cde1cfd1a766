package sqlite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/store/sqlite"
)

// BenchmarkCreateJob measures the store's side of a submission: one
// transaction that checks the idempotency key, inserts the job and its first
// event, with 50 submitters at once.
func BenchmarkCreateJob(b *testing.B) {
	s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "b.db"), clock.Real{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	payload := json.RawMessage(`{"title":"t"}`)
	var n atomic.Int64
	b.SetParallelism(25)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			_, _, err := s.CreateJob(context.Background(), store.NewJob{Kind: job.KindGeneration, ProjectID: "p", Payload: payload,
				IdempotencyKey: fmt.Sprint("k", i), RequestHash: "h", Backend: job.BackendBackgroundTasks})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
