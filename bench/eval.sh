#!/usr/bin/env bash
# The classifier evaluation of the README: a labelled gen-trace population through the whole
# ladder with the heuristic classifier, per population: detected, time to restrict, false
# warnings/throttles/restricts, STT saved.
# Usage: bash bench/eval.sh [users, default 10000] [days, default 7] [seed, default 42]
# Writes bench/results/eval-<users>x<days>d-seed<seed>.md. The trace is written to a temporary
# directory (about 1 GB for 10,000 users x 7 days) and removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-10000}
days=${2:-7}
seed=${3:-42}
cargo build --release -q --bin fairuse
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
./target/release/fairuse gen-trace --users "$users" --days "$days" --abusers 0.02 --seed "$seed" \
  --out "$dir/trace.jsonl" --labels "$dir/labels.jsonl" --quiet
out="bench/results/eval-${users}x${days}d-seed${seed}.md"
{
  echo "# Classifier evaluation"
  echo
  echo "\`bash bench/eval.sh $users $days $seed\`, $(date -u +%Y-%m-%d): gen-trace --users $users --days $days --abusers 0.02 --seed $seed, heuristic classifier, default policy."
  echo
  ./target/release/fairuse eval --trace "$dir/trace.jsonl" --labels "$dir/labels.jsonl"
} | tee "$out"
