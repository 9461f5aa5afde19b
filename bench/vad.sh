#!/usr/bin/env bash
# VAD speed on one core, and decision agreement: our Rust Silero VAD v6 beside Omi's own path.
# Usage: bash bench/vad.sh [rounds, default 3] [CPU seconds per measurement, default 5]
# Writes bench/results/vad.md.
#
# - Rust: crates/fairuse-vad/examples/vad_speed.rs, release build for the default x86-64 target, a
#   SpeechMeter fed 20 ms frames (what the gateway does per client frame), a fresh stream per pass.
# - Omi: Python onnxruntime on silero_vad.onnx from PyPI silero-vad 6.2.3, session options
#   intra_op_num_threads=1, inter_op_num_threads=1, ORT_SEQUENTIAL, one call per 512-sample window
#   with the previous 64 samples of context prepended and the state carried, as Omi's
#   utils/stt/vad.py run_vad_window does, fed the same 20 ms frames through a buffer as its gate.
#   Python packages: a venv under target/bench-venv, pinned in bench/requirements-vad.txt.
#   The forward pass picks its AVX2+FMA kernels at run time when the CPU has them (fairuse_vad::Kernels).
# - Rust, portable kernels: the same binary with VAD_KERNELS=portable, the SSE2 fallback that runs on
#   CPUs without AVX2+FMA (and what shipped before run-time selection).
# - Also, for information only: the same Rust built with -C target-cpu=native (not what ships).
# Same clip for all: crates/fairuse-vad/tests/fixtures/speech_16k.wav repeated 10x (61.7 s). Each
# measurement repeats the clip until it has spent the given CPU seconds; every process is pinned
# to CPU 0 with taskset; Rust, Omi, native alternate for `rounds` rounds and the medians are
# reported. Rates are audio seconds per CPU second (user + system) of the measured process, so a
# busy machine slows both sides alike; the ratio is the figure.
# Optional: VAD_BEFORE_REV=<git revision> adds a row for crates/fairuse-vad as it was at that
# revision (git archive into target/bench-before, built with this vad_speed.rs): a before/after
# in one run, e.g. VAD_BEFORE_REV=33f2a28 for the forward pass before its speed rewrite. The
# revision's example is replaced by this one, which needs `fairuse_vad::Kernels`; for revisions
# before it, the "portable kernels" row is the same forward pass as before run-time selection.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
min_cpu=${2:-5}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "bench: rounds must be a positive integer, got '$rounds'" >&2; exit 2; }
[[ $min_cpu =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "bench: CPU seconds must be a number, got '$min_cpu'" >&2; exit 2; }
for tool in sox taskset python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is needed (apt-get install sox util-linux python3-venv)" >&2; exit 1; }
done

venv=target/bench-venv
req=bench/requirements-vad.txt
if ! cmp -s "$req" "$venv/.fairuse-req-stamp" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -r "$req"
  cp "$req" "$venv/.fairuse-req-stamp"
fi

cargo build --release -q -p fairuse-vad --example vad_speed
RUSTFLAGS="-C target-cpu=native" cargo build --release -q -p fairuse-vad --example vad_speed --target-dir target/bench-native
rust_bin=target/release/examples/vad_speed
native_bin=target/bench-native/release/examples/vad_speed
if [[ -n ${VAD_BEFORE_REV:-} ]]; then
  before_rev=$(git rev-parse --short "$VAD_BEFORE_REV^{commit}")
  before_src=target/bench-before/src
  rm -rf "$before_src"
  mkdir -p "$before_src"
  git archive "$before_rev" | tar -x -C "$before_src"
  mkdir -p "$before_src/crates/fairuse-vad/examples"
  cp crates/fairuse-vad/examples/vad_speed.rs "$before_src/crates/fairuse-vad/examples/"
  cargo build --release -q --manifest-path "$before_src/Cargo.toml" -p fairuse-vad --example vad_speed \
    --target-dir target/bench-before/target
  before_bin=target/bench-before/target/release/examples/vad_speed
fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fixture=crates/fairuse-vad/tests/fixtures/speech_16k.wav
sox $(for _ in $(seq 10); do echo "$fixture"; done) "$dir/clip.wav"

cat >"$dir/omi_vad.py" <<'PY'
"""Omi's VAD path: onnxruntime on silero_vad.onnx, one 512-sample window (+64 context) per call."""
import hashlib
import importlib.util
import os
import sys
import time
import wave

import numpy as np
import onnxruntime as ort

RATE, WINDOW, CONTEXT, FRAME, THRESHOLD = 16000, 512, 64, 320, 0.65
clip, min_cpu, probs_out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
# The model file of the wheel; importing the silero_vad package would import torch.
model = os.path.join(importlib.util.find_spec("silero_vad").submodule_search_locations[0], "data", "silero_vad.onnx")
opts = ort.SessionOptions()
opts.intra_op_num_threads = 1
opts.inter_op_num_threads = 1
opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
opts.log_severity_level = 3
session = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
sr = np.array(RATE, dtype=np.int64)


def run_window(window, state, context):
    """One model call as Omi makes it: context ‖ window, the state in and out, sr."""
    audio = window.reshape(1, -1).astype(np.float32)
    x = np.concatenate([context, audio], axis=1)
    out, state = session.run(None, {"input": x, "state": state, "sr": sr})
    return float(out[0][0]), state, audio[:, -CONTEXT:]


def meter(pcm, on_window):
    """Omi's gate per incoming chunk: PCM16 -> float32, buffered, every whole window run."""
    state = np.zeros((2, 1, 128), dtype=np.float32)
    context = np.zeros((1, CONTEXT), dtype=np.float32)
    buffer = np.zeros(0, dtype=np.float32)
    for i in range(0, len(pcm), 2 * FRAME):
        chunk = np.frombuffer(pcm[i : i + 2 * FRAME], dtype=np.int16).astype(np.float32) / 32768.0
        buffer = np.concatenate([buffer, chunk])
        while len(buffer) >= WINDOW:
            p, state, context = run_window(buffer[:WINDOW], state, context)
            buffer = buffer[WINDOW:]
            on_window(p)


with wave.open(clip) as w:
    assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2), "need 16 kHz mono PCM16"
    pcm = w.readframes(w.getnframes())
