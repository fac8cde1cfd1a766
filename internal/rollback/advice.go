package rollback

import "fmt"

// A rollback turns the flag off and moves the queued durable jobs; it does
// not stop the `scriptgen worker` processes, which the operator runs (systemd,
// Kubernetes). While one is up, `scriptgen verify` fails its check
// "Durable workers stopped (rollback mode)". The rollback's answer (API, CLI,
// operator page) and verify's failure say so in the words below, so that an
// operator who reads one recognises the other (docs/runbook.md, step 4).

// StopWorkers names the step and how many workers it concerns.
func StopWorkers(up int) string {
	return fmt.Sprintf("stop the durable workers: %d still up", up)
}

// StopWorkersHow says how to stop them.
const StopWorkersHow = "systemd: systemctl stop 'scriptgen-worker@*' (and disable each instance); " +
	"Kubernetes: kubectl scale deployment/scriptgen-worker --replicas=0; docs/runbook.md step 4"

// VerifyStep is the last of a rollback's next steps.
const VerifyStep = "check the service: scriptgen verify (docs/runbook.md step 5)"

// NextSteps is what a completed rollback leaves to the operator, given the
// durable worker processes up now.
func NextSteps(workersUp int) []string {
	var steps []string
	if workersUp > 0 {
		steps = append(steps, StopWorkers(workersUp)+
			" (the rollback does not stop them, and scriptgen verify fails until they stop). "+StopWorkersHow)
	}
	return append(steps, VerifyStep)
}
