#!/usr/bin/env bash
# Submission latency, accepted jobs/s at 50 clients, end-to-end jobs/s with the
# noop generator and the server's peak RSS, on SQLite and on PostgreSQL: first
# with the 50 clients sending as fast as they can (saturation), then with the
# same 50 clients offered RATE submissions per second (default 2000, open loop,
# latency from each submission's planned time).
# Usage: [RATE=2000] bench/run-submit.sh [jobs]   (needs PostgreSQL on 127.0.0.1:5432)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/scriptgen" ./cmd/scriptgen
go build -o "$tmp/submit" ./bench/submit
run() {
  local label=$1 db=$2
  LISTEN_ADDR=127.0.0.1:18102 DATABASE_URL=$db GENERATOR=noop REDIS_URL= LOG_LEVEL=warn MAX_WORKERS=4 \
    "$tmp/scriptgen" serve 2>"$tmp/$label.log" &
  local pid=$!
  for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18102/health >/dev/null && break; sleep 0.1; done
  "$tmp/submit" -url http://127.0.0.1:18102 -c 50 -n "$n" -pid "$pid" -label "$label"
  "$tmp/submit" -url http://127.0.0.1:18102 -c 50 -n "$n" -pid "$pid" -label "$label" -rate "${RATE:-2000}"
  kill -TERM "$pid"; wait "$pid" || true
}
run sqlite "sqlite:$tmp/bench.db"
schema=bench_$$
psql -h 127.0.0.1 -U postgres test -qc "CREATE SCHEMA $schema" >/dev/null
run postgres "postgres://postgres@127.0.0.1:5432/test?sslmode=disable&search_path=$schema"
psql -h 127.0.0.1 -U postgres test -qc "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1
