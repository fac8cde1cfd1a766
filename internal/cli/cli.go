// Package cli is scriptgen's command line: it parses arguments and hands over
// to the component that does the work.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"

	"github.com/scriptgen/scriptgen/internal/config"
	"github.com/scriptgen/scriptgen/internal/server"
	"github.com/scriptgen/scriptgen/internal/version"
)

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the HTTP API and the background_tasks runner", serve},
		{"worker", "run a durable worker (asynq on REDIS_URL)", worker},
		{"rollback", "flag off, migrate queued durable jobs, sync, verify, report (works with the server down)", rollbackCmd},
		{"rollforward", "step the durable rollout back up: --percent N", rollforwardCmd},
		{"migrate", "move queued jobs between backends, with a progress bar; --list-failed, --retry-failed", migrateCmd},
		{"verify", "run the runbook's checklist against a running service; --json; exits non-zero on a miss", verifyCmd},
		{"status", "the runbook's monitoring loop as a live view; --watch", statusCmd},
		{"report", "print a rollback report (YAML) — the latest, or the one of ID", reportCmd},
		{"version", "print the version", versionCmd},
	}
}

// usageError is a mistake in the command line. Run exits 2 for it, as for an
// unknown command, and 1 for a command that ran and failed, so that a script
// can tell a typo from an outage.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exitCode is the exit code of a command that returned err (not nil).
func exitCode(err error) int {
	if errors.As(err, new(usageError)) {
		return 2
	}
	return 1
}

// parseWith reads a command's settings and its own flags; any error in them
// is a usage error.
func parseWith(name string, args []string, stderr io.Writer, own ...func(fs *flag.FlagSet)) (*config.Config, error) {
	cfg, err := config.Parse(name, args, os.Getenv, stderr, own...)
	if err != nil {
		return nil, usageError{err}
	}
	return cfg, nil
}

// Run runs the command line and returns the exit code.
func Run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		if err := c.run(ctx, args[1:], stdout, stderr); errors.Is(err, flag.ErrHelp) {
			return 0 // the flag set has printed the command's usage
		} else if err != nil {
			fmt.Fprintf(stderr, "scriptgen %s: %v\n", c.name, err)
			return exitCode(err)
		}
		return 0
	}
	fmt.Fprintf(stderr, "scriptgen: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: scriptgen <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nEvery setting is an environment variable and a flag; see 'scriptgen serve --help'.")
}

// newLogger builds the process logger from LOG_LEVEL and LOG_FORMAT.
func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(strings.ToUpper(cfg.LogLevel)))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serve(ctx context.Context, args []string, _, stderr io.Writer) error {
	cfg, err := parseWith("serve", args, stderr)
	if err != nil {
		return err
	}
	tuneGC(os.Getenv)
	log := newLogger(cfg, stderr)
	// tableflip hands the listening socket to a new process on a graceful
	// restart (SIGHUP or POST /api/admin/graceful-restart): no connection is
	// refused, and this process drains like on SIGTERM.
	upg, err := tableflip.New(tableflip.Options{UpgradeTimeout: time.Minute, PIDFile: cfg.PIDFile})
	if err != nil {
		return fmt.Errorf("restarter: %w", err)
	}
	defer upg.Stop()
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	ln, err := upg.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.ListenAddr, err)
	}
	srv.Restart = func() error {
		log.Info("Graceful restart: starting the new process")
		if err := upg.Upgrade(); err != nil {
			return fmt.Errorf("graceful restart: %w", err)
		}
		return nil
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for {
			select {
			case <-hup:
				if err := srv.Restart(); err != nil {
					log.Error("Graceful restart failed; still serving", "err", err)
				}
			case <-upg.Exit():
				log.Info("The new process is ready: draining this one")
				cancel()
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	if err := upg.Ready(); err != nil {
		return err
	}
	return srv.Serve(ctx, ln)
}

func worker(ctx context.Context, args []string, _, stderr io.Writer) error {
	cfg, err := parseWith("worker", args, stderr)
	if err != nil {
		return err
	}
	tuneGC(os.Getenv)
	return server.RunWorker(ctx, cfg, newLogger(cfg, stderr))
}

func versionCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usagef("takes no arguments, got %q", fs.Args())
	}
	fmt.Fprintln(stdout, version.String())
	return nil
}
