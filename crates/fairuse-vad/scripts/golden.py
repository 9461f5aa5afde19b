#!/usr/bin/env python3
"""Generate the golden fixtures for `fairuse-vad`'s tests.

Writes into tests/fixtures/:
    speech_16k.wav      ~6 s, 16 kHz mono PCM16: silence, two espeak-ng utterances, a tone, silence
    speech_8k.wav       the same clip resampled to 8 kHz by sox (tests the resampler)
    speech_16k.json     onnxruntime's probability for every 512-sample window of speech_16k.wav

The probabilities come from PyPI `onnxruntime` running `silero_vad_openvino_16k.onnx` from PyPI
`silero-vad==6.2.3` (SHA-256 checked), window by window with 64 samples of context and the LSTM state
carried over, exactly as the Rust meter does.

Requires: apt-get install -y espeak-ng sox; pip install onnxruntime numpy
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import wave
import zipfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from extract_weights import MODEL_PATH_IN_WHEEL, MODEL_SHA256, fetch_wheel  # noqa: E402

CRATE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(CRATE_DIR, "tests", "fixtures")
RATE = 16000
WINDOW = 512
CONTEXT = 64

UTTERANCES = [
    ("en-us", 160, "Count only real speech, please."),
    ("en+f3", 175, "Fair use, measured."),
]


def espeak(voice, wpm, text, tmp):
    raw = os.path.join(tmp, "raw.wav")
    out = os.path.join(tmp, "16k.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", raw, text], check=True)
    subprocess.run(["sox", raw, "-r", str(RATE), "-c", "1", "-b", "16", out], check=True)
    with wave.open(out) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768.0


def build_clip(tmp):
    rng = np.random.default_rng(20261128)
    parts = [np.zeros(int(0.4 * RATE))]
    for voice, wpm, text in UTTERANCES:
        parts.append(espeak(voice, wpm, text, tmp))
        parts.append(np.zeros(int(0.5 * RATE)))
    t = np.arange(int(0.6 * RATE)) / RATE
    parts.append(0.2 * sum(np.sin(2 * np.pi * 440 * k * t) / k for k in range(1, 5)))  # non-speech tone
    parts.append(np.zeros(int(0.3 * RATE)))
    clip = np.concatenate(parts)
    clip += rng.normal(0.0, 10 ** (-60 / 20), clip.size)  # -60 dBFS noise floor
    return np.clip(np.round(clip * 32768.0), -32768, 32767).astype("<i2")


def write_wav(path, samples, rate):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


def main():
    import onnxruntime as ort

    os.makedirs(FIXTURES, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(fetch_wheel(tmp)) as wheel:
            model = wheel.read(MODEL_PATH_IN_WHEEL)
        if hashlib.sha256(model).hexdigest() != MODEL_SHA256:
            sys.exit("model sha256 mismatch")
        clip = build_clip(tmp)
        wav16 = os.path.join(FIXTURES, "speech_16k.wav")
        write_wav(wav16, clip, RATE)
        subprocess.run(["sox", wav16, "-r", "8000", os.path.join(FIXTURES, "speech_8k.wav")], check=True)

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    x = clip.astype(np.float32) / np.float32(32768.0)
    state = np.zeros((2, 1, 128), dtype=np.float32)
    context = np.zeros(CONTEXT, dtype=np.float32)
    probs = []
    for start in range(0, x.size - WINDOW + 1, WINDOW):
        window = np.concatenate([context, x[start : start + WINDOW]])[None, :]
        out, state = session.run(None, {"input": window, "state": state})
        probs.append(float(out.reshape(-1)[0]))
        context = window[0, -CONTEXT:]

    golden = {
        "source": "onnxruntime " + ort.__version__ + " on silero_vad_openvino_16k.onnx (silero-vad 6.2.3)",
        "model_sha256": MODEL_SHA256,
        "sample_rate": RATE,
        "window_samples": WINDOW,
        "context_samples": CONTEXT,
        "probabilities": probs,
    }
    with open(os.path.join(FIXTURES, "speech_16k.json"), "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")
    above = sum(p > 0.65 for p in probs)
    print(f"{len(probs)} windows, {above} above 0.65 ({above * 32} ms), clip {clip.size / RATE:.2f} s")


if __name__ == "__main__":
    main()
