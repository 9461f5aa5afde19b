#!/usr/bin/env bash
# Gateway load: how many concurrent real-time 16 kHz mono streams `fairuse serve` sustains on this
# machine with the VAD on and forwarding to a local upstream, and the latency it adds per frame.
# Usage: bash bench/gateway.sh [seconds per run, default 20] [stream counts, default 50,100,200,400,800,1200,1600,2400,3200]
# Writes bench/results/gateway.md. GATEWAY_BIN=<path> runs that fairuse binary instead of
# target/release/fairuse (a build of another revision, for a before/after).
#
# Runs crates/fairuse/examples/gateway_load.rs (release) against a release `fairuse serve` that it
# starts on an embedded store in a temporary directory, with a fake Deepgram-like upstream in the
# same process. For each stream count N: first the baseline, N clients straight to the upstream,
# then N clients (each its own user, HS256 token) through /v1/listen; every client sends 20 ms
# frames of crates/fairuse-vad/tests/fixtures/speech_16k.wav, looped, paced in real time. The ramp
# stops at the first N the gateway does not sustain, then bisects twice. Server, load generator
# and upstream share this machine's cores: compare each gateway row with its own baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
streams=${2:-50,100,200,400,800,1200,1600,2400,3200}
[[ $secs =~ ^[1-9][0-9]*$ ]] || { echo "bench: seconds must be a positive integer, got '$secs'" >&2; exit 2; }
[[ $streams =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "bench: stream counts are like 50,100,200, got '$streams'" >&2; exit 2; }
# Each stream holds two sockets in the load generator and two in the server.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

cargo build --release -q --bin fairuse
cargo build --release -q -p fairuse --example gateway_load
cargo build --release -q -p fairuse-vad --example vad_speed
load=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
report=$(./target/release/examples/gateway_load --fairuse "${GATEWAY_BIN:-target/release/fairuse}" \
  --wav crates/fairuse-vad/tests/fixtures/speech_16k.wav --streams "$streams" --seconds "$secs")
sustained=$(sed -n 's/^sustained_streams=//p' <<<"$report")
# The VAD's own cost in this same run (same binary's kernels, same clip, 5 CPU s, not pinned, as
# the server runs it): µs per 32 ms window × 31.25 windows per second = ms per stream-second.
vad_line=$(./target/release/examples/vad_speed crates/fairuse-vad/tests/fixtures/speech_16k.wav 5)
echo "vad alone: $vad_line" >&2
vad_ms=$(sed -n 's/.*us_per_window=\([^ ]*\).*/\1/p' <<<"$vad_line" | awk '{ printf "%.3f", $1 * 31.25 / 1000 }')
vad_kernels=$(sed -n 's/.*kernels=\([^ ]*\).*/\1/p' <<<"$vad_line")
# Each row's server CPU per stream-second (column 9) over the VAD's alone: the issue's ratio.
report=$(awk -F'|' -v vad="$vad_ms" '
  /^\| streams/ { print $0 " server CPU / VAD alone |"; next }
  /^\|---/ { print $0 "---:|"; next }
  /^\|/ { printf "%s %.2fx |\n", $0, $10 / vad; next }
  { print }' <<<"$report")
mkdir -p bench/results
{
  echo "# Gateway load: concurrent real-time streams through \`fairuse serve\`"
  echo
  echo "\`bash bench/gateway.sh $secs $streams\`, $started, $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)), load average $load at the start; $(rustc --version | cut -d' ' -f1-2)."
  echo
  echo "\`crates/fairuse/examples/gateway_load.rs\` (release) starts a release \`fairuse serve\` (embedded store in a temporary directory, \`FAIRUSE_UPSTREAM_STT_URL\` pointing at a fake Deepgram-like upstream in the load generator's process, HS256 user tokens). For each stream count N it runs the **direct** baseline (N clients straight to the upstream) and then the **gateway** run (N clients, each its own user, through \`/v1/listen?encoding=linear16&sample_rate=16000&channels=1\`: Silero VAD on every 32 ms, audio forwarded upstream). Every client sends 20 ms binary frames (640 bytes) of \`crates/fairuse-vad/tests/fixtures/speech_16k.wav\`, looped, paced in real time for $secs s; the streams' frame clocks are spread over one 20 ms period. Clients and upstream share one clock: latency = the frame's upstream arrival time − its client send time, over every frame of every stream. *Added* = gateway − direct at the same N. A run is sustained when every stream connected, every frame arrived and none arrived more than 1 s after its scheduled send time. Server CPU is \`/proc/<pid>/stat\` user + system over the sending window (in cores: 1.00 = one core busy), RSS at its end; the load generator (clients + upstream, 2 tokio workers) runs on the same 2 cores."
  echo
  grep '^|' <<<"$report"
  echo
  echo "Sustained: **$sustained** concurrent streams (the largest N sustained in this run). Rows are in the order run: the ramp, then the bisection."
  echo
  echo "The VAD alone, measured in this run right after the load (\`crates/fairuse-vad/examples/vad_speed.rs\`, the $vad_kernels kernels, 5 CPU s on the same clip, not pinned): $(sed -n 's/.*us_per_window=\([^ ]*\).*/\1/p' <<<"$vad_line") µs per 32 ms window = **$vad_ms ms per stream-second**. *Server CPU / VAD alone* divides each row's server CPU per stream-second by that: 1.00x would be a gateway whose only cost is the model; the rest is receiving, forwarding, timers and the store."
  echo
  echo "The machine is shared: *machine CPU* is every process's CPU over the sending window, this benchmark's and others'. Where it reads about 2.00 the two cores were saturated and the server got less CPU than its streams needed; frames then queue and arrive late, so the largest sustained N moves from run to run with the other load. *Server CPU ms per stream-s* is the server's cost of one second of one stream (VAD, WebSocket receive and forward) when it keeps up; the VAD's own share is in \`bench/results/vad.md\` (µs per 32 ms window × 31.25 windows a second)."
} | tee bench/results/gateway.md
