package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
)

// eventSeqsChunk is how many ids one query of EventSeqs looks up.
const eventSeqsChunk = 500

// EventSeqs reads the seq of the last event of each job of ids (its
// event_seq, bumped in the transaction that appends the event), one query per
// 500 ids: the live-progress broker asks it for every job it watches at once,
// and reads a job's events only once its seq has moved. A job that does not
// exist is absent from the map.
func (s *SQL) EventSeqs(ctx context.Context, ids []string) (map[string]int64, error) {
	out := make(map[string]int64, len(ids))
	for start := 0; start < len(ids); start += eventSeqsChunk {
		part := ids[start:min(start+eventSeqsChunk, len(ids))]
		// One statement text whatever the number of ids, so that it is
		// prepared once: an array on PostgreSQL, a JSON array on SQLite.
		var rows *sql.Rows
		var err error
		if s.rb.d.ArrayParams {
			rows, err = s.query(ctx, `SELECT id, event_seq FROM jobs WHERE id = ANY(?::text[])`, part)
		} else {
			var list []byte
			if list, err = json.Marshal(part); err == nil {
				rows, err = s.query(ctx, `SELECT id, event_seq FROM jobs WHERE id IN (SELECT value FROM json_each(?))`, string(list))
			}
		}
		if err != nil {
			return nil, fmt.Errorf("read the event seqs of %d jobs: %w", len(part), err)
		}
		err = scanEventSeqs(rows, out)
		if err != nil {
			return nil, fmt.Errorf("read the event seqs of %d jobs: %w", len(part), err)
		}
	}
	return out, nil
}

func scanEventSeqs(rows *sql.Rows, out map[string]int64) error {
	defer rows.Close()
	for rows.Next() {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			return err
		}
		out[id] = seq
	}
	return rows.Err()
}
