package workerflag

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/testenv"
)

type fixed store.WorkerSetting

func (f *fixed) GetWorkerSetting(context.Context) (store.WorkerSetting, error) {
	return store.WorkerSetting(*f), nil
}

func TestEffectiveState(t *testing.T) {
	tests := []struct {
		name        string
		cfg         Config
		setting     store.WorkerSetting
		wantEnabled bool
		wantType    job.Backend
	}{
		{"durable by default with Redis", Config{DurableAvailable: true}, store.DefaultWorkerSetting, true, job.BackendDurable},
		{"no Redis, no durable", Config{}, store.DefaultWorkerSetting, false, job.BackendBackgroundTasks},
		{"kill switch wins over the setting", Config{DurableAvailable: true, KillSwitchOff: true}, store.DefaultWorkerSetting, false, job.BackendBackgroundTasks},
		{"setting off", Config{DurableAvailable: true}, store.WorkerSetting{Enabled: false, RolloutPercent: 100}, false, job.BackendBackgroundTasks},
		{"enabled at 0 percent", Config{DurableAvailable: true}, store.WorkerSetting{Enabled: true, RolloutPercent: 0}, true, job.BackendBackgroundTasks},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := fixed(tt.setting)
			f := New(&src, tt.cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err := f.Refresh(context.Background()); err != nil {
				t.Fatal(err)
			}
			st := f.State()
			if st.Enabled != tt.wantEnabled || st.Type() != tt.wantType {
				t.Fatalf("state %+v type %s, want enabled=%v type=%s", st, st.Type(), tt.wantEnabled, tt.wantType)
			}
			if !st.Enabled && f.BackendFor("p") != job.BackendBackgroundTasks {
				t.Fatal("a disabled flag routed a job to durable")
			}
		})
	}
}

func TestRolloutIsStickyAndProportional(t *testing.T) {
	src := fixed(store.WorkerSetting{Enabled: true, RolloutPercent: 30})
	f := New(&src, Config{DurableAvailable: true}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.Refresh(context.Background())
	durable := 0
	for i := range 2000 {
		p := fmt.Sprintf("project-%d", i)
		b := f.BackendFor(p)
		if b != f.BackendFor(p) {
			t.Fatalf("project %s moved between backends", p)
		}
		if b == job.BackendDurable {
			durable++
		}
	}
	if durable < 500 || durable > 700 {
		t.Fatalf("%d of 2000 projects durable at 30%%", durable)
	}
	// Raising the rollout keeps the projects that were durable on durable.
	before := map[string]bool{}
	for i := range 200 {
		p := fmt.Sprintf("project-%d", i)
		before[p] = f.BackendFor(p) == job.BackendDurable
	}
	src.RolloutPercent = 60
	f.Refresh(context.Background())
	for p, wasDurable := range before {
		if wasDurable && f.BackendFor(p) != job.BackendDurable {
			t.Fatalf("project %s left durable when the rollout went up", p)
		}
	}
}

// hangsOnce never answers its first read (a connection that hangs), then
// answers with the setting.
type hangsOnce struct {
	mu    sync.Mutex
	calls int
	w     store.WorkerSetting
}

func (h *hangsOnce) GetWorkerSetting(ctx context.Context) (store.WorkerSetting, error) {
	h.mu.Lock()
	h.calls++
	first := h.calls == 1
	h.mu.Unlock()
	if first {
		<-ctx.Done()
		return store.WorkerSetting{}, ctx.Err()
	}
	return h.w, nil
}

// TestARefreshThatHangsDoesNotFreezeTheFlag: a read of the setting that never
// answers gives up after ten refresh intervals, and the next one sees the
// change (a hung connection used to keep the replica on its last state for
// good).
func TestARefreshThatHangsDoesNotFreezeTheFlag(t *testing.T) {
	src := &hangsOnce{w: store.WorkerSetting{Enabled: false, Reason: "rolled back"}}
	f := New(src, Config{Refresh: 20 * time.Millisecond, DurableAvailable: true}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	started := make(chan struct{})
	go func() {
		f.Start(context.Background())
		close(started)
	}()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("Start still waits for a read that never answers")
	}
	defer f.Stop(context.Background())
	waitFor(t, "flag showing the durable worker off, as the setting was read", func() bool { return !f.State().Enabled })
}

// waitFor polls cond every 10 ms until it holds, and fails the test when it
// still does not after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, cond, "no %s", what)
}
