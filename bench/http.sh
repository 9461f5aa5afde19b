#!/usr/bin/env bash
# HTTP benchmark: GET /v1/users/{uid}/decision and POST /v1/usage on `fairuse serve` (embedded
# store) beside a trivial axum handler on the same routes, in the same run, with wrk.
# Usage: bash bench/http.sh [seconds per run, default 15] [connections, default 32]
# Writes bench/results/http.md. wrk and both servers share this machine's cores: compare ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
conns=${2:-32}
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || true; }
command -v wrk >/dev/null || { echo "bench: wrk is needed (apt-get install wrk)" >&2; exit 1; }
cargo build --release -q --bin fairuse --example baseline_http
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
./target/release/examples/baseline_http 127.0.0.1:18081 >/dev/null &
FAIRUSE_SERVICE_KEYS=bench-key FAIRUSE_LOG=warn ./target/release/fairuse serve --listen 127.0.0.1:18080 --data-dir "$dir/data" >/dev/null &
for port in 18080 18081; do
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/v1/users/x/decision" -H 'Authorization: Bearer bench-key' >/dev/null 2>&1 && break; sleep 0.1; done
done
# Every benchmark user has some usage, so the decision reads real windows.
for i in $(seq 0 999); do printf '{"uid":"bench%d","lane":"realtime","speech_ms":60000}' "$i"; done \
  | sed 's/}{/},{/g; s/^/{"reports":[/; s/$/]}/' \
  | curl -fsS -X POST http://127.0.0.1:18080/v1/usage -H 'Authorization: Bearer bench-key' -H 'Content-Type: application/json' --data-binary @- >/dev/null

run() { # name port script
  local out; out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency -s "bench/$3" "http://127.0.0.1:$2")
  local rps p99
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  echo "$1 $rps $p99"
}
to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/,"",v); print v/1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v); print v } else if (v ~ /s$/) { sub(/s$/,"",v); print v*1000 } else print v }'; }

results=()
for pair in "decision decision.lua" "usage usage.lua"; do
  set -- $pair
  read -r _ base_rps base_p99 < <(run baseline 18081 "$2")
  read -r _ fu_rps fu_p99 < <(run fairuse 18080 "$2")
  ratio=$(awk -v a="$fu_rps" -v b="$base_rps" 'BEGIN { printf "%.2f", a / b }')
  results+=("| $1 | $(printf '%.0f' "$fu_rps") | $(to_ms "$fu_p99") | $(printf '%.0f' "$base_rps") | $(to_ms "$base_p99") | $ratio |")
done
{
  echo "# HTTP benchmark"
  echo
  echo "\`bash bench/http.sh $secs $conns\` on $(nproc) cores, $(date -u +%Y-%m-%d): wrk -t2 -c$conns, ${secs} s per run,"
  echo "fairuse serve on the embedded store vs a trivial axum handler on the same routes (same run)."
  echo
  echo "| route | fairuse req/s | fairuse p99 ms | baseline req/s | baseline p99 ms | fairuse / baseline |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${results[@]}"
} | tee bench/results/http.md
