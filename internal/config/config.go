// Package config reads scriptgen's settings. Every setting is an environment
// variable and a command-line flag of the same name in kebab case
// (LISTEN_ADDR ↔ --listen-addr); a flag wins over the environment. The table
// below is the documentation: a command's --help prints the settings it reads
// from it, `scriptgen serve --help` all of them.
package config

import (
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/scriptgen/scriptgen/internal/job"
)

// Config is every setting of scriptgen.
type Config struct {
	ListenAddr          string
	DatabaseURL         string
	RedisURL            string
	AdminToken          string
	MaxWorkers          int
	JobRetention        time.Duration
	PurgeBatch          int
	Generator           string
	GeneratorStepDelay  time.Duration
	OpenAIBaseURL       string
	OpenAIAPIKey        string
	OpenAIModel         string
	UseDurableWorker    string
	WorkerSystemEnabled string
	DrainTimeout        time.Duration
	LeaseDuration       time.Duration
	PollInterval        time.Duration
	LogLevel            string
	LogFormat           string
	OTLPEndpoint        string
	PIDFile             string
	AutoRollback        string
	RollbackRedisDown   time.Duration
	RollbackMaxCrashes  int
	RollbackCrashWindow time.Duration
	RollbackQueueDelay  time.Duration
	RollbackQueueFor    time.Duration
	RollbackMemory      float64
	RollbackMemoryFor   time.Duration
	// RollbackWorkersMissing: no durable worker alive for this long
	// rolls back (ROLLBACK_WORKERS_MISSING_FOR).
	RollbackWorkersMissing time.Duration
	// RollforwardCleanWindows clean windows of RollforwardCleanWindow
	// must pass after a rollback before a roll-forward is allowed unforced.
	RollforwardCleanWindows int
	// NotifyWebhookURL receives rollbacks, roll-forwards and trigger
	// changes as JSON with a Slack-compatible "text" (NOTIFY_WEBHOOK_URL).
	NotifyWebhookURL string
	// JobMaxAttempts is how often a new job is tried (JOB_MAX_ATTEMPTS).
	JobMaxAttempts int
	// JobBackoffBase and JobBackoffCap space a failed job's attempts
	// (JOB_BACKOFF_BASE, JOB_BACKOFF_CAP; Backoff).
	JobBackoffBase         time.Duration
	JobBackoffCap          time.Duration
	RollforwardCleanWindow time.Duration
	RollbackInterval       time.Duration
	HistoryInterval        time.Duration

	Auth                 string
	AdminTokens          string
	AuthJWKSURL          string
	AuthJWTIssuer        string
	AuthJWTAudience      string
	AuthJWTTenantClaim   string
	AuthJWTProjectsClaim string
	AllowedOrigins       string
	MetricsToken         string

	MaxConnections      int
	MaxStreams          int
	MaxStreamsPerClient int
	MaxStreamsPerJob    int
	TenantRate          float64
	TenantBurst         int
	TenantMaxRunning    int
	TenantMaxDocuments  int
	TenantMaxDocBytes   int
	TenantTokensPerDay  int
	TenantTokensPerMon  int
	SearchTimeout       time.Duration
	SearchMaxTerms      int
	SearchConcurrency   int
}

type option struct {
	env, def, help string
	kind           binder
}

// binder registers a setting's flag on a flag set; typ names its values in
// the help.
type binder struct {
	typ  string
	bind func(c *Config, fs *flag.FlagSet, name, def, help string)
}

func str(field func(*Config) *string) binder {
	return binder{"string", func(c *Config, fs *flag.FlagSet, name, def, help string) { fs.StringVar(field(c), name, def, help) }}
}

func integer(field func(*Config) *int) binder {
	return binder{"int", func(c *Config, fs *flag.FlagSet, name, def, help string) {
		fs.Func(name, help+" (default "+def+")", func(v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return fmt.Errorf("must be a positive integer")
			}
			*field(c) = n
			return nil
		})
	}}
}

// count is an integer where 0 means "no limit" (or "off").
func count(field func(*Config) *int) binder {
	return binder{"int", func(c *Config, fs *flag.FlagSet, name, def, help string) {
		fs.Func(name, help+" (default "+def+")", func(v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("must be 0 or a positive integer")
			}
			*field(c) = n
			return nil
		})
	}}
}

