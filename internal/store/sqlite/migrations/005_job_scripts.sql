-- The script a generation job has written so far (issue 18): one row per job,
-- the whole text, appended to at every checkpoint under the job's lease
-- (Store.CheckpointScript), so that a later attempt resumes from it. chars is
-- its length in characters (Unicode code points), the unit of every offset;
-- epoch is the dispatch epoch of the attempt that appended last.
CREATE TABLE job_scripts (
	job_id TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
	epoch INTEGER NOT NULL,
	chars INTEGER NOT NULL,
	script TEXT NOT NULL,
	updated_at INTEGER NOT NULL
);
