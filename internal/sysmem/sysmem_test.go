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

func TestProcessUsageIsThisProcesssShare(t *testing.T) {
	u, err := ProcessUsage()
	if err != nil {
		t.Fatal(err)
	}
	if u.RSS < 1<<20 || u.Limit < u.RSS {
		t.Fatalf("usage %+v", u)
	}
	// A test binary of a few MB is a tiny share of any limit it runs under;
	// the host's use (SystemUsedPercent) plays no part.
	if p := u.Percent(); p <= 0 || p >= 50 {
		t.Fatalf("percent %.2f of %+v", p, u)
	}
}

func TestUsagePercentTakesTheHigherShare(t *testing.T) {
	cases := []struct {
		u    Usage
		want float64
	}{
		{Usage{RSS: 50, Limit: 100}, 50},
		{Usage{RSS: 10, Limit: 100, CgroupUsed: 95, CgroupLimit: 100}, 95},
		{Usage{RSS: 90, Limit: 100, CgroupUsed: 10, CgroupLimit: 100}, 90},
	}
	for _, c := range cases {
		if got := c.u.Percent(); got != c.want {
			t.Errorf("%+v: %.1f, want %.1f", c.u, got, c.want)
		}
	}
}
