package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// TakeToken applies GCRA to the bucket of key in one statement (see
// limits.GCRA): the bucket's arrival time moves one interval on, unless that
// puts it more than burst intervals ahead of now. Every replica shares it.
func (s *SQL) TakeToken(ctx context.Context, key string, interval time.Duration, burst int, now time.Time) (bool, time.Duration, error) {
	return s.TakeTokens(ctx, key, 1, interval, burst, now)
}

// TakeTokens is TakeToken for count tokens at once (a replica's lease of a
// block of a tenant's rate): all of them, or none.
func (s *SQL) TakeTokens(ctx context.Context, key string, count int, interval time.Duration, burst int, now time.Time) (bool, time.Duration, error) {
	n, iv := now.UnixMicro(), interval.Microseconds()*int64(max(count, 1))
	window := interval.Microseconds() * int64(burst)
	var tat int64
	err := s.W.QueryRowContext(ctx, s.Q(`INSERT INTO rate_buckets (key, tat) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET tat = (CASE WHEN rate_buckets.tat > ? THEN rate_buckets.tat ELSE ? END) + ?
		WHERE (CASE WHEN rate_buckets.tat > ? THEN rate_buckets.tat ELSE ? END) + ? - ? <= ?
		RETURNING tat`), key, n+iv, n, n, iv, n, n, iv, window, n).Scan(&tat)
	if err == nil {
		return true, 0, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return false, 0, fmt.Errorf("rate bucket %s: %w", key, err)
	}
	if err := s.W.QueryRowContext(ctx, s.Q(`SELECT tat FROM rate_buckets WHERE key = ?`), key).Scan(&tat); err != nil {
		return false, 0, fmt.Errorf("rate bucket %s: %w", key, err)
	}
	wait := time.Duration(tat+iv-window-n) * time.Microsecond
	return false, max(wait, time.Millisecond), nil
}

// Usage is what a tenant used in a period.
type Usage struct {
	Tenant   string `json:"tenant"`
	Period   string `json:"period"`
	Tokens   int64  `json:"tokens"`
	Attempts int64  `json:"attempts"`
}

// AddUsage adds one generation attempt's tokens to each of a tenant's
// periods (a day and a month).
func (s *SQL) AddUsage(ctx context.Context, tenant string, periods []string, tokens int64) error {
	return s.inTx(ctx, func(tx *Tx) error {
		for _, p := range periods {
			if _, err := tx.ExecContext(ctx, s.Q(`INSERT INTO tenant_usage (tenant_id, period, tokens, attempts) VALUES (?, ?, ?, 1)
				ON CONFLICT (tenant_id, period) DO UPDATE SET tokens = tenant_usage.tokens + excluded.tokens,
				attempts = tenant_usage.attempts + 1`), tenant, p, tokens); err != nil {
				return fmt.Errorf("add usage of %q in %s: %w", tenant, p, err)
			}
		}
		return nil
	})
}

// GetUsage reads a tenant's use in a period (zeros when none).
func (s *SQL) GetUsage(ctx context.Context, tenant, period string) (Usage, error) {
	u := Usage{Tenant: tenant, Period: period}
	err := s.queryRow(ctx, `SELECT tokens, attempts FROM tenant_usage WHERE tenant_id = ? AND period = ?`, tenant, period).
		Scan(&u.Tokens, &u.Attempts)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("read usage of %q in %s: %w", tenant, period, err)
	}
	return u, nil
}

// DocumentUsage counts a tenant's documents and their bytes (for quotas).
func (s *SQL) DocumentUsage(ctx context.Context, tenant string) (count, bytes int64, err error) {
	q, args := `SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM documents`, []any{}
	if tenant != "" {
		// The tenant's projects are the keys "<tenant>/…": a range of the
		// project index ('0' follows '/').
		q += ` WHERE project_id >= ? AND project_id < ?`
		args = append(args, tenant+"/", tenant+"0")
	} else {
		q += ` WHERE project_id NOT LIKE '%/%'`
	}
	if err := s.queryRow(ctx, q, args...).Scan(&count, &bytes); err != nil {
		return 0, 0, fmt.Errorf("count documents of %q: %w", tenant, err)
	}
	return count, bytes, nil
}
