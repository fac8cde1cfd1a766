package storetest

import "time"

// leadershipTests: one holder of a named leadership at a time, taken over
// when it expires or is given up.
var leadershipTests = []test{
	{"Leadership", testLeadership},
}

func testLeadership(f *fixture) {
	if ok, err := f.s.AcquireLeadership(f.ctx, "c", "a", lease); !ok || err != nil {
		f.t.Fatalf("a takes the free leadership: %v %v", ok, err)
	}
	if ok, _ := f.s.AcquireLeadership(f.ctx, "c", "b", lease); ok {
		f.t.Fatal("b took a held leadership")
	}
	if ok, _ := f.s.AcquireLeadership(f.ctx, "c", "a", lease); !ok {
		f.t.Fatal("a could not renew")
	}
	f.clk.Advance(lease + time.Second)
	if ok, _ := f.s.AcquireLeadership(f.ctx, "c", "b", lease); !ok {
		f.t.Fatal("b did not take over an expired leadership")
	}
	// a cannot give up what b holds; b's release frees it at once.
	if err := f.s.ReleaseLeadership(f.ctx, "c", "a"); err != nil {
		f.t.Fatal(err)
	}
	if ok, _ := f.s.AcquireLeadership(f.ctx, "c", "a", lease); ok {
		f.t.Fatal("a's release took b's leadership")
	}
	if err := f.s.ReleaseLeadership(f.ctx, "c", "b"); err != nil {
		f.t.Fatal(err)
	}
	if ok, _ := f.s.AcquireLeadership(f.ctx, "c", "a", lease); !ok {
		f.t.Fatal("a could not take a leadership released before it expired")
	}
}
