#!/usr/bin/env bash
# Time to roll back with N queued durable jobs (default 10,000), on SQLite and
# on PostgreSQL, with their tasks waiting in a redis-server of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
tmp=$(mktemp -d)
port=16481
trap 'redis-cli -p $port shutdown nosave >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/rollback" ./bench/rollback
redis-server --port $port --bind 127.0.0.1 --save "" --appendonly no --daemonize yes --logfile "$tmp/redis.log" --dir "$tmp"
sleep 0.3
"$tmp/rollback" -n "$n" -database-url "sqlite:$tmp/rb.db" -redis-url "redis://127.0.0.1:$port/1"
schema=benchrb_$$
psql -h 127.0.0.1 -U postgres test -qc "CREATE SCHEMA $schema" >/dev/null
"$tmp/rollback" -n "$n" -database-url "postgres://postgres@127.0.0.1:5432/test?sslmode=disable&search_path=$schema" -redis-url "redis://127.0.0.1:$port/2"
psql -h 127.0.0.1 -U postgres test -qc "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1