audio_s = len(pcm) / 2 / RATE
probs = []
meter(pcm, probs.append)
with open(probs_out, "w") as f:
    f.writelines(f"{p:.9f} {int(p > THRESHOLD)}\n" for p in probs)
speech_ms = 32 * sum(p > THRESHOLD for p in probs)
cpu0, wall0, passes = time.process_time(), time.perf_counter(), 0
while passes < 3 or time.process_time() - cpu0 < min_cpu:
    meter(pcm, lambda p: None)
    passes += 1
cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
with open(model, "rb") as f:
    sha = hashlib.sha256(f.read()).hexdigest()
print(
    f"impl=omi passes={passes} windows={len(probs)} audio_s={audio_s * passes:.3f} cpu_s={cpu:.4f} "
    f"wall_s={wall:.4f} xrt_cpu={audio_s * passes / cpu:.1f} us_per_window={cpu * 1e6 / (len(probs) * passes):.2f} "
    f"speech_ms={speech_ms} threshold={THRESHOLD} ort={ort.__version__} model_sha256={sha}"
)
PY

field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
# agreement A B: "windows differing max|dp|" between two probability files ("p decision" per line).
agreement() {
  paste -d' ' "$1" "$2" | awk '{ d = $1 - $3; if (d < 0) d = -d; if (d > m) m = d; if ($2 != $4) n++ }
    END { printf "%d %d %.2g\n", NR, n, m }'
}

names=(rust omi native portable)
bins=("$rust_bin" "" "$native_bin" "$rust_bin")
if [[ -n ${VAD_BEFORE_REV:-} ]]; then
  names+=(before)
  bins+=("$before_bin")
fi
declare -A xrt us line
load=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
for round in $(seq 1 "$rounds"); do
  for i in "${!names[@]}"; do
    name=${names[$i]}
    if [[ $name == omi ]]; then
      out=$(taskset -c 0 "$venv/bin/python" "$dir/omi_vad.py" "$dir/clip.wav" "$min_cpu" "$dir/omi.txt")
    elif [[ $name == portable ]]; then
      out=$(VAD_KERNELS=portable taskset -c 0 "${bins[$i]}" "$dir/clip.wav" "$min_cpu" "$dir/$name.txt")
    else
      out=$(taskset -c 0 "${bins[$i]}" "$dir/clip.wav" "$min_cpu" "$dir/$name.txt")
    fi
    echo "round $round: $out" >&2
    xrt[$name]+="$(field xrt_cpu "$out") "
    us[$name]+="$(field us_per_window "$out") "
    line[$name]=$out
  done
done

