-- Tenants own projects. A tenant's project is stored under the key
-- "<tenant>/<project>" (access.Qualify), so every table keyed by project is
-- tenant-scoped as it is; tenant_id derives from that key, for the lists of
-- one tenant's jobs. Projects of the open server (no tenant) have no '/'.
ALTER TABLE jobs ADD COLUMN tenant_id TEXT GENERATED ALWAYS AS (
	CASE WHEN instr(project_id, '/') > 0 THEN substr(project_id, 1, instr(project_id, '/') - 1) ELSE '' END) VIRTUAL;
CREATE INDEX jobs_tenant ON jobs (tenant_id, id);

-- Writers' API keys: the SHA-256 of the key, never the key; prefix is what
-- support sees. projects is a JSON array, or 'null' for every project of the
-- tenant. revoked_at is 0 while the key is in force.
CREATE TABLE api_keys (
	id TEXT PRIMARY KEY,
	prefix TEXT NOT NULL UNIQUE,
	hash TEXT NOT NULL,
	tenant_id TEXT NOT NULL,
	projects TEXT NOT NULL,
	name TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	revoked_at INTEGER NOT NULL
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, id);

-- Rate limits shared by every replica: GCRA's theoretical arrival time per
-- key, in microseconds.
CREATE TABLE rate_buckets (
	key TEXT PRIMARY KEY,
	tat INTEGER NOT NULL
);

-- LLM tokens and generation attempts per tenant and period ("2026-12" for a
-- month, "2026-12-06" for a day).
CREATE TABLE tenant_usage (
	tenant_id TEXT NOT NULL,
	period TEXT NOT NULL,
	tokens INTEGER NOT NULL,
	attempts INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, period)
);
