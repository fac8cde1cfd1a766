#!/usr/bin/env bash
# Durable path vs plain asynq, same Redis, same run, printed as a ratio.
# scriptgen: 50 HTTP clients submit N jobs to `serve` (PostgreSQL, noop
# generator); one `scriptgen worker` with concurrency 8 runs them through asynq.
# Peer: 50 goroutines enqueue N tasks with plain asynq; a server with
# concurrency 8 runs a no-op handler.
# Usage: bench/run-durable.sh [jobs] [projects]   (needs PostgreSQL on 127.0.0.1:5432)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5000}
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
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/test?sslmode=disable&search_path=$schema"
export REDIS_URL="redis://127.0.0.1:$port/5" GENERATOR=noop LOG_LEVEL=warn
LISTEN_ADDR=127.0.0.1:18103 "$tmp/scriptgen" serve 2>"$tmp/serve.log" &
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18103/health >/dev/null && break; sleep 0.1; done
MAX_WORKERS=${WORKER_CONCURRENCY:-8} "$tmp/scriptgen" worker 2>"$tmp/worker.log" &
sleep 1
"$tmp/submit" -url http://127.0.0.1:18103 -c 50 -n "$n" -projects "$projects" -label durable | tee "$tmp/sg.txt"
"$tmp/asynqplain" -redis 127.0.0.1:$port -db 6 -n "$n" -c 50 -concurrency 8 | tee "$tmp/plain.txt"
sg=$(sed -n 's/.*= \([0-9]*\) jobs\/s/\1/p' "$tmp/sg.txt")
plain=$(sed -n 's/.*= \([0-9]*\) tasks\/s/\1/p' "$tmp/plain.txt")
awk -v a="$sg" -v b="$plain" 'BEGIN { printf "ratio scriptgen durable / plain asynq = %.2f\n", a / b }'
psql -h 127.0.0.1 -U postgres test -qc "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1
