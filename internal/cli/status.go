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
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(path string, out any) error {
		req, err := http.NewRequestWithContext(ctx, "GET", base+path, nil)
		if err != nil {
			return err
		}
		if cfg.AdminToken != "" {
			req.Header.Set("Authorization", "Bearer "+cfg.AdminToken)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable && path == "/health" {
			// A degraded service answers its health with 503 and its figures.
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				return fmt.Errorf("HTTP %d", resp.StatusCode)
			}
			return errDegraded
		}
		if resp.StatusCode != 200 {
			return newHTTPError(resp)
		}
		return json.NewDecoder(resp.Body).Decode(out)
	}
	for {
		var b strings.Builder
		err := render(&b, base, cfg.AdminToken != "", get)
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
func render(w io.Writer, base string, withToken bool, get func(string, any) error) error {
	fmt.Fprintf(w, "=== scriptgen status — %s — %s ===\n", base, time.Now().Format("15:04:05"))
	var health struct {
		Status       string `json:"status"`
		Version      string `json:"version"`
		WorkerSystem struct {
			Enabled        bool   `json:"enabled"`
			Type           string `json:"type"`
			RolloutPercent int    `json:"rollout_percent"`
			Redis          string `json:"redis"`
			WorkersUp      int    `json:"workers_up"`
			WorkersCrashed int    `json:"workers_crashed"`
			KillSwitch     bool   `json:"kill_switch"`
		} `json:"worker_system"`
		BackgroundTasks struct {
			Active, Queued, Max int
		} `json:"background_tasks"`
		Process struct {
			RSS int64 `json:"rss_bytes"`
		} `json:"process"`
	}
	healthErr := get("/health", &health)
	if healthErr != nil && !errors.Is(healthErr, errDegraded) {
		fmt.Fprintf(w, "Service:          ❌ unreachable (%v)\n", healthErr)
		return fmt.Errorf("service unreachable: %w", healthErr)
	}
	ws := health.WorkerSystem
	fmt.Fprintf(w, "Service:          %s (version %s)\n", health.Status, health.Version)
	fmt.Fprintf(w, "Worker system:    enabled=%v type=%s rollout=%d%% kill_switch=%v\n", ws.Enabled, ws.Type, ws.RolloutPercent, ws.KillSwitch)
	fmt.Fprintf(w, "Active tasks:     %d running, %d queued (max %d)\n", health.BackgroundTasks.Active, health.BackgroundTasks.Queued, health.BackgroundTasks.Max)
	fmt.Fprintf(w, "Durable workers:  %d up, %d crashed in 10 min; Redis %s\n", ws.WorkersUp, ws.WorkersCrashed, ws.Redis)
	fmt.Fprintf(w, "Memory usage:     %.1f MB\n", float64(health.Process.RSS)/(1<<20))
	var stats struct {
		Durable struct {
			Depth   int     `json:"queue_depth"`
			Latency float64 `json:"latency_seconds"`
		} `json:"durable"`
		Avg      float64 `json:"average_response_time"`
		P99      float64 `json:"p99_response_time"`
		Triggers []struct {
			Name, State, Value, Threshold string
		} `json:"triggers"`
	}
	if err := get("/api/admin/stats", &stats); err != nil {
		fmt.Fprintf(w, "Admin stats:      unavailable (%s)\n", adminHint(err, withToken))
		if withToken {
			return errors.Join(healthErr, fmt.Errorf("admin stats unavailable: %w", err))
		}
		return healthErr
	}
	fmt.Fprintf(w, "Durable queue:    %d waiting, oldest %.1fs\n", stats.Durable.Depth, stats.Durable.Latency)
	fmt.Fprintf(w, "Response time:    avg %.1f ms, p99 %.1f ms\n", stats.Avg*1000, stats.P99*1000)
	if len(stats.Triggers) == 0 {
		fmt.Fprintln(w, "Triggers:         controller off (AUTO_ROLLBACK or REDIS_URL unset)")
	}
	for _, t := range stats.Triggers {
		fmt.Fprintf(w, "Trigger %-18s %-8s %s (threshold %s)\n", t.Name+":", t.State, t.Value, t.Threshold)
	}
	var hist struct {
		Items []struct {
			ID, Kind, Trigger, Reason, Status string
			StartedAt                         time.Time `json:"started_at"`
			JobsMigrated                      int       `json:"jobs_migrated"`
		} `json:"items"`
	}
	if err := get("/api/admin/rollbacks?limit=1", &hist); err == nil && len(hist.Items) > 0 {
		h := hist.Items[0]
		fmt.Fprintf(w, "Last %s:    %s %s (%s) %s, %d jobs migrated — %s\n", h.Kind, h.StartedAt.Format(time.RFC3339), h.Trigger, h.Status, h.Reason, h.JobsMigrated, h.ID)
	} else {
		fmt.Fprintln(w, "Last rollback:    none")
	}
	fmt.Fprintln(w, "=========================")
	return healthErr
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
	var he *httpError
	if !errors.As(err, &he) || (he.Status != http.StatusUnauthorized && he.Status != http.StatusForbidden) {
		return err.Error()
	}
	switch {
	case he.Code == "admin_disabled":
		return fmt.Sprintf("%v; the server has no ADMIN_TOKEN", err)
	case withToken:
		return fmt.Sprintf("%v; the admin token was refused: check it against the server's ADMIN_TOKEN", err)
	default:
		return fmt.Sprintf("%v; set ADMIN_TOKEN", err)
	}
}
