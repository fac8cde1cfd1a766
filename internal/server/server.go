// Package server wires the serving process together: the store, the runners,
// the reconciler and the HTTP API, started from one place and stopped in the
// order that loses nothing — stop accepting, drain running jobs, release the
// rest (invariant 1).
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scriptgen/scriptgen/internal/access"
	"github.com/scriptgen/scriptgen/internal/api"
	"github.com/scriptgen/scriptgen/internal/backgroundtasks"
	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/config"
	"github.com/scriptgen/scriptgen/internal/database"
	"github.com/scriptgen/scriptgen/internal/durable"
	"github.com/scriptgen/scriptgen/internal/generate"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/jobhandler"
	"github.com/scriptgen/scriptgen/internal/limits"
	"github.com/scriptgen/scriptgen/internal/metrics"
	"github.com/scriptgen/scriptgen/internal/notify"
	"github.com/scriptgen/scriptgen/internal/rag"
	"github.com/scriptgen/scriptgen/internal/reconciler"
	"github.com/scriptgen/scriptgen/internal/rollback"
	"github.com/scriptgen/scriptgen/internal/runner"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/workerflag"
)

// Server is one serving process.
type Server struct {
	// id names this replica in the registry and its pool's leases.
	id    string
	cfg   *config.Config
	log   *slog.Logger
	store store.Store
	exec  *runner.Executor
	pool  *backgroundtasks.Pool
	adapt *runner.Adapter
	recon *reconciler.Reconciler
	http  *http.Server
	flag  *workerflag.Flag
	side  *durable.Side       // nil without REDIS_URL
	disp  *durable.Dispatcher // side's, nil without REDIS_URL
	insp  *durable.Inspector  // side's, nil without REDIS_URL

	auth       *access.Authenticator
	rollback   *rollback.Service
	controller *rollback.Controller // nil unless AUTO_ROLLBACK and REDIS_URL
	metrics    *metrics.Metrics
	history    *metrics.History
	draining   atomic.Bool
	// lastWriteFailure is the last write the database could not take, for
	// Degraded.
	lastWriteFailure writeFailure
	// Restart hands the listening socket to a new process; set by the command
	// line when it runs under tableflip.
	Restart func() error
	// ResponseTimes reports average and p99 HTTP response times, when measured.
	ResponseTimes func() (avg, p99 time.Duration)
	// components are started after the runners and stopped before the store
	// closes (progress broker…).
	components []component
}

type component interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// OwnerID names this process in leases and logs.
func OwnerID(role string) string {
	host, _ := os.Hostname()
	b := make([]byte, 3)
	rand.Read(b)
	return fmt.Sprintf("%s-%s-%d-%s", role, host, os.Getpid(), hex.EncodeToString(b))
}

// NewGenerator builds the generator that GENERATOR names.
func NewGenerator(cfg *config.Config) (generate.Generator, error) {
	switch cfg.Generator {
	case "template":
		return generate.NewTemplate(generate.TemplateConfig{StepDelay: cfg.GeneratorStepDelay}), nil
	case "noop":
		return generate.Noop{}, nil
	case "openai":
		g, err := generate.NewOpenAI(generate.OpenAIConfig{
			BaseURL: cfg.OpenAIBaseURL,
			APIKey:  cfg.OpenAIAPIKey,
			Model:   cfg.OpenAIModel,
		})
		if err != nil {
			return nil, err
		}
		return g, nil
	}
	return nil, fmt.Errorf("generator %q is not available in this build", cfg.Generator)
}

// NewExecutor builds the executor with every kind's handler.
func NewExecutor(cfg *config.Config, st store.Store, log *slog.Logger, obs runner.Observer) (*runner.Executor, error) {
	gen, err := NewGenerator(cfg)
	if err != nil {
		return nil, err
	}
	handlers := map[job.Kind]runner.Handler{
		job.KindGeneration: jobhandler.Generation{
			Generator: gen,
			Retriever: rag.NewRetriever(st, 5),
			Usage:     st,
		},
		job.KindRAGDocument: jobhandler.NewRAGDocument(st),
	}
	return runner.NewExecutor(st, handlers, runner.ExecutorConfig{LeaseFor: cfg.LeaseDuration}, log, obs), nil
}

// New opens the store and builds every component; Serve runs them.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Server, error) {
	st, redisOpt, err := newStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{id: OwnerID("serve"), cfg: cfg, log: log, store: st}
	reg := prometheus.NewRegistry()
	s.metrics = metrics.New(reg, s) // gauges are read at scrape time, when every field is set
	s.ResponseTimes = s.metrics.ResponseTimes
	if err := s.newRunners(redisOpt); err != nil {
		st.Close()
		return nil, err
	}
	s.newRollback()
	s.newNotifier()
	s.history = metrics.NewHistory(s.metrics, s, metrics.HistoryConfig{Interval: cfg.HistoryInterval, Clock: clock.Real{}}, log)
	s.components = append(s.components, s.history)
	if err := s.newAccess(ctx); err != nil {
		if s.side != nil {
			s.side.Close()
		}
		st.Close()
		return nil, errAccess(err)
	}
	s.http = s.newHTTPServer(metrics.Handler(reg))
	return s, nil
}

