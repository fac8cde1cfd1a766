package job

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of a generation submission.
const (
	MaxBodyBytes       = 64 << 10
	MaxTitleRunes      = 200
	MaxSynopsisRunes   = 5000
	MaxCharacters      = 50
	MaxCharacterRunes  = 100
	MaxDescribeRunes   = 1000
	MaxIdempotencyKey  = 255
	MaxProjectIDLength = 64
)

var projectIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ValidationError says which field is wrong and why.
type ValidationError struct {
	Field   string
	Message string
	// TooLarge marks a body over its size limit (HTTP 413, not 400).
	TooLarge bool
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// Unwrap makes every validation error an ErrInvalid.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Character is one person of an episode.
type Character struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// UnmarshalJSON accepts a character as a bare name or as an object.
func (c *Character) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &c.Name)
	}
	type plain Character
	var p plain
	if err := strictUnmarshal(b, &p); err != nil {
		return err
	}
	*c = Character(p)
	return nil
}

// EpisodeData is what a writer gives for one episode.
type EpisodeData struct {
	Title      string      `json:"title"`
	Synopsis   string      `json:"synopsis,omitempty"`
	Characters []Character `json:"characters,omitempty"`
}

// GenerationRequest is the body of POST /api/generation.
type GenerationRequest struct {
	ProjectID   string       `json:"project_id"`
	EpisodeData *EpisodeData `json:"episode_data"`
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// DecodeGenerationRequest reads, decodes and validates a submission. Every
// error it returns is a *ValidationError that names the problem.
func DecodeGenerationRequest(r io.Reader) (GenerationRequest, error) {
	var req GenerationRequest
	body, err := io.ReadAll(io.LimitReader(r, MaxBodyBytes+1))
	if err != nil {
		return req, invalid("", "could not read body: %v", err)
	}
	if len(body) > MaxBodyBytes {
		return req, &ValidationError{Message: fmt.Sprintf("body is larger than %d bytes", MaxBodyBytes), TooLarge: true}
	}
	if !utf8.Valid(body) {
		return req, invalid("", "body is not valid UTF-8")
	}
	if err := DecodeStrict(body, &req); err != nil {
		return GenerationRequest{}, err
	}
	if err := req.Validate(); err != nil {
		return GenerationRequest{}, err
	}
	return req, nil
}

// Validate checks every field of a submission.
func (r *GenerationRequest) Validate() error {
	if err := ValidateProjectID(r.ProjectID); err != nil {
		return err
	}
	if r.EpisodeData == nil {
		return invalid("episode_data", "is required")
	}
	return r.EpisodeData.Validate()
}

// ValidateProjectID checks a project id from a body or a path.
func ValidateProjectID(id string) error {
	if id == "" {
		return invalid("project_id", "is required")
	}
	if !projectIDPattern.MatchString(id) {
		return invalid("project_id", "must be 1-%d letters, digits, '.', '_' or '-', starting with a letter or digit", MaxProjectIDLength)
	}
	return nil
}

// Validate checks the episode's fields and trims their surrounding space.
func (e *EpisodeData) Validate() error {
	e.Title = strings.TrimSpace(e.Title)
	e.Synopsis = strings.TrimSpace(e.Synopsis)
	if e.Title == "" {
		return invalid("episode_data.title", "is required and must not be blank")
	}
	if err := checkText("episode_data.title", e.Title, MaxTitleRunes); err != nil {
		return err
	}
	if err := checkText("episode_data.synopsis", e.Synopsis, MaxSynopsisRunes); err != nil {
		return err
	}
	if len(e.Characters) > MaxCharacters {
		return invalid("episode_data.characters", "has more than %d entries", MaxCharacters)
	}
	for i := range e.Characters {
		c := &e.Characters[i]
		field := fmt.Sprintf("episode_data.characters[%d]", i)
		c.Name = strings.TrimSpace(c.Name)
		c.Description = strings.TrimSpace(c.Description)
		if c.Name == "" {
			return invalid(field+".name", "is required")
		}
		if err := checkText(field+".name", c.Name, MaxCharacterRunes); err != nil {
			return err
		}
		if err := checkText(field+".description", c.Description, MaxDescribeRunes); err != nil {
			return err
		}
	}
	return nil
}

func checkText(field, s string, max int) error {
	if !utf8.ValidString(s) {
		return invalid(field, "is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(s); n > max {
		return invalid(field, "is %d characters long; the limit is %d", n, max)
	}
	if r, found := ControlCharacter(s, true); found {
		return invalid(field, "contains control character %U", r)
	}
	return nil
}

// ControlCharacter returns the first control character of s; with breaks,
// line breaks and tabs do not count (texts may hold them, ids may not).
func ControlCharacter(s string, breaks bool) (rune, bool) {
	for _, r := range s {
		if unicode.IsControl(r) && !(breaks && (r == '\n' || r == '\t' || r == '\r')) {
			return r, true
		}
	}
	return 0, false
}

// VerifyProject is the reserved project `scriptgen verify` submits its checks
// to, in the operator's (unqualified) namespace: left out of job lists unless
// asked for by name, and emptied by the check when it ends
// (DELETE /api/admin/verify-project).
const VerifyProject = "scriptgen-verify"

// MaxReasonLength bounds the reason of an operator's action (a rollback, a
// roll-forward, a change of the worker-system flag).
const MaxReasonLength = 1000

// ValidateReason checks an operator's reason: valid UTF-8 without control
// characters (line breaks and tabs allowed), at most MaxReasonLength
// characters. It is stored, logged and printed in reports.
func ValidateReason(s string) error { return checkText("reason", s, MaxReasonLength) }

// ValidateIdempotencyKey checks an Idempotency-Key header value.
func ValidateIdempotencyKey(key string) error {
	if key == "" || len(key) > MaxIdempotencyKey {
		return invalid("Idempotency-Key", "must be 1-%d characters", MaxIdempotencyKey)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return invalid("Idempotency-Key", "must be printable ASCII without spaces")
		}
	}
	return nil
}

// Payload is the canonical JSON of the validated request; two requests that
// mean the same thing have the same payload and so the same hash.
func (r *GenerationRequest) Payload() json.RawMessage {
	b, _ := json.Marshal(r.EpisodeData)
	return b
}

// RequestHash fingerprints a request for idempotency.
func RequestHash(kind Kind, projectID string, payload []byte) string {
	h := sha256.New()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(projectID))
	h.Write([]byte{0})
	h.Write(payload)
	return hex.EncodeToString(h.Sum(nil))
}
