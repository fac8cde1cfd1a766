-- Issue 20: the leader's term (a fencing token) on its lease and on the
-- audit records its controller writes.
ALTER TABLE leader_leases ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE audit_records ADD COLUMN leader_epoch BIGINT NOT NULL DEFAULT 0;
