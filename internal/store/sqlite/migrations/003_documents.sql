CREATE TABLE documents (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL,
	title TEXT NOT NULL,
	format TEXT NOT NULL,
	content TEXT NOT NULL,
	size_bytes INTEGER NOT NULL,
	job_id TEXT NOT NULL,
	chunk_count INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);
CREATE INDEX documents_project ON documents (project_id, id);

-- AUTOINCREMENT: chunk ids are recorded in generation results, so a deleted
-- chunk's id must never name another chunk.
CREATE TABLE document_chunks (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	document_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
	project_id TEXT NOT NULL,
	seq INTEGER NOT NULL,
	heading TEXT NOT NULL,
	text TEXT NOT NULL,
	UNIQUE (document_id, seq)
);
CREATE INDEX document_chunks_project ON document_chunks (project_id);

-- The trigram tokenizer indexes substrings, which works for Korean (no spaces
-- between a word and its particle) as well as English, and lets LIKE
-- '%term%' use the index for terms of three or more characters.
CREATE VIRTUAL TABLE document_chunks_fts USING fts5 (
	text, content = 'document_chunks', content_rowid = 'id', tokenize = 'trigram'
);
CREATE TRIGGER document_chunks_ai AFTER INSERT ON document_chunks BEGIN
	INSERT INTO document_chunks_fts (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER document_chunks_ad AFTER DELETE ON document_chunks BEGIN
	INSERT INTO document_chunks_fts (document_chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER document_chunks_au AFTER UPDATE ON document_chunks BEGIN
	INSERT INTO document_chunks_fts (document_chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
	INSERT INTO document_chunks_fts (rowid, text) VALUES (new.id, new.text);
END;
