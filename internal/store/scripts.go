package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/scriptgen/scriptgen/internal/job"
)

// The live script (issue 18). A generation job's text is checkpointed as it
// is written, as parts: each checkpoint inserts the text it adds as a row of
// job_script_parts (never rewriting what is stored), and appends an event of
// type EventScript to the job's log in the same transaction. A job has at
// most maxScriptParts parts: the checkpoint that would reach that many merges
// them into one. Checkpoints are group-committed (group.go): the checkpoints
// of every job of this process waiting at that moment share one transaction,
// each still fenced by its own lease. Offsets and lengths are counted in
// characters (Unicode code points, what utf8.RuneCountInString counts), never
// in bytes: the API, the events and the handler all use that unit.

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

// maxScriptParts bounds the rows of a job's script. Merging rewrites the
// text once every maxScriptParts-1 checkpoints, where a row per job rewrote
// it at every one; reading the script joins at most this many rows.
const maxScriptParts = 32

// maxCheckpointBatch bounds the checkpoints of one transaction: every
// streaming generation of a process, at ~20 checkpoints a second each.
const maxCheckpointBatch = 256

// ErrScriptConflict is a checkpoint that does not continue the stored text:
// its offset lies beyond the stored end, or the text it repeats differs from
// what is stored there. Nothing was written.
var ErrScriptConflict = errors.New("checkpoint does not continue the stored script")

// ErrScriptTooLong is a checkpoint that would take the script past
// MaxScriptChars. Nothing was written.
var ErrScriptTooLong = errors.New("script too long")

type checkpointReq struct {
	l      job.Lease
	offset int
	text   string
}

type checkpointRes struct{ err error }

// CheckpointScript appends text to the job's script at offset (characters),
// while l is held. The only rule is that a script only grows: a checkpoint
// is accepted when offset is at most the stored length and the text agrees
// with what is stored from offset on; what follows the stored end is appended
// (nothing, when it is all there: a checkpoint written again after its answer
// was lost is a no-op). A checkpoint beyond the end or that disagrees with
// the stored text is ErrScriptConflict; one that finds the lease lost is
// job.ErrStaleLease, so a stale attempt never appends to a newer one's text.
// Each checkpoint that appends also appends one EventScript event whose
// offset is where its text starts. The checkpoint is committed with those of
// other jobs waiting at the same moment; its answer is its own.
func (s *SQL) CheckpointScript(ctx context.Context, l job.Lease, offset int, text string) error {
	if offset < 0 {
		return fmt.Errorf("%w: negative offset %d", ErrScriptConflict, offset)
	}
	if text == "" {
		return nil
	}
	if n := offset + utf8.RuneCountInString(text); n > MaxScriptChars {
		return fmt.Errorf("%w: %d characters, at most %d", ErrScriptTooLong, n, MaxScriptChars)
	}
	r, err := s.checkpoints.do(s, checkpointReq{l, offset, text})
	if err == nil {
		err = r.err
	}
	switch {
	case err == nil, errors.Is(err, job.ErrStaleLease), errors.Is(err, ErrScriptConflict), errors.Is(err, ErrScriptTooLong):
		return err
	default:
		return fmt.Errorf("checkpoint script of job %s: %w", l.JobID, err)
	}
}

// scriptState is what a batch knows of one job's script: its fenced row and
// its stored parts, then what the batch adds.
type scriptState struct {
	seq      int64 // the job's event_seq, moved by the batch's events
	progress int
	stage    string
	end      int // characters stored (and added by the batch)
	parts    int // rows stored
	stored   *string
	added    []part // parts the batch adds, in order
	events   int
}

type part struct {
	start, chars int
	epoch        int64
	text         string
}

