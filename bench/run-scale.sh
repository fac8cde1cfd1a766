#!/usr/bin/env bash
# Issue 21, targets 3 and 4: what the store's size costs (PostgreSQL).
#
# For each size N (default 10000 1000000 5000000) a schema scale_N is seeded once
# and kept for later runs (KEEP=0 drops them at the end):
#   1. `scriptgen serve` (GENERATOR=noop, in-process mode, its defaults) takes
#      2,000 real jobs through the API (bench/submit), which gives the rows the
#      seed copies;
#   2. serve stops, and SQL copies those rows until the store holds N finished
#      jobs: each copy a succeeded job with the template's events (same count,
#      same text) and an episode in one of 1,000 projects, with ids that sort
#      before every real job (older), then ANALYZE (this machine runs
#      PostgreSQL with autovacuum off; a deployment's autovacuum does this).
# Then ROUNDS rounds (default 3), each going through every size in turn, so that
# the sizes share the machine's moods (these machines are shared and noisy):
#   3. serve starts on the size's store, and bench/submit measures submit p50/p99
#      and end-to-end jobs/s of 10,000 new jobs from 50 clients;
#   4. `ab -n 100 -c 10` (twice) on GET /api/generation (a page of 50).
# With PURGE=1, last, for each size:
#   5. `scriptgen purge --older-than 1h --batch 1000` deletes every seeded job
#      (serve stopped) and reports how long it took: jobs purged per second.
# Usage: [ROUNDS=3] [PURGE=1] [KEEP=1] bench/run-scale.sh [N ...]
# (needs PostgreSQL on 127.0.0.1:5432 and ab, from apache2-utils)
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 1000000 5000000)
. bench/serve-lib.sh

echo "machine: $(nproc) cores, $(uname -r), $(psql -c 'SHOW server_version')"
for n in "${sizes[@]}"; do
  schema=scale_$n
  export DATABASE_URL="postgres://postgres@127.0.0.1:5432/test?sslmode=disable&search_path=$schema"
  if [ "$(psql -c "SELECT count(*) FROM pg_namespace WHERE nspname = '$schema'")" = 1 ]; then
    echo "== N=$n: schema $schema kept from an earlier run: jobs=$(psql -c "SELECT count(*) FROM $schema.jobs")"
    continue
  fi
  psql -c "CREATE SCHEMA $schema"
  t0=$(date +%s.%N)
  seed_pg "$schema" "$n"
  t1=$(date +%s.%N)
  echo "== N=$n: seeded $((n - 2000)) jobs in $(echo "$t1 - $t0" | bc) s; jobs=$(psql -c "SELECT count(*) FROM $schema.jobs") events=$(psql -c "SELECT count(*) FROM $schema.job_events") size=$(psql -c "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = '$schema'"); load $(cut -d' ' -f1-3 /proc/loadavg)"
done

for round in $(seq 1 "${ROUNDS:-3}"); do
for n in "${sizes[@]}"; do
  schema=scale_$n
  export DATABASE_URL="postgres://postgres@127.0.0.1:5432/test?sslmode=disable&search_path=$schema"
  echo "== round $round, N=$n (jobs=$(psql -c "SELECT count(*) FROM $schema.jobs")): load $(cut -d' ' -f1-3 /proc/loadavg)"
  start
  "$tmp/submit" -url "$base" -c 50 -n 10000 -warmup 1000 -pid "$pid" -project "fresh" -label "N=$n"
  for r in 1 2; do
    ab -q -n 100 -c 10 "$base/api/generation" >"$tmp/ab.txt" 2>&1 || { cat "$tmp/ab.txt"; exit 1; }
    echo "list N=$n run $r: mean $(sed -n 's/^Time per request: *\([0-9.]*\) \[ms\] (mean)$/\1/p' "$tmp/ab.txt" | head -1) ms," \
      "p50 $(awk '$1 == "50%" {print $2}' "$tmp/ab.txt") ms, p99 $(awk '$1 == "99%" {print $2}' "$tmp/ab.txt") ms," \
      "failed $(sed -n 's/^Failed requests: *//p' "$tmp/ab.txt"), non-2xx $(sed -n 's/^Non-2xx responses: *//p' "$tmp/ab.txt")"
  done
  stop
  # The 10,000 new jobs go, so that every round sees the size it names (autovacuum
  # is off on this machine: VACUUM as a deployment's autovacuum would).
  psql <<SQL
SET search_path = $schema;
DELETE FROM job_events WHERE job_id IN (SELECT id FROM jobs WHERE project_id LIKE '%fresh');
DELETE FROM job_script_parts WHERE job_id IN (SELECT id FROM jobs WHERE project_id LIKE '%fresh');
DELETE FROM episodes WHERE project_id LIKE '%fresh';
DELETE FROM project_counters WHERE project_id LIKE '%fresh';
DELETE FROM jobs WHERE project_id LIKE '%fresh';
VACUUM ANALYZE jobs;
VACUUM ANALYZE job_events;
VACUUM ANALYZE episodes;
SQL
done
done

if [ "${PURGE:-0}" = 1 ]; then
for n in "${sizes[@]}"; do
  schema=scale_$n
  export DATABASE_URL="postgres://postgres@127.0.0.1:5432/test?sslmode=disable&search_path=$schema"
  seed=$(psql -c "SELECT count(*) FROM $schema.jobs WHERE id < '00000000-0000-7000-8001'")
  t0=$(date +%s.%N)
  "$tmp/scriptgen" purge --older-than 1h --batch 1000 | tr '\r' '\n' | tail -1
  t1=$(date +%s.%N)
  echo "purge N=$n: $(echo "$seed / ($t1 - $t0)" | bc) jobs/s; left: $(psql -c "SELECT count(*) FROM $schema.jobs") jobs, $(psql -c "SELECT count(*) FROM $schema.episodes") episodes"
done
fi
if [ "${KEEP:-1}" = 0 ]; then
  for n in "${sizes[@]}"; do psql -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS scale_$n CASCADE"; done
fi