omi_xrt=$(median ${xrt[omi]})
row() { # name label
  local x u ratio agree
  x=$(median ${xrt[$1]})
  u=$(median ${us[$1]})
  ratio=$(awk -v a="$x" -v b="$omi_xrt" 'BEGIN { printf "%.2f", a / b }')
  if [[ $1 == omi ]]; then agree="(reference)"; else
    read -r n d m < <(agreement "$dir/$1.txt" "$dir/omi.txt")
    agree="$n windows, $d differ, max \\|Δp\\| $m"
  fi
  echo "| $2 | $(printf '%.0f' "$x") | $u | ${xrt[$1]% } | $ratio | $(field speech_ms "${line[$1]}") | $agree |"
}
read -r windows differ maxdp < <(agreement "$dir/rust.txt" "$dir/omi.txt")
rust_ratio=$(awk -v a="$(median ${xrt[rust]})" -v b="$omi_xrt" 'BEGIN { printf "%.2f", a / b }')
mkdir -p bench/results
{
  echo "# VAD speed: fairuse's Rust Silero v6 vs Omi's Python onnxruntime path"
  echo
  echo "\`${VAD_BEFORE_REV:+VAD_BEFORE_REV=$VAD_BEFORE_REV }bash bench/vad.sh $rounds $min_cpu\`, $started, $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)), load average $load at the start; $(rustc --version | cut -d' ' -f1-2), Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())'), onnxruntime $(field ort "${line[omi]}")."
  echo
  echo "Clip: \`crates/fairuse-vad/tests/fixtures/speech_16k.wav\` x10 = $(soxi -D "$dir/clip.wav" | xargs printf '%.1f') s of 16 kHz mono ($windows windows of 32 ms). Every process pinned to CPU 0 (\`taskset -c 0\`), one thread; each measurement repeats the clip for at least $min_cpu CPU s with a fresh stream per pass; the implementations alternate for $rounds rounds and the table gives the medians (every round's figure in the fourth column). Rate = audio seconds per CPU second (user + system) of the process."
  echo
  echo "- **Rust**: \`crates/fairuse-vad/examples/vad_speed.rs\`, release, default x86-64 target (SSE2): \`SpeechMeter\` fed 20 ms frames, as the gateway feeds it. The forward pass runs its $(field kernels "${line[rust]}") kernels, picked at run time (\`fairuse_vad::Kernels::detected\`)."
  echo "- **Rust, portable kernels**: the same binary with \`VAD_KERNELS=portable\`: the SSE2 copy of the forward pass that CPUs without AVX2+FMA run (and that every CPU ran before run-time selection)."
  echo "- **Omi**: Python onnxruntime on \`silero_vad.onnx\` from PyPI silero-vad 6.2.3 (sha256 \`$(field model_sha256 "${line[omi]}")\`), intra_op_num_threads=1, inter_op_num_threads=1, ORT_SEQUENTIAL; per 512-sample window one \`session.run\` on the previous 64 samples ‖ the window with the state carried, as Omi's \`run_vad_window\`; fed the same 20 ms frames through a buffer, as Omi's gate. onnxruntime picks its AVX2/AVX-512 kernels at run time."
  echo "- **Rust, target-cpu=native**: the same code built with \`-C target-cpu=native\`, for information; the shipped build does not use it."
  echo
  echo "| implementation | audio s per CPU s (median) | µs per 32 ms window | every round | vs Omi | speech ms at 0.65 | agreement with Omi |"
  echo "|---|---:|---:|---|---:|---:|---|"
  row rust "Rust (fairuse-vad)"
  row omi "Omi: Python + onnxruntime"
  row portable "Rust, portable kernels (VAD_KERNELS=portable)"
  row native "Rust, target-cpu=native (not shipped)"
  [[ -n ${VAD_BEFORE_REV:-} ]] && row before "Rust as of $before_rev (VAD_BEFORE_REV)"
  echo
  portable_ratio=$(awk -v a="$(median ${xrt[rust]})" -v b="$(median ${xrt[portable]})" 'BEGIN { printf "%.2f", a / b }')
  echo "Rust / Omi = **${rust_ratio}x** on one core; run-time kernels / portable kernels = ${portable_ratio}x. Decisions at threshold 0.65: $windows windows, **$differ differ**; max |p_rust − p_omi| = $maxdp."
  if [[ -n ${VAD_BEFORE_REV:-} ]]; then
    echo
    echo "The \"as of $before_rev\" row is the forward pass of that revision, built and measured in this same run with the same example, for a before/after."
  fi
  echo
  echo "Probabilities: the Rust forward pass reads its weights from \`silero_vad_openvino_16k.onnx\`, Omi runs \`silero_vad.onnx\`; both files of the wheel hold the same weights, and \`cargo test -p fairuse-vad --test golden\` holds the Rust probabilities within 1e-4 of onnxruntime's on the committed fixture. Only CPU time of the measured process counts (model and session set-up excluded), so other load on the machine slows both sides alike; the wall-clock rate is in the raw lines on stderr."
} | tee bench/results/vad.md
