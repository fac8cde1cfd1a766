package job

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// DecodeStrict decodes one JSON value into v and refuses what Go's decoder
// lets through: a field it does not know, data after the value, a field given
// twice in an object (the decoder keeps the last), and a field spelled in
// another case (the decoder matches "Project_ID" to project_id). Every field
// of scriptgen's bodies is lowercase ASCII, so a key with anything else is
// unknown. Every error is a *ValidationError.
func DecodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return invalid("", "body has data after the JSON object")
	}
	return checkKeys(body)
}

// level is one nesting level of the walk in checkKeys: an object, whose keys
// so far are keys[from:] of the walk, or an array at its index-th element.
type level struct {
	object bool
	from   int
	index  int
}

// checkKeys walks a well-formed JSON text (DecodeStrict has decoded it) and
// refuses a key given twice in one object and a key that is not lowercase
// ASCII. It is one pass over the bytes: json.Decoder's token stream doubled
// the cost of decoding a submission.
func checkKeys(body []byte) error {
	var levelBuf [8]level
	var keyBuf [16][]byte
	stack, keys := levelBuf[:0], keyBuf[:0]
	expectKey := false
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '{':
			stack = append(stack, level{object: true, from: len(keys)})
			expectKey = true
		case '[':
			stack = append(stack, level{from: len(keys)})
		case '}', ']':
			if n := len(stack); n > 0 {
				keys, stack = keys[:stack[n-1].from], stack[:n-1]
			}
			expectKey = false
		case ',':
			if n := len(stack); n > 0 && stack[n-1].object {
				expectKey = true
			} else if n > 0 {
				stack[n-1].index++
			}
		case '"':
			end := i + 1
			for end < len(body) && body[end] != '"' {
				if body[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(body) {
				return invalid("", "malformed JSON: a string is not closed")
			}
			if expectKey && len(stack) > 0 {
				expectKey = false
				key := body[i+1 : end]
				if bytes.IndexByte(key, '\\') >= 0 {
					var unquoted string
					if err := json.Unmarshal(body[i:end+1], &unquoted); err != nil {
						return invalid(fieldPath(stack, keys, key), "is not a valid JSON string")
					}
					key = []byte(unquoted)
				}
				if !lowerASCII(key) {
					return invalid(fieldPath(stack, keys, key), "unknown field")
				}
				for _, k := range keys[stack[len(stack)-1].from:] {
					if bytes.Equal(k, key) {
						return invalid(fieldPath(stack, keys, key), "is given twice")
					}
				}
				keys = append(keys, key)
			}
			i = end
		}
	}
	return nil
}

// fieldPath names key of the innermost object as "a.b[2].key".
func fieldPath(stack []level, keys [][]byte, key []byte) string {
	var b strings.Builder
	for n, l := range stack[:len(stack)-1] {
		inner := stack[n+1].from
		switch {
		case !l.object:
			fmt.Fprintf(&b, "[%d]", l.index)
		case inner > l.from: // the object's current member holds the inner level
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.Write(keys[inner-1])
		}
	}
	if b.Len() > 0 {
		b.WriteByte('.')
	}
	b.Write(key)
	return b.String()
}

func lowerASCII(key []byte) bool {
	for i := 0; i < len(key); i++ {
		if c := key[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return len(key) > 0
}

func decodeError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return invalid("", "malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		return invalid(typ.Field, "must be a JSON %s, not %s", typ.Type.Kind(), typ.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("", "body is empty or truncated JSON")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return invalid(strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), "unknown field")
	}
	return invalid("", "malformed JSON: %v", err)
}
