package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// jobsCmd is the operator's per-job tool on a running service: list the
// failed jobs, retry one, or cancel many by project. It speaks the admin API
// (ADMIN_TOKEN), in the same plain HTTP as status.
func jobsCmd(ctx context.Context, c *command, args []string, stdout, stderr io.Writer) error {
	var base, status, retry, cancelProject string
	var limit int
	cfg, err := c.parse(args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&base, "url", "http://127.0.0.1:8002", "the service")
		fs.StringVar(&status, "status", "failed", "list the jobs in this `status`")
		fs.IntVar(&limit, "limit", 50, "list at most this many (1-200)")
		fs.StringVar(&retry, "retry", "", "queue the failed job `ID` again, its attempts given back")
		fs.StringVar(&cancelProject, "cancel-project", "", "cancel every queued or running job of `PROJECT`")
	})
	if err != nil {
		return err
	}
	if base, err = serviceURL(base); err != nil {
		return err
	}
	if retry != "" && cancelProject != "" {
		return usagef("--retry and --cancel-project exclude each other")
	}
	if limit < 1 || limit > 200 {
		return usagef("--limit %d: must be from 1 to 200", limit)
	}
	call := func(method, path string, body any, out any) error {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		if cfg.AdminToken != "" {
			req.Header.Set("Authorization", "Bearer "+cfg.AdminToken)
		}
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			he := newHTTPError(resp)
			return fmt.Errorf("%s %s: %w (%s)", method, path, he, adminHint(he, cfg.AdminToken != ""))
		}
		return json.NewDecoder(resp.Body).Decode(out)
	}
	switch {
	case retry != "":
		var j struct{ ID, Status string }
		if err := call("POST", "/api/admin/jobs/"+url.PathEscape(retry)+"/retry", nil, &j); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "✅ %s %s again\n", j.ID, j.Status)
		return nil
	case cancelProject != "":
		var res struct {
			Cancelled int `json:"cancelled"`
		}
		if err := call("POST", "/api/admin/jobs/cancel", map[string]string{"project_id": cancelProject}, &res); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "✅ %d jobs of %s cancelled\n", res.Cancelled, cancelProject)
		return nil
	}
	var list struct {
		Items []struct {
			ID        string    `json:"id"`
			ProjectID string    `json:"project_id"`
			Kind      string    `json:"kind"`
			Attempt   int       `json:"attempt"`
			Error     string    `json:"error"`
			UpdatedAt time.Time `json:"updated_at"`
		} `json:"items"`
	}
	q := url.Values{"status": {status}, "limit": {fmt.Sprint(limit)}}
	if err := call("GET", "/api/generation?"+q.Encode(), nil, &list); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d %s jobs (newest first)\n", len(list.Items), status)
	for _, j := range list.Items {
		fmt.Fprintf(stdout, "%s  %-12s %-12s attempt %d  %s  %s\n", j.ID, j.ProjectID, j.Kind, j.Attempt,
			j.UpdatedAt.Format(time.RFC3339), j.Error)
	}
	return nil
}
