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
	"github.com/scriptgen/scriptgen/internal/tracing"
	"github.com/scriptgen/scriptgen/internal/version"
)

// command is a subcommand of scriptgen. To add one, add its line to commands
// and write its run function, which parses its arguments with c.parse or
// c.parseArgs: they give its --help.
type command struct {
	name    string
	args    string // its usage after "scriptgen NAME"
	summary string // what it does, in one line: 'scriptgen help' lists it
	about   string // more for its --help, after the summary; may be empty
	// settings are the server settings it reads, by environment variable
	// (its --help documents these); nil: all of them. It takes the others
	// too, so that one environment serves every command.
	settings []string
	// noSettings is a command that takes no server setting at all.
	noSettings bool
	run        func(ctx context.Context, c *command, args []string, stdout, stderr io.Writer) error
}

// The server settings a group of commands reads.
var (
	storeSettings  = []string{"DATABASE_URL"}
	opsSettings    = []string{"DATABASE_URL", "REDIS_URL"}
	clientSettings = []string{"ADMIN_TOKEN"}
	workerSettings = []string{"DATABASE_URL", "REDIS_URL", "MAX_WORKERS", "GENERATOR", "GENERATOR_STEP_DELAY",
		"OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL", "DRAIN_TIMEOUT", "LEASE_DURATION", "JOB_BACKOFF_BASE", "JOB_BACKOFF_CAP", "TENANT_MAX_RUNNING", "LOG_LEVEL", "LOG_FORMAT", "OTEL_EXPORTER_OTLP_ENDPOINT"}
)

