#!/usr/bin/env bash
# Durable path vs plain asynq, same Redis, same run, printed as a ratio.
# scriptgen: 50 HTTP clients submit N jobs to `serve` (PostgreSQL, noop
# generator); one `scriptgen worker` runs them through asynq.
# Peer: 50 goroutines enqueue N tasks with plain asynq; an asynq server runs a
# no-op handler. Second peer: the same, with a handler that commits one row
# per task to the same PostgreSQL (what a job with any durable effect costs).
# A third reference: the same `serve` without REDIS_URL (background_tasks,
# MAX_WORKERS=WORKER_CONCURRENCY, its own schema): the HTTP request and the
# job's rows with no queue at all, so the ratio it gets is what the database
# side of a job leaves for the durable path to reach.
# Usage: [WORKER_CONCURRENCY=8] [REPS=3] bench/run-durable.sh [jobs] [projects]
# Jobs default to 20,000, so that each run lasts seconds. Both asynq servers
# (scriptgen's worker and the peer's) look again 50–150 ms after finding their
# queue empty; with asynq's default 0.5–1.5 s the peer, which starts before its
# first task, idled for up to a second of its 2–3 s run.
# (needs PostgreSQL on 127.0.0.1:5432). Both sides run with WORKER_CONCURRENCY.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}
projects=${2:-1}
tmp=$(mktemp -d)
port=16480
trap 'kill $(jobs -p) 2>/dev/null || true; redis-cli -p $port shutdown nosave >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/scriptgen" ./cmd/scriptgen
go build -o "$tmp/submit" ./bench/submit
go build -o "$tmp/asynqplain" ./bench/asynqplain
redis-server --port $port --bind 127.0.0.1 --save "" --appendonly no --daemonize yes --logfile "$tmp/redis.log" --dir "$tmp"
sleep 0.3
schema=benchd_$$
psql -h 127.0.0.1 -U postgres test -qc "CREATE SCHEMA $schema" >/dev/null
# Three scriptgen processes at their default 32 connections each and the peer's 32
# exceed PostgreSQL's default max_connections (100): once scriptgen's pools had
# grown, the peer's handlers were refused connections and asynq retried them (190–400
# tasks/s instead of 6,000–8,000). pool_max_conns (the documented knob) caps each
# scriptgen process at 20, so that all four fit. The peer parses the same URL but
# sets its own pool size.
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/test?sslmode=disable&search_path=$schema&pool_max_conns=20"
export REDIS_URL="redis://127.0.0.1:$port/5" GENERATOR=noop LOG_LEVEL=warn
LISTEN_ADDR=127.0.0.1:18103 "$tmp/scriptgen" serve 2>"$tmp/serve.log" &
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18103/health >/dev/null && break; sleep 0.1; done
MAX_WORKERS=${WORKER_CONCURRENCY:-8} "$tmp/scriptgen" worker 2>"$tmp/worker.log" &
psql -h 127.0.0.1 -U postgres test -qc "CREATE SCHEMA ${schema}_nq" >/dev/null
DATABASE_URL="${DATABASE_URL/search_path=$schema/search_path=${schema}_nq}" REDIS_URL= LISTEN_ADDR=127.0.0.1:18104 \
  MAX_WORKERS=${WORKER_CONCURRENCY:-8} "$tmp/scriptgen" serve 2>"$tmp/serve-nq.log" &
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18104/health >/dev/null && break; sleep 0.1; done
sleep 1
# The machine is shared and a plain asynq run lasts about a second: run the
# three programs REPS times (default 3), alternating, and report the median ratios.
for rep in $(seq 1 "${REPS:-3}"); do
  "$tmp/submit" -url http://127.0.0.1:18103 -c 50 -n "$n" -projects "$projects" -label "durable#$rep" | tee "$tmp/sg.txt"
  "$tmp/asynqplain" -redis 127.0.0.1:$port -db 6 -n "$n" -c 50 -concurrency "${WORKER_CONCURRENCY:-8}" | tee "$tmp/plain.txt"
  sg=$(sed -n 's/.*= \([0-9]*\) jobs\/s/\1/p' "$tmp/sg.txt")
  "$tmp/asynqplain" -redis 127.0.0.1:$port -db 7 -n "$n" -c 50 -concurrency "${WORKER_CONCURRENCY:-8}" \
    -database "$DATABASE_URL" | tee "$tmp/row.txt"
  plain=$(sed -n 's/.*= \([0-9]*\) tasks\/s/\1/p' "$tmp/plain.txt")
  row=$(sed -n 's/.*= \([0-9]*\) tasks\/s/\1/p' "$tmp/row.txt")
  "$tmp/submit" -url http://127.0.0.1:18104 -c 50 -n "$n" -projects "$projects" -label "no-queue#$rep" | tee "$tmp/nq.txt"
  nq=$(sed -n 's/.*= \([0-9]*\) jobs\/s/\1/p' "$tmp/nq.txt")
  awk -v a="$sg" -v b="$plain" -v r="$rep" 'BEGIN { printf "rep %d: ratio %.2f\n", r, a / b }' | tee -a "$tmp/ratios.txt"
  awk -v a="$sg" -v b="$row" -v r="$rep" 'BEGIN { printf "rep %d: ratio to asynq + one row %.2f\n", r, a / b }' | tee -a "$tmp/rowratios.txt"
  awk -v a="$nq" -v b="$plain" -v r="$rep" 'BEGIN { printf "rep %d: no-queue ratio %.2f\n", r, a / b }' | tee -a "$tmp/nqratios.txt"
done
median() { sort -t' ' -k"$1" -n "$2" | awk -v k="$1" '{ r[NR] = $k } END { printf "%.2f (%d reps)", r[int((NR + 1) / 2)], NR }'; }
echo "median ratio scriptgen durable / plain asynq = $(median 4 "$tmp/ratios.txt")"
echo "median ratio scriptgen durable / asynq + one row = $(median 9 "$tmp/rowratios.txt")"
echo "median ratio scriptgen without a queue (background_tasks) / plain asynq = $(median 5 "$tmp/nqratios.txt")"
psql -h 127.0.0.1 -U postgres test -qc "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1
psql -h 127.0.0.1 -U postgres test -qc "DROP SCHEMA ${schema}_nq CASCADE" >/dev/null 2>&1
