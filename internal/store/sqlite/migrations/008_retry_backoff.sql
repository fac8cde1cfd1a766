-- A job queued again after a failed attempt waits for its backoff
-- (JOB_BACKOFF_BASE, JOB_BACKOFF_CAP, issue 20): no claim takes it before
-- retry_at (microseconds since the epoch; 0: claimable now). A claim sets it
-- back to 0, as does an operator's retry.
ALTER TABLE jobs ADD COLUMN retry_at INTEGER NOT NULL DEFAULT 0;
