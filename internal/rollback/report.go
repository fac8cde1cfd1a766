package rollback

import (
	"encoding/json"
	"fmt"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/scriptgen/scriptgen/internal/store"
)

// Report is the runbook's rollback report template, filled from an audit record.
type Report struct {
	RollbackReport struct {
		ID            string         `yaml:"id"`
		Kind          string         `yaml:"kind"`
		Timestamp     string         `yaml:"timestamp"`
		Duration      string         `yaml:"duration"`
		Trigger       string         `yaml:"trigger"`
		Actor         string         `yaml:"actor"`
		LeaderEpoch   int64          `yaml:"leader_epoch,omitempty"`
		AffectedUsers int            `yaml:"affected_users"`
		JobsMigrated  int            `yaml:"jobs_migrated"`
		FailedJobs    int            `yaml:"failed_jobs"`
		RootCause     string         `yaml:"root_cause"`
		Evidence      map[string]any `yaml:"evidence,omitempty"`
		ActionsTaken  []string       `yaml:"actions_taken"`
		CurrentStatus string         `yaml:"current_status"`
		NextSteps     []string       `yaml:"next_steps"`
	} `yaml:"rollback_report"`
}

// NewReport fills the template from a record. Affected users are counted as
// the projects whose jobs were migrated or dead-lettered.
func NewReport(a store.AuditRecord) Report {
	var r Report
	rr := &r.RollbackReport
	rr.ID, rr.Kind, rr.Trigger, rr.Actor = a.ID, a.Kind, a.Trigger, a.Actor
	rr.LeaderEpoch = a.LeaderEpoch
	rr.Timestamp = a.StartedAt.UTC().Format("2006-01-02 15:04:05")
	rr.Duration = a.FinishedAt.Sub(a.StartedAt).Round(time.Millisecond).String()
	rr.AffectedUsers, rr.JobsMigrated, rr.FailedJobs = a.AffectedProjects, a.JobsMigrated, a.JobsFailed
	rr.RootCause = a.Reason
	if rr.RootCause == "" {
		rr.RootCause = "not given (" + a.Trigger + ")"
	}
	if len(a.Evidence) > 0 {
		json.Unmarshal(a.Evidence, &rr.Evidence)
	}
	rr.ActionsTaken = a.Actions
	if rr.ActionsTaken == nil {
		rr.ActionsTaken = []string{}
	}
	switch {
	case a.Status != "completed":
		rr.CurrentStatus = "DEGRADED"
		rr.NextSteps = []string{"Read the failed step in the audit record", "Run `scriptgen rollback` again (it is safe to repeat)", "Check `scriptgen verify`"}
	case a.Kind == "rollforward":
		rr.CurrentStatus = "STABLE"
		rr.NextSteps = []string{"Watch `scriptgen status --watch` while the rollout grows", "Roll back at once with `scriptgen rollback` if a trigger fires"}
	default:
		rr.CurrentStatus = "STABLE"
		rr.NextSteps = []string{"Monitor for 24 hours", "Plan re-deployment strategy (`scriptgen rollforward --percent 10`)", "Fix identified issues"}
		if a.JobsFailed > 0 {
			rr.NextSteps = append(rr.NextSteps, fmt.Sprintf("Retry the %d jobs on the migration_failed list (`scriptgen migrate --retry-failed`)", a.JobsFailed))
		}
	}
	return r
}

// YAML renders the report.
func (r Report) YAML() ([]byte, error) { return yaml.Marshal(r) }
