//! Duplicate audio end to end, on speech synthesised at test time: the gateway with the shipped
//! meter (Silero VAD + Chromaprint fingerprints) and the print index of the memory store, on a
//! virtual clock so "an hour later" takes no time. A recording streamed by one user and, an hour
//! later, by another through another channel (44.1 kHz stereo, −6 dB, reverb, pink noise at
//! 15 dB SNR) is duplicate audio in the second session; the same recording heard by two users a
//! minute apart (one room), other words, and the same words in another voice are not.
//!
//! espeak-ng and sox must be installed (`bash scripts/test` installs them); the test fails, never
//! skips, without them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fairuse::speech::VadMeters;
use fairuse_domain::classifier::HeuristicClassifier;
use fairuse_domain::ids::Uid;
use fairuse_domain::policy::Policy;
use fairuse_domain::sessions::StreamSession;
use fairuse_domain::store::MemoryStore;
use fairuse_domain::time::{Clock, ManualClock, Timestamp};
use fairuse_server::gateway::{Gateway, GatewaySettings, Upstream};
use fairuse_server::http::{AppState, HttpSettings, router};
use fairuse_server::service::{Notifications, Service, Stores};
use fairuse_test_audio::{TempDir, read_wav, replay_channel, require_tools, speak};
use futures_util::SinkExt;
use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SECRET: &str = "duplicate-audio-test-secret-32-bytes!";
const HOUR_MS: i64 = 3_600_000;

/// About a minute of one narrator: the "recording".
const BOOK: &str = "Chapter one. The harbour town woke slowly under a grey sky, and the fishing boats rocked \
    against the pier while gulls argued over the morning catch. Martha opened the bakery at six, as her mother \
    had done before her, and set the first loaves in the window. The smell of bread drifted down the hill to the \
    station, where the early train was already late. Nobody in the town remembered a morning when it had left on \
    time, and nobody seemed to mind. Down at the pier, old Thomas mended his nets and told anyone who would listen \
    that a storm was coming, although the sea was flat and the wind had not moved a single flag. The schoolteacher \
    hurried past with a stack of papers under her arm, counting the minutes until the bell. At the top of the hill \
    the lighthouse stood white against the clouds, its lamp dark for the day, its keeper asleep after the long \
    night. In the square the market traders unfolded their tables, arranged apples in careful pyramids, and argued \
    about the price of cheese. A dog chased a paper bag across the cobblestones until the wind carried it over the \
    wall and out of sight. By nine the town was fully awake, and the story of the stranger who had arrived on the \
    night train had already reached every kitchen.";
/// Other words, another voice.
const TALK: &str = "Okay, so before we start, can everyone hear me? Great. The first item is the budget for next \
    quarter. Priya, you had some numbers on the hiring plan. Right, we agreed to wait until the review in March, \
    but the team in Lisbon needs two more engineers before then. Can we move the design review to Thursday? I have \
    a conflict on Wednesday afternoon. Let's also check whether the vendor contract renews automatically, because \
    last year it did and nobody noticed until the invoice came.";

struct App {
    addr: std::net::SocketAddr,
    service: Arc<Service>,
}

async fn spawn_app(clock: Arc<ManualClock>) -> App {
    let service = Arc::new(Service::new(
        Stores::single(Arc::new(MemoryStore::new())),
        Policy::default(),
        clock as Arc<dyn Clock>,
        Arc::new(HeuristicClassifier),
        Notifications::default(),
    ));
    let env = HashMap::from([("FAIRUSE_JWT_HS256_SECRET".to_string(), SECRET.to_string())]);
    let auth = fairuse_auth::Authenticator::from_env_map(&env).unwrap();
    let settings = GatewaySettings {
        upstream: Upstream::None,
        flush_interval: Duration::from_millis(200),
        ..GatewaySettings::default()
    };
    let gateway = Arc::new(Gateway::new(settings, Arc::new(VadMeters::new().unwrap())));
    let app = router(AppState {
        service: service.clone(),
        auth: Arc::new(auth),
        settings: HttpSettings::default(),
        metrics: None,
        ready: Arc::new(|| Box::pin(async { Ok(()) })),
    })
    .layer(axum::Extension(gateway));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    App { addr, service }
}

