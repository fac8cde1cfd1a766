-- Every registered process (worker or serving replica) reports with each
-- heartbeat the runs of jobs it finished since it started, by outcome
-- (issue 20): the operator page's jobs/s chart differences them per process
-- to show the cluster's rate, not the answering replica's alone. One JSON
-- object of outcome to count, e.g. {"succeeded":12,"failed":1}, rather than
-- a column per outcome: the counts are only ever read back whole and
-- differenced in Go, never summed or filtered in SQL, and an outcome the
-- executor adds needs no migration.
ALTER TABLE workers ADD COLUMN finished_runs TEXT NOT NULL DEFAULT '{}';
