package cli

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// checkReplicas lists every serving replica (one line each: address, flag
// revision applied, age, version) and fails the checklist when a live one has
// not applied the current flag within staleAfter: it routes new jobs by a
// setting the operator replaced. It needs the admin token; without one it
// says so and checks nothing.
func (v *verifier) checkReplicas(ctx context.Context, phase string, staleAfter time.Duration) {
	view, err := v.api.Replicas(ctx, staleAfter)
	if err != nil {
		v.add(phase, "Replicas listed", false, "GET /api/admin/replicas: %v (needs ADMIN_TOKEN)", err)
		return
	}
	v.add(phase, "Replicas up", view.Up > 0, "%d up, flag revision %d", view.Up, view.FlagRevision)
	for _, r := range view.Replicas {
		if r.State != "up" {
			// Gone replicas are shown, not failed: a replica killed and
			// replaced leaves its row for ten minutes.
			v.add(phase, "Replica "+short(r.ID)+" ("+r.State+")", true, "%s, last seen %.0fs ago, %s", r.Address, r.LastSeenSeconds, r.Version)
			continue
		}
		measured := fmt.Sprintf("%s flag r%d, up %s, %s", r.Address, r.FlagRevision, (time.Duration(r.AgeSeconds) * time.Second).String(), r.Version)
		if r.FlagStale {
			measured += fmt.Sprintf(" — has not applied r%d within %s", view.FlagRevision, staleAfter)
		}
		v.add(phase, "Replica "+short(r.ID)+" applied the flag", !r.FlagStale, "%s", measured)
	}
}

// short cuts a replica id (serve-<host>-<pid>-<hex>) to fit the checklist's
// name column.
func short(id string) string {
	if len(id) <= 32 {
		return id
	}
	return id[:14] + "…" + id[strings.LastIndexByte(id, '-'):]
}