// checkpointAll commits the batch's checkpoints in tx: one statement fences
// every lease and reads where each script ends (the job row's script_chars
// and script_parts), and multi-row statements insert the new parts and
// events and move the jobs' event_seq and script ends. A request whose lease is not held, or whose text does not
// continue its script, gets its error and writes nothing; the others of the
// batch are not affected.
func (s *SQL) checkpointAll(ctx context.Context, ex execer, batch []checkpointReq, res []checkpointRes) error {
	tx, ok := ex.(*Tx)
	if !ok {
		return errors.New("checkpoints are committed in a transaction")
	}
	now := s.Clock.Now()
	perRow := s.rowByRow(batch)
	held, err := s.fenceScripts(ctx, tx, batch, micros(now), perRow)
	if err != nil {
		return err
	}
	if len(held) == 0 {
		for i := range batch {
			res[i] = checkpointRes{job.ErrStaleLease}
		}
		return nil
	}
	var evs []job.Event
	for i, r := range batch {
		st := held[r.l]
		if st == nil {
			res[i] = checkpointRes{job.ErrStaleLease}
			continue
		}
		at, added, err := s.continueScript(ctx, tx, r, st)
		if errors.Is(err, ErrScriptConflict) {
			res[i] = checkpointRes{err}
			continue
		}
		if err != nil {
			return err
		}
		if added == "" {
			continue // stored already
		}
		n := utf8.RuneCountInString(added)
		st.added = append(st.added, part{start: at, chars: n, epoch: r.l.Epoch, text: added})
		st.end += n
		st.seq++
		data, err := json.Marshal(ScriptEventData{Offset: at, Text: added})
		if err != nil {
			return err
		}
		evs = append(evs, job.Event{JobID: r.l.JobID, Seq: st.seq, Type: EventScript, Status: job.StatusRunning,
			Progress: st.progress, Stage: st.stage, Data: data, CreatedAt: now})
	}
	if len(evs) == 0 {
		return nil
	}
	if err := s.writeParts(ctx, tx, held, perRow); err != nil {
		return err
	}
	if err := s.moveJobs(ctx, tx, held, now, perRow); err != nil {
		return err
	}
	return s.appendScriptEvents(ctx, tx, evs, perRow)
}

// Each of the batch's statements is one statement over the whole batch, its
// text the same whatever the batch's size, so it is prepared once: its rows
// travel as one array per column where the driver binds arrays (PostgreSQL's
// unnest), else as one JSON array of rows (SQLite's json_each). On SQLite a
// prepared statement per row cost the committer a statement's execution per
// row and per job — five per checkpoint, 26 % of serve's CPU with 200
// generations streaming (bench/README.md, issue 18); a statement of OR-ed
// leases or VALUES rows would be parsed anew at every batch size. A text that
// JSON might not carry byte for byte (invalid UTF-8, which encoding/json
// replaces; a NUL, which C strings end at) makes its batch take the statement
// per row (rowByRow).

// rowByRow tells whether the batch's rows go one statement each: on a
// driver without array parameters, when a text (or a lease's id or owner)
// would not survive JSON.
func (s *SQL) rowByRow(batch []checkpointReq) bool {
	if s.rb.d.ArrayParams {
		return false
	}
	for _, r := range batch {
		for _, v := range []string{r.text, r.l.JobID, r.l.Owner} {
			if strings.IndexByte(v, 0) >= 0 || !utf8.ValidString(v) {
				return true
			}
		}
	}
	return false
}

// jsonRows is the JSON array of n rows, each the values row gives, for a
// statement that reads them with json_each.
func jsonRows(n int, row func(i int) []any) (string, error) {
	rows := make([][]any, n)
	for i := range rows {
		rows[i] = row(i)
	}
	b, err := json.Marshal(rows)
	return string(b), err
}

