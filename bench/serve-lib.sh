# Sourced by the benchmark scripts that run `scriptgen serve` (GENERATOR=noop,
# in-process mode, its defaults) on a free port and drive it with bench/submit:
# it builds both into $tmp (removed on exit), and defines psql (the machine's
# PostgreSQL, test database), start and stop (serve, its pid in $pid) and cpu
# (serve's CPU time so far, in clock ticks). The caller is at the repository's root.
tmp=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/scriptgen" ./cmd/scriptgen
go build -o "$tmp/submit" ./bench/submit
psql() { command psql -h 127.0.0.1 -U postgres test -qAtX -v ON_ERROR_STOP=1 "$@"; }
pid=""
start() {
  LISTEN_ADDR=127.0.0.1:$port GENERATOR=noop REDIS_URL= LOG_LEVEL=warn "$tmp/scriptgen" serve 2>>"$tmp/serve.log" &
  pid=$!
  for _ in $(seq 1 300); do curl -sf "$base/health" >/dev/null && return; sleep 0.1; done
  echo "serve did not start"; tail "$tmp/serve.log"; exit 1
}
stop() { kill -TERM "$pid"; wait "$pid" || true; }
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }

# seed_pg SCHEMA N fills a fresh schema with N finished jobs: serve takes 2,000
# real ones through the API, and SQL copies the first of them (with its events
# and episode, in one of 1,000 projects, ids and times older than every real
# job's) until there are N, then ANALYZE (this machine runs PostgreSQL with
# autovacuum off; a deployment's autovacuum does this). DATABASE_URL must name
# the schema.
seed_pg() {
  start
  "$tmp/submit" -url "$base" -c 50 -n 2000 -warmup 0 -project template -label "template rows" >/dev/null
  stop
  psql <<SQL
SET search_path = $1;
CREATE TEMP TABLE template AS SELECT * FROM jobs WHERE status = 'succeeded' ORDER BY id LIMIT 1;
INSERT INTO jobs (id, kind, project_id, payload, idempotency_key, request_hash, status, backend, dispatch_epoch, attempt,
    max_attempts, lease_owner, lease_expires_at, progress, stage, result, error, event_seq, created_at, updated_at, started_at, finished_at)
SELECT '00000000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'), t.kind, 'seed-' || (g % 1000), t.payload, 'seed-' || g,
    t.request_hash, t.status, t.backend, t.dispatch_epoch, t.attempt, t.max_attempts, '', 0, t.progress, t.stage,
    t.result, t.error, t.event_seq, t.created_at - 86400000000, t.updated_at - 86400000000, t.started_at - 86400000000, t.finished_at - 86400000000
FROM template t, generate_series(1, $(($2 - 2000))) g;
INSERT INTO job_events (job_id, seq, type, status, progress, stage, message, data, created_at)
SELECT '00000000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'), e.seq, e.type, e.status, e.progress, e.stage, e.message, e.data, e.created_at - 86400000000
FROM template t JOIN job_events e ON e.job_id = t.id, generate_series(1, $(($2 - 2000))) g;
INSERT INTO episodes (project_id, number, title, script, job_id, created_at)
SELECT 'seed-' || (g % 1000), g / 1000 + 1, ep.title, ep.script, '00000000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'), ep.created_at - 86400000000
FROM template t JOIN episodes ep ON ep.job_id = t.id, generate_series(1, $(($2 - 2000))) g;
INSERT INTO project_counters (project_id, last_episode)
SELECT project_id, max(number) FROM episodes WHERE project_id LIKE 'seed-%' GROUP BY project_id;
ANALYZE;
SQL
}