// commands is scriptgen's command line, in the order 'scriptgen help' lists it.
func commands() []command {
	return []command{
		{name: "serve", args: "[flags]", run: serve,
			summary: "run the HTTP API and the background_tasks runner",
			about: "Serves the HTTP API on LISTEN_ADDR and runs jobs: the background_tasks pool (MAX_WORKERS goroutines), " +
				"the reconciler and, with REDIS_URL and AUTO_ROLLBACK, the rollback controller. " +
				"On SIGTERM or SIGINT it drains for up to DRAIN_TIMEOUT; on SIGHUP (or POST /api/admin/graceful-restart) " +
				"it hands its socket to a new process and drains, refusing no connection."},
		{name: "worker", args: "[flags]", settings: workerSettings, run: worker,
			summary: "run a durable worker (asynq on REDIS_URL)",
			about: "Runs durable jobs from the queue on REDIS_URL (required), MAX_WORKERS at once, " +
				"with a heartbeat and a reconciler; run as many as you like. On SIGTERM or SIGINT it drains for up to DRAIN_TIMEOUT."},
		{name: "rollback", args: "[flags]", settings: opsSettings, run: rollbackCmd,
			summary: "roll back to background_tasks, step by step (works with the server down)",
			about: "The emergency rollback of docs/runbook.md, on the database and Redis directly: " +
				"switches the durable worker off, moves its queued jobs to background_tasks, syncs their statuses, " +
				"verifies and saves an audit record ('scriptgen report' prints it)."},
		{name: "rollforward", args: "--percent N [flags]", settings: opsSettings, run: rollforwardCmd,
			summary: "step the durable rollout back up to --percent N of the projects",
			about:   "Replicas follow within a second; the step is recorded ('scriptgen report' prints it)."},
		{name: "migrate", args: "[flags]", settings: opsSettings, run: migrateCmd,
			summary: "move queued jobs between backends (progress bar); list or retry those that failed",
			about: "Without --list-failed or --retry-failed, moves every queued job of --source to --target; " +
				"a job that cannot move goes on the migration_failed list."},
		{name: "verify", args: "[flags]", settings: clientSettings, run: verifyCmd,
			summary: "run the checklist of docs/runbook.md against a running service; exits 1 on a miss",
			about: "Submits real jobs to the service at --url and checks its answers, one ✅ or ❌ a line; " +
				"ADMIN_TOKEN lets it check the admin API too."},
		{name: "status", args: "[flags]", settings: clientSettings, run: statusCmd,
			summary: "show the monitoring view of docs/runbook.md for a running service; --watch refreshes it",
			about: "Shows the health, queues, response times, triggers and last rollback of the service at --url " +
				"(its admin figures need ADMIN_TOKEN). Without --watch it exits 1 when the service does not answer, " +
				"says it is degraded or refuses the token."},
		{name: "schema", args: "[flags]", settings: storeSettings, run: schemaCmd,
			summary: "apply the database schema's migrations and exit (a deployment's migration step)",
			about: "Every process applies them at start too, under a lock, so this is optional; a deployment runs it " +
				"first (deploy/kubernetes/migrate-job.yaml) so that replicas start on a migrated database. " +
				"Like serve, it creates an SQLite file that does not exist."},
		{name: "jobs", args: "[flags]", settings: clientSettings, run: jobsCmd,
			summary: "list failed jobs, retry one, or cancel a project's jobs on a running service",
			about: "Lists the jobs in --status (failed by default) of the service at --url with their errors; " +
				"--retry ID queues a failed job again with its attempts given back; --cancel-project P cancels every " +
				"queued or running job of P. Needs ADMIN_TOKEN."},
		{name: "report", args: "[flags] [ID]", settings: storeSettings, run: reportCmd,
			summary: "print a rollback report (YAML): the latest, or the one of ID",
			about:   "ID is the id of a rollback's or roll-forward's record, as those commands print it and GET /api/admin/rollbacks lists it."},
		{name: "purge", args: "--older-than D [--batch N]", settings: storeSettings, run: purgeCmd,
			summary: "delete finished jobs older than D with their events (works with the server down)",
			about: "Deletes the jobs that succeeded, failed or were cancelled more than --older-than ago, with their events, " +
				"scripts so far and migration failures, --batch jobs per transaction; their episodes and documents stay. " +
				"A purged job's Idempotency-Key may be used again. Serve does the same on its own with JOB_RETENTION."},
		{name: "keys", args: "create --tenant T --name N [--projects p1,p2] | list [--tenant T] | rotate ID | revoke ID", settings: storeSettings, run: keysCmd,
			summary: "create, list, rotate and revoke writers' API keys (works with the server down)",
			about: "A key belongs to a tenant and may be limited to some of its projects. create and rotate print the key once; " +
				"the database keeps only its SHA-256 and its prefix (shown in lists and logs). " +
				"Every replica honours a new, rotated or revoked key within 2 s. The admin API does the same under /api/admin/keys."},
		{name: "version", noSettings: true, run: versionCmd,
			summary: "print the version of this build",
			about: "The line it prints is the version stamped at build time (-ldflags \"-X " + versionVar + "=v1.2.3\"); " +
				"else the module version: a release (go install …@v1.2.3), or the pseudo-version Go stamps from the commit " +
				"in a Git checkout, with +dirty when the tree had changes; else the first 12 hex digits of the commit " +
				"(-dirty likewise); else \"dev\" (a binary built with -buildvcs=false or by go run).\n\n" +
				"It takes no flags, no arguments and no server settings."},
	}
}

// versionVar is the variable that stamps a build's version.
const versionVar = "github.com/scriptgen/scriptgen/internal/version.Version"

// spec is the command's command line for the config parser; own registers its
// own flags.
func (c *command) spec(own func(fs *flag.FlagSet)) config.Command {
	usage := "scriptgen " + c.name
	if c.args != "" {
		usage += " " + c.args
	}
	about := c.summary
	if about != "" {
		about = strings.ToUpper(about[:1]) + about[1:] + "."
	}
	if c.about != "" {
		about += "\n\n" + c.about
	}
	return config.Command{Name: c.name, Usage: usage, About: about, Flags: own, Settings: c.settings, NoSettings: c.noSettings}
}

// parseArgs reads the command's settings, its own flags (registered by own,
// which may be nil) and its arguments; any error in them is a usage error.
func (c *command) parseArgs(args []string, stderr io.Writer, own func(fs *flag.FlagSet)) (*config.Config, []string, error) {
	cfg, rest, err := c.spec(own).ParseArgs(args, os.Getenv, stderr)
	if err != nil {
		return nil, nil, usageError{err}
	}
	return cfg, rest, nil
}