// fenceScripts finds the rows of the jobs whose leases the batch holds and
// returns their state by lease. On PostgreSQL it touches them, which locks
// them until the commit; SQLite's transaction holds the database's one write
// lock from its start (_txlock=immediate), so there a read fences.
func (s *SQL) fenceScripts(ctx context.Context, tx *Tx, batch []checkpointReq, now int64, perRow bool) (map[job.Lease]*scriptState, error) {
	seen := map[job.Lease]bool{}
	var leases []job.Lease
	for _, r := range batch {
		if !seen[r.l] {
			seen[r.l] = true
			leases = append(leases, r.l)
		}
	}
	held := map[job.Lease]*scriptState{}
	if perRow {
		for _, l := range leases {
			st := &scriptState{}
			err := tx.QueryRowContext(ctx, s.Q(`UPDATE jobs SET updated_at = ?`+leaseHeld+` RETURNING event_seq, progress, stage, script_chars, script_parts`),
				append([]any{now}, leaseArgs(l)...)...).Scan(&st.seq, &st.progress, &st.stage, &st.end, &st.parts)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("fence the checkpoint of job %s: %w", l.JobID, err)
			}
			held[l] = st
		}
		return held, nil
	}
	var rows *sql.Rows
	var err error
	if s.rb.d.ArrayParams {
		ids, epochs, owners := make([]string, len(leases)), make([]int64, len(leases)), make([]string, len(leases))
		for i, l := range leases {
			ids[i], epochs[i], owners[i] = l.JobID, l.Epoch, l.Owner
		}
		rows, err = tx.QueryContext(ctx, s.Q(`UPDATE jobs SET updated_at = ?
			FROM unnest(?::text[], ?::bigint[], ?::text[]) AS l(id, epoch, owner)
			WHERE jobs.id = l.id AND jobs.dispatch_epoch = l.epoch AND jobs.lease_owner = l.owner AND jobs.status = 'running'
			RETURNING jobs.id, jobs.dispatch_epoch, jobs.lease_owner, jobs.event_seq, jobs.progress, jobs.stage,
				jobs.script_chars, jobs.script_parts`), now, ids, epochs, owners)
	} else {
		var ls string
		if ls, err = jsonRows(len(leases), func(i int) []any { return []any{leases[i].JobID, leases[i].Epoch, leases[i].Owner} }); err != nil {
			return nil, err
		}
		// CROSS JOIN keeps SQLite's planner on the batch's leases finding
		// their jobs by id; the unary + keeps it off jobs_lease (status, …),
		// which would walk every running job.
		rows, err = tx.QueryContext(ctx, s.Q(`SELECT jobs.id, jobs.dispatch_epoch, jobs.lease_owner, jobs.event_seq, jobs.progress, jobs.stage,
				jobs.script_chars, jobs.script_parts
			FROM (SELECT value ->> 0 AS id, value ->> 1 AS epoch, value ->> 2 AS owner FROM json_each(?)) AS l
			CROSS JOIN jobs
			WHERE jobs.id = l.id AND jobs.dispatch_epoch = l.epoch AND jobs.lease_owner = l.owner AND +jobs.status = 'running'`), ls)
	}
	if err != nil {
		return nil, fmt.Errorf("fence %d checkpoints: %w", len(batch), err)
	}
	defer rows.Close()
	for rows.Next() {
		var l job.Lease
		st := &scriptState{}
		if err := rows.Scan(&l.JobID, &l.Epoch, &l.Owner, &st.seq, &st.progress, &st.stage, &st.end, &st.parts); err != nil {
			return nil, err
		}
		held[l] = st
	}
	return held, rows.Err()
}

// readScriptEnd reads where the job's script ends, and how many parts it
// has, from the parts themselves.
func (s *SQL) readScriptEnd(ctx context.Context, tx *Tx, jobID string, st *scriptState) error {
	if err := tx.QueryRowContext(ctx, s.Q(`SELECT COALESCE(MAX(start + chars), 0), COUNT(*) FROM job_script_parts WHERE job_id = ?`),
		jobID).Scan(&st.end, &st.parts); err != nil {
		return fmt.Errorf("read the end of the script of job %s: %w", jobID, err)
	}
	return nil
}

