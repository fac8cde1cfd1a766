-- Serving replicas register in the workers table like workers (role 'serve',
-- issue 20): the address they listen on, their build, and the revision of
-- the worker-system setting they have applied, reported with every
-- heartbeat, so that an operator sees a replica that did not follow a flip.
-- The setting's revision counts its saves (Store.PutWorkerSetting).
ALTER TABLE workers ADD COLUMN address TEXT NOT NULL DEFAULT '';
ALTER TABLE workers ADD COLUMN version TEXT NOT NULL DEFAULT '';
ALTER TABLE workers ADD COLUMN flag_revision BIGINT NOT NULL DEFAULT 0;
ALTER TABLE worker_settings ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
