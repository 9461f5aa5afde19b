//! The streaming gateway in the real binary with the real VAD: audio in over `/v1/listen`,
//! speech metered by Silero and recorded as the user's usage. `fairuse meter` on the same file
//! gives the same figure.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fairuse-vad/tests/fixtures/speech_16k.wav");

/// The fixture's 16-bit PCM samples (a canonical WAV file: the samples follow the `data` tag).
fn fixture_pcm() -> Vec<i16> {
    let bytes = std::fs::read(FIXTURE).expect("fixture");
    let data = bytes.windows(4).position(|w| w == b"data").expect("data chunk") + 8;
    bytes[data..].chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

#[test]
fn fairuse_meter_reports_the_speech_of_a_wav_file() {
    let out = fairuse_command().args(["meter", "--json", FIXTURE]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["speech_ms"], 2848);
    assert_eq!(v["duration_ms"], 6172);
}

#[tokio::test]
async fn audio_streamed_to_the_gateway_is_metered_by_the_vad_as_the_users_usage() {
    let mut env = default_env();
    env.push(("FAIRUSE_UPSTREAM_STT_URL".into(), "none".into()));
    env.push(("FAIRUSE__GATEWAY__FLUSH_INTERVAL".into(), "200ms".into()));
    let s = TestServer::start_with(env);
    let url = s.url("/v1/listen?encoding=linear16&sample_rate=16000&channels=1").replacen("http://", "ws://", 1);
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {}", hs256_token("quinn", serde_json::json!({}))).parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("the gateway accepts the stream");
    // 20 ms frames, some of them split mid-sample: the meter must see the same audio.
    let pcm = fixture_pcm();
    let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
    for chunk in bytes.chunks(641) {
        ws.send(Message::Binary(chunk.to_vec().into())).await.unwrap();
    }
    ws.send(Message::Text(r#"{"type":"CloseStream"}"#.into())).await.unwrap();
    while let Some(Ok(msg)) = tokio::time::timeout(Duration::from_secs(20), ws.next()).await.ok().flatten() {
        if matches!(msg, Message::Close(_)) {
            break;
        }
    }
    let metered = eventually(Duration::from_secs(20), || async {
        let d = s.decision("quinn").await;
        (d["windows"]["daily_ms"] == 2848).then_some(())
    })
    .await;
    assert!(metered.is_some(), "the VAD's 2,848 ms were recorded: {}", s.decision("quinn").await);
    let r = s.client.get(s.url("/v1/listen?encoding=linear16&sample_rate=16000&channels=1")).send().await.unwrap();
    assert_eq!(r.status(), 401, "a user token is required");
}
