package response

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"
)

// TestJSONWritesWhatEncodingJSONWrites: the faster encoder changes no byte
// of an answer — HTML escaped in strings and in raw JSON, map keys sorted,
// times, nil and empty values, omitempty, a newline at the end.
func TestJSONWritesWhatEncodingJSONWrites(t *testing.T) {
	at := time.Date(2026, 12, 7, 4, 5, 6, 789000, time.FixedZone("KST", 9*3600))
	type inner struct {
		N    int               `json:"n"`
		Skip string            `json:"skip,omitempty"`
		At   *time.Time        `json:"at"`
		Raw  json.RawMessage   `json:"raw"`
		Map  map[string]string `json:"map"`
	}
	v := map[string]any{
		"items": []inner{
			{N: 1, At: &at, Raw: json.RawMessage(`{"title":"<b>에피소드</b> & more","n":[1,2.5e3]}`), Map: map[string]string{"z": "1", "a": "<2>", "m": "\u2028"}},
			{N: 2, Raw: nil},
			{N: 3, Raw: json.RawMessage(` { "spaced" : [ 1 , "x y" ] }`)},
		},
		"next_cursor": "",
		"empty":       []string{},
		"nil":         []string(nil),
		"text":        "a <script> & \"quote\" \\ \t \x01 한글",
	}
	want := new(bytes.Buffer)
	if err := json.NewEncoder(want).Encode(v); err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	JSON(w, 200, v)
	if got := w.Body.String(); got != want.String() {
		t.Fatalf("JSON wrote\n%s\nencoding/json writes\n%s", got, want.String())
	}
}
