package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/config"
	"github.com/scriptgen/scriptgen/internal/database"
	"github.com/scriptgen/scriptgen/internal/durable"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/notify"
	"github.com/scriptgen/scriptgen/internal/rollback"
	"github.com/scriptgen/scriptgen/internal/store"
)

// ops is what the operator commands work on: the database and, where
// configured, Redis — straight, with or without a running server.
type ops struct {
	cfg  *config.Config
	st   store.Store
	side *durable.Side
	svc  *rollback.Service
	// notifier posts the command's rollback or roll-forward to
	// NOTIFY_WEBHOOK_URL, when set.
	notifier *notify.Webhook
}

// openStore opens the database of an operator command. These commands work on
// the database a service already uses: a missing SQLite file is a typo in
// DATABASE_URL, not a database to create (serve creates it).
func openStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	st, err := database.OpenExisting(ctx, cfg.DatabaseURL, clock.Real{})
	if errors.Is(err, database.ErrNoDatabase) {
		return nil, fmt.Errorf("%w; set DATABASE_URL or --database-url", err)
	}
	if err == nil {
		// A rollback expires the leases of jobs it finds stuck: their
		// retries wait like the service's.
		st.SetBackoff(cfg.Backoff())
	}
	return st, err
}

func openOps(ctx context.Context, cfg *config.Config, stderr io.Writer) (*ops, error) {
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	o := &ops{cfg: cfg, st: st}
	var side rollback.Durable
	if cfg.RedisURL != "" {
		opt, err := durable.RedisOpt(cfg.RedisURL)
		if err != nil {
			st.Close()
			return nil, err
		}
		o.side = durable.NewSide(opt)
		side = o.side
	}
	o.svc = rollback.New(st, side, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	o.svc.CleanWindows, o.svc.CleanWindow = cfg.RollforwardCleanWindows, cfg.RollforwardCleanWindow
	if cfg.NotifyWebhookURL != "" {
		host, _ := os.Hostname()
		o.notifier = notify.New(notify.Config{URL: cfg.NotifyWebhookURL, Source: "cli@" + host},
			slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
		o.notifier.Start(ctx)
		o.svc.OnRecord = func(a store.AuditRecord) { o.notifier.Send(notify.Record(a)) }
	}
	return o, nil
}

func (o *ops) close() {
	if o.notifier != nil {
		// A command ends soon after its record: its notification gets a
		// few seconds (a first retry included), not the full backoff.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		o.notifier.Stop(ctx)
		cancel()
	}
	if o.side != nil {
		o.side.Close()
	}
	o.st.Close()
}

func printStep(w io.Writer) rollback.StepFunc {
	return func(s rollback.Step) {
		mark := "✅"
		if !s.OK {
			mark = "❌"
		}
		fmt.Fprintf(w, "%s %-26s %8.1f ms  %s\n", mark, s.Name, s.TookMS, s.Detail)
	}
}

func rollbackCmd(ctx context.Context, c *command, args []string, stdout, stderr io.Writer) error {
	var reason string
	var asJSON bool
	cfg, err := c.parse(args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&reason, "reason", "", "why: the `text` goes into the report as the root cause")
		fs.BoolVar(&asJSON, "json", false, "print the audit record as JSON at the end")
	})
	if err != nil {
		return err
	}
	// Checked before anything is printed: the service would refuse it too, but
	// only after this command had announced a rollback and its empty record.
	if err := job.ValidateReason(reason); err != nil {
		return usageError{err}
	}
	o, err := openOps(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer o.close()
	host, _ := os.Hostname()
	start := time.Now()
	var switched time.Duration
	fmt.Fprintf(stdout, "Rolling back to background_tasks (reason: %q)\n", reason)
	rec, err := o.svc.Rollback(ctx, rollback.Request{Reason: reason, Actor: "cli@" + host, Trigger: "manual"}, func(s rollback.Step) {
		if s.Name == "flag off" {
			switched = time.Since(start)
		}
		printStep(stdout)(s)
	})
	report := "scriptgen report " + rec.ID
	if errors.Is(err, rollback.ErrNotRecorded) {
		report = "none, the audit record could not be saved"
	}
	fmt.Fprintf(stdout, "Switched in %s; done in %s; %d jobs migrated, %d dead-lettered. Report: %s\n",
		switched.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), rec.JobsMigrated, rec.JobsFailed, report)
	if err == nil {
		printNextSteps(ctx, stdout, o.st)
	}
	if asJSON {
		json.NewEncoder(stdout).Encode(rec)
	}
	return err
}

// printNextSteps says what the rollback leaves to the operator, in the words
// of the API's next_steps and of verify's check "Durable workers stopped
// (rollback mode)": the durable workers keep running until stopped
// (docs/runbook.md, step 4).
func printNextSteps(ctx context.Context, w io.Writer, st store.Store) {
	up, err := durable.WorkersUp(ctx, st, time.Now())
	if err != nil {
		fmt.Fprintf(w, "Next: stop the durable workers (could not count them: %v). %s\n", err, rollback.StopWorkersHow)
		up = 0
	}
	for _, step := range rollback.NextSteps(up) {
		fmt.Fprintf(w, "Next: %s\n", step)
	}
}

