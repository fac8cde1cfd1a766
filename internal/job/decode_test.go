package job

import (
	"errors"
	"testing"
)

func TestCheckKeys(t *testing.T) {
	for body, field := range map[string]string{
		`{"a":1,"b":{"a":2},"c":[{"a":1,"b":2},{"a":3}]}`:               "",
		`{"a":"x\"y","b":"{\"a\":1,\"a\":2}"}`:                          "", // keys inside strings are text
		`[{"a":1},{"a":2}]`:                                             "",
		`{"a":1,"a":2}`:                                                 "a",
		`{"\u0070roject_id":"a","project_id":"b"}`:                      "project_id",
		`{"a":{"b":[1,{"c":1,"d":[{"e":1,"e":2}]}]}}`:                   "a.b[1].d[0].e",
		`{"a":[[{}],[{"x":1}],[{"X":1}]]}`:                              "a[2][0].X",
		`{"ok":1,"Ok":2}`:                                               "Ok",
		`{"":1}`:                                                        "",
		`{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"a":0}`: "a",
	} {
		err := checkKeys([]byte(body))
		var ve *ValidationError
		switch {
		case field == "" && body == `{"":1}`:
			if err == nil {
				t.Errorf("%s: an empty key must be refused", body)
			}
		case field == "":
			if err != nil {
				t.Errorf("%s: %v", body, err)
			}
		case !errors.As(err, &ve) || ve.Field != field:
			t.Errorf("%s: error %v, want one about %s", body, err, field)
		}
	}
	// Not JSON: an error or nothing, never a panic.
	for _, body := range []string{`"`, `{"`, `{"a`, `}}]]`, `{"a\`, `[,,,`, `{"a":1,}`} {
		checkKeys([]byte(body))
	}
}
