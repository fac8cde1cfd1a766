#!/usr/bin/env bash
# Issue 21, target 3: the seed's own check on the list endpoint, on both stores.
#
# For each store (postgres, sqlite): a fresh store; `scriptgen serve` (GENERATOR=noop,
# in-process mode, its defaults) takes 2,000 real jobs through the API (bench/submit);
# serve stops and SQL copies those rows until the store holds N finished jobs (their
# events and episodes too, ids older than every real job); serve starts again and
#   1. `ab -n 100 -c 10` on GET /api/generation (a page of 50), three times — the seed's
#      check; the first run is the cold one;
#   2. `ab -n 2000 -c 10` and `ab -n 2000 -c 1` for a steadier tail and the time of one
#      request alone (at 10 clients on 2 cores a request mostly waits for a core);
#   3. serve's CPU seconds per request over the 2,000 (from /proc/PID/stat).
# Usage: bench/run-list.sh [N]   (default 100000; needs PostgreSQL on 127.0.0.1:5432,
# sqlite3 and ab from apache2-utils)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
. bench/serve-lib.sh
run_ab() { # label, ab args...
  local label=$1; shift
  ab -q "$@" "$base/api/generation" >"$tmp/ab.txt" 2>&1 || { cat "$tmp/ab.txt"; exit 1; }
  echo "  $label: mean $(sed -n 's/^Time per request: *\([0-9.]*\) \[ms\] (mean)$/\1/p' "$tmp/ab.txt" | head -1) ms," \
    "p50 $(awk '$1 == "50%" {print $2}' "$tmp/ab.txt") ms, p99 $(awk '$1 == "99%" {print $2}' "$tmp/ab.txt") ms," \
    "max $(awk '$1 == "100%" {print $2}' "$tmp/ab.txt") ms, failed $(sed -n 's/^Failed requests: *//p' "$tmp/ab.txt")," \
    "non-2xx $(sed -n 's/^Non-2xx responses: *//p' "$tmp/ab.txt")"
}
measure() {
  start
  echo "$1, N=$n: jobs in the store: $2; page of 50: $(curl -s "$base/api/generation" | wc -c) bytes; load $(cut -d' ' -f1-3 /proc/loadavg)"
  for r in 1 2 3; do run_ab "ab -n 100 -c 10, run $r" -n 100 -c 10; done
  local c0; c0=$(cpu)
  run_ab "ab -n 2000 -c 10" -n 2000 -c 10
  echo "  serve CPU per request: $(echo "scale=3; ($(cpu) - $c0) * 10 / 2000" | bc) ms"
  run_ab "ab -n 2000 -c 1" -n 2000 -c 1
  stop
}
seed=$((n - 2000))
echo "machine: $(nproc) cores, $(uname -r), PostgreSQL $(psql -c 'SHOW server_version'), sqlite3 $(sqlite3 --version | cut -d' ' -f1)"

# PostgreSQL
schema=list_$$
psql -c "CREATE SCHEMA $schema"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/test?sslmode=disable&search_path=$schema"
seed_pg "$schema" "$n"
measure postgres "$(psql -c "SELECT count(*) FROM $schema.jobs")"
psql -c "DROP SCHEMA $schema CASCADE" 2>/dev/null

# SQLite
db=$tmp/list.db
export DATABASE_URL="sqlite:$db"
"$tmp/scriptgen" schema >/dev/null
start
"$tmp/submit" -url "$base" -c 50 -n 2000 -warmup 0 -project template -label "template rows" >/dev/null
stop
sqlite3 "$db" <<SQL
.output /dev/null
PRAGMA busy_timeout = 15000;
CREATE TEMP TABLE template AS SELECT * FROM jobs WHERE status = 'succeeded' ORDER BY id LIMIT 1;
WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < $seed)
INSERT INTO jobs (id, kind, project_id, payload, idempotency_key, request_hash, status, backend, dispatch_epoch, attempt,
    max_attempts, lease_owner, lease_expires_at, progress, stage, result, error, event_seq, created_at, updated_at, started_at, finished_at)
SELECT '00000000-0000-7000-8000-' || printf('%012x', x), t.kind, 'seed-' || (x % 1000), t.payload, 'seed-' || x,
    t.request_hash, t.status, t.backend, t.dispatch_epoch, t.attempt, t.max_attempts, '', 0, t.progress, t.stage,
    t.result, t.error, t.event_seq, t.created_at - 86400000000, t.updated_at - 86400000000, t.started_at - 86400000000, t.finished_at - 86400000000
FROM template t, g;
WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < $seed)
INSERT INTO job_events (job_id, seq, type, status, progress, stage, message, data, created_at)
SELECT '00000000-0000-7000-8000-' || printf('%012x', x), e.seq, e.type, e.status, e.progress, e.stage, e.message, e.data, e.created_at - 86400000000
FROM template t JOIN job_events e ON e.job_id = t.id, g;
ANALYZE;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
measure sqlite "$(sqlite3 "$db" 'SELECT count(*) FROM jobs')"
