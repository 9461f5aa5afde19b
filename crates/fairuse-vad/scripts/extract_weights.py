#!/usr/bin/env python3
"""Extract Silero VAD v6 (16 kHz) weights into the raw blob `fairuse-vad` embeds.

Source: PyPI `silero-vad==6.2.3`, file `silero_vad/data/silero_vad_openvino_16k.onnx` (MIT,
"Copyright (c) 2020-present Silero Team"). Not `silero_vad_16k.safetensors`: that is a different
checkpoint whose outputs differ from the ONNX model Omi runs.

Usage:
    pip install onnx numpy
    python3 scripts/extract_weights.py              # writes weights/silero_vad_v6_16k.bin + LICENSE
    python3 scripts/extract_weights.py --describe   # also prints every graph node

Blob format (all little-endian):
    magic b"FVADW001"
    u32 tensor count
    per tensor: u16 name length, name (utf-8), u8 rank, u32 dims[rank], f32 data[prod(dims)]
"""
import argparse
import hashlib
import io
import os
import struct
import subprocess
import sys
import tempfile
import zipfile

WHEEL_VERSION = "6.2.3"
MODEL_PATH_IN_WHEEL = "silero_vad/data/silero_vad_openvino_16k.onnx"
LICENSE_PATH_IN_WHEEL = "silero_vad-6.2.3.dist-info/licenses/LICENSE"
MODEL_SHA256 = "7776b81ad1b0350c15d7f1555943b9232eb53e9ca5d989c6d0cea9ebc8664d87"
PREFIX = "F0::If_0_then_branch__Inline_0__"

# The tensors the Rust forward pass reads, in the order it reads them.
TENSORS = [
    "stft.forward_basis_buffer",
    "encoder.0.reparam_conv.weight",
    "encoder.0.reparam_conv.bias",
    "encoder.1.reparam_conv.weight",
    "encoder.1.reparam_conv.bias",
    "encoder.2.reparam_conv.weight",
    "encoder.2.reparam_conv.bias",
    "encoder.3.reparam_conv.weight",
    "encoder.3.reparam_conv.bias",
    "decoder.rnn.weight_ih",
    "decoder.rnn.weight_hh",
    "decoder.rnn.bias_ih",
    "decoder.rnn.bias_hh",
    "decoder.decoder.2.weight",
    "decoder.decoder.2.bias",
]

CRATE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fetch_wheel(dest):
    subprocess.run(
        [sys.executable, "-m", "pip", "download", f"silero-vad=={WHEEL_VERSION}", "--no-deps", "-d", dest],
        check=True,
    )
    wheels = [f for f in os.listdir(dest) if f.endswith(".whl")]
    if len(wheels) != 1:
        sys.exit(f"expected one wheel in {dest}, found {wheels}")
    return os.path.join(dest, wheels[0])


def load_model():
    """Return (model bytes, licence text), checking the model's SHA-256."""
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(fetch_wheel(tmp)) as wheel:
            model = wheel.read(MODEL_PATH_IN_WHEEL)
            licence = wheel.read(LICENSE_PATH_IN_WHEEL).decode("utf-8")
    digest = hashlib.sha256(model).hexdigest()
    print(f"{MODEL_PATH_IN_WHEEL}: sha256 {digest}, {len(model)} bytes")
    if digest != MODEL_SHA256:
        sys.exit(f"sha256 mismatch: expected {MODEL_SHA256}")
    return model, licence


def describe(graph, numpy_helper, helper):
    for inp in graph.input:
        dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
        print(f"input  {inp.name} {dims}")
    for out in graph.output:
        print(f"output {out.name}")
    for node in graph.node:
        ins = [i.replace(PREFIX, "") for i in node.input]
        outs = [o.replace(PREFIX, "") for o in node.output]
        attrs = {}
        for a in node.attribute:
            if a.name == "value":
                arr = numpy_helper.to_array(a.t)
                attrs["value"] = arr.tolist() if arr.size <= 8 else f"tensor{list(arr.shape)}"
            else:
                attrs[a.name] = helper.get_attribute_value(a)
        print(f"{node.op_type:<16} {ins} -> {outs} {attrs}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--describe", action="store_true", help="print the ONNX graph's nodes")
    parser.add_argument("--out-dir", default=os.path.join(CRATE_DIR, "weights"))
    args = parser.parse_args()

    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model_bytes, licence = load_model()
    model = onnx.load_from_string(model_bytes)
    if args.describe:
        describe(model.graph, numpy_helper, helper)

    # The openvino export stores weights as Constant nodes, not graph initializers; read both.
    found = {t.name.replace(PREFIX, ""): numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    found[node.output[0].replace(PREFIX, "")] = numpy_helper.to_array(a.t)

    blob = io.BytesIO()
    blob.write(b"FVADW001")
    blob.write(struct.pack("<I", len(TENSORS)))
    for name in TENSORS:
        arr = np.ascontiguousarray(found[name], dtype="<f4")
        encoded = name.encode("utf-8")
        blob.write(struct.pack("<H", len(encoded)))
        blob.write(encoded)
        blob.write(struct.pack("<B", arr.ndim))
        for d in arr.shape:
            blob.write(struct.pack("<I", d))
        blob.write(arr.tobytes())
        print(f"  {name} {list(arr.shape)}")

    os.makedirs(args.out_dir, exist_ok=True)
    out = os.path.join(args.out_dir, "silero_vad_v6_16k.bin")
    data = blob.getvalue()
    with open(out, "wb") as f:
        f.write(data)
    with open(os.path.join(args.out_dir, "LICENSE-silero-vad"), "w") as f:
        f.write(licence)
    print(f"wrote {out}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
