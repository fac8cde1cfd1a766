package sqlite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/store/sqlite"
	"github.com/scriptgen/scriptgen/internal/store/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clk clock.Clock) store.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "test.db"), clk)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestLogIsCheckpointedOffTheWriter: the writer never checkpoints, so the
// write-ahead log stays bounded only because the checkpointer catches up
// between waves of writes and the writer then starts the log over. Without it
// the log would hold every wave.
func TestLogIsCheckpointedOffTheWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.db")
	ctx := context.Background()
	s, err := sqlite.Open(ctx, path, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	payload := json.RawMessage(`{"title":"t"}`)
	var sizes []int64
	for wave := range 5 {
		for i := range 300 {
			if _, _, err := s.CreateJob(ctx, store.NewJob{Kind: job.KindGeneration, ProjectID: "p", Payload: payload,
				IdempotencyKey: fmt.Sprintf("w%d-%d", wave, i), RequestHash: "h", Backend: job.BackendBackgroundTasks}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(600 * time.Millisecond) // a few checkpoint passes
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, fi.Size())
	}
	if last := sizes[len(sizes)-1]; last > 2*sizes[0] {
		t.Fatalf("log sizes after each wave %v: the log grows, nothing checkpoints it", sizes)
	}
}
