//! The streaming gateway with the official Deepgram Python SDK (v7, pinned in
//! `tests/deepgram/requirements.txt`) as the client: the real binary with the real VAD, a local
//! upstream speaking Deepgram's live protocol, and an app-style script
//! (`tests/deepgram/listen_client.py`) that points the SDK at the gateway by URL. What the SDK
//! hands to the app must be what the upstream sent; the vendor key stays between the gateway
//! and the upstream; the user's speech is metered as the VAD counts it.
//!
//! The SDK runs from the virtualenv `target/test-venv` that `bash scripts/test` installs. Without
//! it these tests fail (they never skip) and say how to install it.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request as HsRequest, Response as HsResponse};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fairuse-vad/tests/fixtures/speech_16k.wav");
const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/deepgram/listen_client.py");
const REQUIREMENTS: &str = "crates/fairuse/tests/deepgram/requirements.txt";
const VENDOR_KEY: &str = "vendor-secret-KEY";
/// What the VAD counts in the fixture (`fairuse meter`, and listen.rs).
const FIXTURE_SPEECH_MS: i64 = 2848;
/// The upstream answers every half second of audio (16 kHz, 16-bit mono) with a result.
const RESULT_EVERY_BYTES: usize = 16_000;
const REQUEST_ID: &str = "5d9f3c1e-7a2b-4c8d-9e0f-fa1rc0ffee01";
/// How long one run of the SDK client may take before it is killed (it takes about 2 s).
const CLIENT_LIMIT: Duration = Duration::from_secs(60);

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().and_then(Path::parent).expect("crates/fairuse is two levels below the workspace").to_owned()
}

/// The virtualenv's python, or a failure that says how to make it.
fn venv_python() -> PathBuf {
    let python = workspace_root().join("target/test-venv/bin/python");
    assert!(
        python.is_file(),
        "the Deepgram SDK virtualenv is missing: {} does not exist. Install it with `bash scripts/test`, or \
         `python3 -m venv target/test-venv && target/test-venv/bin/pip install -r {REQUIREMENTS}` from the \
         workspace root",
        python.display()
    );
    python
}

/// The fixture's 16-bit PCM bytes (a canonical WAV file: the samples follow the `data` tag).
fn fixture_pcm_bytes() -> Vec<u8> {
    let bytes = std::fs::read(FIXTURE).expect("fixture");
    let data = bytes.windows(4).position(|w| w == b"data").expect("data chunk");
    let len = u32::from_le_bytes(bytes[data + 4..data + 8].try_into().unwrap()) as usize;
    bytes[data + 8..data + 8 + len].to_vec()
}

// ---- the local upstream: Deepgram's live protocol --------------------------------------------

/// What the upstream saw and sent on one connection.
#[derive(Default, Debug, Clone)]
struct UpstreamConn {
    authorization: Option<String>,
    uri: String,
    audio: Vec<u8>,
    /// Text frames from the gateway, as received.
    controls: Vec<String>,
    /// Text frames sent back, as sent.
    sent: Vec<String>,
}

#[derive(Clone, Default)]
struct UpstreamLog(Arc<Mutex<Vec<UpstreamConn>>>);

impl UpstreamLog {
    fn conns(&self) -> Vec<UpstreamConn> {
        self.0.lock().unwrap().clone()
    }
}

/// The transcript of the `n`th result: plain words, punctuation, quotes, a backslash and
/// non-ASCII text, so a relay that re-encodes anything shows.
fn transcript(n: usize) -> String {
    format!("segment {n} naïve café “quoted” back\\slash 発話 🎙 ok.")
}

