-- Issue 20: the leader's term (a fencing token) on its lease and on the
-- audit records its controller writes.
ALTER TABLE leader_leases ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE audit_records ADD COLUMN leader_epoch BIGINT NOT NULL DEFAULT 0;

-- The last time the controller's readings were not clean while the durable
-- worker was off: a roll-forward waits for clean windows after it.
CREATE TABLE rollforward_gate (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	unclean_at INTEGER NOT NULL,
	detail TEXT NOT NULL
);
