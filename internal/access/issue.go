package access

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/scriptgen/scriptgen/internal/job"
)

// KeyWriter is what issuing and rotating keys need of the store.
type KeyWriter interface {
	CreateKey(ctx context.Context, k Key) error
	GetKey(ctx context.Context, id string) (Key, error)
	RotateKey(ctx context.Context, old string, next Key) (Key, error)
}

// Issue makes and stores a key for tenant, limited to projects when not nil,
// and returns the key itself: the only time anyone sees it.
func Issue(ctx context.Context, w KeyWriter, tenant, name string, projects []string, now time.Time) (string, Key, error) {
	if projects != nil {
		if len(projects) == 0 {
			return "", Key{}, &job.ValidationError{Field: "projects", Message: "a key limited to projects needs at least one project"}
		}
		for _, p := range projects {
			if err := job.ValidateProjectID(p); err != nil {
				return "", Key{}, &job.ValidationError{Field: "projects", Message: fmt.Sprintf("%q: %v", p, err)}
			}
		}
	}
	id, err := uuid.NewV7()
	if err != nil {
		return "", Key{}, err
	}
	plain, k, err := NewKey(id.String(), tenant, name, projects, now.UTC().Truncate(time.Microsecond))
	if err != nil {
		return "", Key{}, err
	}
	if err := w.CreateKey(ctx, k); err != nil {
		return "", Key{}, err
	}
	return plain, k, nil
}

// Rotate replaces the key id by a new one of the same tenant, name and
// projects; the old key stops working as the new one is stored (every
// replica sees it within its cache time).
func Rotate(ctx context.Context, w KeyWriter, id string, now time.Time) (plain string, next, old Key, err error) {
	cur, err := w.GetKey(ctx, id)
	if err != nil {
		return "", Key{}, Key{}, err
	}
	if !cur.Active() {
		return "", Key{}, cur, fmt.Errorf("key %s (%s) was revoked at %s: issue a new one instead", cur.ID, cur.Prefix, cur.RevokedAt.Format(time.RFC3339))
	}
	nid, err := uuid.NewV7()
	if err != nil {
		return "", Key{}, Key{}, err
	}
	plain, next, err = NewKey(nid.String(), cur.Tenant, cur.Name, cur.Projects, now.UTC().Truncate(time.Microsecond))
	if err != nil {
		return "", Key{}, Key{}, err
	}
	old, err = w.RotateKey(ctx, id, next)
	return plain, next, old, err
}
