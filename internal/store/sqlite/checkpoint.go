package sqlite

import (
	"context"
	"database/sql"
	"sync"
	"time"
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
	db   *sql.DB
	stop chan struct{}
	done sync.WaitGroup
}

func startCheckpointer(db *sql.DB) *checkpointer {
	db.SetMaxOpenConns(1)
	c := &checkpointer{db: db, stop: make(chan struct{})}
	c.done.Add(1)
	go c.run()
	return c
}

func (c *checkpointer) run() {
	defer c.done.Done()
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			c.db.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`) // a failed pass is retried at the next tick
			cancel()
		}
	}
}

// Close stops the checkpointer and closes its connection; closing the last
// connection of the database checkpoints what is left.
func (c *checkpointer) Close() error {
	close(c.stop)
	c.done.Wait()
	return c.db.Close()
}
