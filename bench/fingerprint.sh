#!/usr/bin/env bash
# Fingerprint cost beside the VAD's, on the same audio in the same process, on one core.
# Usage: bash bench/fingerprint.sh [rounds, default 3] [CPU seconds per measurement, default 5]
# Writes bench/results/fingerprint.md.
#
# crates/fairuse-fingerprint/examples/fingerprint_speed.rs (release, default x86-64 target) feeds
# crates/fairuse-vad/tests/fixtures/speech_16k.wav repeated 10x (61.7 s, 16 kHz mono) in 20 ms
# frames to a fresh SpeechMeter and then to a fresh FingerprintStream, alternating pass after pass
# until each has spent the given CPU seconds; pinned to CPU 0 with taskset; `rounds` runs, medians
# reported. The ratio fingerprint / VAD is the figure: other load on the machine slows both alike.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
min_cpu=${2:-5}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "bench: rounds must be a positive integer, got '$rounds'" >&2; exit 2; }
[[ $min_cpu =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "bench: CPU seconds must be a number, got '$min_cpu'" >&2; exit 2; }
for tool in sox taskset; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is needed (apt-get install sox util-linux)" >&2; exit 1; }
done

cargo build --release -q -p fairuse-fingerprint --example fingerprint_speed
bin=target/release/examples/fingerprint_speed
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fixture=crates/fairuse-vad/tests/fixtures/speech_16k.wav
sox $(for _ in $(seq 10); do echo "$fixture"; done) "$dir/clip.wav"

field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
load=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
vad=() fp=() ratio=()
for round in $(seq 1 "$rounds"); do
  out=$(taskset -c 0 "$bin" "$dir/clip.wav" "$min_cpu")
  echo "round $round: $out" >&2
  vad+=("$(field vad_us_per_s "$out")")
  fp+=("$(field fp_us_per_s "$out")")
  ratio+=("$(field fp_over_vad "$out")")
  last=$out
done
vad_m=$(median "${vad[@]}")
fp_m=$(median "${fp[@]}")
ratio_m=$(median "${ratio[@]}")
heap=$(field heap_bytes_per_stream "$last")
mkdir -p bench/results
{
  echo "# Fingerprint cost beside the VAD's"
  echo
  echo "\`bash bench/fingerprint.sh $rounds $min_cpu\`, $started, $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)), load average $load at the start; $(rustc --version | cut -d' ' -f1-2)."
  echo
  echo "Clip: \`crates/fairuse-vad/tests/fixtures/speech_16k.wav\` x10 = $(soxi -D "$dir/clip.wav" | xargs printf '%.1f') s of 16 kHz mono, fed in 20 ms frames as the gateway feeds its meter. \`crates/fairuse-fingerprint/examples/fingerprint_speed.rs\` (release) alternates a fresh \`SpeechMeter\` (Silero VAD) and a fresh \`FingerprintStream\` (Chromaprint via rusty-chromaprint, resampling to 11 025 Hz included) over the clip in one process pinned to CPU 0 until each has spent at least $min_cpu CPU s; $rounds rounds, medians. CPU = user + system of the process."
  echo
  echo "| | µs CPU per second of audio (median) | every round | audio s per CPU s |"
  echo "|---|---:|---|---:|"
  echo "| VAD (\`SpeechMeter\`) | $vad_m | ${vad[*]} | $(awk -v u="$vad_m" 'BEGIN { printf "%.0f", 1e6 / u }') |"
  echo "| fingerprint (\`FingerprintStream\`) | $fp_m | ${fp[*]} | $(awk -v u="$fp_m" 'BEGIN { printf "%.0f", 1e6 / u }') |"
  echo
  echo "Fingerprint / VAD = **${ratio_m}x** (every round: ${ratio[*]})."
  echo
  echo "Heap held by one fingerprint stream after 60 s of audio: $(awk -v b="$heap" 'BEGIN { printf "%.2f MiB", b / 1048576 }') ($heap bytes, counted by a global allocator wrapper; $(field codes_per_minute "$last") codes of 4 bytes a minute). Almost all of it is rusty-chromaprint's fixed working buffers (it batches 32 768 input samples), not the codes."
} | tee bench/results/fingerprint.md
