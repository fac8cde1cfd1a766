package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/api"
	"github.com/scriptgen/scriptgen/internal/durable"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/testenv"
)

// TestReplicasViewMarksAReplicaBehindTheFlag: replicas registered in a real
// store are listed by GET /api/admin/replicas with the flag revision each
// applied; one that keeps beating on an older revision is marked flag_stale
// once the setting changed longer ago than stale_after, and not before; a
// silent one is down and a cleanly stopped one stopped, neither marked.
func TestReplicasViewMarksAReplicaBehindTheFlag(t *testing.T) {
	ctx := context.Background()
	st := testenv.SQLite(t)
	s := &Server{store: st, id: "serve-self", log: slog.New(slog.DiscardHandler)}
	const token = "replicas-admin-token-0123"
	srv := httptest.NewServer(api.New(api.Config{Store: st, Admin: s, AdminToken: token, Log: s.log}))
	t.Cleanup(srv.Close)
	view := func(staleAfter string) (int, api.ReplicasView) {
		req, _ := http.NewRequest("GET", srv.URL+"/api/admin/replicas?stale_after="+staleAfter, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var v api.ReplicasView
		json.NewDecoder(res.Body).Decode(&v)
		return res.StatusCode, v
	}

	saved, err := st.PutWorkerSetting(ctx, store.WorkerSetting{Enabled: true, RolloutPercent: 100, Reason: "first", UpdatedBy: "op"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []store.WorkerProcess{
		{ID: "serve-self", Role: durable.RoleReplica, Address: "10.0.0.1:8002", Version: "v1", FlagRevision: saved.Revision},
		{ID: "serve-lagging", Role: durable.RoleReplica, Address: "10.0.0.2:8002", Version: "v1", FlagRevision: saved.Revision},
		{ID: "serve-stopped", Role: durable.RoleReplica, Address: "10.0.0.3:8002", Version: "v0"},
		{ID: "worker-1", Role: durable.RoleWorker},
	} {
		if err := st.RegisterWorker(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	st.StopWorker(ctx, "serve-stopped")

	// The flag moves on; serve-self follows, serve-lagging keeps beating on
	// the old revision.
	next, err := st.PutWorkerSetting(ctx, store.WorkerSetting{Enabled: false, Reason: "flip", UpdatedBy: "op"})
	if err != nil || next.Revision != saved.Revision+1 {
		t.Fatalf("second save: revision %d (%v), want %d", next.Revision, err, saved.Revision+1)
	}
	beat := func() {
		st.HeartbeatReplica(ctx, "serve-self", next.Revision, nil)
		st.HeartbeatReplica(ctx, "serve-lagging", saved.Revision, nil)
	}
	beat()
	code, v := view("1h")
	if code != 200 || v.FlagRevision != next.Revision || v.Up != 2 || v.Stale != 0 || len(v.Replicas) != 3 || v.Self != "serve-self" {
		t.Fatalf("view within stale_after: %d %+v, want 3 replicas, 2 up, none stale", code, v)
	}
	// One second later a stale_after of 1s has passed.
	testenv.Eventually(t, 5*time.Second, func() bool {
		beat()
		_, v = view("1s")
		return v.Stale == 1
	}, "the lagging replica was never marked stale: %+v", v)
	for _, r := range v.Replicas {
		want := map[string]struct {
			state string
			stale bool
			rev   int64
		}{"serve-self": {"up", false, next.Revision}, "serve-lagging": {"up", true, saved.Revision}, "serve-stopped": {"stopped", false, 0}}[r.ID]
		if r.State != want.state || r.FlagStale != want.stale || r.FlagRevision != want.rev || r.Address == "" || r.AgeSeconds < 0 {
			t.Fatalf("replica %+v, want state %s stale %v revision %d", r, want.state, want.stale, want.rev)
		}
	}
	if code, _ := view("soon"); code != http.StatusBadRequest {
		t.Fatalf("stale_after=soon answered %d, want 400", code)
	}
}

// The address a replica advertises names its host, not 0.0.0.0.
func TestAdvertisedAddress(t *testing.T) {
	if got := advertised(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8002}); got != "127.0.0.1:8002" {
		t.Fatalf("loopback advertised as %q", got)
	}
	if got := advertised(&net.TCPAddr{IP: net.IPv4zero, Port: 8002}); got == "0.0.0.0:8002" || got == "" {
		t.Fatalf("an unspecified address advertised as %q, want the host name", got)
	}
}
