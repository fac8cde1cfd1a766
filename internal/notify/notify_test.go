package notify_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/notify"
	"github.com/scriptgen/scriptgen/internal/rollback"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/testenv"
)

// receiver is a webhook endpoint the test starts: it fails the first
// failFirst posts with 503 and keeps the bodies of the others.
type receiver struct {
	mu        sync.Mutex
	failFirst int
	posts     int
	got       []notify.Message
	raw       []map[string]any
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.posts++
	if r.posts <= r.failFirst {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var m notify.Message
	var raw map[string]any
	if req.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &m) != nil || json.Unmarshal(b, &raw) != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.got, r.raw = append(r.got, m), append(r.raw, raw)
}

func (r *receiver) messages() []notify.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notify.Message(nil), r.got...)
}

func start(t *testing.T, failFirst int) (*receiver, *notify.Webhook) {
	rcv := &receiver{failFirst: failFirst}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	w := notify.New(notify.Config{URL: srv.URL, Backoff: 10 * time.Millisecond, Attempts: 5, Source: "test"},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	w.Start(context.Background())
	t.Cleanup(func() { w.Stop(context.Background()) })
	return rcv, w
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRetriedUntilDelivered: a receiver that fails twice gets the message on
// the third post, once, with a Slack-compatible text field.
func TestRetriedUntilDelivered(t *testing.T) {
	rcv, w := start(t, 2)
	w.Send(notify.Message{Text: "hello", Event: "trigger"})
	waitFor(t, "the message", func() bool { return len(rcv.messages()) == 1 })
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if rcv.posts != 3 || rcv.raw[0]["text"] != "hello" || rcv.raw[0]["source"] != "test" {
		t.Fatalf("%d posts, body %v; want 3 posts and text hello", rcv.posts, rcv.raw[0])
	}
}

// world is a probe whose memory reading the test sets.
type world struct {
	mu      sync.Mutex
	memory  float64
	enabled func() bool
}

func (w *world) RedisUp(context.Context) bool                              { return true }
func (w *world) WorkerCrashes(context.Context, time.Duration) (int, error) { return 0, nil }
func (w *world) QueueDelay(context.Context) (time.Duration, error)         { return 0, nil }
func (w *world) WorkersUp(context.Context) (int, error)                    { return 1, nil }
func (w *world) DurableEnabled() bool                                      { return w.enabled() }
func (w *world) MemoryPercent() (float64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.memory, nil
}

// TestControllerNotifies: a trigger going pending, then firing, and the
// rollback it causes each reach the webhook, the first through a receiver
// failing at first.
func TestControllerNotifies(t *testing.T) {
	ctx := context.Background()
	rcv, w := start(t, 1)
	st := testenv.SQLite(t)
	clk := clock.NewFake(time.Now())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := rollback.New(st, nil, log)
	svc.FlagRefresh, svc.Clock = 0, clk
	svc.OnRecord = func(a store.AuditRecord) { w.Send(notify.Record(a)) }
	wd := &world{memory: 40, enabled: func() bool { s, _ := st.GetWorkerSetting(ctx); return s.Enabled }}
	cfg := rollback.DefaultControllerConfig()
	cfg.Clock, cfg.HolderID = clk, "a"
	ctl := rollback.NewController(svc, wd, st, cfg, log)
	ctl.OnTriggerChange = func(s rollback.TriggerState, from string) {
		w.Send(notify.Trigger(notify.TriggerChange{Name: s.Name, From: from, To: s.State, Value: s.Value, Threshold: s.Threshold, Window: s.Window}))
	}
	ctl.Tick(ctx)
	wd.mu.Lock()
	wd.memory = 99
	wd.mu.Unlock()
	ctl.Tick(ctx)
	clk.Advance(time.Minute)
	ctl.Tick(ctx)
	waitFor(t, "three notifications", func() bool { return len(rcv.messages()) == 3 })
	got := rcv.messages()
	want := []struct{ event, text string }{
		{"trigger", "system_memory: ok → pending"},
		{"trigger", "system_memory: pending → firing"},
		{"rollback", "rollback completed (system_memory)"},
	}
	for i, m := range got {
		if m.Event != want[i].event || !strings.Contains(m.Text, want[i].text) {
			t.Fatalf("notification %d: %+v, want %s containing %q", i, m, want[i].event, want[i].text)
		}
	}
}

// TestStopRetriesWhatIsQueued: a command stops its sender right after its
// rollback; a message whose first post the receiver refused is still posted
// again, within Stop's time, and arrives once. (Stop used to cut the retry's
// wait short, so `scriptgen rollback`'s notification was lost whenever the
// receiver failed once.)
func TestStopRetriesWhatIsQueued(t *testing.T) {
	rcv := &receiver{failFirst: 1}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	w := notify.New(notify.Config{URL: srv.URL, Backoff: 50 * time.Millisecond, Source: "test"},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	w.Start(context.Background())
	w.Send(notify.Message{Text: "rolled back", Event: "rollback"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	rcv.mu.Lock()
	posts := rcv.posts
	rcv.mu.Unlock()
	if got := rcv.messages(); len(got) != 1 || got[0].Text != "rolled back" || posts != 2 {
		t.Fatalf("after stop: %d posts, accepted %+v; want the refused one posted again and accepted once", posts, got)
	}
}

// TestStopGivesUpAfterItsGrace: a receiver that keeps failing holds a
// stopping process no longer than StopGrace.
func TestStopGivesUpAfterItsGrace(t *testing.T) {
	rcv := &receiver{failFirst: 1 << 30}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	w := notify.New(notify.Config{URL: srv.URL, Backoff: time.Second, StopGrace: 200 * time.Millisecond, Source: "test"},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	w.Start(context.Background())
	w.Send(notify.Message{Text: "rolled back", Event: "rollback"})
	start := time.Now()
	if err := w.Stop(context.Background()); err == nil {
		t.Fatal("stop with a receiver that always fails said everything was sent")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("stop took %s, want about its 200ms grace", took)
	}
}
