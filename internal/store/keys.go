package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/scriptgen/scriptgen/internal/access"
)

// keyColumns are the columns scanKey reads.
const keyColumns = `id, prefix, hash, tenant_id, projects, name, created_at, revoked_at`

// CreateKey stores a new API key (its hash; the key itself is never stored).
func (s *SQL) CreateKey(ctx context.Context, k access.Key) error {
	return s.insertKey(ctx, s.W, k)
}

func (s *SQL) insertKey(ctx context.Context, ex execer, k access.Key) error {
	projects, err := json.Marshal(k.Projects)
	if err != nil {
		return fmt.Errorf("encode key projects: %w", err)
	}
	_, err = ex.ExecContext(ctx, s.Q(`INSERT INTO api_keys (`+keyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		k.ID, k.Prefix, k.Hash, k.Tenant, string(projects), k.Name, micros(k.CreatedAt), micros(k.RevokedAt))
	if err != nil {
		return fmt.Errorf("create API key %s: %w", k.Prefix, err)
	}
	return nil
}

// ListKeys lists the keys of a tenant ("" for every tenant), newest first.
func (s *SQL) ListKeys(ctx context.Context, tenant string) ([]access.Key, error) {
	q := `SELECT ` + keyColumns + ` FROM api_keys`
	var args []any
	if tenant != "" {
		q += ` WHERE tenant_id = ?`
		args = append(args, tenant)
	}
	rows, err := s.R.QueryContext(ctx, s.Q(q+` ORDER BY created_at DESC, id DESC`), args...)
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	defer rows.Close()
	keys := []access.Key{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// GetKey reads a key by id, or access.ErrNoKey.
func (s *SQL) GetKey(ctx context.Context, id string) (access.Key, error) {
	return scanKey(s.R.QueryRowContext(ctx, s.Q(`SELECT `+keyColumns+` FROM api_keys WHERE id = ?`), id))
}

// KeyByPrefix reads a key by its prefix, or access.ErrNoKey.
func (s *SQL) KeyByPrefix(ctx context.Context, prefix string) (access.Key, error) {
	return scanKey(s.queryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE prefix = ?`, prefix))
}

// HasActiveKeys reports whether any key is in force.
func (s *SQL) HasActiveKeys(ctx context.Context) (bool, error) {
	var one int
	err := s.queryRow(ctx, `SELECT 1 FROM api_keys WHERE revoked_at = 0 LIMIT 1`).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look for API keys: %w", err)
	}
	return true, nil
}

// RevokeKey puts a key out of force at at; revoking a revoked key keeps its
// first revocation time.
func (s *SQL) RevokeKey(ctx context.Context, id string, at time.Time) (access.Key, error) {
	var k access.Key
	err := s.inTx(ctx, func(tx *Tx) error {
		var err error
		k, err = s.revokeKey(ctx, tx, id, at)
		return err
	})
	return k, err
}

func (s *SQL) revokeKey(ctx context.Context, tx *Tx, id string, at time.Time) (access.Key, error) {
	if _, err := tx.ExecContext(ctx, s.Q(`UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at = 0`), micros(at), id); err != nil {
		return access.Key{}, fmt.Errorf("revoke API key %s: %w", id, err)
	}
	return scanKey(tx.QueryRowContext(ctx, s.Q(`SELECT `+keyColumns+` FROM api_keys WHERE id = ?`), id))
}

// RotateKey stores next and revokes the key old in one transaction: the
// new key works from the moment the old one stops.
func (s *SQL) RotateKey(ctx context.Context, old string, next access.Key) (access.Key, error) {
	var revoked access.Key
	err := s.inTx(ctx, func(tx *Tx) error {
		var err error
		if revoked, err = s.revokeKey(ctx, tx, old, next.CreatedAt); err != nil {
			return err
		}
		return s.insertKey(ctx, tx, next)
	})
	return revoked, err
}

func scanKey(row interface{ Scan(...any) error }) (access.Key, error) {
	var k access.Key
	var projects string
	var created, revoked int64
	err := row.Scan(&k.ID, &k.Prefix, &k.Hash, &k.Tenant, &projects, &k.Name, &created, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return k, access.ErrNoKey
	}
	if err != nil {
		return k, fmt.Errorf("read API key: %w", err)
	}
	if err := json.Unmarshal([]byte(projects), &k.Projects); err != nil {
		return k, fmt.Errorf("API key %s: projects: %w", k.Prefix, err)
	}
	k.CreatedAt, k.RevokedAt = fromMicros(created), fromMicros(revoked)
	return k, nil
}