func float(field func(*Config) *float64) binder {
	return binder{"float", func(c *Config, fs *flag.FlagSet, name, def, help string) {
		fs.Func(name, help+" (default "+def+")", func(v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 {
				return fmt.Errorf("must be 0 or a positive number")
			}
			*field(c) = f
			return nil
		})
	}}
}

func duration(field func(*Config) *time.Duration) binder {
	return binder{"duration", func(c *Config, fs *flag.FlagSet, name, def, help string) {
		fs.Func(name, help+" (default "+def+")", func(v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return fmt.Errorf("must be a duration such as 500ms or 30s")
			}
			*field(c) = d
			return nil
		})
	}}
}

var options = []option{
	{"LISTEN_ADDR", "127.0.0.1:8002", "address the HTTP API listens on (beyond loopback, e.g. :8002, writer calls need an API key)", str(func(c *Config) *string { return &c.ListenAddr })},
	{"DATABASE_URL", "sqlite:./data/scriptgen.db", "system of record: sqlite:PATH or postgres://…", str(func(c *Config) *string { return &c.DatabaseURL })},
	{"REDIS_URL", "", "Redis of the durable worker, e.g. redis://127.0.0.1:6379/5 (no database given: 5); unset: no durable side", str(func(c *Config) *string { return &c.RedisURL })},
	{"ADMIN_TOKEN", "", "Bearer token of the admin API (16+ characters; named \"admin\" in audits); unset with no ADMIN_TOKENS: admin API off", str(func(c *Config) *string { return &c.AdminToken })},
	{"ADMIN_TOKENS", "", "more operators' tokens, name=token,name=token; each action is audited with its token's name", str(func(c *Config) *string { return &c.AdminTokens })},
	{"AUTH", "auto", "writers' credentials: auto (API keys; open on loopback while no key exists) or off (no credential, e.g. behind an authenticating proxy)", str(func(c *Config) *string { return &c.Auth })},
	{"AUTH_JWKS_URL", "", "also accept bearer JWTs signed by a key of this JWKS", str(func(c *Config) *string { return &c.AuthJWKSURL })},
	{"AUTH_JWT_ISSUER", "", "a JWT's iss must be this, when set", str(func(c *Config) *string { return &c.AuthJWTIssuer })},
	{"AUTH_JWT_AUDIENCE", "", "a JWT's aud must hold this, when set", str(func(c *Config) *string { return &c.AuthJWTAudience })},
	{"AUTH_JWT_TENANT_CLAIM", "tenant", "the JWT claim naming the writer's tenant", str(func(c *Config) *string { return &c.AuthJWTTenantClaim })},
	{"AUTH_JWT_PROJECTS_CLAIM", "projects", "the JWT claim listing the projects a writer may use (absent: all of the tenant's)", str(func(c *Config) *string { return &c.AuthJWTProjectsClaim })},
	{"ALLOWED_ORIGINS", "", "web origins (https://app.example.com,…) whose pages may call the writer API (CORS); other cross-origin calls that change state are refused", str(func(c *Config) *string { return &c.AllowedOrigins })},
	{"METRICS_TOKEN", "", "when set, GET /metrics wants Authorization: Bearer <this token> (or an admin token)", str(func(c *Config) *string { return &c.MetricsToken })},
	{"MAX_CONNECTIONS", "8192", "open HTTP connections at most; more are answered 503 at once (0: no cap)", count(func(c *Config) *int { return &c.MaxConnections })},
	{"MAX_STREAMS", "4096", "open event streams (SSE) at most, in all (0: no cap)", count(func(c *Config) *int { return &c.MaxStreams })},
	{"MAX_STREAMS_PER_CLIENT", "64", "open event streams at most per credential (per address without one)", count(func(c *Config) *int { return &c.MaxStreamsPerClient })},
	{"MAX_STREAMS_PER_JOB", "32", "open event streams at most per job", count(func(c *Config) *int { return &c.MaxStreamsPerJob })},
	{"TENANT_RATE", "20", "submissions (jobs and documents) a second per tenant, shared by every replica (0: no limit)", float(func(c *Config) *float64 { return &c.TenantRate })},
	{"TENANT_BURST", "100", "submissions a tenant may make at once before TENANT_RATE applies", integer(func(c *Config) *int { return &c.TenantBurst })},
	{"TENANT_MAX_RUNNING", "0", "jobs of one tenant running at once, in each backend (0: all but one of MAX_WORKERS in background_tasks, no cap on durable workers)", count(func(c *Config) *int { return &c.TenantMaxRunning })},
	{"TENANT_MAX_DOCUMENTS", "1000", "documents per tenant (0: no limit)", count(func(c *Config) *int { return &c.TenantMaxDocuments })},
	{"TENANT_MAX_DOCUMENT_BYTES", "104857600", "bytes of documents per tenant (0: no limit)", count(func(c *Config) *int { return &c.TenantMaxDocBytes })},
	{"TENANT_TOKENS_PER_DAY", "0", "LLM tokens a tenant may use a day; a submission over it is refused (0: no budget)", count(func(c *Config) *int { return &c.TenantTokensPerDay })},
	{"TENANT_TOKENS_PER_MONTH", "0", "LLM tokens a tenant may use a calendar month (UTC) (0: no budget)", count(func(c *Config) *int { return &c.TenantTokensPerMon })},
	{"SEARCH_TIMEOUT", "2s", "a document search's time limit", duration(func(c *Config) *time.Duration { return &c.SearchTimeout })},
	{"SEARCH_MAX_TERMS", "8", "terms of a search query at most", integer(func(c *Config) *int { return &c.SearchMaxTerms })},
	{"SEARCH_CONCURRENCY", "4", "searches running at once per replica; more are answered 429", integer(func(c *Config) *int { return &c.SearchConcurrency })},
	{"MAX_WORKERS", "4", "background_tasks goroutines in serve; tasks run at once by worker", integer(func(c *Config) *int { return &c.MaxWorkers })},
	{"GENERATOR", "template", "script generator: template (offline), noop (benchmarks) or openai", str(func(c *Config) *string { return &c.Generator })},
	{"GENERATOR_STEP_DELAY", "150ms", "pause between the template generator's stages", duration(func(c *Config) *time.Duration { return &c.GeneratorStepDelay })},
	{"OPENAI_BASE_URL", "https://api.openai.com/v1", "OpenAI-compatible API root (OpenAI, vLLM, llama.cpp server, Ollama)", str(func(c *Config) *string { return &c.OpenAIBaseURL })},
	{"OPENAI_API_KEY", "", "API key of GENERATOR=openai (local servers need none)", str(func(c *Config) *string { return &c.OpenAIAPIKey })},
	{"OPENAI_MODEL", "gpt-4o-mini", "model of GENERATOR=openai", str(func(c *Config) *string { return &c.OpenAIModel })},
	{"USE_DURABLE_WORKER", "", "kill switch: false forces background_tasks", str(func(c *Config) *string { return &c.UseDurableWorker })},
	{"WORKER_SYSTEM_ENABLED", "", "kill switch: false forces background_tasks", str(func(c *Config) *string { return &c.WorkerSystemEnabled })},
	{"DRAIN_TIMEOUT", "20s", "on SIGTERM, how long running jobs may finish before they are released", duration(func(c *Config) *time.Duration { return &c.DrainTimeout })},
	{"LEASE_DURATION", "30s", "how long a runner's lease on a job lasts without renewal", duration(func(c *Config) *time.Duration { return &c.LeaseDuration })},
	{"POLL_INTERVAL", "500ms", "how often idle runners look for work they were not told about", duration(func(c *Config) *time.Duration { return &c.PollInterval })},
	{"JOB_RETENTION", "0", "finished jobs older than this are deleted with their events (their episodes and documents stay), in batches of PURGE_BATCH (0: keep every job)", duration(func(c *Config) *time.Duration { return &c.JobRetention })},
	{"PURGE_BATCH", "1000", "jobs deleted per transaction by the JOB_RETENTION purge", integer(func(c *Config) *int { return &c.PurgeBatch })},
	{"PID_FILE", "", "where serve writes its pid; set it under systemd so a graceful restart keeps the service", str(func(c *Config) *string { return &c.PIDFile })},
	{"AUTO_ROLLBACK", "true", "let the controller roll back by itself when a trigger holds (needs REDIS_URL)", str(func(c *Config) *string { return &c.AutoRollback })},
	{"ROLLBACK_REDIS_DOWN_FOR", "5m", "trigger: Redis unreachable for longer than this", duration(func(c *Config) *time.Duration { return &c.RollbackRedisDown })},
	{"ROLLBACK_MAX_WORKER_CRASHES", "3", "trigger: more worker crashes than this within ROLLBACK_CRASH_WINDOW", integer(func(c *Config) *int { return &c.RollbackMaxCrashes })},
	{"ROLLBACK_CRASH_WINDOW", "10m", "window of the worker-crash trigger", duration(func(c *Config) *time.Duration { return &c.RollbackCrashWindow })},
	{"ROLLBACK_QUEUE_DELAY", "10m", "trigger: oldest queued durable job older than this…", duration(func(c *Config) *time.Duration { return &c.RollbackQueueDelay })},
	{"ROLLBACK_QUEUE_DELAY_FOR", "1m", "…continuously for this long", duration(func(c *Config) *time.Duration { return &c.RollbackQueueFor })},
	{"ROLLBACK_MEMORY_PERCENT", "90", "trigger: this process's memory above this percent of its limit (its cgroup's, else the machine's)…", float(func(c *Config) *float64 { return &c.RollbackMemory })},
	{"ROLLBACK_MEMORY_FOR", "1m", "…continuously for this long", duration(func(c *Config) *time.Duration { return &c.RollbackMemoryFor })},
	{"ROLLBACK_WORKERS_MISSING_FOR", "1m", "trigger: no durable worker alive for this long while the durable worker is on", duration(func(c *Config) *time.Duration { return &c.RollbackWorkersMissing })},
	{"ROLLFORWARD_CLEAN_WINDOWS", "3", "after a rollback, a roll-forward is refused until this many clean windows passed (0: never refused) unless forced with a reason", integer(func(c *Config) *int { return &c.RollforwardCleanWindows })},
	{"ROLLFORWARD_CLEAN_WINDOW", "5m", "length of one clean window: no trigger's condition held and every reading could be taken", duration(func(c *Config) *time.Duration { return &c.RollforwardCleanWindow })},
	{"JOB_MAX_ATTEMPTS", "3", "how often a new job is tried before it fails for good (1-100)", integer(func(c *Config) *int { return &c.JobMaxAttempts })},
	{"JOB_BACKOFF_BASE", "1s", "wait before a failed job's second attempt, doubling for each later one (0: retry at once; at most 1h)", duration(func(c *Config) *time.Duration { return &c.JobBackoffBase })},
	{"JOB_BACKOFF_CAP", "1m", "longest wait between a failed job's attempts (at least JOB_BACKOFF_BASE; at most 24h)", duration(func(c *Config) *time.Duration { return &c.JobBackoffCap })},
	{"NOTIFY_WEBHOOK_URL", "", "POST rollbacks, roll-forwards and trigger state changes here as JSON with a Slack-compatible text field (retried with backoff)", str(func(c *Config) *string { return &c.NotifyWebhookURL })},
	{"ROLLBACK_INTERVAL", "5s", "how often the controller evaluates the triggers", duration(func(c *Config) *time.Duration { return &c.RollbackInterval })},
	{"HISTORY_INTERVAL", "10s", "how often serve takes a point of the operator page's charts; it keeps 360 (an hour at 10s)", duration(func(c *Config) *time.Duration { return &c.HistoryInterval })},
	{"LOG_LEVEL", "info", "debug, info, warn or error", str(func(c *Config) *string { return &c.LogLevel })},
	{"LOG_FORMAT", "text", "text or json", str(func(c *Config) *string { return &c.LogFormat })},
	{"OTEL_EXPORTER_OTLP_ENDPOINT", "", "OpenTelemetry collector that receives traces by OTLP/HTTP, one trace per job (e.g. http://otel-collector:4318; the SDK's other OTEL_* variables apply); unset: tracing off", str(func(c *Config) *string { return &c.OTLPEndpoint })},
}

