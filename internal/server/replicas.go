package server

import (
	"context"
	"net"
	"os"
	"time"

	"github.com/scriptgen/scriptgen/internal/api"
	"github.com/scriptgen/scriptgen/internal/durable"
	"github.com/scriptgen/scriptgen/internal/version"
)

// replicaHeartbeater registers this serving replica in the registry (role
// "serve") and beats every second with the revision of the worker setting
// its flag has applied, so that operators see every replica and one that did
// not follow a flip (Replicas), and with the runs it has finished, which the
// operator page's jobs/s sums over the cluster.
func (s *Server) replicaHeartbeater(addr net.Addr) *durable.Heartbeater {
	revision := func() int64 { return s.flag.State().Setting.Revision }
	return durable.NewReplicaHeartbeater(s.store, s.id, advertised(addr), version.String(), revision, s.metrics.FinishedRuns, durable.HeartbeatInterval, s.log)
}

// advertised is the address others reach this replica at: the listener's,
// with the host name in place of an unspecified IP (0.0.0.0, ::).
func advertised(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if name, err := os.Hostname(); err == nil {
			host = name
		}
	}
	return net.JoinHostPort(host, port)
}

// replicasSeenFor is how far back the view of replicas looks: a replica
// that stopped or went silent longer ago is no longer shown.
const replicasSeenFor = 10 * time.Minute

// Replicas answers GET /api/admin/replicas: every serving replica seen in the
// last ten minutes, newest first, with the revision of the worker setting it
// applied. A live replica still on an older revision more than staleAfter
// after the setting changed is marked flag_stale: it routes new jobs by a
// flag the operator has replaced.
func (s *Server) Replicas(ctx context.Context, staleAfter time.Duration) (api.ReplicasView, error) {
	setting, err := s.store.GetWorkerSetting(ctx)
	if err != nil {
		return api.ReplicasView{}, err
	}
	now := time.Now()
	procs, err := s.store.ListWorkers(ctx, durable.RoleReplica, now.Add(-replicasSeenFor))
	if err != nil {
		return api.ReplicasView{}, err
	}
	view := api.ReplicasView{
		FlagRevision:      setting.Revision,
		FlagUpdatedAt:     setting.UpdatedAt,
		StaleAfterSeconds: staleAfter.Seconds(),
		Replicas:          []api.Replica{},
		Self:              s.id,
	}
	for _, p := range procs {
		r := api.Replica{
			ID:              p.ID,
			Address:         p.Address,
			Host:            p.Host,
			PID:             p.PID,
			Version:         p.Version,
			FlagRevision:    p.FlagRevision,
			StartedAt:       p.StartedAt,
			HeartbeatAt:     p.HeartbeatAt,
			AgeSeconds:      now.Sub(p.StartedAt).Seconds(),
			LastSeenSeconds: max(0, now.Sub(p.HeartbeatAt).Seconds()),
			State:           replicaState(p.StoppedAt, now.Sub(p.HeartbeatAt)),
		}
		behind := p.FlagRevision < setting.Revision
		r.FlagStale = r.State == "up" && behind && now.Sub(setting.UpdatedAt) > staleAfter
		if r.State == "up" {
			view.Up++
			if r.FlagStale {
				view.Stale++
			}
		}
		view.Replicas = append(view.Replicas, r)
	}
	return view, nil
}

// replicaState is "stopped" after a clean stop, "up" while it beats (as
// durable.Count counts workers) and "down" when it went silent.
func replicaState(stoppedAt time.Time, silentFor time.Duration) string {
	switch {
	case !stoppedAt.IsZero():
		return "stopped"
	case silentFor <= 3*durable.HeartbeatInterval:
		return "up"
	default:
		return "down"
	}
}
