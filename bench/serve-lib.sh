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
