// Command asynqplain is the peer of scriptgen's durable path: plain asynq on
// the same Redis, 50 clients enqueueing N tasks while a server with the same
// concurrency runs a no-op handler. It prints end-to-end tasks per second.
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
)

func main() {
	addr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	db := flag.Int("db", 6, "Redis database")
	n := flag.Int("n", 5000, "tasks")
	clients := flag.Int("c", 50, "concurrent enqueuers")
	concurrency := flag.Int("concurrency", 8, "asynq server concurrency")
	flag.Parse()

	opt := asynq.RedisClientOpt{Addr: *addr, DB: *db}
	var done atomic.Int64
	all := make(chan struct{})
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: *concurrency, Queues: map[string]int{"generation": 1},
		LogLevel: asynq.ErrorLevel})
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
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
	fmt.Printf("plain asynq: %d tasks in %s = %.0f tasks/s\n", *n, took.Round(time.Millisecond), float64(*n)/took.Seconds())
}