// FlagName is the kebab-case flag of an environment variable.
func FlagName(env string) string { return strings.ToLower(strings.ReplaceAll(env, "_", "-")) }

// Names returns every setting's environment variable, in the table's order.
func Names() []string {
	names := make([]string, len(options))
	for i, o := range options {
		names[i] = o.env
	}
	return names
}

// Command is a command line that takes the settings: how it is parsed and
// what its --help prints.
type Command struct {
	Name  string // the command's name, e.g. report
	Usage string // its usage line, e.g. "scriptgen report [flags] [ID]"
	About string // what it does, in paragraphs parted by a blank line
	// Flags registers the command's own flags; nil: it has none.
	Flags func(fs *flag.FlagSet)
	// Settings are the settings the command reads, by environment variable;
	// nil: all of them. Its help documents these; it takes the others too,
	// so that one environment serves every command, and checks them, but
	// leaves them alone.
	Settings []string
	// NoSettings is a command that takes no setting at all: neither its
	// flag nor its variable (version).
	NoSettings bool
}

// Parse reads the environment (through getenv), then the flags in args. own
// registers a command's own flags beside the settings.
func Parse(name string, args []string, getenv func(string) string, out io.Writer, own ...func(fs *flag.FlagSet)) (*Config, error) {
	return command(name, own).Parse(args, getenv, out)
}

