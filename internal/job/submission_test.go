package job

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecodeGenerationRequest(t *testing.T) {
	tests := []struct {
		name, body string
		field      string // "" with ok=false: a body-level error
		ok         bool
	}{
		{name: "minimal", body: `{"project_id":"p1","episode_data":{"title":"t"}}`, ok: true},
		{name: "characters as names and objects", body: `{"project_id":"p-1.x","episode_data":{"title":"첫 화","characters":["지수",{"name":"Minho","description":"d"}]}}`, ok: true},
		{name: "trimmed title", body: `{"project_id":"p1","episode_data":{"title":"  t  "}}`, ok: true},
		{name: "blank title", body: `{"project_id":"p1","episode_data":{"title":" \t "}}`, field: "episode_data.title"},
		{name: "control char in title", body: `{"project_id":"p1","episode_data":{"title":"a\u0007b"}}`, field: "episode_data.title"},
		{name: "project with slash", body: `{"project_id":"a/b","episode_data":{"title":"t"}}`, field: "project_id"},
		{name: "project too long", body: `{"project_id":"` + strings.Repeat("a", 65) + `","episode_data":{"title":"t"}}`, field: "project_id"},
		{name: "null episode", body: `{"project_id":"p1","episode_data":null}`, field: "episode_data"},
		{name: "too many characters", body: `{"project_id":"p1","episode_data":{"title":"t","characters":[` + strings.Repeat(`"a",`, MaxCharacters) + `"a"]}}`, field: "episode_data.characters"},
		{name: "character unknown field", body: `{"project_id":"p1","episode_data":{"title":"t","characters":[{"name":"a","age":3}]}}`, field: "age"},
		{name: "number as title", body: `{"project_id":"p1","episode_data":{"title":5}}`, field: "episode_data.title"},
		{name: "invalid utf8", body: "{\"project_id\":\"p1\",\"episode_data\":{\"title\":\"\xff\"}}"},
		{name: "two objects", body: `{"project_id":"p1","episode_data":{"title":"t"}} {}`},
		// What encoding/json lets through: the last of two values, another case.
		{name: "project given twice", body: `{"project_id":"p1","project_id":"p2","episode_data":{"title":"t"}}`, field: "project_id"},
		{name: "title given twice", body: `{"project_id":"p1","episode_data":{"title":"t","title":"u"}}`, field: "episode_data.title"},
		{name: "character name twice", body: `{"project_id":"p1","episode_data":{"title":"t","characters":["a",{"name":"b","name":"c"}]}}`, field: "episode_data.characters[1].name"},
		{name: "field in capitals", body: `{"PROJECT_ID":"p1","episode_data":{"title":"t"}}`, field: "PROJECT_ID"},
		{name: "field in mixed case", body: `{"project_id":"p1","Episode_Data":{"title":"t"}}`, field: "Episode_Data"},
		{name: "field with a folding letter", body: `{"project_id":"p1","episode_data":{"title":"t","ſynopsis":"s"}}`, field: "episode_data.ſynopsis"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := DecodeGenerationRequest(strings.NewReader(tt.body))
			if tt.ok {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if req.EpisodeData.Title != strings.TrimSpace(req.EpisodeData.Title) {
					t.Fatalf("title not trimmed: %q", req.EpisodeData.Title)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v, want a ValidationError", err)
			}
			if ve.Field != tt.field {
				t.Fatalf("field %q, want %q (%v)", ve.Field, tt.field, err)
			}
		})
	}
}

func TestPayloadIsCanonical(t *testing.T) {
	a, _ := DecodeGenerationRequest(strings.NewReader(`{"project_id":"p","episode_data":{"title":" t ","characters":["x"]}}`))
	b, _ := DecodeGenerationRequest(strings.NewReader(`{ "episode_data" : { "characters":[{"name":"x"}], "title":"t" }, "project_id":"p" }`))
	if string(a.Payload()) != string(b.Payload()) {
		t.Fatalf("equivalent requests have different payloads: %s vs %s", a.Payload(), b.Payload())
	}
	if RequestHash(KindGeneration, "p", a.Payload()) == RequestHash(KindGeneration, "q", a.Payload()) {
		t.Fatal("the project must be part of the request hash")
	}
}

func TestValidateIdempotencyKey(t *testing.T) {
	for key, ok := range map[string]bool{"rollback-test-1700000000": true, "": false, "a b": false, "키": false, strings.Repeat("k", 255): true, strings.Repeat("k", 256): false} {
		if err := ValidateIdempotencyKey(key); (err == nil) != ok {
			t.Errorf("key %q: err %v, want ok=%v", key, err, ok)
		}
	}
}

// FuzzDecodeGenerationRequest: any body either decodes into a request that
// passes validation, or fails with a ValidationError; never a panic.
func FuzzDecodeGenerationRequest(f *testing.F) {
	for _, seed := range []string{
		`{"project_id":"p1","episode_data":{"title":"t"}}`,
		`{"project_id":"p1","episode_data":{"title":"첫 화","synopsis":"s","characters":["a",{"name":"b","description":"c"}]}}`,
		`{"project_id":`, `[]`, `null`, `{"episode_data":{"characters":[{}]}}`, "\xff",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeGenerationRequest(strings.NewReader(string(body)))
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error is not a ValidationError: %v", err)
			}
			return
		}
		if req.Validate() != nil {
			t.Fatal("a decoded request must stay valid")
		}
		if !utf8.Valid(req.Payload()) || req.EpisodeData.Title == "" {
			t.Fatalf("accepted a bad request: %+v", req)
		}
	})
}