/// A `Results` message as Deepgram sends it, in the shape the SDK's `ListenV1Results` model has.
fn results(n: usize, start: f64, duration: f64, is_final: bool, speech_final: bool, from_finalize: bool) -> Value {
    let text = transcript(n);
    let count = text.split(' ').count() as f64;
    let words: Vec<Value> = text
        .split(' ')
        .enumerate()
        .map(|(i, w)| {
            let (s, e) = (start + duration * i as f64 / count, start + duration * (i + 1) as f64 / count);
            json!({"word": w.to_lowercase(), "start": s, "end": e, "confidence": 0.875, "punctuated_word": w})
        })
        .collect();
    json!({
        "type": "Results",
        "channel_index": [0, 1],
        "duration": duration,
        "start": start,
        "is_final": is_final,
        "speech_final": speech_final,
        "channel": {"alternatives": [{"transcript": text, "confidence": 0.9921875, "words": words}]},
        "metadata": {
            "request_id": REQUEST_ID,
            "model_info": {"name": "2-general-nova", "version": "2024-01-18.26916", "arch": "nova-3"},
            "model_uuid": "c0d1a568-ce81-4fea-97e7-bd45cb1fdf3c"
        },
        "from_finalize": from_finalize
    })
}

/// A Deepgram-like live endpoint on 127.0.0.1: records the handshake's `Authorization` and URI,
/// the audio and the control messages; answers each half second of audio with a `Results`
/// message, `KeepAlive` with nothing, `Finalize` with a final result marked `from_finalize`
/// covering the rest of the audio, and `CloseStream` with a `Metadata` message and a close.
// tungstenite's handshake callback fixes its error type (an HTTP response), which is large.
#[allow(clippy::result_large_err)]
async fn spawn_upstream() -> (String, UpstreamLog) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = UpstreamLog::default();
    let log2 = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let log = log2.clone();
            tokio::spawn(async move {
                let seen = Arc::new(Mutex::new(UpstreamConn::default()));
                let seen2 = seen.clone();
                let callback = move |req: &HsRequest, resp: HsResponse| {
                    let mut s = seen2.lock().unwrap();
                    s.uri = req.uri().to_string();
                    s.authorization =
                        req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else { return };
                let index = {
                    let mut all = log.0.lock().unwrap();
                    all.push(seen.lock().unwrap().clone());
                    all.len() - 1
                };
                let update = |f: &mut dyn FnMut(&mut UpstreamConn)| f(&mut log.0.lock().unwrap()[index]);
                // Results sent so far; each covers RESULT_EVERY_BYTES of audio from the start.
                let mut n = 0usize;
                let mut audio_len = 0usize;
                let seconds = |bytes: usize| bytes as f64 / 32_000.0;
                while let Some(Ok(msg)) = ws.next().await {
                    let mut replies = Vec::new();
                    let mut close = false;
                    match msg {
                        Message::Binary(b) => {
                            update(&mut |c| c.audio.extend_from_slice(&b));
                            audio_len += b.len();
                            while audio_len >= (n + 1) * RESULT_EVERY_BYTES {
                                let start = seconds(n * RESULT_EVERY_BYTES);
                                let is_final = n % 2 == 1;
                                replies.push(results(n, start, seconds(RESULT_EVERY_BYTES), is_final, is_final, false));
                                n += 1;
                            }
                        }
                        Message::Text(t) => {
                            update(&mut |c| c.controls.push(t.as_str().to_owned()));
                            let v: Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                            match v["type"].as_str() {
                                Some("KeepAlive") => {}
                                Some("Finalize") => {
                                    let start = seconds(n * RESULT_EVERY_BYTES);
                                    let rest = seconds(audio_len) - start;
                                    replies.push(results(n, start, rest, true, true, true));
                                    n += 1;
                                }
                                Some("CloseStream") => {
                                    replies.push(json!({
                                        "type": "Metadata",
                                        "transaction_key": "deprecated",
                                        "request_id": REQUEST_ID,
                                        "sha256": "0d5a6e2c4b3f1e8d9c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d",
                                        "created": "2026-03-02T10:00:00.000Z",
                                        "duration": seconds(audio_len),
                                        "channels": 1
                                    }));
                                    close = true;
                                }
                                _ => replies.push(json!({"type": "Error", "message": "upstream: unknown message"})),
                            }
                        }
                        Message::Close(_) => break,
                        _ => {}
                    }
                    for r in replies {
                        let text = r.to_string();
                        update(&mut |c| c.sent.push(text.clone()));
                        if ws.send(Message::Text(text.into())).await.is_err() {
                            return;
                        }
                    }
                    if close {
                        let _ = ws.close(None).await;
                        // Drain until the gateway answers the close.
                        while let Some(Ok(_)) = ws.next().await {}
                        return;
                    }
                }
            });
        }
    });
    (format!("ws://{addr}/v1/listen"), log)
}

