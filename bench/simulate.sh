#!/usr/bin/env bash
# Simulator throughput and peak memory on a gen-trace population, piped (no trace file on disk).
# Usage: bash bench/simulate.sh [users, default 100000] [days, default 7]
# Baseline in the same run: `simulate --parse-only` reads and parses the same trace and applies
# nothing, so the ratio is the engine's own cost. Writes bench/results/simulate-<users>x<days>d.md.
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-100000}
days=${2:-7}
cargo build --release -q --bin fairuse
bin=./target/release/fairuse
gen() { "$bin" gen-trace --users "$users" --days "$days" --abusers 0.02 --seed 1 --quiet --out -; }
measure() { # extra simulate flags...; prints "cpu_s wall_s peak_kb lines usage_lines"
  local log; log=$(mktemp)
  gen | /usr/bin/time -v "$bin" simulate --trace - --classifier scripted --stats --out /dev/null "$@" 2>"$log"
  local user sys wall peak lines usage
  user=$(awk -F': ' '/User time/ {print $2}' "$log")
  sys=$(awk -F': ' '/System time/ {print $2}' "$log")
  peak=$(awk -F': ' '/Maximum resident/ {print $2}' "$log")
  read -r lines usage wall < <(sed -n 's/^simulated \([0-9]*\) lines (\([0-9]*\) usage reports.* in \([0-9.]*\) s.*/\1 \2 \3/p' "$log")
  rm -f "$log"
  echo "$(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}') $wall $peak $lines $usage"
}
read -r base_cpu base_wall base_peak lines usage < <(measure --parse-only)
read -r sim_cpu sim_wall sim_peak _ _ < <(measure)
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }
{
  echo "# Simulator benchmark"
  echo
  echo "\`bash bench/simulate.sh $users $days\` on $(nproc) cores, $(date -u +%Y-%m-%d): gen-trace --users $users --days $days"
  echo "--abusers 0.02 --seed 1 piped into simulate --classifier scripted (one thread); $lines trace lines,"
  echo "$usage of them usage reports. Rates are per CPU second of the simulate process (user + system)."
  echo
  echo "| run | CPU s | usage reports / CPU s | lines / CPU s | peak RSS MiB |"
  echo "|---|---|---|---|---|"
  echo "| parse only (baseline) | $base_cpu | $(rate "$usage" "$base_cpu") | $(rate "$lines" "$base_cpu") | $((base_peak / 1024)) |"
  echo "| simulate | $sim_cpu | $(rate "$usage" "$sim_cpu") | $(rate "$lines" "$sim_cpu") | $((sim_peak / 1024)) |"
  echo
  echo "Simulate costs $(awk -v a="$sim_cpu" -v b="$base_cpu" 'BEGIN { printf "%.2f", a / b }')x the CPU of parsing the trace alone."
} | tee "bench/results/simulate-${users}x${days}d.md"