// continueScript decides what request r appends to its script: where the
// appended text starts and what it is ("" when it is all stored), or why
// nothing may be. The usual checkpoint continues the stored end; anything
// else is compared with the stored text.
func (s *SQL) continueScript(ctx context.Context, tx *Tx, r checkpointReq, st *scriptState) (int, string, error) {
	if r.offset == st.end {
		return r.offset, r.text, nil
	}
	if r.offset > st.end && len(st.added) == 0 {
		// The row's script_chars is behind its parts only when a binary
		// older than it appended them: the parts have the last word.
		if err := s.readScriptEnd(ctx, tx, r.l.JobID, st); err != nil {
			return 0, "", err
		}
		if r.offset == st.end {
			return r.offset, r.text, nil
		}
	}
	if r.offset > st.end {
		return 0, "", fmt.Errorf("%w: checkpoint at %d, %d characters stored", ErrScriptConflict, r.offset, st.end)
	}
	stored, err := s.storedScript(ctx, tx, r.l.JobID, st)
	if err != nil {
		return 0, "", err
	}
	tail := stored[byteIndex(stored, r.offset):]
	if !strings.HasPrefix(r.text, tail) && !strings.HasPrefix(tail, r.text) {
		return 0, "", fmt.Errorf("%w: checkpoint at %d differs from the %d characters stored", ErrScriptConflict, r.offset, st.end)
	}
	if len(r.text) <= len(tail) {
		return 0, "", nil
	}
	return st.end, r.text[len(tail):], nil
}

// storedScript is the job's script as the batch has it so far: its stored
// parts (read once) and what the batch added.
func (s *SQL) storedScript(ctx context.Context, tx *Tx, jobID string, st *scriptState) (string, error) {
	if st.stored == nil {
		text, err := s.readScript(jobID, func(q string) (*sql.Rows, error) { return tx.QueryContext(ctx, s.Q(q), jobID) })
		if err != nil {
			return "", err
		}
		st.stored = &text
	}
	var b strings.Builder
	b.WriteString(*st.stored)
	for _, p := range st.added {
		b.WriteString(p.text)
	}
	return b.String(), nil
}

// writeParts inserts the parts the batch adds; a job that would have
// maxScriptParts parts or more has its parts merged into one instead. It
// counts them in each job's state, for moveJobs.
func (s *SQL) writeParts(ctx context.Context, tx *Tx, held map[job.Lease]*scriptState, perRow bool) error {
	var ids, texts []string
	var starts, chars, epochs []int64
	for l, st := range held {
		if len(st.added) == 0 {
			continue
		}
		if st.parts+len(st.added) >= maxScriptParts {
			if err := s.mergeParts(ctx, tx, l, st); err != nil {
				return err
			}
			st.parts = 1
			continue
		}
		st.parts += len(st.added)
		for _, p := range st.added {
			if perRow {
				if _, err := tx.ExecContext(ctx, s.Q(`INSERT INTO job_script_parts (job_id, start, chars, epoch, text) VALUES (?, ?, ?, ?, ?)`),
					l.JobID, p.start, p.chars, p.epoch, p.text); err != nil {
					return fmt.Errorf("insert a script part of job %s: %w", l.JobID, err)
				}
				continue
			}
			ids, starts, chars, epochs, texts = append(ids, l.JobID), append(starts, int64(p.start)), append(chars, int64(p.chars)),
				append(epochs, p.epoch), append(texts, p.text)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	var err error
	if s.rb.d.ArrayParams {
		_, err = tx.ExecContext(ctx, s.Q(`INSERT INTO job_script_parts (job_id, start, chars, epoch, text)
			SELECT * FROM unnest(?::text[], ?::bigint[], ?::bigint[], ?::bigint[], ?::text[])`), ids, starts, chars, epochs, texts)
	} else {
		var ps string
		if ps, err = jsonRows(len(ids), func(i int) []any { return []any{ids[i], starts[i], chars[i], epochs[i], texts[i]} }); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.Q(`INSERT INTO job_script_parts (job_id, start, chars, epoch, text)
			SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4 FROM json_each(?)`), ps)
	}
	if err != nil {
		return fmt.Errorf("insert %d script parts: %w", len(ids), err)
	}
	return nil
}

// mergeParts replaces the job's stored parts and those the batch adds by one
// part holding the whole script.
func (s *SQL) mergeParts(ctx context.Context, tx *Tx, l job.Lease, st *scriptState) error {
	text, err := s.storedScript(ctx, tx, l.JobID, st)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.Q(`DELETE FROM job_script_parts WHERE job_id = ?`), l.JobID); err != nil {
		return fmt.Errorf("merge the script parts of job %s: %w", l.JobID, err)
	}
	if _, err := tx.ExecContext(ctx, s.Q(`INSERT INTO job_script_parts (job_id, start, chars, epoch, text) VALUES (?, 0, ?, ?, ?)`),
		l.JobID, st.end, l.Epoch, text); err != nil {
		return fmt.Errorf("merge the script parts of job %s: %w", l.JobID, err)
	}
	return nil
}

