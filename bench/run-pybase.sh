#!/usr/bin/env bash
# Issue 21, target 2: scriptgen against the stack it replaces (bench/pybase:
# FastAPI + uvicorn, SQLAlchemy on PostgreSQL, RQ workers, BackgroundTasks as the
# fallback), in one run, ROUNDS interleaved rounds (default 3), same machine,
# same PostgreSQL, same Redis (one the script starts on a free port).
#
# Each system, in each of its two modes, gets a fresh schema and:
#   - 5,000 submissions from 10 clients, then 5,000 from 50 clients (bench/submit:
#     submit p50/p99 and accepted/s; each run also waits until its jobs are done);
#   - 2,000 jobs from 50 clients, timed from the first submission to the last
#     episode (end-to-end jobs/s), with 2 worker processes in the queue mode:
#     two `scriptgen worker`s with their defaults / two `rq worker`s;
#   - a check that every job succeeded and saved exactly one episode, numbered
#     1..n without a gap per project. A run that loses or repeats a job fails.
# Modes: scriptgen `serve` with REDIS_URL (durable) or without (background_tasks,
# MAX_WORKERS default); the peer with MODE=rq or MODE=background_tasks. Both HTTP
# sides run as the teams would: `scriptgen serve` (one process, all cores), uvicorn
# with --workers 2 (one process per core). Everything runs with default settings
# but GENERATOR=noop / the peer's equivalent no-op job, and LOG_LEVEL=warn.
# Usage: [ROUNDS=3] [SUBMIT_N=5000] [E2E_N=2000] bench/run-pybase.sh        (needs PostgreSQL on 127.0.0.1:5432,
#   Debian's python3-fastapi python3-uvicorn python3-rq python3-sqlalchemy python3-psycopg2)
# SYSTEMS="scriptgen python" and MODES="queue inprocess" (the defaults) choose what runs,
# e.g. SYSTEMS=scriptgen MODES=inprocess to try a setting of scriptgen's alone.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
submit_n=${SUBMIT_N:-5000} # submissions per client count
e2e_n=${E2E_N:-2000}       # jobs of the end-to-end run
systems=${SYSTEMS:-scriptgen python}
modes=${MODES:-queue inprocess}
py=/usr/bin/python3
[[ " $systems " != *" python "* ]] || $py -c 'import fastapi, uvicorn, rq, sqlalchemy, psycopg2' 2>/dev/null || {
  echo "the Python peer needs Debian's packages: apt-get install python3-fastapi python3-uvicorn python3-rq python3-sqlalchemy python3-psycopg2"
  exit 1
}
tmp=$(mktemp -d)
freeport() { $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rport=$(freeport)
hport=$(freeport)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/scriptgen" ./cmd/scriptgen
go build -o "$tmp/submit" ./bench/submit
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes --logfile "$tmp/redis.log" --dir "$tmp"
for _ in $(seq 1 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
psql() { command psql -h 127.0.0.1 -U postgres test -qAtX "$@"; }
base=http://127.0.0.1:$hport
pids=()
workers=""

wait_health() { for _ in $(seq 1 200); do curl -sf "$base/health" >/dev/null && return; sleep 0.1; done; echo "no health at $base"; exit 1; }

start_scriptgen() { # mode schema
  local redis=""
  [ "$1" = queue ] && redis="redis://127.0.0.1:$rport/$((RANDOM % 15 + 1))"
  redis-cli -p "$rport" flushall >/dev/null # the script's own Redis
  export DATABASE_URL="postgres://postgres@127.0.0.1:5432/test?sslmode=disable&search_path=$2"
  LISTEN_ADDR=127.0.0.1:$hport REDIS_URL=$redis GENERATOR=noop LOG_LEVEL=warn "$tmp/scriptgen" serve 2>>"$tmp/sg.log" &
  pids=($!)
  wait_health
  workers=""
  if [ "$1" = queue ]; then
    for _ in 1 2; do
      REDIS_URL=$redis GENERATOR=noop LOG_LEVEL=warn "$tmp/scriptgen" worker 2>>"$tmp/sg-worker.log" &
      pids+=($!); workers="$workers,$!"
    done
  fi
}

start_python() { # mode schema
  redis-cli -p "$rport" flushall >/dev/null # the script's own Redis
  export DATABASE_URL="postgresql+psycopg2://postgres@127.0.0.1:5432/test?options=-csearch_path%3D$2"
  export REDIS_URL="redis://127.0.0.1:$rport/0"
  (cd bench/pybase && $py db.py)
  local mode=rq
  [ "$1" = inprocess ] && mode=background_tasks
  MODE=$mode $py -m uvicorn app:app --app-dir bench/pybase --host 127.0.0.1 --port "$hport" --workers 2 \
    --log-level warning --no-access-log 2>>"$tmp/py.log" &
  pids=($!)
  wait_health
  workers=""
  if [ "$1" = queue ]; then
    for _ in 1 2; do
      (cd bench/pybase && exec rq worker generation -u "$REDIS_URL" --logging_level WARNING) >>"$tmp/py-worker.log" 2>&1 &
      pids+=($!); workers="$workers,$!"
    done
  fi
}

stop_all() {
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  pids=()
}

# check_once system schema jobs: every job succeeded, one episode each, numbers 1..n per project.
check_once() {
  local q
  if [ "$1" = scriptgen ]; then
    q="SELECT (SELECT count(*) FROM $2.jobs WHERE kind = 'generation'), (SELECT count(*) FROM $2.jobs WHERE kind = 'generation' AND status = 'succeeded'),
       (SELECT count(*) FROM $2.episodes), (SELECT count(*) FROM (SELECT project_id FROM $2.episodes GROUP BY project_id HAVING max(number) <> count(*)) g)"
  else
    q="SELECT (SELECT count(*) FROM $2.pb_jobs), (SELECT count(*) FROM $2.pb_jobs WHERE status = 'succeeded'),
       (SELECT count(*) FROM $2.pb_episodes), (SELECT count(*) FROM (SELECT project_id FROM $2.pb_episodes GROUP BY project_id HAVING max(number) <> count(*)) g)"
  fi
  local r
  r=$(psql -c "$q")
  IFS='|' read -r jobs ok eps gaps <<<"$r"
  echo "check $1: jobs=$jobs succeeded=$ok episodes=$eps projects-with-gaps=$gaps"
  if [ "$jobs" != "$3" ] || [ "$ok" != "$3" ] || [ "$eps" != "$3" ] || [ "$gaps" != 0 ]; then
    echo "EXACTLY-ONCE CHECK FAILED for $1 (want $3 jobs, succeeded, episodes)"; exit 1
  fi
}

measure() { # system mode round
  local schema="pyb_${1}_${2}_$3_$$"
  psql -c "CREATE SCHEMA $schema"
  "start_$1" "$2" "$schema"
  local args=(-url "$base" -pid "${pids[0]}" -wait 10m)
  [ -n "$workers" ] && args+=(-worker-pids "${workers#,}")
  local tag="$1/$2#$3"
  echo "== $tag  load: $(cut -d' ' -f1-3 /proc/loadavg)"
  "$tmp/submit" "${args[@]}" -c 10 -n "$submit_n" -warmup 200 -project "c10-$3" -label "$tag c10"
  "$tmp/submit" "${args[@]}" -c 50 -n "$submit_n" -warmup 0 -project "c50-$3" -label "$tag c50"
  "$tmp/submit" "${args[@]}" -c 50 -n "$e2e_n" -warmup 0 -project "e2e-$3" -label "$tag e2e$e2e_n"
  stop_all
  check_once "$1" "$schema" $((200 + 2 * submit_n + e2e_n))
  psql -c "SET client_min_messages = warning; DROP SCHEMA $schema CASCADE"
}

echo "machine: $(nproc) cores, $(grep MemTotal /proc/meminfo | awk '{print $2/1048576 " GiB"}'), $(uname -r), go $(go env GOVERSION), python $($py -V 2>&1 | cut -d' ' -f2)"
for round in $(seq 1 "$rounds"); do
  for mode in $modes; do
    for system in $systems; do
      measure "$system" "$mode" "$round"
    done
  done
done
