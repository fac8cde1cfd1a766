package sqlite

import (
	"context"
	"database/sql"
	"sync/atomic"
	"time"

	"github.com/scriptgen/scriptgen/internal/loop"
)

// SQLite copies its write-ahead log back into the database file at
// checkpoints. Left to itself, the commit that takes the log past 1,000 pages
// runs the checkpoint, fsync included, while every submission behind it waits.
// The writer therefore never checkpoints (wal_autocheckpoint(0) in its DSN);
// a connection of its own does, every checkpointEvery, in PASSIVE mode: it
// copies what it can without waiting for readers or the writer, and the
// writer starts the log over once a checkpoint has caught up.

const checkpointEvery = 250 * time.Millisecond

type checkpointer struct {
	db     *sql.DB
	loop   loop.Loop
	passes atomic.Int64 // passes run, for tests that wait for one
}

func startCheckpointer(db *sql.DB) *checkpointer {
	db.SetMaxOpenConns(1)
	c := &checkpointer{db: db}
	c.loop.Start(context.Background(), checkpointEvery, false, func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		c.db.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`) // a failed pass is retried at the next tick
		c.passes.Add(1)
	})
	return c
}

// Close stops the checkpointer and closes its connection; closing the last
// connection of the database checkpoints what is left.
func (c *checkpointer) Close() error {
	c.loop.Stop()
	return c.db.Close()
}
