package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/scriptgen/scriptgen/internal/config"
	"github.com/scriptgen/scriptgen/internal/testenv"
)

// TestDashboardAndAlertsUseExportedMetrics: every PromQL expression of the
// Grafana dashboard (deploy/grafana/scriptgen.json) and of the alert rules
// (deploy/prometheus) names only metrics that a real serve exports, and the
// dashboard shows each figure an operator needs. The server runs with Redis
// configured (the durable side's gauges) and has served requests and run a
// job (the histograms and counters appear once observed).
func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	exported := exportedMetrics(t)

	dashboard := dashboardExprs(t, filepath.Join("..", "..", "deploy", "grafana", "scriptgen.json"))
	var used []string
	for _, e := range dashboard {
		used = append(used, checkExpr(t, "dashboard", e, exported)...)
	}
	for _, want := range []string{
		"scriptgen_jobs", "scriptgen_jobs_finished_total", "scriptgen_durable_queue_depth",
		"scriptgen_durable_queue_latency_seconds", "scriptgen_workers_up", "background_tasks_active",
		"system_rollback_active", "scriptgen_http_request_duration_seconds_bucket",
	} {
		if !slices.Contains(used, want) {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
	rules, _ := filepath.Glob(filepath.Join("..", "..", "deploy", "prometheus", "*.yml"))
	if len(rules) == 0 {
		t.Fatal("no alert rules under deploy/prometheus")
	}
	for _, f := range rules {
		for _, e := range ruleExprs(t, f) {
			checkExpr(t, filepath.Base(f), e, exported)
		}
	}
}

// exportedMetrics runs a serve, lets it answer requests and run one job, and
// returns the names of the series its /metrics exposes (a histogram's
// _bucket, _sum and _count).
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	redis := testenv.StartRedis(t)
	env := map[string]string{
		"DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "m.db"),
		"REDIS_URL":    redis.URL(5),
		// The job runs in this process, where its run is counted.
		"USE_DURABLE_WORKER": "false",
		"GENERATOR":          "noop",
		"AUTO_ROLLBACK":      "false",
	}
	cfg, err := config.Parse("serve", nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	base := "http://" + ln.Addr().String()
	submitAndWait(t, base)

	// The run is counted, and its duration observed, just after the job is
	// marked succeeded: scrape until both show.
	var names map[string]bool
	testenv.Eventually(t, 10*time.Second, func() bool {
		names = scrapeNames(t, base)
		return names["scriptgen_jobs_finished_total"] && names["scriptgen_job_duration_seconds_bucket"] &&
			names["scriptgen_durable_queue_depth"] && names["scriptgen_http_request_duration_seconds_bucket"]
	}, "the server does not export its job, queue and HTTP metrics")
	return names
}

// scrapeNames scrapes serve's /metrics and returns the names of its series
// (a histogram's _bucket, _sum and _count).
func scrapeNames(t *testing.T, base string) map[string]bool {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	tp := expfmt.NewTextParser(model.UTF8Validation)
	families, err := tp.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	names := map[string]bool{}
	for name, f := range families {
		names[name] = true
		switch f.GetType().String() {
		case "HISTOGRAM":
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case "SUMMARY":
			names[name+"_sum"], names[name+"_count"] = true, true
		}
	}
	return names
}

// grafanaVars are the dashboard's Grafana variables and their stand-ins for
// parsing.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// checkExpr parses a PromQL expression and fails on a metric name the
// server does not export; it returns the names it uses.
func checkExpr(t *testing.T, where, expr string, exported map[string]bool) []string {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVars.Replace(expr))
	if err != nil {
		t.Errorf("%s: %q: %v", where, expr, err)
		return nil
	}
	var used []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == model.MetricNameLabel {
					name = m.Value
				}
			}
			used = append(used, name)
			if !exported[name] {
				t.Errorf("%s: %q uses %s, which the server does not export", where, expr, name)
			}
		}
		return nil
	})
	if len(used) == 0 {
		t.Errorf("%s: %q names no metric", where, expr)
	}
	return used
}

// dashboardExprs is every "expr" of a Grafana dashboard's panels.
func dashboardExprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []string
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("%s: panel %q has no query", path, p.Title)
		}
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	return out
}

// ruleExprs is every expr of a Prometheus rules file.
func ruleExprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct{ Expr string }
		}
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out = append(out, r.Expr)
		}
	}
	return out
}
