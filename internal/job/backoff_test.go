package job

import (
	"slices"
	"testing"
	"time"
)

// The delay before attempt n+1 is min(base·2^(n-1), cap), with no jitter;
// a zero base retries at once. Steps lists the delays up to the cap's.
func TestBackoffDelay(t *testing.T) {
	b := Backoff{Base: time.Second, Cap: 10 * time.Second}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second,
		4: 8 * time.Second, 5: 10 * time.Second, 100: 10 * time.Second} {
		if got := b.Delay(n); got != want {
			t.Errorf("Delay(%d) = %s, want %s", n, got, want)
		}
	}
	if got, want := b.Steps(), []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second}; !slices.Equal(got, want) {
		t.Errorf("Steps() = %v, want %v", got, want)
	}
	if d, s := (Backoff{Cap: time.Minute}).Delay(3), (Backoff{Cap: time.Minute}).Steps(); d != 0 || s != nil {
		t.Errorf("zero base: Delay %s, Steps %v; want 0 and none", d, s)
	}
	if s := (Backoff{Base: time.Millisecond, Cap: MaxBackoffCap}).Steps(); len(s) > 40 || s[len(s)-1] != MaxBackoffCap {
		t.Errorf("widest bounds: %d steps ending %s", len(s), s[len(s)-1])
	}
}