// newStore checks Redis, when REDIS_URL names one, and opens the database.
// The Redis option is nil without REDIS_URL.
func newStore(ctx context.Context, cfg *config.Config) (store.Store, asynq.RedisConnOpt, error) {
	var redisOpt asynq.RedisConnOpt
	if cfg.RedisURL != "" {
		opt, err := durable.RedisOpt(cfg.RedisURL)
		if err != nil {
			return nil, nil, err
		}
		if err := durable.CheckRedisDB(ctx, opt); err != nil {
			return nil, nil, err
		}
		redisOpt = opt
	}
	st, err := database.Open(ctx, cfg.DatabaseURL, clock.Real{})
	if err != nil {
		return nil, nil, err
	}
	st.SetBackoff(cfg.Backoff())
	st.Warm(ctx, store.WarmConns)
	return st, redisOpt, nil
}

// newRunners builds what runs jobs: the executor, the in-process pool, the
// worker-system flag that routes new jobs, the durable side when redisOpt is
// set, the adapter between them and the reconciler with its passes.
func (s *Server) newRunners(redisOpt asynq.RedisConnOpt) error {
	cfg := s.cfg
	exec, err := NewExecutor(cfg, s.store, s.log, s.metrics)
	if err != nil {
		return err
	}
	s.exec = exec
	s.pool = backgroundtasks.New(s.store, s.exec, backgroundtasks.Config{
		Workers:      cfg.MaxWorkers,
		Owner:        s.id,
		PollInterval: cfg.PollInterval,
		DrainTimeout: cfg.DrainTimeout,
		// 0: all but one of the workers, counted in this pool.
		TenantMaxRunning: cfg.TenantMaxRunning,
	}, s.log)
	s.flag = workerflag.New(s.store, workerflag.Config{KillSwitchOff: cfg.KillSwitchOff(), DurableAvailable: cfg.RedisURL != ""}, s.log)
	s.components = append(s.components, s.flag)
	runners := []runner.Runner{s.pool}
	var passes []reconciler.Pass
	if redisOpt != nil {
		s.side = durable.NewSide(redisOpt)
		s.disp, s.insp = s.side.Dispatcher, s.side.Inspector
		runners = append(runners, s.disp)
		passes = append(passes, durable.Redispatch(s.store, s.disp, s.insp, redispatchGrace, cfg.LeaseDuration, time.Now))
	}
	passes = append(passes, s.sweepWhileOff)
	if cfg.JobRetention > 0 {
		p := &purger{store: s.store, retention: cfg.JobRetention, batch: cfg.PurgeBatch, now: time.Now, logf: s.log.Info}
		passes = append(passes, p.pass)
	}
	s.adapt = runner.NewAdapter(s.flag, s.log, runners...)
	s.recon = reconciler.New(s.store, s.adapt, reconcileInterval(cfg.LeaseDuration), s.log, passes...)
	return nil
}

// newRollback builds the rollback service and, with AUTO_ROLLBACK, the
// controller that rolls back on its own when a trigger fires.
func (s *Server) newRollback() {
	cfg := s.cfg
	var side rollback.Durable
	if s.side != nil {
		side = s.side
	}
	s.rollback = rollback.New(s.store, side, s.log)
	s.rollback.OnFlag = func(ctx context.Context) { s.flag.Refresh(ctx) }
	s.rollback.CleanWindows, s.rollback.CleanWindow = cfg.RollforwardCleanWindows, cfg.RollforwardCleanWindow
	if !cfg.AutoRollbackOn() {
		return
	}
	s.controller = rollback.NewController(s.rollback, s, s.store, rollback.ControllerConfig{
		RedisDownFor:  cfg.RollbackRedisDown,
		MaxCrashes:    cfg.RollbackMaxCrashes,
		CrashWindow:   cfg.RollbackCrashWindow,
		CrashesFor:    rollback.DefaultControllerConfig().CrashesFor,
		MaxQueueDelay: cfg.RollbackQueueDelay,
		QueueDelayFor: cfg.RollbackQueueFor,
		MemoryPercent: cfg.RollbackMemory,
		MemoryFor:     cfg.RollbackMemoryFor,
		Interval:      cfg.RollbackInterval,

		WorkersMissingFor: cfg.RollbackWorkersMissing,
		HolderID:          OwnerID("controller"),
	}, s.log)
	s.controller.OnRollback = func(_ string, err error) {
		if err != nil {
			s.metrics.RollbackError()
		}
	}
	s.components = append(s.components, s.controller)
}