// moveJobs sets the event_seq and the script's end of every job the batch
// appended to.
func (s *SQL) moveJobs(ctx context.Context, tx *Tx, held map[job.Lease]*scriptState, now time.Time, perRow bool) error {
	var ids []string
	var seqs, ends, parts []int64
	for l, st := range held {
		if len(st.added) == 0 {
			continue
		}
		if perRow {
			if _, err := tx.ExecContext(ctx, s.Q(`UPDATE jobs SET event_seq = ?, script_chars = ?, script_parts = ?, updated_at = ? WHERE id = ?`),
				st.seq, st.end, st.parts, micros(now), l.JobID); err != nil {
				return fmt.Errorf("number the events of job %s: %w", l.JobID, err)
			}
			continue
		}
		ids, seqs, ends, parts = append(ids, l.JobID), append(seqs, st.seq), append(ends, int64(st.end)), append(parts, int64(st.parts))
	}
	if len(ids) == 0 {
		return nil
	}
	var err error
	if s.rb.d.ArrayParams {
		_, err = tx.ExecContext(ctx, s.Q(`UPDATE jobs SET event_seq = v.seq, script_chars = v.chars, script_parts = v.parts, updated_at = ?
			FROM unnest(?::text[], ?::bigint[], ?::bigint[], ?::bigint[]) AS v(id, seq, chars, parts)
			WHERE jobs.id = v.id`), micros(now), ids, seqs, ends, parts)
	} else {
		var vs string
		if vs, err = jsonRows(len(ids), func(i int) []any { return []any{ids[i], seqs[i], ends[i], parts[i]} }); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.Q(`UPDATE jobs SET event_seq = v.seq, script_chars = v.chars, script_parts = v.parts, updated_at = ?
			FROM (SELECT value ->> 0 AS id, value ->> 1 AS seq, value ->> 2 AS chars, value ->> 3 AS parts FROM json_each(?)) AS v
			WHERE jobs.id = v.id`), micros(now), vs)
	}
	if err != nil {
		return fmt.Errorf("number the events of %d checkpoints: %w", len(ids), err)
	}
	return nil
}