// ---- the SDK client --------------------------------------------------------------------------

/// Kills the child on every way out (success, assertion failure, timeout).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `listen_client.py` with the venv's python against the gateway and returns the JSON lines
/// it printed. Blocking: call it from `spawn_blocking`.
fn run_sdk_client(python: &Path, ws_base: &str, token: &str, extra: &[&str]) -> Vec<Value> {
    let mut cmd = Command::new(python);
    cmd.arg(CLIENT).args(["--ws-base", ws_base, "--wav", FIXTURE, "--speed", "4", "--timeout", "20"]).args(extra);
    cmd.env("FAIRUSE_TEST_TOKEN", token).env("PYTHONUNBUFFERED", "1").env_remove("DEEPGRAM_API_KEY");
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = KillOnDrop(cmd.spawn().unwrap_or_else(|e| panic!("could not run {}: {e}", python.display())));
    let stdout = child.0.stdout.take().unwrap();
    let mut stderr = child.0.stderr.take().unwrap();
    let out = std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).collect::<Vec<_>>());
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + CLIENT_LIMIT;
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.0.kill();
            let _ = child.0.wait();
            panic!(
                "the SDK client did not finish within {} s; stderr:\n{}",
                CLIENT_LIMIT.as_secs(),
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let lines = out.join().unwrap();
    let stderr = err.join().unwrap();
    assert!(
        status.success(),
        "the SDK client failed ({status}). If the deepgram package is missing, reinstall the virtualenv: \
         `python3 -m venv target/test-venv && target/test-venv/bin/pip install -r {REQUIREMENTS}`.\nstdout:\n{}\n\
         stderr:\n{stderr}",
        lines.join("\n")
    );
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("the client printed a non-JSON line {l:?}: {e}")))
        .collect()
}

async fn sdk_client(ws_base: String, token: String, extra: &'static [&'static str]) -> Vec<Value> {
    let python = venv_python();
    tokio::task::spawn_blocking(move || run_sdk_client(&python, &ws_base, &token, extra)).await.unwrap()
}

fn events<'a>(lines: &'a [Value], event: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["event"] == event).collect()
}

fn gateway_env(upstream_url: &str) -> Vec<(String, String)> {
    let mut env = default_env();
    env.push(("FAIRUSE_UPSTREAM_STT_URL".into(), upstream_url.into()));
    env.push(("FAIRUSE_UPSTREAM_STT_API_KEY".into(), VENDOR_KEY.into()));
    env.push(("FAIRUSE__GATEWAY__FLUSH_INTERVAL".into(), "200ms".into()));
    env
}

fn ws_base(s: &TestServer) -> String {
    s.base.replacen("http://", "ws://", 1).trim_end_matches('/').to_owned()
}

