// Command rollback measures the time to roll back with N queued durable jobs:
// it fills a fresh database with N queued durable jobs whose tasks wait in
// Redis, then runs the real rollback (the code behind `scriptgen rollback`)
// and reports the time to switch the flag, to migrate every job, and the
// whole rollback, and checks that every job is queued on background_tasks
// once with its Redis copy gone.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/database"
	"github.com/scriptgen/scriptgen/internal/durable"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/rollback"
	"github.com/scriptgen/scriptgen/internal/store"
)

func main() {
	dbURL := flag.String("database-url", "", "database (a fresh one)")
	redisURL := flag.String("redis-url", "", "Redis of the durable side (a fresh database)")
	n := flag.Int("n", 10000, "queued durable jobs")
	flag.Parse()
	if err := run(*dbURL, *redisURL, *n); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(dbURL, redisURL string, n int) error {
	ctx := context.Background()
	st, err := database.Open(ctx, dbURL, clock.Real{})
	if err != nil {
		return err
	}
	defer st.Close()
	opt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		return err
	}
	side := durable.NewSide(opt)
	defer side.Close()

	fmt.Printf("filling %d queued durable jobs…\n", n)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 32 {
				payload, _ := json.Marshal(map[string]string{"title": fmt.Sprint("t", i)})
				j, _, err := st.CreateJob(ctx, store.NewJob{Kind: job.KindGeneration, ProjectID: fmt.Sprintf("p%d", i%50),
					Payload: payload, RequestHash: "h", Backend: job.BackendDurable})
				if err == nil {
					err = side.Dispatch(ctx, j)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	before, _ := side.Stats(ctx)
	svc := rollback.New(st, side, slog.New(slog.NewTextHandler(io.Discard, nil)))
	svc.FlagRefresh = 0 // no replica to wait for in this benchmark
	start := time.Now()
	var switched, migrated time.Duration
	rec, err := svc.Rollback(ctx, rollback.Request{Reason: "benchmark", Actor: "bench"}, func(s rollback.Step) {
		switch s.Name {
		case "flag off":
			switched = time.Since(start)
		case "migrate pending jobs":
			migrated = time.Since(start)
		}
	})
	total := time.Since(start)
	if err != nil {
		return err
	}
	bg, _ := st.CountJobs(ctx, store.JobFilter{Backend: job.BackendBackgroundTasks, Status: job.StatusQueued})
	left, _ := st.CountJobs(ctx, store.JobFilter{Backend: job.BackendDurable, Status: job.StatusQueued})
	after, _ := side.Stats(ctx)
	fmt.Printf("driver=%s jobs=%d redis_tasks_before=%d redis_tasks_after=%d\n", st.Driver(), n, before.Depth, after.Depth)
	fmt.Printf("switched=%s migrated_all=%s rollback_total=%s migrated=%d failed=%d\n",
		switched.Round(time.Microsecond), migrated.Round(time.Millisecond), total.Round(time.Millisecond), rec.JobsMigrated, rec.JobsFailed)
	fmt.Printf("queued on background_tasks=%d, left on durable=%d, lost=%d\n", bg, left, n-bg-left)
	if bg != n || left != 0 || after.Depth != 0 {
		return fmt.Errorf("migration incomplete")
	}
	return nil
}
