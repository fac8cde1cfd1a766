CREATE TABLE jobs (
	id TEXT PRIMARY KEY,
	kind TEXT NOT NULL,
	project_id TEXT NOT NULL,
	payload TEXT NOT NULL,
	idempotency_key TEXT UNIQUE,
	request_hash TEXT NOT NULL,
	status TEXT NOT NULL,
	backend TEXT NOT NULL,
	dispatch_epoch INTEGER NOT NULL,
	attempt INTEGER NOT NULL,
	max_attempts INTEGER NOT NULL,
	lease_owner TEXT NOT NULL,
	lease_expires_at INTEGER NOT NULL,
	progress INTEGER NOT NULL,
	stage TEXT NOT NULL,
	result TEXT NOT NULL,
	error TEXT NOT NULL,
	event_seq INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	started_at INTEGER NOT NULL,
	finished_at INTEGER NOT NULL
);
CREATE INDEX jobs_claim ON jobs (backend, status, id);
CREATE INDEX jobs_status ON jobs (status, id);
CREATE INDEX jobs_project ON jobs (project_id, id);
CREATE INDEX jobs_lease ON jobs (status, lease_expires_at);

CREATE TABLE job_events (
	job_id TEXT NOT NULL,
	seq INTEGER NOT NULL,
	type TEXT NOT NULL,
	status TEXT NOT NULL,
	progress INTEGER NOT NULL,
	stage TEXT NOT NULL,
	message TEXT NOT NULL,
	data TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;

CREATE TABLE project_counters (
	project_id TEXT PRIMARY KEY,
	last_episode INTEGER NOT NULL
);

CREATE TABLE episodes (
	project_id TEXT NOT NULL,
	number INTEGER NOT NULL,
	title TEXT NOT NULL,
	script TEXT NOT NULL,
	job_id TEXT NOT NULL UNIQUE,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (project_id, number)
);