/// A user token issued at the service clock's now.
fn token(app: &App, uid: &str) -> String {
    let now = app.service.now().millis() / 1000;
    let claims = serde_json::json!({"sub": uid, "iat": now - 5, "exp": now + 3600});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Streams the WAV file at `path` as `who` (in 20 ms frames, as fast as the socket takes them) and
/// answers the session once the gateway recorded it closed.
async fn stream(app: &App, who: &str, path: &str) -> StreamSession {
    let (samples, spec) = read_wav(path);
    let start = app.service.now();
    let query = format!("encoding=linear16&sample_rate={}&channels={}", spec.sample_rate, spec.channels);
    let mut req = format!("ws://{}/v1/listen?{query}", app.addr).into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {}", token(app, who)).parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("connect to the gateway");
    let frame = (spec.sample_rate / 50 * u32::from(spec.channels)) as usize;
    for chunk in samples.chunks(frame) {
        let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
        ws.send(Message::Binary(bytes.into())).await.unwrap();
    }
    ws.send(Message::Text(r#"{"type":"CloseStream"}"#.into())).await.unwrap();
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
        if matches!(msg, Message::Close(_)) {
            break;
        }
    }
    let uid = Uid::parse(who).unwrap();
    for _ in 0..400 {
        let sessions = app.service.stores().conversations.stream_sessions_since(&uid, start, 10).await.unwrap();
        if let Some(s) = sessions.into_iter().rfind(|s| s.closed && s.started_at >= start) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{who}'s session was not recorded closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_heard_again_an_hour_later_is_duplicate_audio_and_live_or_new_speech_is_not() {
    require_tools(&[("espeak-ng", "--version"), ("sox", "--version")]);
    let dir = TempDir::new("duplicate-audio");
    let book = speak(&dir, "book", "en-us", BOOK);
    let replayed = replay_channel(&dir, "book-replayed", &book, 15.0);
    let other_voice = speak(&dir, "book-en-gb", "en-gb", BOOK);
    let talk = speak(&dir, "talk", "en-us+m3", TALK);

    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_780_000_000_000)));
    let app = spawn_app(clock.clone()).await;
    let first = stream(&app, "ann", &book).await;
    assert!(first.speech_ms >= 55_000, "the recording is over a minute of speech: {first:?}");
    assert_eq!((first.duplicate_own_ms, first.duplicate_other_ms), (0, 0), "the first hearing repeats nothing");

    // An hour later Bob's phone hears it played aloud in another room.
    clock.advance_ms(HOUR_MS);
    let later = stream(&app, "bob", &replayed).await;
    assert_eq!(later.duplicate_own_ms, 0);
    assert!(
        later.duplicate_other_ms * 10 >= later.speech_ms * 6,
        "at least 60 % of Bob's speech repeats Ann's recording: {later:?}"
    );
    println!(
        "replayed an hour later: {} ms of {} ms speech repeat the first hearing (shift {} ms)",
        later.duplicate_other_ms, later.speech_ms, later.duplicate_of[0].shift_ms
    );
    let m = &later.duplicate_of[0];
    assert_eq!((m.uid.as_str(), m.session_id.as_str(), m.own), ("ann", first.session_id.as_str(), false));
    assert!((m.shift_ms - HOUR_MS).abs() <= 2_000, "{m:?}");

    // Other words in another voice, and the same words read by another voice: new recordings.
    clock.advance_ms(HOUR_MS);
    let meeting = stream(&app, "cat", &talk).await;
    assert_eq!((meeting.duplicate_own_ms, meeting.duplicate_other_ms), (0, 0), "{meeting:?}");
    let reread = stream(&app, "dan", &other_voice).await;
    assert_eq!((reread.duplicate_own_ms, reread.duplicate_other_ms), (0, 0), "{reread:?}");

    // Two wearers in one room: the same audio a minute apart is never duplicate audio.
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_780_000_000_000)));
    let room = spawn_app(clock.clone()).await;
    stream(&room, "eve", &book).await;
    clock.advance_ms(60_000);
    let beside = stream(&room, "fay", &replayed).await;
    assert_eq!((beside.duplicate_own_ms, beside.duplicate_other_ms), (0, 0), "{beside:?}");
}
