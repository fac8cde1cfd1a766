package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Fence is one term of a named leadership: its holder and the lease's epoch,
// which grows every time another holder takes the leadership. A
// write made under a fence is refused once a newer term exists, so a leader
// that was deposed while it paused cannot act late on a decision that is no
// longer its own.
type Fence struct {
	Name   string
	Holder string
	Epoch  int64
}

// ErrFenced is a write refused because its fence names a term that has ended:
// another holder has the leadership now, or took it since.
var ErrFenced = errors.New("deposed: a newer leader holds the lease")

type fenceKey struct{}

// WithFence makes the fenced writes under ctx (PutWorkerSetting,
// MigrateQueued, InsertAudit, AddMigrationFailure) check f in their own
// transaction. It travels in the context because a rollback's steps reach the
// store through a service shared with operators, whose writes are not fenced.
func WithFence(ctx context.Context, f Fence) context.Context {
	return context.WithValue(ctx, fenceKey{}, f)
}

// FenceFrom is the fence ctx carries, if any.
func FenceFrom(ctx context.Context) (Fence, bool) {
	f, ok := ctx.Value(fenceKey{}).(Fence)
	return f, ok
}

// checkFence refuses the transaction with ErrFenced when ctx carries a fence
// whose term has ended. The no-op update locks the lease's row on PostgreSQL
// until the transaction ends, so a takeover waits for the fenced write to
// commit rather than slipping in between the check and the write.
func (s *SQL) checkFence(ctx context.Context, tx *Tx) error {
	f, ok := FenceFrom(ctx)
	if !ok {
		return nil
	}
	res, err := tx.ExecContext(ctx, s.Q(`UPDATE leader_leases SET epoch = epoch WHERE name = ? AND holder = ? AND epoch = ?`),
		f.Name, f.Holder, f.Epoch)
	if err != nil {
		return fmt.Errorf("check the lease of %s: %w", f.Name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w (%s term %d of %s)", ErrFenced, f.Name, f.Epoch, f.Holder)
	}
	return nil
}

// AcquireLease takes or renews the named leadership for holder until ttl from
// now. It reports whether holder leads and, when it does, the term's epoch:
// a takeover by another holder starts the next term; the same holder keeps
// its term, even after its lease expired or was released, since no one else
// led in between.
func (s *SQL) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (int64, bool, error) {
	now := s.Clock.Now()
	var got string
	var epoch int64
	err := s.W.QueryRowContext(ctx, s.Q(`INSERT INTO leader_leases (name, holder, expires_at, epoch) VALUES (?, ?, ?, 1)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at,
		epoch = CASE WHEN leader_leases.holder = excluded.holder THEN leader_leases.epoch ELSE leader_leases.epoch + 1 END
		WHERE leader_leases.holder = excluded.holder OR leader_leases.expires_at < ?
		RETURNING holder, epoch`), name, holder, micros(now.Add(ttl)), micros(now)).Scan(&got, &epoch)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("acquire leadership %s: %w", name, err)
	}
	if got != holder {
		return 0, false, nil
	}
	return epoch, true, nil
}

// MarkUnclean notes that the controller's readings were not clean at at
// (a trigger's condition held, or its measurement failed) while the durable
// worker was off; a roll-forward waits for clean windows after the last such
// time. Fenced: WithFence.
func (s *SQL) MarkUnclean(ctx context.Context, at time.Time, detail string) error {
	err := s.inTx(ctx, func(tx *Tx) error {
		if err := s.checkFence(ctx, tx); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.Q(`INSERT INTO rollforward_gate (id, unclean_at, detail) VALUES (1, ?, ?)
			ON CONFLICT (id) DO UPDATE SET unclean_at = excluded.unclean_at, detail = excluded.detail`), micros(at), detail)
		return err
	})
	if err != nil {
		return fmt.Errorf("mark the readings unclean: %w", err)
	}
	return nil
}

// LastUnclean is when MarkUnclean last noted unclean readings, and what they
// were; the zero time when never.
func (s *SQL) LastUnclean(ctx context.Context) (time.Time, string, error) {
	var at int64
	var detail string
	err := s.queryRow(ctx, `SELECT unclean_at, detail FROM rollforward_gate WHERE id = 1`).Scan(&at, &detail)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, "", nil
	}
	if err != nil {
		return time.Time{}, "", fmt.Errorf("read the last unclean readings: %w", err)
	}
	return fromMicros(at), detail, nil
}
