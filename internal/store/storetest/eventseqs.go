package storetest

import (
	"encoding/json"
	"fmt"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// eventSeqTests: the seq of each job's last event, read for many jobs at
// once (what the live-progress broker watches).
var eventSeqTests = []test{
	{"EventSeqs", testEventSeqs},
}

func testEventSeqs(f *fixture) {
	if got, err := f.s.EventSeqs(f.ctx, nil); err != nil || len(got) != 0 {
		f.t.Fatalf("no ids: %v %v, want an empty map", got, err)
	}
	run := f.create("p1", "", job.BackendBackgroundTasks)
	if claimed := f.claim(job.BackendBackgroundTasks, "w"); claimed.ID != run.ID {
		f.t.Fatalf("claimed %s, want the only job %s", claimed.ID, run.ID)
	} else {
		run = claimed
	}
	done := run
	queued := f.create("p1", "", job.BackendBackgroundTasks)
	cancelled := f.create("p1", "", job.BackendBackgroundTasks)
	for pct := range 3 {
		if err := f.s.ReportProgress(f.ctx, run.Lease(), store.Progress{Percent: pct * 10, Stage: "s"}); err != nil {
			f.t.Fatal(err)
		}
	}
	if _, err := f.s.Complete(f.ctx, run.Lease(), store.Completion{Result: json.RawMessage(`{}`)}); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.s.Cancel(f.ctx, cancelled.ID); err != nil {
		f.t.Fatal(err)
	}
	want := map[string]int64{}
	for _, j := range []job.Job{queued, done, cancelled} {
		evs := f.events(j.ID)
		want[j.ID] = evs[len(evs)-1].Seq
	}
	if want[done.ID] != 6 || want[queued.ID] != 1 || want[cancelled.ID] != 2 {
		f.t.Fatalf("last seqs %v: want 6 for the job that ran, 1 queued, 2 cancelled", want)
	}
	// More ids than one query takes, unknown ones among them (absent from
	// the answer), the real ones at the start, past the first chunk and at
	// the end.
	ids := make([]string, 1200)
	for i := range ids {
		ids[i] = fmt.Sprintf("no-such-job-%d", i)
	}
	ids[0], ids[600], ids[1199] = queued.ID, done.ID, cancelled.ID
	got, err := f.s.EventSeqs(f.ctx, ids)
	if err != nil {
		f.t.Fatal(err)
	}
	if len(got) != len(want) {
		f.t.Fatalf("event seqs %v, want %v", got, want)
	}
	for id, seq := range want {
		if got[id] != seq {
			f.t.Fatalf("event seqs %v, want %v", got, want)
		}
	}
}
