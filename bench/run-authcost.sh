#!/usr/bin/env bash
# What access and limits cost a submission (issue 17): bench/authcost runs the
# same scriptgen three times side by side: "on", an API key and the default
# limits (TENANT_RATE 100000 and TENANT_BURST 10000000, so nothing is
# refused); "key", the same with TENANT_RATE=0 (the rate's share); "off",
# AUTH=off and every limit off. Rounds run each in turn, in alternating
# order: 50 clients as fast as they go, then offered RATE/s open loop, N jobs
# a run, the noop generator, MAX_WORKERS=4; on SQLite, then on PostgreSQL.
# With PROFILE=DIR it also takes a CPU profile of each server under
# saturation.
# Usage: [ROUNDS=3] [RATE=1000] [PROFILE=dir] bench/run-authcost.sh [jobs]   (needs PostgreSQL on 127.0.0.1:5432)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-3000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/scriptgen" ./cmd/scriptgen
go build -o "$tmp/authcost" ./bench/authcost
for store in sqlite postgres; do
  profile=()
  if [ -n "${PROFILE:-}" ]; then profile=(-profile "$PROFILE/$store"); fi
  "$tmp/authcost" -scriptgen "$tmp/scriptgen" -store "$store" -modes on,key,off -rounds "${ROUNDS:-3}" -n "$n" -rate "${RATE:-1000}" ${profile[@]+"${profile[@]}"}
  echo
done
