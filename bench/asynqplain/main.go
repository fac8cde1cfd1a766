// Command asynqplain is the peer of scriptgen's durable path: plain asynq on
// the same Redis, 50 clients enqueueing N tasks while a server with the same
// concurrency runs a no-op handler. It prints end-to-end tasks per second.
//
// With -database the handler instead commits one row per task to PostgreSQL
// (an idempotent insert keyed by the task id, one autocommit statement): the
// least a job with a durable effect does, and a second, fairer peer for a
// path whose every job is a row in a database.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"
)

func main() {
	addr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	db := flag.Int("db", 6, "Redis database")
	n := flag.Int("n", 5000, "tasks")
	clients := flag.Int("c", 50, "concurrent enqueuers")
	concurrency := flag.Int("concurrency", 8, "asynq server concurrency")
	database := flag.String("database", "", "PostgreSQL URL: the handler commits one row per task there (default: a no-op handler)")
	flag.Parse()

	effect, label, closeDB := noEffect, "plain asynq", func() {}
	if *database != "" {
		var err error
		if effect, closeDB, err = rowEffect(*database, *concurrency); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		label = "asynq + one row"
	}
	defer closeDB()

	opt := asynq.RedisClientOpt{Addr: *addr, DB: *db}
	var done atomic.Int64
	all := make(chan struct{})
	// The server looks for tasks as often as scriptgen's worker does (every
	// 50–150 ms when its queue is empty, against asynq's default 0.5–1.5 s):
	// it starts before the first task is enqueued, and asynq's default wait
	// put up to a second of idling into a run of two or three.
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: *concurrency, Queues: map[string]int{"generation": 1},
		LogLevel: asynq.ErrorLevel, TaskCheckInterval: 100 * time.Millisecond})
	if err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		if err := effect(ctx, t); err != nil {
			return err
		}
		if done.Add(1) == int64(*n) {
			close(all)
		}
		return nil
	})); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	client := asynq.NewClient(opt)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(*n) {
					return
				}
				t := asynq.NewTask("noop", []byte(fmt.Sprintf(`{"i":%d}`, i)), asynq.Queue("generation"),
					asynq.TaskID(fmt.Sprintf("plain-%d-%d", start.UnixNano(), i)))
				if _, err := client.Enqueue(t); err != nil {
					fmt.Fprintln(os.Stderr, "enqueue:", err)
					os.Exit(1)
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		fmt.Fprintln(os.Stderr, "timed out")
		os.Exit(1)
	}
	took := time.Since(start)
	srv.Shutdown()
	client.Close()
	fmt.Printf("%s: %d tasks in %s = %.0f tasks/s\n", label, *n, took.Round(time.Millisecond), float64(*n)/took.Seconds())
}

func noEffect(context.Context, *asynq.Task) error { return nil }

// rowEffect connects to PostgreSQL and returns a handler effect that commits
// one row per task, keyed by its id so that a redelivered task adds nothing.
func rowEffect(url string, conns int) (func(context.Context, *asynq.Task) error, func(), error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, nil, fmt.Errorf("database: %w", err)
	}
	cfg.MaxConns = int32(conns)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("database: %w", err)
	}
	if _, err := pool.Exec(context.Background(), `CREATE TABLE IF NOT EXISTS asynqplain_done (
		task_id text PRIMARY KEY, payload bytea NOT NULL, done_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("database: %w", err)
	}
	return func(ctx context.Context, t *asynq.Task) error {
		_, err := pool.Exec(ctx, `INSERT INTO asynqplain_done (task_id, payload) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
			t.ResultWriter().TaskID(), t.Payload())
		return err
	}, pool.Close, nil
}
