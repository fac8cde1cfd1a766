package notify

import (
	"fmt"

	"github.com/scriptgen/scriptgen/internal/store"
)

// Record is the message of a rollback's or roll-forward's audit record.
func Record(a store.AuditRecord) Message {
	var text string
	switch a.Kind {
	case "rollforward":
		text = fmt.Sprintf(":arrow_up: scriptgen roll-forward %s by %s: %s (record %s)", a.Status, a.Actor, a.Reason, a.ID)
	default:
		text = fmt.Sprintf(":rotating_light: scriptgen rollback %s (%s) by %s: %s; %d jobs moved to background_tasks, %d dead-lettered. "+
			"Stop the durable workers; report: scriptgen report %s", a.Status, a.Trigger, a.Actor, a.Reason, a.JobsMigrated, a.JobsFailed, a.ID)
	}
	return Message{Text: text, Event: a.Kind, At: a.FinishedAt, Data: map[string]any{
		"id": a.ID, "kind": a.Kind, "trigger": a.Trigger, "status": a.Status, "actor": a.Actor, "reason": a.Reason,
		"jobs_migrated": a.JobsMigrated, "jobs_failed": a.JobsFailed, "leader_epoch": a.LeaderEpoch,
	}}
}

// TriggerChange is one trigger of the controller moving between states (ok,
// pending, firing, inconclusive).
type TriggerChange struct {
	Name      string `json:"name"`
	From      string `json:"from"`
	To        string `json:"to"`
	Value     string `json:"value"`
	Threshold string `json:"threshold"`
	Window    string `json:"window"`
}

// Trigger is the message of a trigger's state change.
func Trigger(c TriggerChange) Message {
	icon := map[string]string{"ok": ":white_check_mark:", "pending": ":warning:", "firing": ":fire:", "inconclusive": ":grey_question:"}[c.To]
	text := fmt.Sprintf("%s scriptgen trigger %s: %s → %s (%s; threshold %s for %s)", icon, c.Name, c.From, c.To, c.Value, c.Threshold, c.Window)
	return Message{Text: text, Event: "trigger", Data: c}
}