// parse is parseArgs for a command that takes no arguments.
func (c *command) parse(args []string, stderr io.Writer, own func(fs *flag.FlagSet)) (*config.Config, error) {
	cfg, rest, err := c.parseArgs(args, stderr, own)
	if err == nil && len(rest) > 0 {
		return nil, usagef("takes no arguments, got %q", rest)
	}
	return cfg, err
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

// Run runs the command line and returns the exit code: 0 done (help included),
// 1 the command failed, 2 a mistake in the command line.
func Run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	name := args[0]
	switch {
	case name == "help" && len(args) > 1:
		// scriptgen help COMMAND is scriptgen COMMAND --help.
		return Run([]string{args[1], "--help"}, stdout, stderr)
	case name == "help" || name == "-h" || name == "-help" || name == "--help":
		usage(stderr)
		return 0
	case strings.HasPrefix(name, "-"):
		fmt.Fprintf(stderr, "scriptgen: %s before a command: flags go after it (scriptgen <command> [flags])\n", name)
		fmt.Fprintln(stderr, "Run 'scriptgen help' for the commands.")
		return 2
	}
	if c := find(name); c != nil {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		if err := c.run(ctx, c, args[1:], stdout, stderr); errors.Is(err, flag.ErrHelp) {
			return 0 // the command's help is printed
		} else if err != nil {
			fmt.Fprintf(stderr, "scriptgen %s: %v\n", c.name, err)
			code := exitCode(err)
			if code == 2 {
				fmt.Fprintf(stderr, "Run 'scriptgen %s --help' for its usage.\n", c.name)
			}
			return code
		}
		return 0
	}
	fmt.Fprintf(stderr, "scriptgen: unknown command %q\n\n", name)
	usage(stderr)
	return 2
}

// find returns the command of the name, or nil.
func find(name string) *command {
	cmds := commands()
	for i := range cmds {
		if cmds[i].name == name {
			return &cmds[i]
		}
	}
	return nil
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: scriptgen <command> [flags] [arguments]\n\nscriptgen is the AI script generation service and its operator tools.\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-12s %s\n", "help", "this list; 'scriptgen help <command>' is 'scriptgen <command> --help'")
	fmt.Fprint(w, `
Run 'scriptgen <command> --help' for what a command does, its flags and the
server settings it reads. Every server setting is an environment variable and
a flag (DATABASE_URL, --database-url); a flag wins.

Exit status: 0 done, 1 the command failed, 2 a mistake in the command line
(unknown command or flag, bad value).
`)
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

func serve(ctx context.Context, c *command, args []string, _, stderr io.Writer) error {
	cfg, err := c.parse(args, stderr, nil)
	if err != nil {
		return err
	}
	tuneGC(os.Getenv)
	log := newLogger(cfg, stderr)
	stopTracing, err := startTracing(ctx, cfg, "serve", log)
	if err != nil {
		return err
	}
	defer stopTracing()
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

func worker(ctx context.Context, c *command, args []string, _, stderr io.Writer) error {
	cfg, err := c.parse(args, stderr, nil)
	if err != nil {
		return err
	}
	tuneGC(os.Getenv)
	log := newLogger(cfg, stderr)
	stopTracing, err := startTracing(ctx, cfg, "worker", log)
	if err != nil {
		return err
	}
	defer stopTracing()
	return server.RunWorker(ctx, cfg, log)
}

// startTracing sends traces to OTEL_EXPORTER_OTLP_ENDPOINT when it is set
// (internal/tracing); the function it returns flushes the last spans.
func startTracing(ctx context.Context, cfg *config.Config, role string, log *slog.Logger) (func(), error) {
	shutdown, err := tracing.Setup(ctx, cfg.OTLPEndpoint, role)
	if err != nil {
		return nil, err
	}
	if cfg.OTLPEndpoint != "" {
		log.Info("Tracing: one trace per job, sent by OTLP/HTTP", "endpoint", cfg.OTLPEndpoint)
	}
	return func() {
		// The process's own context has ended: the flush gets a few seconds.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			log.Warn("Tracing: the last spans were not sent", "err", err)
		}
	}, nil
}

func versionCmd(_ context.Context, c *command, args []string, stdout, stderr io.Writer) error {
	_, rest, err := c.parseArgs(args, stderr, nil)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("takes no arguments, got %q", rest)
	}
	fmt.Fprintln(stdout, version.String())
	return nil
}