// ParseArgs is Parse for a command that also takes arguments: it returns
// them, in order, wherever they stand among the flags.
func ParseArgs(name string, args []string, getenv func(string) string, out io.Writer, own ...func(fs *flag.FlagSet)) (*Config, []string, error) {
	return command(name, own).ParseArgs(args, getenv, out)
}

func command(name string, own []func(fs *flag.FlagSet)) Command {
	return Command{Name: name, Usage: "scriptgen " + name + " [flags]", Flags: func(fs *flag.FlagSet) {
		for _, o := range own {
			o(fs)
		}
	}}
}

// Parse reads the environment (through getenv), then the flags in args.
// With -h or --help among them it prints the command's help to out and
// returns flag.ErrHelp. It prints nothing else: a mistake is the error.
func (cmd Command) Parse(args []string, getenv func(string) string, out io.Writer) (*Config, error) {
	c, rest, err := cmd.ParseArgs(args, getenv, out)
	if err == nil && len(rest) > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", rest)
	}
	return c, err
}

// ParseArgs is Parse for a command that also takes arguments: it returns
// them, in order, wherever they stand among the flags.
func (cmd Command) ParseArgs(args []string, getenv func(string) string, out io.Writer) (*Config, []string, error) {
	for _, env := range cmd.Settings {
		if !slices.Contains(Names(), env) {
			panic(fmt.Sprintf("config: command %s reads %s, which is no setting", cmd.Name, env))
		}
	}
	c := &Config{}
	fs := flag.NewFlagSet(cmd.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // the flag package's own messages: the error says it
	if cmd.Flags != nil {
		cmd.Flags(fs)
	}
	var own []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) { own = append(own, f) })
	if !cmd.NoSettings {
		for _, o := range options {
			o.kind.bind(c, fs, FlagName(o.env), o.def, o.help+" ["+o.env+"]")
		}
		for _, o := range options {
			v := o.def
			if e := getenv(o.env); e != "" {
				v = e
			}
			if err := fs.Set(FlagName(o.env), v); err != nil {
				return nil, nil, fmt.Errorf("%s=%q: %w", o.env, v, err)
			}
		}
	}
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				cmd.WriteHelp(out, own)
				return nil, nil, err
			}
			return nil, nil, flagError(err)
		}
		if fs.NArg() == 0 {
			break
		}
		rest, args = append(rest, fs.Arg(0)), fs.Args()[1:]
	}
	if cmd.NoSettings {
		return c, rest, nil
	}
	return c, rest, c.validate()
}

