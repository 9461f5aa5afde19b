#!/usr/bin/env bash
# Usage: bash bench/prints.sh [users, default 800] [days, default 3] [stream-minutes, default 150] [database URL]
# Print index benchmark (issue 11): what one stream-minute of speech costs the print index
# (lookups of its 121 sampled keys, then their inserts) beside one upsert_stream_session on the
# same store in the same run, the storage per user-day, and a prune of one day; on the embedded
# store (a fresh temporary directory) and PostgreSQL (a fresh schema, dropped at the end; default
# postgres://postgres@127.0.0.1:5432/test, or FAIRUSE_TEST_DATABASE_URL). Runs
# crates/fairuse/examples/print_index.rs (release) and writes bench/results/prints.md.
#
# The default population (800 users, 2% of them speaking 8 h a day, the rest 13 min, x 3 days =
# 6.5 M prints, ~99 per key) is the smallest that fills every key past the lookup's 64-print
# limit, which is where the cost per stream-minute stops growing with users; about 4 minutes on
# the project's 2-core machine, most of it prefilling.
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-800}
days=${2:-3}
minutes=${3:-150}
url=${4:-${FAIRUSE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}}
for n in "$users" "$days" "$minutes"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "bench: users, days and minutes must be positive integers, got '$n'" >&2; exit 2; }
done
command -v pg_isready >/dev/null && { pg_isready -q -d "$url" || {
  echo "bench: PostgreSQL is not answering at $url; start it with: pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start" >&2
  exit 1
}; }

cargo build --release -q -p fairuse --example print_index
load=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
began=$(date +%s)
report=$(./target/release/examples/print_index --users "$users" --days "$days" --minutes "$minutes" --database-url "$url")
took=$(( $(date +%s) - began ))
pg=$(psql -XAtq -d "$url" -c 'SHOW server_version' 2>/dev/null | cut -d' ' -f1 || echo '?')
mkdir -p bench/results
{
  echo "# Print index: cost per stream-minute and storage per user-day"
  echo
  echo "\`bash bench/prints.sh $users $days $minutes\`, $started, $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)), load average $load at the start (load average $(cut -d' ' -f1-3 /proc/loadavg) at the end, ${took} s); $(rustc --version | cut -d' ' -f1-2), bundled SQLite, PostgreSQL $pg on the same machine (shared_buffers $(psql -XAtq -d "$url" -c 'SHOW shared_buffers' 2>/dev/null || echo '?')). \`crates/fairuse/examples/print_index.rs\` (release); its header says exactly what is generated and measured."
  echo
  echo "$report"
} | tee bench/results/prints.md
