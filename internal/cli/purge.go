package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/scriptgen/scriptgen/internal/store"
)

// purgeCmd deletes the jobs that finished more than --older-than ago, with
// their events and scripts, batch by batch, on the database directly. It is
// what JOB_RETENTION does in serve, run once by hand: to catch up on a
// backlog, or where serve keeps every job.
func purgeCmd(ctx context.Context, c *command, args []string, stdout, stderr io.Writer) error {
	var olderThan time.Duration
	var batch int
	cfg, err := c.parse(args, stderr, func(fs *flag.FlagSet) {
		fs.DurationVar(&olderThan, "older-than", 0, "delete the jobs that finished more than this long ago (e.g. 720h); required")
		fs.IntVar(&batch, "batch", 1000, "jobs deleted per transaction")
	})
	if err != nil {
		return err
	}
	if olderThan < time.Minute {
		return usagef("--older-than must be at least 1m, got %s", olderThan)
	}
	if batch < 1 || batch > 10000 {
		return usagef("--batch must be between 1 and 10000, got %d", batch)
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	cutoff := start.Add(-olderThan)
	total := 0
	from := store.PurgeCursor{}
	for {
		n, err := st.PurgeFinished(ctx, cutoff, batch, from)
		total += n
		if err != nil {
			return fmt.Errorf("after %d jobs purged: %w", total, err)
		}
		if n < batch {
			break
		}
		fmt.Fprintf(stdout, "\r%d jobs purged", total)
	}
	fmt.Fprintf(stdout, "\r%d jobs purged (finished before %s) in %s\n", total, cutoff.UTC().Format(time.RFC3339), time.Since(start).Round(time.Millisecond))
	return nil
}
