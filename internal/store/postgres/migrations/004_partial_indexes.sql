-- The claim's pick and the lease expiry each get an index of just their rows.
-- Without statistics (a young table, or autovacuum off) the planner once took
-- jobs_lease for the pick and sorted every queued row on each claim; an index
-- of queued rows alone is the only one that fits it. And a job that moves on
-- adds no entries to the index of the state it has left.
DROP INDEX jobs_claim;
DROP INDEX jobs_lease;
CREATE INDEX jobs_claim ON jobs (backend, id) WHERE status = 'queued';
CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE status = 'running';
