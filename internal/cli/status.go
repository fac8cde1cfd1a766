package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/scriptgen/scriptgen/client"
)

// minInterval keeps --watch from hammering the service: each frame is three
// requests, and an interval of 0 looped with no pause at all.
const minInterval = 100 * time.Millisecond

// serviceURL checks a --url and returns it without a trailing slash.
func serviceURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usagef("--url %q: want http://HOST:PORT or https://HOST:PORT", s)
	}
	return strings.TrimRight(s, "/"), nil
}

func statusCmd(ctx context.Context, c *command, args []string, stdout, stderr io.Writer) error {
	var base string
	var watch bool
	var every time.Duration
	cfg, err := c.parse(args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&base, "url", "http://127.0.0.1:8002", "the service to watch")
		fs.BoolVar(&watch, "watch", false, "refresh in place until interrupted")
		fs.DurationVar(&every, "interval", 2*time.Second, "refresh interval with --watch")
	})
	if err != nil {
		return err
	}
	if base, err = serviceURL(base); err != nil {
		return err
	}
	if every < minInterval {
		return usagef("--interval %s: must be at least %s", every, minInterval)
	}
	opts := []client.Option{client.WithHTTPClient(&http.Client{Timeout: 5 * time.Second})}
	if cfg.AdminToken != "" {
		opts = append(opts, client.WithToken(cfg.AdminToken))
	}
	api := client.New(base, opts...)
	for {
		var b strings.Builder
		err := render(ctx, &b, api, cfg.AdminToken != "")
		if watch {
			fmt.Fprint(stdout, "\033[H\033[2J")
		}
		fmt.Fprint(stdout, b.String())
		if !watch {
			return err
		}
		// A watch goes on through an outage: seeing it end is its purpose.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

// render writes one frame of the status view. It returns an error when the
// service does not answer, or when it refuses the admin token given: without
// a token the admin figures are left out on purpose.
func render(ctx context.Context, w io.Writer, c *client.Client, withToken bool) error {
	fmt.Fprintf(w, "=== scriptgen status — %s — %s ===\n", c.BaseURL(), time.Now().Format("15:04:05"))
	health, err := c.Health(ctx)
	if err != nil {
		fmt.Fprintf(w, "Service:          ❌ unreachable (%s)\n", httpText(err))
		return fmt.Errorf("service unreachable: %s", httpText(err))
	}
	var healthErr error
	if health.Status == "degraded" {
		healthErr = errDegraded
	}
	ws := health.WorkerSystem
	var tasks client.BackgroundTasks
	if health.BackgroundTasks != nil {
		tasks = *health.BackgroundTasks
	}
	var rss int64
	if health.Process != nil {
		rss = health.Process.RSSBytes
	}
	fmt.Fprintf(w, "Service:          %s (version %s)\n", health.Status, health.Version)
	fmt.Fprintf(w, "Worker system:    enabled=%v type=%s rollout=%d%% kill_switch=%v\n", ws.Enabled, ws.Type, ws.RolloutPercent, ws.KillSwitch)
	fmt.Fprintf(w, "Active tasks:     %d running, %d queued (max %d)\n", tasks.Active, tasks.Queued, tasks.Max)
	fmt.Fprintf(w, "Durable workers:  %d up, %d crashed in 10 min; Redis %s\n", ws.WorkersUp, ws.WorkersCrashed, ws.Redis)
	fmt.Fprintf(w, "Memory usage:     %.1f MB\n", float64(rss)/(1<<20))
	stats, err := c.Stats(ctx)
	if err != nil {
		fmt.Fprintf(w, "Admin stats:      unavailable (%s)\n", adminHint(err, withToken))
		if withToken {
			return errors.Join(healthErr, fmt.Errorf("admin stats unavailable: %s", httpText(err)))
		}
		return healthErr
	}
	fmt.Fprintf(w, "Durable queue:    %d waiting, oldest %.1fs\n", stats.Durable.QueueDepth, stats.Durable.LatencySeconds)
	fmt.Fprintf(w, "Response time:    avg %.1f ms, p99 %.1f ms\n", stats.AverageResponseTime*1000, stats.P99ResponseTime*1000)
	if len(stats.Triggers) == 0 {
		fmt.Fprintln(w, "Triggers:         controller off (AUTO_ROLLBACK or REDIS_URL unset)")
	}
	for _, t := range stats.Triggers {
		fmt.Fprintf(w, "Trigger %-18s %-8s %s (threshold %s)\n", t.Name+":", t.State, t.Value, t.Threshold)
	}
	if hist, err := c.Rollbacks(ctx, 1); err == nil && len(hist.Items) > 0 {
		h := hist.Items[0]
		fmt.Fprintf(w, "Last %s:    %s %s (%s) %s, %d jobs migrated — %s\n", h.Kind, h.StartedAt.Format(time.RFC3339), h.Trigger, h.Status, h.Reason, h.JobsMigrated, h.ID)
	} else {
		fmt.Fprintln(w, "Last rollback:    none")
	}
	fmt.Fprintln(w, "=========================")
	return healthErr
}

// httpText is an error of the API as an operator reads it: "HTTP 403
// forbidden: …", or the transport's error.
func httpText(err error) string {
	var e *client.Error
	if !errors.As(err, &e) {
		return err.Error()
	}
	if strings.HasPrefix(e.Code, "http_") { // not the API's shape (a proxy's)
		return fmt.Sprintf("HTTP %d", e.Status)
	}
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// errDegraded is a service that answers but says it is degraded.
var errDegraded = errors.New("the service is degraded")

// httpError is an answer other than 200, with the error code of its body.
type httpError struct {
	Status int
	Code   string
}

func (e *httpError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("HTTP %d", e.Status)
	}
	return fmt.Sprintf("HTTP %d %s", e.Status, e.Code)
}

// newHTTPError reads the error code of a refused answer's body.
func newHTTPError(resp *http.Response) error {
	var body struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body)
	return &httpError{Status: resp.StatusCode, Code: body.Error.Code}
}

// adminHint says why the admin figures are missing: no token given, the
// server has none, or the one given was refused (a wrong token used to be
// told to "set ADMIN_TOKEN", which was set).
func adminHint(err error, withToken bool) string {
	var e *client.Error
	if !errors.As(err, &e) || (e.Status != http.StatusUnauthorized && e.Status != http.StatusForbidden) {
		return httpText(err)
	}
	switch {
	case e.Code == "admin_disabled":
		return fmt.Sprintf("HTTP %d; the server has no ADMIN_TOKEN", e.Status)
	case withToken:
		return fmt.Sprintf("HTTP %d; the admin token was refused: check it against the server's ADMIN_TOKEN", e.Status)
	default:
		return fmt.Sprintf("HTTP %d; set ADMIN_TOKEN", e.Status)
	}
}
