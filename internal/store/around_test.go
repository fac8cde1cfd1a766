package store

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestAroundPutsTheFieldInKeyOrder(t *testing.T) {
	for _, tc := range []struct{ obj, want string }{
		{``, `{"episode_number":7}`},
		{`{}`, `{"episode_number":7}`},
		{`{"title":"첫 화","scenes":3}`, `{"episode_number":7,"scenes":3,"title":"첫 화"}`},
		{`{"a":1,"z":{"episode_number":1}}`, `{"a":1,"episode_number":7,"z":{"episode_number":1}}`},
		{`{"episode_number":2,"model":"noop"}`, `{"episode_number":7,"model":"noop"}`},
		{`{"usage": {"tokens": 12.50}, "note": "<b>"}`, `{"episode_number":7,"note":"\u003cb\u003e","usage":{"tokens":12.50}}`},
	} {
		before, after, err := around(json.RawMessage(tc.obj), episodeNumber)
		if err != nil {
			t.Fatalf("around(%s): %v", tc.obj, err)
		}
		if got := before + "7" + after; got != tc.want {
			t.Errorf("around(%s) = %s, want %s", tc.obj, got, tc.want)
		}
	}
}

func TestAroundMatchesMarshalOfTheObject(t *testing.T) {
	obj := `{"title":"t","scenes":3,"model":"noop","usage":{"in":1,"out":2},"context_chunks":[],"script_chars":0}`
	var m map[string]any
	if err := json.Unmarshal([]byte(obj), &m); err != nil {
		t.Fatal(err)
	}
	m[episodeNumber] = 42
	want, _ := json.Marshal(m)
	before, after, err := around(json.RawMessage(obj), episodeNumber)
	if err != nil {
		t.Fatal(err)
	}
	if got := before + "42" + after; got != string(want) {
		t.Errorf("got %s, want %s", got, want)
	}
	var back map[string]any
	if err := json.Unmarshal([]byte(before+"42"+after), &back); err != nil || !reflect.DeepEqual(back[episodeNumber], float64(42)) {
		t.Errorf("result %s%s%s does not decode with the number: %v", before, "42", after, err)
	}
}

func TestAroundRefusesWhatIsNotAnObject(t *testing.T) {
	for _, obj := range []string{`[1]`, `"x"`, `{"a":`} {
		if _, _, err := around(json.RawMessage(obj), episodeNumber); err == nil {
			t.Errorf("around(%s): no error", obj)
		}
	}
}
