"""A live-transcription client written against the official Deepgram Python SDK (v7), as an app
would write it, pointed at fairuse's gateway by URL. Run by crates/fairuse/tests/deepgram_sdk.rs.

It connects with `client.listen.v1.connect(...)`, streams a 16 kHz mono WAV file in 20 ms frames
(faster than real time), sends KeepAlive, Finalize and CloseStream, and prints one JSON object per
line on stdout for everything that happened:

  {"event": "open"}                      the SDK's OPEN event
  {"event": "message", ...}              each message the SDK handed to the app (its typed model,
                                         dumped back to JSON; `"type": null` when the SDK gave None)
  {"event": "error", "error": ...}       the SDK's ERROR event
  {"event": "close"}                     the SDK's CLOSE event
  {"event": "raw", "text": ...}          with --tap: every text frame on the wire, before the SDK
                                         parses it (see `Tap`)
  {"event": "handshake", ...}            with --tap: the gateway's handshake response headers
  {"event": "sent", ...}                 what the client sent
  {"event": "exception", "error": ...}   an exception the SDK raised to the caller
  {"event": "done", ...}                 the end, with whether a from_finalize result arrived

The user's token comes from the environment (FAIRUSE_TEST_TOKEN), never from argv.
"""

import argparse
import json
import os
import sys
import threading
import time
import traceback
import wave

from deepgram import DeepgramClient
from deepgram.core.events import EventType
from deepgram.environment import DeepgramClientEnvironment

import websockets.sync.client

_print_lock = threading.Lock()


def emit(**fields):
    with _print_lock:
        sys.stdout.write(json.dumps(fields, ensure_ascii=False) + "\n")
        sys.stdout.flush()


class Tap:
    """A transport for the SDK's public `transport_factory` option: the SDK's own connection
    (`websockets.sync.client.connect` with the URL and headers the SDK built), with every text
    frame the gateway sends recorded before the SDK parses it. Nothing is changed on the way.

    It exists because SDK v7 hands a message of a type it does not know (such as fairuse's
    `{"type": "FairUse", ...}`) to the app as `None`: the content only exists on the wire."""

    def __init__(self, url, headers):
        self._ws = websockets.sync.client.connect(url, additional_headers=headers, open_timeout=20)
        response = self._ws.response
        emit(event="handshake", status=response.status_code, headers={k: v for k, v in response.headers.raw_items()})

    def _seen(self, message):
        if isinstance(message, str):
            emit(event="raw", text=message)
        return message

    def send(self, data):
        self._ws.send(data)

    def recv(self):
        return self._seen(self._ws.recv())

    def __iter__(self):
        for message in self._ws:
            yield self._seen(message)

    def close(self):
        self._ws.close()


def describe(message):
    """What the SDK handed to the app, as JSON."""
    if message is None:
        return {"type": None, "sdk_class": "NoneType", "data": None}
    if isinstance(message, (bytes, bytearray)):
        return {"type": "binary", "sdk_class": type(message).__name__, "bytes": len(message)}
    data = message.dict()
    out = {"type": data.get("type"), "sdk_class": type(message).__name__, "data": data}
    # The SDK builds its models without validation when a message does not fit them; check that
    # this one passes the model's own validation.
    try:
        type(message).model_validate(data)
        out["valid"] = True
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        out["valid"] = False
        out["validation_error"] = str(exc)
    if data.get("type") == "Results":
        alts = (data.get("channel") or {}).get("alternatives") or []
        out["transcript"] = alts[0].get("transcript") if alts else None
        out["is_final"] = data.get("is_final")
        out["from_finalize"] = data.get("from_finalize")
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ws-base", required=True, help="the gateway's WebSocket base, ws://host:port")
    parser.add_argument("--wav", required=True)
    parser.add_argument("--speed", type=float, default=4.0, help="times faster than real time")
    parser.add_argument("--tap", action="store_true", help="record raw text frames (transport_factory)")
    parser.add_argument("--expect-finalize", action="store_true", help="wait for the from_finalize result")
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()
    token = os.environ["FAIRUSE_TEST_TOKEN"]

    # The only change an app makes to use fairuse: the environment's WebSocket base (and the
    # REST base, unused here) point at the gateway; the key is the user's token.
    environment = DeepgramClientEnvironment(
        base=args.ws_base.replace("ws://", "http://", 1),
        production=args.ws_base,
        agent=args.ws_base,
        agent_rest=args.ws_base.replace("ws://", "http://", 1),
    )
    options = {"api_key": token, "environment": environment}
    if args.tap:
        options["transport_factory"] = Tap
    client = DeepgramClient(**options)

    with wave.open(args.wav, "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2), "16 kHz mono 16-bit"
        pcm = w.readframes(w.getnframes())
    frame_bytes = 16000 * 2 * 20 // 1000  # 20 ms

    finalized = threading.Event()
    closed = threading.Event()

    def on_message(message):
        d = describe(message)
        emit(event="message", **d)
        if d.get("from_finalize"):
            finalized.set()

    try:
        with client.listen.v1.connect(
            model="nova-3", encoding="linear16", sample_rate=16000, channels=1
        ) as socket:
            socket.on(EventType.OPEN, lambda _: emit(event="open"))
            socket.on(EventType.MESSAGE, on_message)
            socket.on(EventType.ERROR, lambda exc: emit(event="error", error=repr(exc)))
            socket.on(EventType.CLOSE, lambda _: (emit(event="close"), closed.set()))
            listener = threading.Thread(target=socket.start_listening, daemon=True)
            listener.start()

            frames = 0
            for i in range(0, len(pcm), frame_bytes):
                socket.send_media(pcm[i : i + frame_bytes])
                frames += 1
                time.sleep(0.020 / args.speed)
            emit(event="sent", what="audio", bytes=len(pcm), frames=frames)
            socket.send_keep_alive()
            emit(event="sent", what="KeepAlive")
            socket.send_finalize()
            emit(event="sent", what="Finalize")
            if args.expect_finalize and not finalized.wait(args.timeout):
                emit(event="exception", error="no from_finalize result within the timeout")
            socket.send_close_stream()
            emit(event="sent", what="CloseStream")
            if not closed.wait(args.timeout):
                emit(event="exception", error="the stream did not close within the timeout")
            listener.join(args.timeout)
    except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
        emit(event="exception", error=repr(exc), traceback=traceback.format_exc())
    emit(event="done", finalized=finalized.is_set())


if __name__ == "__main__":
    main()
