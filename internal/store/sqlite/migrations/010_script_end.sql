-- Where a job's script ends (characters) and how many parts hold it, kept on
-- the job's row by every checkpoint (store/scripts.go), so that a batch of
-- checkpoints reads them with the fence instead of aggregating the parts of
-- every job it writes to (issue 18). Filled here for the scripts stored
-- before.
ALTER TABLE jobs ADD COLUMN script_chars INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN script_parts INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET
    script_chars = (SELECT COALESCE(MAX(start + chars), 0) FROM job_script_parts p WHERE p.job_id = jobs.id),
    script_parts = (SELECT COUNT(*) FROM job_script_parts p WHERE p.job_id = jobs.id)
WHERE id IN (SELECT job_id FROM job_script_parts);