// flagError words an error of the flag package the way the help does: with
// two dashes, and an unknown flag called so.
func flagError(err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return fmt.Errorf("unknown flag --%s", name)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Errorf("--%s needs a value", name)
	}
	if strings.HasPrefix(msg, "invalid ") { // invalid value "x" for flag -n: …, invalid boolean value "x" for -b: …
		for _, sep := range []string{" for flag -", " for -"} {
			if before, after, ok := strings.Cut(msg, sep); ok {
				return fmt.Errorf("%s for --%s", before, after)
			}
		}
	}
	return err
}

// SettingsHeading heads the settings in a command's help.
const SettingsHeading = "Server settings (also environment variables; a flag wins over its variable):"

// WriteHelp prints the command's help: its usage line, what it does, its own
// flags (given), then the settings it reads, documented from the table, and
// the names of the others it takes.
func (cmd Command) WriteHelp(w io.Writer, own []*flag.Flag) {
	fmt.Fprintf(w, "Usage: %s\n", cmd.Usage)
	for _, para := range strings.Split(cmd.About, "\n\n") {
		if para != "" {
			fmt.Fprintf(w, "\n%s\n", wrap(para, "", 80))
		}
	}
	if len(own) > 0 {
		fmt.Fprintln(w, "\nFlags:")
		for _, f := range own {
			typ, help := flag.UnquoteUsage(f)
			def := f.DefValue
			if def == "false" || def == "0" {
				def = ""
			}
			writeFlag(w, f.Name, typ, "", def, help)
		}
	}
	if cmd.NoSettings {
		return
	}
	fmt.Fprintf(w, "\n%s\n", SettingsHeading)
	var others []string
	for _, o := range options {
		if cmd.Settings != nil && !slices.Contains(cmd.Settings, o.env) {
			others = append(others, "--"+FlagName(o.env))
			continue
		}
		writeFlag(w, FlagName(o.env), o.kind.typ, o.env, o.def, o.help)
	}
	if len(cmd.Settings) == 0 && cmd.Settings != nil {
		fmt.Fprintln(w, "  none")
	}
	if len(others) > 0 {
		fmt.Fprintf(w, "\n%s\n%s\n", wrap("The other server settings are taken too, and checked, but "+cmd.Name+
			" does not use them ('scriptgen serve --help' documents them all):", "", 80), wrap(strings.Join(others, ", "), "  ", 80))
	}
}

