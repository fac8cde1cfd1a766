package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/scriptgen/scriptgen/internal/job"
)

// The live script (issue 18). A generation job's text is checkpointed as it
// is written, into one row of job_scripts per job holding the whole text so
// far, and every checkpoint appends an event of type EventScript to the job's
// log in the same transaction. Offsets and lengths are counted in characters
// (Unicode code points, what utf8.RuneCountInString counts), never in bytes:
// the API, the events and the handler all use that unit.

// EventScript is the type of the event a checkpoint appends. Its data is
// {"offset": N, "text": "..."}: text follows the first N characters of the
// script, so a client that appends the texts of a job's script events in seq
// order (resuming with Last-Event-ID) holds the script so far, exactly.
const EventScript job.EventType = "script"

// ScriptEventData is the data of an EventScript event.
type ScriptEventData struct {
	Offset int    `json:"offset"`
	Text   string `json:"text"`
}

// MaxScriptChars bounds the text a job may checkpoint: an episode's script
// is a few tens of thousands of characters.
const MaxScriptChars = 1 << 20

// ErrScriptConflict is a checkpoint that does not continue the stored text:
// its offset lies beyond the stored end, or the text it repeats differs from
// what is stored there. Nothing was written.
var ErrScriptConflict = errors.New("checkpoint does not continue the stored script")

// ErrScriptTooLong is a checkpoint that would take the script past
// MaxScriptChars. Nothing was written.
var ErrScriptTooLong = errors.New("script too long")

// errNothingNew rolls back a checkpoint whose text is stored already.
var errNothingNew = errors.New("nothing new")

// CheckpointScript appends text to the job's script at offset (characters),
// while l is held. The only rule is that a script only grows: a checkpoint
// is accepted when offset is at most the stored length and the text agrees
// with what is stored from offset on; what follows the stored end is appended
// (nothing, when it is all there: a checkpoint written again after its answer
// was lost is a no-op). A checkpoint beyond the end or that disagrees with
// the stored text is ErrScriptConflict; one that finds the lease lost is
// job.ErrStaleLease, so a stale attempt never appends to a newer one's text.
// Each checkpoint that appends also appends one EventScript event whose
// offset is where its text starts.
func (s *SQL) CheckpointScript(ctx context.Context, l job.Lease, offset int, text string) error {
	if offset < 0 {
		return fmt.Errorf("%w: negative offset %d", ErrScriptConflict, offset)
	}
	if text == "" {
		return nil
	}
	now := micros(s.Clock.Now())
	err := s.inTx(ctx, func(tx *Tx) error {
		// The fence first: it takes the job's row, so checkpoints of a job
		// are serialised by its lease.
		var seq int64
		var progress int
		var stage string
		err := tx.QueryRowContext(ctx, s.Q(`UPDATE jobs SET updated_at = ?, event_seq = event_seq + 1`+leaseHeld+
			` RETURNING event_seq, progress, stage`), append([]any{now}, leaseArgs(l)...)...).Scan(&seq, &progress, &stage)
		if errors.Is(err, sql.ErrNoRows) {
			return job.ErrStaleLease
		}
		if err != nil {
			return err
		}
		at, added, err := s.appendScript(ctx, tx, l, offset, text, now)
		if err != nil {
			return err
		}
		data, err := json.Marshal(ScriptEventData{Offset: at, Text: added})
		if err != nil {
			return err
		}
		return s.appendEvent(ctx, tx, job.Event{JobID: l.JobID, Seq: seq, Type: EventScript, Status: job.StatusRunning,
			Progress: progress, Stage: stage, Data: data, CreatedAt: s.Clock.Now()})
	})
	switch {
	case errors.Is(err, errNothingNew):
		return nil
	case err == nil, errors.Is(err, job.ErrStaleLease), errors.Is(err, ErrScriptConflict), errors.Is(err, ErrScriptTooLong):
		return err
	default:
		return fmt.Errorf("checkpoint script of job %s: %w", l.JobID, err)
	}
}

// appendScript appends text at offset to the job's row in tx and returns
// where the appended part starts and what it is. The usual checkpoint
// continues the stored end and is one statement; anything else reads the row
// and reconciles.
func (s *SQL) appendScript(ctx context.Context, tx *Tx, l job.Lease, offset int, text string, now int64) (int, string, error) {
	n := utf8.RuneCountInString(text)
	if offset+n > MaxScriptChars {
		return 0, "", fmt.Errorf("%w: %d characters, at most %d", ErrScriptTooLong, offset+n, MaxScriptChars)
	}
	var res sql.Result
	var err error
	if offset == 0 {
		res, err = tx.ExecContext(ctx, s.Q(`INSERT INTO job_scripts (job_id, epoch, chars, script, updated_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (job_id) DO NOTHING`), l.JobID, l.Epoch, n, text, now)
	} else {
		res, err = tx.ExecContext(ctx, s.Q(`UPDATE job_scripts SET epoch = ?, chars = chars + ?, script = script || ?,
			updated_at = ? WHERE job_id = ? AND chars = ?`), l.Epoch, n, text, now, l.JobID, offset)
	}
	if err != nil {
		return 0, "", err
	}
	if k, err := res.RowsAffected(); err != nil {
		return 0, "", err
	} else if k == 1 {
		return offset, text, nil
	}

	// Not at the stored end: see what is stored.
	var chars int
	var stored string
	err = tx.QueryRowContext(ctx, s.Q(`SELECT chars, script FROM job_scripts WHERE job_id = ?`), l.JobID).Scan(&chars, &stored)
	if errors.Is(err, sql.ErrNoRows) {
		// Nothing stored, and offset > 0.
		return 0, "", fmt.Errorf("%w: checkpoint at %d, nothing stored", ErrScriptConflict, offset)
	}
	if err != nil {
		return 0, "", err
	}
	if offset > chars {
		return 0, "", fmt.Errorf("%w: checkpoint at %d, %d characters stored", ErrScriptConflict, offset, chars)
	}
	tail := stored[byteIndex(stored, offset):]
	if !strings.HasPrefix(text, tail) && !strings.HasPrefix(tail, text) {
		return 0, "", fmt.Errorf("%w: checkpoint at %d differs from the %d characters stored", ErrScriptConflict, offset, chars)
	}
	if len(text) <= len(tail) {
		return 0, "", errNothingNew
	}
	added := text[len(tail):]
	k := utf8.RuneCountInString(added)
	if _, err := tx.ExecContext(ctx, s.Q(`UPDATE job_scripts SET epoch = ?, chars = chars + ?, script = script || ?,
		updated_at = ? WHERE job_id = ? AND chars = ?`), l.Epoch, k, added, now, l.JobID, chars); err != nil {
		return 0, "", err
	}
	return chars, added, nil
}

// byteIndex is the byte offset of the n-th character of s (len(s) past the end).
func byteIndex(s string, n int) int {
	for i := range s {
		if n == 0 {
			return i
		}
		n--
	}
	return len(s)
}

// ScriptSoFar is the text checkpointed for a job ("" when none, or no such
// job).
func (s *SQL) ScriptSoFar(ctx context.Context, jobID string) (string, error) {
	var text string
	err := s.queryRow(ctx, `SELECT script FROM job_scripts WHERE job_id = ?`, jobID).Scan(&text)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read script of job %s: %w", jobID, err)
	}
	return text, nil
}
