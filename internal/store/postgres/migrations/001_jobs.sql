CREATE TABLE jobs (
	id TEXT PRIMARY KEY,
	kind TEXT NOT NULL,
	project_id TEXT NOT NULL,
	payload TEXT NOT NULL,
	idempotency_key TEXT UNIQUE,
	request_hash TEXT NOT NULL,
	status TEXT NOT NULL,
	backend TEXT NOT NULL,
	dispatch_epoch BIGINT NOT NULL,
	attempt BIGINT NOT NULL,
	max_attempts BIGINT NOT NULL,
	lease_owner TEXT NOT NULL,
	lease_expires_at BIGINT NOT NULL,
	progress BIGINT NOT NULL,
	stage TEXT NOT NULL,
	result TEXT NOT NULL,
	error TEXT NOT NULL,
	event_seq BIGINT NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL,
	started_at BIGINT NOT NULL,
	finished_at BIGINT NOT NULL
);
CREATE INDEX jobs_claim ON jobs (backend, status, id);
CREATE INDEX jobs_status ON jobs (status, id);
CREATE INDEX jobs_project ON jobs (project_id, id);
CREATE INDEX jobs_lease ON jobs (status, lease_expires_at);

CREATE TABLE job_events (
	job_id TEXT NOT NULL,
	seq BIGINT NOT NULL,
	type TEXT NOT NULL,
	status TEXT NOT NULL,
	progress BIGINT NOT NULL,
	stage TEXT NOT NULL,
	message TEXT NOT NULL,
	data TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (job_id, seq)
);

CREATE TABLE project_counters (
	project_id TEXT PRIMARY KEY,
	last_episode BIGINT NOT NULL
);

CREATE TABLE episodes (
	project_id TEXT NOT NULL,
	number BIGINT NOT NULL,
	title TEXT NOT NULL,
	script TEXT NOT NULL,
	job_id TEXT NOT NULL UNIQUE,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (project_id, number)
);
