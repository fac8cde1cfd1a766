CREATE TABLE documents (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL,
	title TEXT NOT NULL,
	format TEXT NOT NULL,
	content TEXT NOT NULL,
	size_bytes BIGINT NOT NULL,
	job_id TEXT NOT NULL,
	chunk_count BIGINT NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);
CREATE INDEX documents_project ON documents (project_id, id);

-- Identity ids are never reused: chunk ids are recorded in generation results.
CREATE TABLE document_chunks (
	id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	document_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
	project_id TEXT NOT NULL,
	seq BIGINT NOT NULL,
	heading TEXT NOT NULL,
	text TEXT NOT NULL,
	UNIQUE (document_id, seq)
);
CREATE INDEX document_chunks_project ON document_chunks (project_id);

-- A trigram index serves ILIKE '%term%' for Korean and English alike. pg_trgm
-- lives in the public schema, where every schema's index can reach it; where
-- the extension cannot be installed the search still works, unindexed.
DO $$
DECLARE
	ext_schema TEXT;
BEGIN
	BEGIN
		CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
	EXCEPTION WHEN OTHERS THEN
		RAISE NOTICE 'pg_trgm unavailable (%); document search runs without a trigram index', SQLERRM;
	END;
	SELECT n.nspname INTO ext_schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
		WHERE e.extname = 'pg_trgm';
	IF ext_schema IS NOT NULL THEN
		EXECUTE format('CREATE INDEX document_chunks_trgm ON document_chunks USING gin (text %I.gin_trgm_ops)', ext_schema);
	END IF;
END
$$;
