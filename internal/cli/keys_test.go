package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scriptgen/scriptgen/internal/access"
	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/database"
)

// TestKeysLifecycle drives `scriptgen keys` on a database of its own: a key
// is shown once and stored as its hash; rotate replaces it; revoke ends it.
func TestKeysLifecycle(t *testing.T) {
	cleanEnv(t)
	// keys create works on a fresh machine: it makes the database.
	db := "sqlite:" + filepath.Join(t.TempDir(), "fresh.db")
	code, out, errs := run("keys", "create", "--database-url", db, "--tenant", "acme", "--name", "ci", "--projects", "p1,p2", "--json")
	if code != 0 {
		t.Fatalf("create: %d %s", code, errs)
	}
	var created access.KeyInfo
	if err := json.Unmarshal([]byte(out), &created); err != nil || !strings.HasPrefix(created.Key, "sgk_"+created.Prefix+"_") {
		t.Fatalf("create printed %q (%v)", out, err)
	}
	st, err := database.OpenExisting(t.Context(), db, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stored, err := st.KeyByPrefix(t.Context(), created.Prefix)
	if err != nil || stored.Hash != access.HashKey(created.Key) || stored.Tenant != "acme" || len(stored.Projects) != 2 {
		t.Fatalf("stored %+v (%v)", stored, err)
	}

	code, out, _ = run("keys", "list", "--database-url", db)
	if code != 0 || !strings.Contains(out, created.Prefix) || strings.Contains(out, created.Key) || !strings.Contains(out, "p1,p2") {
		t.Fatalf("list (must show the prefix, never the key): %d %s", code, out)
	}

	code, out, errs = run("keys", "rotate", created.ID, "--database-url", db, "--json")
	var rotated access.KeyInfo
	if code != 0 || json.Unmarshal([]byte(out), &rotated) != nil || rotated.Key == "" || rotated.Key == created.Key {
		t.Fatalf("rotate: %d %s %s", code, out, errs)
	}
	if old, _ := st.GetKey(t.Context(), created.ID); old.Active() {
		t.Fatal("the rotated key is still in force")
	}
	code, _, errs = run("keys", "rotate", created.ID, "--database-url", db)
	if code != 1 || !strings.Contains(errs, "revoked") {
		t.Fatalf("rotating a revoked key: %d %s", code, errs)
	}

	if code, _, errs = run("keys", "revoke", rotated.ID, "--database-url", db); code != 0 {
		t.Fatalf("revoke: %d %s", code, errs)
	}
	if has, _ := st.HasActiveKeys(t.Context()); has {
		t.Fatal("a key is still in force after revoking both")
	}

	for _, bad := range [][]string{
		{"keys"},
		{"keys", "create", "--tenant", "acme"},
		{"keys", "create", "--tenant", "a/b", "--name", "x"},
		{"keys", "frobnicate"},
		{"keys", "revoke"},
	} {
		if code, _, _ := run(append(bad, "--database-url", db)...); code == 0 {
			t.Errorf("%v succeeded", bad)
		}
	}
}