// newNotifier posts rollbacks, roll-forwards and the controller's trigger
// changes to NOTIFY_WEBHOOK_URL. It is added after the controller, so that
// it stops after it and sends what the controller's last tick said.
func (s *Server) newNotifier() {
	if s.cfg.NotifyWebhookURL == "" {
		return
	}
	host, _ := os.Hostname()
	n := notify.New(notify.Config{URL: s.cfg.NotifyWebhookURL, Source: "serve@" + host}, s.log)
	s.rollback.OnRecord = func(a store.AuditRecord) { n.Send(notify.Record(a)) }
	if s.controller != nil {
		s.controller.OnTriggerChange = func(t rollback.TriggerState, from string) {
			n.Send(notify.Trigger(notify.TriggerChange{Name: t.Name, From: from, To: t.State, Value: t.Value,
				Threshold: t.Threshold, Window: t.Window}))
		}
	}
	s.components = append(s.components, n)
}

// newHTTPServer builds the HTTP server of every route (api's route table),
// with live progress and the given Prometheus scrape, its requests timed
// into the metrics.
func (s *Server) newHTTPServer(scrape http.Handler) *http.Server {
	srv := &http.Server{
		// A connection that sends no request, or sits idle between two,
		// is closed soon: under a flood every held connection counts
		// against MAX_CONNECTIONS.
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       30 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	events := s.newProgress(srv)
	handler := api.New(api.Config{
		Store:       s.store,
		Dispatcher:  s.adapt,
		Canceller:   s.exec,
		System:      s,
		Generator:   s.cfg.Generator,
		Log:         s.log,
		BodyTimeout: 30 * time.Second,
		MaxAttempts: s.cfg.JobMaxAttempts,
		Events:      events,
		Metrics:     scrape,
		Auth:        s.auth,
		Admin:       s,
		Rollback:    s.rollback,

		MetricsToken:   s.cfg.MetricsToken,
		AllowedOrigins: s.cfg.Origins(),
		Limits:         s.apiLimits(),
		Search: rag.SearchLimits{
			MaxTerms:    s.cfg.SearchMaxTerms,
			Timeout:     s.cfg.SearchTimeout,
			Concurrency: s.cfg.SearchConcurrency,
		},
		WriteFailed: s.WriteFailed,
	})
	srv.Handler = s.metrics.Middleware(s.closeWhileDraining(handler))
	return srv
}

// closeWhileDraining answers with "Connection: close" once shutdown began.
func (s *Server) closeWhileDraining(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}

func reconcileInterval(lease time.Duration) time.Duration {
	return min(max(lease/4, 250*time.Millisecond), 5*time.Second)
}

// lameDuck is how long a stopping server keeps answering with keep-alives off
// before it closes its connections.
const lameDuck = 300 * time.Millisecond

// redispatchGrace is how long a queued durable job waits before the
// reconciler enqueues it again (its first enqueue normally lands at once).
const redispatchGrace = 2 * time.Second

// Serve runs until ctx ends, then shuts down without losing a job: it stops
// accepting requests, lets in-flight requests finish, drains the runners and
// releases what did not finish.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := s.pool.Start(ctx); err != nil {
		return err
	}
	if err := s.recon.Start(ctx); err != nil {
		return err
	}
	// The replica registers once it knows its address, and beats after the
	// flag (a component) has read the setting.
	s.components = append(s.components, s.replicaHeartbeater(ln.Addr()))
	for _, c := range s.components {
		if err := c.Start(ctx); err != nil {
			return err
		}
	}
	s.log.Info("scriptgen serving", "addr", ln.Addr().String(), "database", s.store.Driver(), "workers", s.cfg.MaxWorkers)
	s.announceAccess(ctx)
	// Over MAX_CONNECTIONS a connection is answered 503 at once, so that a
	// flood holds neither file descriptors nor memory.
	ln = limits.LimitListener(ln, s.cfg.MaxConnections, s.http.Handler)
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(ln) }()
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.log.Info("Shutting down: no new requests, draining jobs", "drain_timeout", s.cfg.DrainTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout+10*time.Second)
	defer cancel()
	// Lame duck: answers now say "Connection: close", so clients stop reusing
	// connections before they are closed, and no request meets a closing one.
	s.draining.Store(true)
	time.Sleep(lameDuck)
	if err := s.http.Shutdown(shutdownCtx); err != nil {
		s.log.Warn("HTTP shutdown", "err", err)
	}
	err := errors.Join(s.pool.Stop(shutdownCtx), s.recon.Stop(shutdownCtx))
	for _, c := range s.components {
		err = errors.Join(err, c.Stop(shutdownCtx))
	}
	if s.side != nil {
		err = errors.Join(err, s.side.Close())
	}
	err = errors.Join(err, s.store.Close())
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(serveErr, err)
	}
	s.log.Info("Stopped")
	return err
}
