package storetest

import (
	"errors"
	"time"

	"github.com/scriptgen/scriptgen/internal/access"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// accessTests: API keys, tenants' lists and idempotency, and what the
// per-tenant limits count.
var accessTests = []test{
	{"APIKeys", testAPIKeys},
	{"TenantScopedLists", testTenantScopedLists},
	{"RateBuckets", testRateBuckets},
	{"UsageAndDocumentQuota", testUsageAndDocumentQuota},
}

// testAPIKeys: a key is stored as its hash and found by its prefix; a
// rotation revokes the old key and stores the new one at once; a revoked key
// stays readable (so it can be told from an unknown one in the log).
func testAPIKeys(f *fixture) {
	if has, err := f.s.HasActiveKeys(f.ctx); err != nil || has {
		f.t.Fatalf("a new store has keys: %v %v", has, err)
	}
	plain, k, err := access.NewKey("key-1", "acme", "ci", []string{"p1", "p2"}, f.clk.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.s.CreateKey(f.ctx, k); err != nil {
		f.t.Fatal(err)
	}
	_, other, _ := access.NewKey("key-2", "globex", "web", nil, f.clk.Now())
	if err := f.s.CreateKey(f.ctx, other); err != nil {
		f.t.Fatal(err)
	}
	got, err := f.s.KeyByPrefix(f.ctx, k.Prefix)
	if err != nil || got.Hash != access.HashKey(plain) || got.Tenant != "acme" || len(got.Projects) != 2 || !got.Active() {
		f.t.Fatalf("by prefix: %+v %v", got, err)
	}
	if g, err := f.s.GetKey(f.ctx, "key-2"); err != nil || g.Projects != nil {
		f.t.Fatalf("a key for every project reads back with nil projects: %+v %v", g, err)
	}
	if _, err := f.s.KeyByPrefix(f.ctx, "zzzzzzzz"); !errors.Is(err, access.ErrNoKey) {
		f.t.Fatalf("unknown prefix: %v", err)
	}
	if has, _ := f.s.HasActiveKeys(f.ctx); !has {
		f.t.Fatal("HasActiveKeys false with two keys")
	}
	if list, err := f.s.ListKeys(f.ctx, "acme"); err != nil || len(list) != 1 || list[0].ID != "key-1" {
		f.t.Fatalf("acme's keys: %+v %v", list, err)
	}
	if list, _ := f.s.ListKeys(f.ctx, ""); len(list) != 2 {
		f.t.Fatalf("every key: %+v", list)
	}

	f.clk.Advance(time.Minute)
	_, next, _ := access.NewKey("key-3", "acme", "ci", k.Projects, f.clk.Now())
	old, err := f.s.RotateKey(f.ctx, "key-1", next)
	if err != nil || old.Active() || !old.RevokedAt.Equal(f.clk.Now()) {
		f.t.Fatalf("rotate: %+v %v", old, err)
	}
	if n, err := f.s.KeyByPrefix(f.ctx, next.Prefix); err != nil || !n.Active() {
		f.t.Fatalf("the rotated-in key: %+v %v", n, err)
	}
	f.clk.Advance(time.Minute)
	again, err := f.s.RevokeKey(f.ctx, "key-1", f.clk.Now())
	if err != nil || !again.RevokedAt.Equal(old.RevokedAt) {
		f.t.Fatalf("revoking twice keeps the first time: %+v %v", again, err)
	}
	if _, err := f.s.RevokeKey(f.ctx, "nope", f.clk.Now()); !errors.Is(err, access.ErrNoKey) {
		f.t.Fatalf("revoke unknown: %v", err)
	}
	for _, id := range []string{"key-2", "key-3"} {
		if _, err := f.s.RevokeKey(f.ctx, id, f.clk.Now()); err != nil {
			f.t.Fatal(err)
		}
	}
	if has, _ := f.s.HasActiveKeys(f.ctx); has {
		f.t.Fatal("HasActiveKeys true with every key revoked")
	}
}

// testTenantScopedLists: a tenant's list holds its own jobs only, a key
// scoped to projects sees those projects only, and the same Idempotency-Key
// of two tenants names two jobs.
func testTenantScopedLists(f *fixture) {
	acme := access.Principal{Kind: access.KindKey, Tenant: "acme"}
	globex := access.Principal{Kind: access.KindKey, Tenant: "globex"}
	a1 := f.create(acme.ProjectKey("p1"), acme.IdempotencyKey("episode-1"), job.BackendBackgroundTasks)
	a2 := f.create(acme.ProjectKey("p2"), "", job.BackendBackgroundTasks)
	g1 := f.create(globex.ProjectKey("p1"), globex.IdempotencyKey("episode-1"), job.BackendBackgroundTasks)
	open := f.create("p1", "episode-1", job.BackendBackgroundTasks)
	if a1.ID == g1.ID || g1.ID == open.ID {
		f.t.Fatal("one Idempotency-Key of two tenants named one job")
	}
	ids := func(filter store.JobFilter) []string {
		jobs, _, err := f.s.ListJobs(f.ctx, filter)
		if err != nil {
			f.t.Fatal(err)
		}
		var out []string
		for _, j := range jobs {
			out = append(out, j.ID)
		}
		return out
	}
	tenant := func(t string) *string { return &t }
	want := map[string][]string{
		"acme":       {a2.ID, a1.ID},
		"globex":     {g1.ID},
		"open":       {open.ID},
		"acme/p1":    {a1.ID},
		"acme/none":  nil,
		"everything": {open.ID, g1.ID, a2.ID, a1.ID},
	}
	got := map[string][]string{
		"acme":       ids(store.JobFilter{Tenant: tenant("acme")}),
		"globex":     ids(store.JobFilter{Tenant: tenant("globex")}),
		"open":       ids(store.JobFilter{Tenant: tenant("")}),
		"acme/p1":    ids(store.JobFilter{Tenant: tenant("acme"), ProjectIDs: []string{"acme/p1"}}),
		"acme/none":  ids(store.JobFilter{Tenant: tenant("acme"), ProjectIDs: []string{}}),
		"everything": ids(store.JobFilter{}),
	}
	for name := range want {
		if len(got[name]) != len(want[name]) {
			f.t.Errorf("%s: %v, want %v", name, got[name], want[name])
			continue
		}
		for i := range want[name] {
			if got[name][i] != want[name][i] {
				f.t.Errorf("%s: %v, want %v", name, got[name], want[name])
				break
			}
		}
	}
}

// testRateBuckets: a burst goes through, the next waits about an interval,
// and the bucket refills with time; buckets of two keys are apart.
func testRateBuckets(f *fixture) {
	now := f.clk.Now()
	for i := 0; i < 3; i++ {
		if ok, _, err := f.s.TakeToken(f.ctx, "rate:acme", 100*time.Millisecond, 3, now); err != nil || !ok {
			f.t.Fatalf("token %d: %v %v", i, ok, err)
		}
	}
	ok, wait, err := f.s.TakeToken(f.ctx, "rate:acme", 100*time.Millisecond, 3, now)
	if err != nil || ok || wait != 100*time.Millisecond {
		f.t.Fatalf("fourth token: ok %v wait %v err %v", ok, wait, err)
	}
	if ok, _, _ := f.s.TakeToken(f.ctx, "rate:globex", 100*time.Millisecond, 3, now); !ok {
		f.t.Fatal("another tenant's bucket is full too")
	}
	if ok, _, _ := f.s.TakeToken(f.ctx, "rate:acme", 100*time.Millisecond, 3, now.Add(100*time.Millisecond)); !ok {
		f.t.Fatal("no token after an interval")
	}
	if ok, _, _ := f.s.TakeToken(f.ctx, "rate:acme", 100*time.Millisecond, 3, now.Add(100*time.Millisecond)); ok {
		f.t.Fatal("two tokens after one interval")
	}
}

// testUsageAndDocumentQuota: usage adds up per tenant and period;
// documents count per tenant, by the tenant's project keys.
func testUsageAndDocumentQuota(f *fixture) {
	for _, tokens := range []int64{100, 250} {
		if err := f.s.AddUsage(f.ctx, "acme", []string{"2026-11", "2026-11-28"}, tokens); err != nil {
			f.t.Fatal(err)
		}
	}
	if u, err := f.s.GetUsage(f.ctx, "acme", "2026-11"); err != nil || u.Tokens != 350 || u.Attempts != 2 {
		f.t.Fatalf("month: %+v %v", u, err)
	}
	if u, _ := f.s.GetUsage(f.ctx, "globex", "2026-11"); u.Tokens != 0 {
		f.t.Fatalf("another tenant: %+v", u)
	}
	doc := func(project, content string) {
		_, _, created, err := f.s.CreateDocument(f.ctx, store.NewDocument{
			ProjectID:   project,
			Title:       "bible",
			Format:      "markdown",
			Content:     content,
			RequestHash: "h-" + project + content,
			Backend:     job.BackendBackgroundTasks,
		})
		if err != nil || !created {
			f.t.Fatalf("document: %v %v", created, err)
		}
	}
	doc("acme/p1", "12345")
	doc("acme/p2", "123")
	doc("acme0", "1")    // sorts right after "acme/": not acme's
	doc("acmex/p1", "1") // another tenant whose name starts alike
	doc("p1", "1234567") // the open server's
	for tenant, want := range map[string][2]int64{"acme": {2, 8}, "acmex": {1, 1}, "": {2, 8}} {
		count, bytes, err := f.s.DocumentUsage(f.ctx, tenant)
		if err != nil || count != want[0] || bytes != want[1] {
			f.t.Errorf("documents of %q: %d, %d bytes (%v); want %v", tenant, count, bytes, err, want)
		}
	}
}