func rollforwardCmd(ctx context.Context, c *command, args []string, stdout, stderr io.Writer) error {
	var reason string
	var force bool
	percent := -1
	cfg, err := c.parse(args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&reason, "reason", "", "why: the `text` goes into the record")
		fs.BoolVar(&force, "force", false, "roll forward before the clean windows after a rollback have passed (needs --reason)")
		// A Func, not an IntVar, so that its help shows no default: it has none.
		fs.Func("percent", "required: share of projects (`N`, 0-100) whose new jobs go to the durable worker", func(v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return errors.New("want a whole number from 0 to 100")
			}
			percent = n
			return nil
		})
	})
	if err != nil {
		return err
	}
	if percent < 0 || percent > 100 {
		return usagef("--percent is required, from 0 to 100")
	}
	if err := job.ValidateReason(reason); err != nil {
		return usageError{err}
	}
	if force && strings.TrimSpace(reason) == "" {
		return usagef("--force needs a --reason")
	}
	o, err := openOps(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer o.close()
	host, _ := os.Hostname()
	rec, err := o.svc.Rollforward(ctx, percent, rollback.Request{Reason: reason, Actor: "cli@" + host, Force: force}, printStep(stdout))
	if err == nil {
		fmt.Fprintf(stdout, "Durable rollout at %d%%; replicas follow within a second. Record %s\n", percent, rec.ID)
	}
	return err
}

func migrateCmd(ctx context.Context, c *command, args []string, stdout, stderr io.Writer) error {
	var source, target, retry string
	var list bool
	cfg, err := c.parse(args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&source, "source", "durable", "backend to move queued jobs from: durable (alias rq_queue) or background_tasks")
		fs.StringVar(&target, "target", "background_tasks", "backend to move them to")
		fs.BoolVar(&list, "list-failed", false, "list the migration_failed dead-letter list")
		// A Func, not a StringVar, to refuse an empty id: with a StringVar,
		// --retry-failed '' looked like no flag and ran a full migration.
		fs.Func("retry-failed", "retry a job of the migration_failed list (a job `ID`, or 'all')", func(v string) error {
			if v == "" {
				return errors.New("want a job id or 'all'")
			}
			retry = v
			return nil
		})
	})
	if err != nil {
		return err
	}
	// Checked whatever the mode, so that a typo is never silently ignored.
	src, err := rollback.ParseBackend(source)
	if err != nil {
		return usagef("--source: %w", err)
	}
	dst, err := rollback.ParseBackend(target)
	if err != nil {
		return usagef("--target: %w", err)
	}
	if list && retry != "" {
		return usagef("--list-failed and --retry-failed exclude each other")
	}
	o, err := openOps(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer o.close()
	switch {
	case list:
		fs, err := o.st.ListMigrationFailures(ctx, 100000)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d jobs on the migration_failed list\n", len(fs))
		for _, f := range fs {
			fmt.Fprintf(stdout, "%s  %s → %s  %s  (%s)\n", f.JobID, f.Source, f.Target, f.Reason, f.CreatedAt.Format(time.RFC3339))
		}
		return nil
	case retry != "":
		ids := []string{retry}
		if retry == "all" {
			fs, err := o.st.ListMigrationFailures(ctx, 100000)
			if err != nil {
				return err
			}
			ids = ids[:0]
			for _, f := range fs {
				ids = append(ids, f.JobID)
			}
		}
		failed := 0
		for _, id := range ids {
			if _, err := o.svc.RetryFailed(ctx, id); err != nil {
				failed++
				fmt.Fprintf(stdout, "❌ %s: %v\n", id, err)
				continue
			}
			fmt.Fprintf(stdout, "✅ %s migrated\n", id)
		}
		if failed > 0 {
			return fmt.Errorf("%d of %d jobs still cannot migrate", failed, len(ids))
		}
		return nil
	}
	res, err := o.svc.Migrate(ctx, src, dst, "cli", func(done, total int) { progressBar(stderr, done, total) })
	fmt.Fprintln(stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Migrated %d of %d queued %s jobs to %s in %s; %d on the migration_failed list\n",
		res.Migrated, res.Total, src, dst, res.Took.Round(time.Millisecond), len(res.Failed))
	for _, f := range res.Failed {
		fmt.Fprintf(stdout, "  ❌ %s: %s\n", f.JobID, f.Reason)
	}
	return nil
}

func progressBar(w io.Writer, done, total int) {
	const width = 40
	filled := width
	pct := 100.0
	if total > 0 {
		filled = width * done / total
		pct = 100 * float64(done) / float64(total)
	}
	fmt.Fprintf(w, "\r[%s%s] %5.1f%% %d/%d", strings.Repeat("█", filled), strings.Repeat("░", width-filled), pct, done, total)
}

func reportCmd(ctx context.Context, c *command, args []string, stdout, stderr io.Writer) error {
	cfg, ids, err := c.parseArgs(args, stderr, nil)
	if err != nil {
		return err
	}
	if len(ids) > 1 {
		return usagef("one report id at most, got %d: %v", len(ids), ids)
	}
	var id string
	if len(ids) == 1 {
		id = ids[0]
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	var rec store.AuditRecord
	if id == "" {
		recs, err := st.ListAudits(ctx, 1)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			return fmt.Errorf("no rollback has been recorded yet")
		}
		rec = recs[0]
	} else if rec, err = st.GetAudit(ctx, id); err != nil {
		return fmt.Errorf("report %s: %w", id, err)
	}
	b, err := rollback.NewReport(rec).YAML()
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}

// schemaCmd applies the schema's migrations: opening the database does it
// (database.Open, under the driver's migration lock), so the command opens
// it, says which it migrated and closes it.
func schemaCmd(ctx context.Context, c *command, args []string, stdout, stderr io.Writer) error {
	cfg, err := c.parse(args, stderr, nil)
	if err != nil {
		return err
	}
	st, err := database.Open(ctx, cfg.DatabaseURL, clock.Real{})
	if err != nil {
		return fmt.Errorf("migrate the schema: %w", err)
	}
	defer st.Close()
	fmt.Fprintf(stdout, "The %s database's schema is up to date.\n", st.Driver())
	return nil
}