// writeFlag prints a flag of a help: its name, the type of its value, its
// environment variable and default if any, then what it does.
func writeFlag(w io.Writer, name, typ, env, def, help string) {
	line := "  --" + name
	if typ != "" {
		line += " " + typ
	}
	if env != "" {
		line += "  $" + env
	}
	if def != "" {
		line += "  default " + def
	}
	fmt.Fprintf(w, "%s\n%s\n", line, wrap(help, "        ", 80))
}

// wrap fills text into lines of at most width columns (a longer word stands
// alone), each line starting with indent.
func wrap(text, indent string, width int) string {
	var b strings.Builder
	n := 0
	for _, word := range strings.Fields(text) {
		switch {
		case n == 0:
		case n+1+len([]rune(word)) > width:
			b.WriteByte('\n')
			n = 0
		default:
			b.WriteByte(' ')
			n++
		}
		if n == 0 {
			b.WriteString(indent)
			n = len(indent)
		}
		b.WriteString(word)
		n += len([]rune(word))
	}
	return b.String()
}

func (c *Config) validate() error {
	switch c.Generator {
	case "template", "noop", "openai":
	default:
		return fmt.Errorf("GENERATOR=%q: must be template, noop or openai", c.Generator)
	}
	for env, v := range map[string]string{"USE_DURABLE_WORKER": c.UseDurableWorker, "WORKER_SYSTEM_ENABLED": c.WorkerSystemEnabled} {
		if _, err := parseSwitch(v); err != nil {
			return fmt.Errorf("%s=%q: %w", env, v, err)
		}
	}
	if _, err := parseSwitch(c.AutoRollback); err != nil {
		return fmt.Errorf("AUTO_ROLLBACK=%q: %w", c.AutoRollback, err)
	}
	if c.RollbackInterval <= 0 {
		return fmt.Errorf("ROLLBACK_INTERVAL must be positive")
	}
	if c.HistoryInterval < 100*time.Millisecond || c.HistoryInterval > time.Minute {
		return fmt.Errorf("HISTORY_INTERVAL=%s: must be from 100ms to 1m", c.HistoryInterval)
	}
	if c.JobMaxAttempts < 1 || c.JobMaxAttempts > 100 {
		return fmt.Errorf("JOB_MAX_ATTEMPTS=%d: must be from 1 to 100", c.JobMaxAttempts)
	}
	if c.JobBackoffBase < 0 || c.JobBackoffBase > job.MaxBackoffBase {
		return fmt.Errorf("JOB_BACKOFF_BASE=%s: must be from 0 (retry at once) to %s", c.JobBackoffBase, job.MaxBackoffBase)
	}
	if c.JobBackoffCap < c.JobBackoffBase || c.JobBackoffCap > job.MaxBackoffCap {
		return fmt.Errorf("JOB_BACKOFF_CAP=%s: must be at least JOB_BACKOFF_BASE (%s) and at most %s",
			c.JobBackoffCap, c.JobBackoffBase, job.MaxBackoffCap)
	}
	if c.NotifyWebhookURL != "" {
		if u, err := url.Parse(c.NotifyWebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("NOTIFY_WEBHOOK_URL: want an http:// or https:// URL")
		}
	}
	if c.RollforwardCleanWindows < 0 || c.RollforwardCleanWindow <= 0 {
		return fmt.Errorf("ROLLFORWARD_CLEAN_WINDOWS=%d, ROLLFORWARD_CLEAN_WINDOW=%s: want 0 or more windows of a positive length",
			c.RollforwardCleanWindows, c.RollforwardCleanWindow)
	}
	if c.LeaseDuration < time.Second {
		return fmt.Errorf("LEASE_DURATION=%s: must be at least 1s", c.LeaseDuration)
	}
	if c.MaxWorkers > MaxWorkersLimit {
		// Each worker is a goroutine with its own database connection share;
		// a typo of a few zeros would exhaust the host's memory at start.
		return fmt.Errorf("MAX_WORKERS=%d: must be at most %d", c.MaxWorkers, MaxWorkersLimit)
	}
	if c.JobRetention < 0 || (c.JobRetention > 0 && c.JobRetention < time.Minute) {
		// A typo in seconds would delete jobs writers are still reading.
		return fmt.Errorf("JOB_RETENTION=%s: must be 0 (keep every job) or at least 1m", c.JobRetention)
	}
	if c.PurgeBatch < 1 || c.PurgeBatch > 10000 {
		return fmt.Errorf("PURGE_BATCH=%d: must be between 1 and 10000", c.PurgeBatch)
	}
	if c.RollbackMemory <= 0 || c.RollbackMemory > 100 {
		return fmt.Errorf("ROLLBACK_MEMORY_PERCENT=%g: must be above 0 and at most 100", c.RollbackMemory)
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("LOG_LEVEL=%q: must be debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("LOG_FORMAT=%q: must be text or json", c.LogFormat)
	}
	if c.Auth != "auto" && c.Auth != "off" {
		return fmt.Errorf("AUTH=%q: must be auto or off", c.Auth)
	}
	if c.OTLPEndpoint != "" {
		if u, err := url.Parse(c.OTLPEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT=%q: want a URL such as http://otel-collector:4318", c.OTLPEndpoint)
		}
	}
	for _, o := range c.Origins() {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
			return fmt.Errorf("ALLOWED_ORIGINS: %q is not an origin such as https://app.example.com", o)
		}
	}
	return nil
}

// Backoff is the delay between a failed job's attempts.
func (c *Config) Backoff() job.Backoff {
	return job.Backoff{Base: c.JobBackoffBase, Cap: c.JobBackoffCap}
}

// Origins is ALLOWED_ORIGINS as a list.
func (c *Config) Origins() []string {
	var out []string
	for _, o := range strings.Split(c.AllowedOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, strings.TrimSuffix(o, "/"))
		}
	}
	return out
}

// AuthOff reports AUTH=off: writer calls need no credential.
func (c *Config) AuthOff() bool { return c.Auth == "off" }

// MaxWorkersLimit bounds MAX_WORKERS.
const MaxWorkersLimit = 1000

func parseSwitch(v string) (bool, error) {
	if v == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("must be true or false")
	}
	return b, nil
}

// KillSwitchOff reports whether the environment forces background_tasks.
func (c *Config) KillSwitchOff() bool {
	a, _ := parseSwitch(c.UseDurableWorker)
	b, _ := parseSwitch(c.WorkerSystemEnabled)
	return !a || !b
}

// AutoRollbackOn reports whether the controller may roll back by itself.
func (c *Config) AutoRollbackOn() bool {
	on, _ := parseSwitch(c.AutoRollback)
	return on && c.RedisURL != ""
}
