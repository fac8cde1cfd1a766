package server

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/config"
	"github.com/scriptgen/scriptgen/internal/database"
	"github.com/scriptgen/scriptgen/internal/durable"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/metrics"
	"github.com/scriptgen/scriptgen/internal/reconciler"
	"github.com/scriptgen/scriptgen/internal/runner"
)

// RunWorker runs a `scriptgen worker` process until ctx ends: the asynq server
// that runs durable jobs, its heartbeat in the registry, and a reconciler (any
// number of them may run; every duty is a fenced, idempotent update).
func RunWorker(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	if cfg.RedisURL == "" {
		return errors.New("REDIS_URL is required: the durable worker reads its queue from Redis")
	}
	opt, err := durable.RedisOpt(cfg.RedisURL)
	if err != nil {
		return err
	}
	if err := durable.CheckRedisDB(ctx, opt); err != nil {
		return err
	}
	st, err := database.Open(ctx, cfg.DatabaseURL, clock.Real{})
	if err != nil {
		return err
	}
	defer st.Close()
	st.SetBackoff(cfg.Backoff())
	// The worker's heartbeats report the runs it finished, which the
	// operator page's jobs/s sums over the cluster.
	runs := &metrics.RunCounter{}
	exec, err := NewExecutor(cfg, st, log, runs)
	if err != nil {
		return err
	}
	id := OwnerID("worker")
	log = log.With("worker", id)
	side := durable.NewSide(opt)
	defer side.Close()
	disp := side.Dispatcher
	adapter := runner.NewAdapter(onlyDurable{}, log, disp)
	components := []component{
		durable.NewHeartbeater(st, id, runs.Counts, durable.HeartbeatInterval, log),
		durable.NewWorker(st, exec, disp, durable.WorkerConfig{
			Redis:           opt,
			ID:              id,
			Concurrency:     cfg.MaxWorkers,
			ShutdownTimeout: cfg.DrainTimeout,
			// Jobs of one tenant running at once on the durable side,
			// counted over every worker (0: no cap).
			TenantMaxRunning: cfg.TenantMaxRunning,
		}, log),
		reconciler.New(st, adapter, reconcileInterval(cfg.LeaseDuration), log, durable.Redispatch(st, disp, side.Inspector, redispatchGrace, cfg.LeaseDuration, time.Now)),
	}
	for i, c := range components {
		if err := c.Start(ctx); err != nil {
			for j := i - 1; j >= 0; j-- {
				components[j].Stop(context.Background())
			}
			return err
		}
	}
	<-ctx.Done()
	log.Info("Worker shutting down: draining running jobs", "drain_timeout", cfg.DrainTimeout)
	for i := len(components) - 1; i >= 0; i-- {
		err = errors.Join(err, components[i].Stop(context.Background()))
	}
	log.Info("Worker stopped")
	return err
}

type onlyDurable struct{}

func (onlyDurable) BackendFor(string) job.Backend { return job.BackendDurable }
