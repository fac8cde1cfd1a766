package sysmem

import "testing"

func TestReadsProc(t *testing.T) {
	rss, err := ProcessRSS(0)
	if err != nil || rss < 1<<20 {
		t.Fatalf("rss %d, err %v", rss, err)
	}
	p, err := SystemUsedPercent()
	if err != nil || p <= 0 || p >= 100 {
		t.Fatalf("system memory %.1f%%, err %v", p, err)
	}
}
