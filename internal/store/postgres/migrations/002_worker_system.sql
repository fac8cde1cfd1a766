CREATE TABLE worker_settings (
	id BIGINT PRIMARY KEY CHECK (id = 1),
	enabled BIGINT NOT NULL,
	rollout_percent BIGINT NOT NULL,
	reason TEXT NOT NULL,
	updated_by TEXT NOT NULL,
	updated_at BIGINT NOT NULL
);

CREATE TABLE workers (
	id TEXT PRIMARY KEY,
	role TEXT NOT NULL,
	host TEXT NOT NULL,
	pid BIGINT NOT NULL,
	started_at BIGINT NOT NULL,
	heartbeat_at BIGINT NOT NULL,
	stopped_at BIGINT NOT NULL
);
CREATE INDEX workers_heartbeat ON workers (role, heartbeat_at);

CREATE TABLE leader_leases (
	name TEXT PRIMARY KEY,
	holder TEXT NOT NULL,
	expires_at BIGINT NOT NULL
);

CREATE TABLE audit_records (
	id TEXT PRIMARY KEY,
	kind TEXT NOT NULL,
	trigger_name TEXT NOT NULL,
	reason TEXT NOT NULL,
	actor TEXT NOT NULL,
	status TEXT NOT NULL,
	evidence TEXT NOT NULL,
	actions TEXT NOT NULL,
	jobs_migrated BIGINT NOT NULL,
	jobs_failed BIGINT NOT NULL,
	affected_projects BIGINT NOT NULL,
	started_at BIGINT NOT NULL,
	finished_at BIGINT NOT NULL
);

CREATE TABLE migration_failed (
	job_id TEXT PRIMARY KEY,
	source TEXT NOT NULL,
	target TEXT NOT NULL,
	reason TEXT NOT NULL,
	audit_id TEXT NOT NULL,
	created_at BIGINT NOT NULL
);
