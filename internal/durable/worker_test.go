package durable

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/store"
)

// A task handed back for its tenant's cap waits between busyMin/2 and
// 1.5 × busyMax, a quarter of its job's wait, and is no failure of its own.
func TestBusyDelay(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		waited   time.Duration
		min, max time.Duration
	}{
		{0, busyMin / 2, busyMin * 3 / 2},
		{8 * time.Second, time.Second, 3 * time.Second},
		{time.Hour, busyMax / 2, busyMax * 3 / 2},
	} {
		for range 100 {
			if d := busyDelay(now.Add(-tc.waited), now); d < tc.min || d >= tc.max {
				t.Fatalf("waited %s: delay %s, want in [%s, %s)", tc.waited, d, tc.min, tc.max)
			}
		}
	}
	err := fmt.Errorf("wrapped: %w", &tenantBusy{delay: 3 * time.Second})
	if !errors.Is(err, store.ErrTenantAtCap) || retryDelay(7, err, nil) != 3*time.Second {
		t.Fatalf("a hand-back: %v, retry delay %s", err, retryDelay(7, err, nil))
	}
	if retryDelay(2, errors.New("database down"), nil) != 2*time.Second {
		t.Fatal("a failed claim is retried as before")
	}
}

// handedBack gives a tenant's tasks back oldest job first, forgets a claimed
// job, keeps one task per job (the latest epoch's) and at most rememberMax.
func TestHandedBack(t *testing.T) {
	h := handedBack{tasks: map[string][]backTask{}}
	for _, id := range []string{"03", "01", "02"} {
		h.add("a", backTask{jobID: id, queue: "generation", taskID: id + ":1"})
	}
	h.add("a", backTask{jobID: "02", queue: "generation", taskID: "02:2"})
	h.add("b", backTask{jobID: "00", queue: "generation", taskID: "00:1"})
	h.forget("a", "01")
	for _, want := range []string{"02:2", "03:1"} {
		if got, ok := h.oldest("a"); !ok || got.taskID != want {
			t.Fatalf("oldest of a: %+v %v, want %s", got, ok, want)
		}
	}
	if _, ok := h.oldest("a"); ok {
		t.Fatal("a's tasks should be gone")
	}
	if got, ok := h.oldest("b"); !ok || got.taskID != "00:1" {
		t.Fatalf("b: %+v", got)
	}
	for i := range rememberMax + 10 {
		h.add("c", backTask{jobID: fmt.Sprintf("%05d", rememberMax+10-i)})
	}
	if n := len(h.tasks["c"]); n != rememberMax {
		t.Fatalf("remembered %d, want %d", n, rememberMax)
	}
	if got, _ := h.oldest("c"); got.jobID != "00001" {
		t.Fatalf("the oldest job is kept when the list is full: got %s", got.jobID)
	}
}

// A task handed back for its job's backoff is no failure and comes back when
// the backoff ends, on asynq's whole seconds: never before it.
func TestNotDueComesBackAtTheWholeSecond(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", &notDue{delay: 1700 * time.Millisecond})
	if !errors.Is(err, store.ErrNotDue) || !handedBackErr(err) || retryDelay(3, err, nil) != 1700*time.Millisecond {
		t.Fatalf("a hand-back for the backoff: %v, retry delay %s", err, retryDelay(3, err, nil))
	}
	whole := time.Date(2026, 12, 7, 12, 0, 5, 0, time.UTC)
	for _, tc := range []struct{ at, want time.Time }{
		{whole, whole},
		{whole.Add(time.Microsecond), whole.Add(time.Second)},
		{whole.Add(999 * time.Millisecond), whole.Add(time.Second)},
	} {
		if got := wholeSecondAfter(tc.at); !got.Equal(tc.want) || got.Unix() < tc.at.Unix() || got.Before(tc.at) {
			t.Errorf("wholeSecondAfter(%s) = %s, want %s", tc.at, got, tc.want)
		}
	}
}
