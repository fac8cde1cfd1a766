-- Where a job's script ends (characters) and how many parts hold it, kept on
-- the job's row by every checkpoint (store/scripts.go), so that a batch of
-- checkpoints reads them with the fence instead of aggregating the parts of
-- every job it writes to (issue 18). Filled here for the scripts stored
-- before.
ALTER TABLE jobs ADD COLUMN script_chars BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN script_parts INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET script_chars = p.chars, script_parts = p.parts
FROM (SELECT job_id, MAX(start + chars) AS chars, COUNT(*) AS parts FROM job_script_parts GROUP BY job_id) AS p
WHERE jobs.id = p.job_id;