// ---- the tests -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_deepgram_sdk_streams_through_the_gateway_and_gets_the_upstreams_results_unchanged() {
    let python = venv_python();
    let (upstream_url, log) = spawn_upstream().await;
    let s = TestServer::start_with(gateway_env(&upstream_url));
    let token = hs256_token("sdk-user", json!({}));
    let started = Instant::now();
    let lines = sdk_client(ws_base(&s), token.clone(), &["--expect-finalize"]).await;
    eprintln!("the SDK client ran in {:.1} s ({})", started.elapsed().as_secs_f64(), python.display());
    let all = lines.iter().map(Value::to_string).collect::<Vec<_>>().join("\n");

    assert!(events(&lines, "exception").is_empty(), "the SDK raised nothing:\n{all}");
    assert!(events(&lines, "error").is_empty(), "the SDK reported no error:\n{all}");
    assert_eq!(events(&lines, "open").len(), 1, "{all}");
    assert_eq!(events(&lines, "close").len(), 1, "the stream closed once:\n{all}");
    assert_eq!(lines.last().unwrap()["finalized"], true, "the from_finalize result arrived before CloseStream");

    // One upstream connection, with the vendor's key and the client's query, never the user's token.
    let conns = log.conns();
    assert_eq!(conns.len(), 1, "one upstream connection per stream");
    let up = &conns[0];
    assert_eq!(up.authorization.as_deref(), Some(format!("Token {VENDOR_KEY}").as_str()));
    for (name, value) in [("model", "nova-3"), ("encoding", "linear16"), ("sample_rate", "16000"), ("channels", "1")] {
        assert!(up.uri.contains(&format!("{name}={value}")), "the SDK's {name} reached the upstream: {}", up.uri);
    }
    let upstream_saw = format!("{:?} {} {:?}", up.authorization, up.uri, up.controls);
    assert!(!upstream_saw.contains(&token), "the user's JWT never reaches the upstream: {upstream_saw}");

    // The control messages, in order, and the audio, byte for byte.
    let controls: Vec<Value> = up.controls.iter().map(|t| serde_json::from_str(t).unwrap()).collect();
    let kinds: Vec<&str> = controls.iter().map(|c| c["type"].as_str().unwrap_or("?")).collect();
    assert_eq!(kinds, ["KeepAlive", "Finalize", "CloseStream"], "{:?}", up.controls);
    let pcm = fixture_pcm_bytes();
    assert_eq!(events(&lines, "sent")[0]["bytes"], pcm.len(), "the client sent the whole file");
    assert_eq!(up.audio.len(), pcm.len(), "every byte of audio reached the upstream");
    assert!(up.audio == pcm, "the upstream got the file's PCM unchanged");

    // What the SDK handed the app is what the upstream sent: the same messages, in order, each
    // accepted by the SDK's own model (validated, not just constructed).
    let sent: Vec<Value> = up.sent.iter().map(|t| serde_json::from_str(t).unwrap()).collect();
    let n_results = pcm.len() / RESULT_EVERY_BYTES + 1;
    assert_eq!(sent.len(), n_results + 1, "results for each half second, the finalize result and Metadata");
    let received = events(&lines, "message");
    for m in &received {
        assert_eq!(m["valid"], true, "the SDK's model accepts the message: {m}");
        assert!(m["sdk_class"] == "ListenV1Results" || m["sdk_class"] == "ListenV1Metadata", "{m}");
    }
    let received_data: Vec<&Value> = received.iter().map(|m| &m["data"]).collect();
    assert_eq!(received_data, sent.iter().collect::<Vec<_>>(), "the SDK received exactly what the upstream sent");
    let transcripts: Vec<&str> = received.iter().filter_map(|m| m["transcript"].as_str()).collect();
    let expected: Vec<String> = (0..n_results).map(transcript).collect();
    assert_eq!(transcripts, expected, "the transcripts are unchanged");
    let last_result = received.iter().rev().find(|m| m["type"] == "Results").unwrap();
    assert_eq!(last_result["from_finalize"], true);
    assert_eq!(received.last().unwrap()["type"], "Metadata");
    assert!(!all.contains(VENDOR_KEY), "nothing the client received or printed contains the vendor key");

    // The user's speech, as the VAD counts it, recorded once the stream closed.
    let metered = eventually(Duration::from_secs(20), || async {
        let d = s.decision("sdk-user").await;
        (d["windows"]["daily_ms"] == FIXTURE_SPEECH_MS).then_some(())
    })
    .await;
    assert!(metered.is_some(), "the VAD's 2,848 ms were recorded: {}", s.decision("sdk-user").await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.decision("sdk-user").await["windows"]["daily_ms"], FIXTURE_SPEECH_MS, "and counted once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdk_client_whose_budget_is_spent_gets_the_fair_use_event_and_nothing_reaches_the_upstream() {
    venv_python();
    let (upstream_url, log) = spawn_upstream().await;
    let s = TestServer::start_with(gateway_env(&upstream_url));
    // A restricted user who has used up today's STT budget.
    let r = s.admin_post("/v1/admin/fair-use/user/spent/set-stage", OPERATOR_KEY, json!({"stage": "restrict"})).await;
    assert_eq!(r.status(), 200);
    let limit = s.decision("spent").await["stt_budget"]["daily_limit_ms"].as_i64().expect("restrict has a budget");
    let r = s.post_usage(json!({"uid": "spent", "lane": "realtime", "speech_ms": 0, "stt_ms": limit + 1000})).await;
    assert_eq!(r.status(), 200);
    let before = s.decision("spent").await;
    assert_eq!(before["stt_allowed"], false, "{before}");

    let token = hs256_token("spent", json!({}));
    let lines = sdk_client(ws_base(&s), token, &["--tap"]).await;
    let all = lines.iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
    assert!(events(&lines, "exception").is_empty(), "the SDK raised nothing:\n{all}");
    assert!(events(&lines, "error").is_empty(), "the SDK reported no error:\n{all}");
    assert_eq!(events(&lines, "close").len(), 1, "the stream closed:\n{all}");

    // On the wire: the typed event, first, with when the budget resets and the case.
    let raw: Vec<Value> =
        events(&lines, "raw").iter().map(|l| serde_json::from_str(l["text"].as_str().unwrap()).unwrap()).collect();
    let event = raw.first().unwrap_or_else(|| panic!("the client received a message:\n{all}"));
    assert_eq!(event["type"], "FairUse", "{all}");
    assert_eq!(event["event"], "stt_budget_exhausted", "{all}");
    assert_eq!(event["resets_at"], before["stt_budget"]["resets_at"], "{event}");
    assert_eq!(event["case_ref"], before["case_ref"], "{event}");
    // Then the same news in Deepgram's error shape, and nothing else.
    assert_eq!(raw.len(), 2, "the event and its error-shaped notice, nothing else: {raw:?}");
    assert_eq!((raw[1]["type"].as_str(), raw[1]["variant"].as_str()), (Some("Error"), Some("SttBudgetExhausted")));
    // What SDK v7.17.0 does with them: a message type it does not know reaches the app's MESSAGE
    // handler as None (its union parser finds no model and returns None), so the FairUse event
    // only exists on the wire (the test's tap is the SDK's public `transport_factory` option);
    // the error-shaped notice reaches the app as the SDK's own `ListenV1Error`, validated.
    let typed = events(&lines, "message");
    assert_eq!(typed.len(), 2, "the SDK emitted one message for each: {all}");
    assert_eq!(typed[0]["type"], Value::Null, "SDK v7 hands an unknown message type to the app as None: {all}");
    assert_eq!(typed[1]["sdk_class"], "ListenV1Error", "{all}");
    assert_eq!(typed[1]["valid"], true, "{all}");
    assert_eq!(typed[1]["data"]["variant"], "SttBudgetExhausted", "{all}");
    let description = typed[1]["data"]["description"].as_str().unwrap_or_default();
    assert!(description.contains(event["resets_at"].as_str().unwrap()), "the app is told when it resets: {all}");
    assert!(description.contains(event["case_ref"].as_str().unwrap()), "and the case: {all}");
    let handshake = events(&lines, "handshake");
    assert_eq!(handshake.len(), 1, "{all}");
    assert_eq!(handshake[0]["status"], 101);
    assert!(!all.contains(VENDOR_KEY), "nothing the client received contains the vendor key");

    // Nothing reached the upstream: no connection at all, so no audio.
    let conns = log.conns();
    assert_eq!(conns.iter().map(|c| c.audio.len()).sum::<usize>(), 0, "no audio upstream");
    assert!(conns.is_empty(), "the upstream was never contacted: {conns:?}");
    // The speech is still metered, and no forwarded audio was added to the budget.
    let metered = eventually(Duration::from_secs(20), || async {
        let d = s.decision("spent").await;
        (d["windows"]["daily_ms"] == FIXTURE_SPEECH_MS).then_some(d)
    })
    .await;
    let after = metered.unwrap_or_else(|| panic!("the VAD's 2,848 ms were recorded: {}", before));
    assert_eq!(after["stt_budget"]["used_ms"], before["stt_budget"]["used_ms"], "no forwarded audio: {after}");
}
