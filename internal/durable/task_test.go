package durable

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/scriptgen/scriptgen/internal/job"
)

func TestParseTaskReadsWhatNewTaskWrites(t *testing.T) {
	for _, j := range []job.Job{
		{ID: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", DispatchEpoch: 1, Kind: job.KindGeneration},
		{ID: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c", DispatchEpoch: 42, Kind: job.KindRAGDocument},
	} {
		task := NewTask(j)
		d, err := ParseTask(task)
		if err != nil {
			t.Fatalf("ParseTask(NewTask(%s)): %v", j.ID, err)
		}
		if d != (job.Dispatch{JobID: j.ID, Epoch: j.DispatchEpoch}) {
			t.Fatalf("dispatch %+v, want job %s epoch %d", d, j.ID, j.DispatchEpoch)
		}
	}
}

func TestParseTaskRefusesForeignAndGarbage(t *testing.T) {
	cases := []struct {
		name, typ, payload, reason string
	}{
		{"foreign type", "email:send", `{"job_id":"a","epoch":1}`, "foreign task type"},
		{"not JSON", TaskType, `hello`, "undecodable"},
		{"empty", TaskType, ``, "undecodable"},
		{"array", TaskType, `[1,2]`, "undecodable"},
		{"unknown field", TaskType, `{"job_id":"a","epoch":1,"x":2}`, "undecodable"},
		{"second object", TaskType, `{"job_id":"a","epoch":1}{"job_id":"b","epoch":2}`, "data after"},
		{"trailing garbage", TaskType, `{"job_id":"a","epoch":1} !`, "undecodable"},
		{"job id twice", TaskType, `{"job_id":"a","epoch":1,"job_id":"b"}`, "given twice"},
		{"field in capitals", TaskType, `{"JOB_ID":"a","epoch":1}`, "unknown field"},
		{"epoch as string", TaskType, `{"job_id":"a","epoch":"1"}`, "undecodable"},
		{"no job id", TaskType, `{"epoch":1}`, "valid job id"},
		{"epoch 0", TaskType, `{"job_id":"a","epoch":0}`, "valid job id"},
		{"negative epoch", TaskType, `{"job_id":"a","epoch":-3}`, "valid job id"},
		{"job id too long", TaskType, `{"job_id":"` + strings.Repeat("a", 65) + `","epoch":1}`, "valid job id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseTask(asynq.NewTask(c.typ, []byte(c.payload)))
			if err == nil || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("ParseTask(%q, %q) = %v, want an error about %q", c.typ, c.payload, err, c.reason)
			}
		})
	}
	// Surrounding white space is still one object.
	if _, err := ParseTask(asynq.NewTask(TaskType, []byte(" {\"job_id\":\"a\",\"epoch\":1}\n"))); err != nil {
		t.Fatalf("white space around the object: %v", err)
	}
}

// FuzzParseTask feeds the worker's decoder of queue messages arbitrary
// payloads: it never panics, and what it accepts is exactly one JSON object
// of the two fields, with a usable dispatch.
func FuzzParseTask(f *testing.F) {
	for _, s := range []string{`{"job_id":"a","epoch":1}`, `{"job_id":"","epoch":1}`, `{"epoch":9e99}`,
		`{"job_id":"a","epoch":1}{}`, `null`, `{"job_id":null,"epoch":1}`, "\xff", `{"JOB_ID":"a","Epoch":2}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		d, err := ParseTask(asynq.NewTask(TaskType, []byte(payload)))
		if err != nil {
			return
		}
		if d.JobID == "" || len(d.JobID) > 64 || d.Epoch < 1 {
			t.Fatalf("accepted %q as %+v", payload, d)
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal([]byte(payload), &fields); err != nil {
			t.Fatalf("accepted %q, which is not one JSON object: %v", payload, err)
		}
		for k := range fields {
			if !strings.EqualFold(k, "job_id") && !strings.EqualFold(k, "epoch") {
				t.Fatalf("accepted %q with field %q", payload, k)
			}
		}
	})
}