// appendScriptEvents appends the batch's events, each announced where the
// dialect announces (appendEvent).
func (s *SQL) appendScriptEvents(ctx context.Context, tx *Tx, evs []job.Event, perRow bool) error {
	if perRow {
		for _, e := range evs {
			if err := s.appendEvent(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	}
	if !s.rb.d.ArrayParams {
		// The data is JSON text, carried as a JSON string so that it is
		// stored as it was encoded.
		es, err := jsonRows(len(evs), func(i int) []any {
			e := evs[i]
			return []any{e.JobID, e.Seq, e.Type, e.Status, e.Progress, e.Stage, string(e.Data), micros(e.CreatedAt)}
		})
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.Q(s.announced(`INSERT INTO job_events (job_id, seq, type, status, progress, stage, message, data, created_at)
			SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, '', value ->> 6, value ->> 7
			FROM json_each(?)`)), es); err != nil {
			return fmt.Errorf("append %d script events: %w", len(evs), err)
		}
		for _, e := range evs {
			s.appended(tx, e)
		}
		return nil
	}
	n := len(evs)
	ids, types, statuses, stages := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	seqs, progress, created := make([]int64, n), make([]int64, n), make([]int64, n)
	data := make([]string, n)
	for i, e := range evs {
		ids[i], seqs[i], types[i], statuses[i] = e.JobID, e.Seq, string(e.Type), string(e.Status)
		progress[i], stages[i], data[i], created[i] = int64(e.Progress), e.Stage, string(e.Data), micros(e.CreatedAt)
	}
	if _, err := tx.ExecContext(ctx, s.Q(s.announced(`INSERT INTO job_events (job_id, seq, type, status, progress, stage, message, data, created_at)
		SELECT id, seq, type, status, progress, stage, '', data, created_at
		FROM unnest(?::text[], ?::bigint[], ?::text[], ?::text[], ?::bigint[], ?::text[], ?::text[], ?::bigint[])
			AS e(id, seq, type, status, progress, stage, data, created_at)`)),
		ids, seqs, types, statuses, progress, stages, data, created); err != nil {
		return fmt.Errorf("append %d script events: %w", n, err)
	}
	for _, e := range evs {
		s.appended(tx, e)
	}
	return nil
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

// scriptQuery reads a job's parts, the job's id its argument.
const scriptQuery = `SELECT start, chars, text FROM job_script_parts WHERE job_id = ? ORDER BY start`

// readScript joins the job's parts, which query runs (given scriptQuery).
func (s *SQL) readScript(jobID string, query func(q string) (*sql.Rows, error)) (string, error) {
	rows, err := query(scriptQuery)
	if err != nil {
		return "", fmt.Errorf("read script of job %s: %w", jobID, err)
	}
	defer rows.Close()
	var b strings.Builder
	end := 0
	for rows.Next() {
		var start, chars int
		var text string
		if err := rows.Scan(&start, &chars, &text); err != nil {
			return "", fmt.Errorf("read script of job %s: %w", jobID, err)
		}
		if start != end {
			return "", fmt.Errorf("read script of job %s: a part at %d after %d characters", jobID, start, end)
		}
		b.WriteString(text)
		end += chars
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("read script of job %s: %w", jobID, err)
	}
	return b.String(), nil
}

// ScriptSoFar is the text checkpointed for a job ("" when none, or no such
// job).
func (s *SQL) ScriptSoFar(ctx context.Context, jobID string) (string, error) {
	return s.readScript(jobID, func(q string) (*sql.Rows, error) { return s.query(ctx, q, jobID) })
}

// ScriptCheckpoint is one checkpoint of CheckpointScripts.
type ScriptCheckpoint struct {
	Lease  job.Lease
	Offset int
	Text   string
}

// CheckpointScripts commits checkpoints of any jobs in one transaction — what
// the group commit of CheckpointScript does with the checkpoints waiting at
// one moment — and returns each one's answer, as CheckpointScript would give
// it: a stale lease or a text that does not continue its script is refused
// alone, the others are committed. err is the transaction's failure, which
// commits none of them.
func (s *SQL) CheckpointScripts(ctx context.Context, cps []ScriptCheckpoint) (answers []error, err error) {
	answers = make([]error, len(cps))
	var reqs []checkpointReq
	var at []int
	for i, c := range cps {
		switch {
		case c.Offset < 0:
			answers[i] = fmt.Errorf("%w: negative offset %d", ErrScriptConflict, c.Offset)
		case c.Offset+utf8.RuneCountInString(c.Text) > MaxScriptChars:
			answers[i] = fmt.Errorf("%w: at most %d characters", ErrScriptTooLong, MaxScriptChars)
		case c.Text != "":
			reqs, at = append(reqs, checkpointReq{c.Lease, c.Offset, c.Text}), append(at, i)
		}
	}
	if len(reqs) == 0 {
		return answers, nil
	}
	res := make([]checkpointRes, len(reqs))
	if err := s.inTx(ctx, func(tx *Tx) error { return s.checkpointAll(ctx, tx, reqs, res) }); err != nil {
		return nil, fmt.Errorf("checkpoint %d scripts: %w", len(reqs), err)
	}
	for n, i := range at {
		answers[i] = res[n].err
	}
	return answers, nil
}

// ScriptParts is how many rows hold the job's script (at most
// maxScriptParts - 1).
func (s *SQL) ScriptParts(ctx context.Context, jobID string) (int, error) {
	var n int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM job_script_parts WHERE job_id = ?`, jobID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count the script parts of job %s: %w", jobID, err)
	}
	return n, nil
}
