#!/usr/bin/env bash
# Usage: bash bench/redis.sh [seconds per measured run, default 5] [port, default 16399] [connections, default 50]
# Redis benchmark (issues 4 and 12): fairuse's RedisHotStore record-and-check against a replay of
# Omi's v1 Redis command sequence, for users with 10, 1,440 and 10,080 active minutes of history,
# and many clients at once (N connections) against a trivial EVALSHA on the same Redis. Starts a
# PRIVATE redis-server on 127.0.0.1:<port> (no persistence, stopped on exit), runs the example
# crates/fairuse-store-redis/examples/bench_redis.rs against it in release mode (both sides in the
# same run, against the same Redis) and writes bench/results/redis.md.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
port=${2:-16399}
conns=${3:-50}
[[ $secs =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "bench: seconds must be a number, got '$secs'" >&2; exit 2; }
[[ $port =~ ^[0-9]+$ ]] || { echo "bench: port must be a number, got '$port'" >&2; exit 2; }
[[ $conns =~ ^[0-9]+$ ]] || { echo "bench: connections must be a number, got '$conns'" >&2; exit 2; }
for tool in redis-server redis-cli; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is needed (apt-get install redis-server)" >&2; exit 1; }
done
if redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
  echo "bench: something already answers on 127.0.0.1:$port; pick another port (second argument)" >&2
  exit 1
fi

cargo build --release -q -p fairuse-store-redis --example bench_redis

dir=$(mktemp -d)
stop_redis() {
  if [[ -s $dir/redis.pid ]]; then
    local pid; pid=$(cat "$dir/redis.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$dir"
}
trap stop_redis EXIT
redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --daemonize yes \
  --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
for _ in $(seq 1 100); do redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null || { echo "bench: redis-server did not start:" >&2; cat "$dir/redis.log" >&2; exit 1; }

load=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
report=$(./target/release/examples/bench_redis "redis://127.0.0.1:$port" "$secs" 1 "$conns")
version=$(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')
mkdir -p bench/results
{
  echo "# Redis benchmark: fairuse vs Omi v1"
  echo
  echo "\`bash bench/redis.sh $secs $port $conns\`, $started, $(nproc) cores (load average $load at the start): fairuse's RedisHotStore and a redis-rs replay of Omi's v1 command sequence, both measured in the same run against the same private redis-server $version (127.0.0.1:$port, no persistence), client and server on this machine."
  echo
  echo "$report"
} | tee bench/results/redis.md
