-- A generation's script is stored as parts (issue 18): a checkpoint inserts
-- the text it adds as a row of its own rather than rewriting the whole text
-- (which cost every checkpoint the length of the script so far, and made one
-- commit per checkpoint the limit of how many generations could stream). A
-- part holds the characters [start, start + chars) of the script (Unicode
-- code points, the unit of every offset); epoch is the dispatch epoch of the
-- attempt that wrote it. A job has at most store.maxScriptParts parts: the
-- checkpoint that reaches that many merges them into one.
CREATE TABLE job_script_parts (
	job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	start BIGINT NOT NULL,
	chars BIGINT NOT NULL,
	epoch BIGINT NOT NULL,
	text TEXT NOT NULL,
	PRIMARY KEY (job_id, start)
);
INSERT INTO job_script_parts (job_id, start, chars, epoch, text)
	SELECT job_id, 0, chars, epoch, script FROM job_scripts WHERE chars > 0;
DROP TABLE job_scripts;
