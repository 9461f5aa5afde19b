//! The `openai` backend against a local server that speaks the chat-completions protocol: it
//! checks the bearer key and the request shape (model, messages, strict json_schema output),
//! records every request, and answers from a script.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use fairuse_domain::classifier::{
    Classifier, ClassifierError, ClassifierInput, Conversation, MAX_EVIDENCE, Recipe, UsageShape, UsageType, Verdict,
    select_recipes,
};
use fairuse_domain::sessions::StreamSession;
use fairuse_domain::time::{MS_PER_HOUR, MS_PER_MINUTE, Timestamp};
use fairuse_llm::{LlmConfig, OpenAiClassifier, PROMPT_VERSION, SCHEMA_NAME};
use serde_json::{Value, json};

const KEY: &str = "sk-test-key-0123456789";
const SERVED_MODEL: &str = "gpt-5.1-2025-11-13";

// ---------------------------------------------------------------------------------------------
// The local chat-completions server.

#[derive(Clone)]
enum Reply {
    /// 200 with this JSON body.
    Json(Value),
    /// Any status with this raw body.
    Status(u16, String),
    /// Waits, then answers.
    Slow(Duration, Box<Reply>),
}

#[derive(Clone, Debug)]
struct Recorded {
    authorization: Option<String>,
    raw: String,
}

#[derive(Clone)]
struct ServerState {
    /// Answers in order; the last one repeats.
    script: Arc<Mutex<VecDeque<Reply>>>,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

struct MockLlm {
    base_url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    /// TCP connections the server accepted.
    connections: Arc<AtomicU64>,
}

impl MockLlm {
    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    fn config(&self) -> LlmConfig {
        LlmConfig::new(self.base_url.clone(), KEY)
    }
}

async fn spawn_mock(script: Vec<Reply>) -> MockLlm {
    let state = ServerState { script: Arc::new(Mutex::new(script.into())), requests: Arc::default() };
    let requests = state.requests.clone();
    let app = Router::new().route("/v1/chat/completions", post(chat_completions)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicU64::new(0));
    let accepted = connections.clone();
    let listener = listener.tap_io(move |_| {
        accepted.fetch_add(1, Ordering::SeqCst);
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    MockLlm { base_url: format!("http://{addr}/v1"), requests, connections }
}

async fn chat_completions(State(state): State<ServerState>, headers: HeaderMap, raw: String) -> Response {
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    state.requests.lock().unwrap().push(Recorded { authorization: authorization.clone(), raw: raw.clone() });
    let error = |status: StatusCode, message: String| (status, axum::Json(json!({"error": {"message": message}})));
    let expected = format!("Bearer {KEY}");
    if authorization.as_deref() != Some(expected.as_str()) {
        // Like some real endpoints, echo what we got: the client must keep it out of its errors.
        let got = authorization.unwrap_or_default();
        return error(StatusCode::UNAUTHORIZED, format!("Incorrect API key provided: {got}")).into_response();
    }
    let Ok(body) = serde_json::from_str::<Value>(&raw) else {
        return error(StatusCode::BAD_REQUEST, "body is not JSON".into()).into_response();
    };
    let model_ok = body["model"].as_str().is_some_and(|m| !m.is_empty());
    let messages_ok = body["messages"].as_array().is_some_and(|m| {
        m.len() >= 2 && m.iter().all(|x| x["role"].is_string() && x["content"].as_str().is_some_and(|c| !c.is_empty()))
    });
    let format = &body["response_format"];
    let format_ok = format["type"] == "json_schema"
        && format["json_schema"]["name"] == SCHEMA_NAME
        && format["json_schema"]["strict"] == true
        && format["json_schema"]["schema"]["type"] == "object";
    if !(model_ok && messages_ok && format_ok) {
        return error(StatusCode::BAD_REQUEST, "missing model, messages or json_schema response_format".into())
            .into_response();
    }
    let reply = {
        let mut script = state.script.lock().unwrap();
        if script.len() > 1 { script.pop_front() } else { script.front().cloned() }
    };
    answer(reply.unwrap_or(Reply::Status(500, "no script".into()))).await
}

async fn answer(mut reply: Reply) -> Response {
    loop {
        match reply {
            Reply::Json(v) => return axum::Json(v).into_response(),
            Reply::Status(code, body) => {
                return (StatusCode::from_u16(code).unwrap(), [("content-type", "application/json")], body)
                    .into_response();
            }
            Reply::Slow(wait, inner) => {
                tokio::time::sleep(wait).await;
                reply = *inner;
            }
        }
    }
}

/// A chat completion whose answer text is `content`.
fn completion(content: &str) -> Reply {
    Reply::Json(json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_764_000_000,
        "model": SERVED_MODEL,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 150, "total_tokens": 1350}
    }))
}

fn verdict_json(score: Value, usage_type: Value, evidence: Value) -> String {
    json!({
        "reasoning": "Sequential chapter titles of one book, one speaker, every night.",
        "evidence": evidence,
        "usage_type": usage_type,
        "misuse_score": score,
        "confidence": 0.8
    })
    .to_string()
}

fn good_answer() -> Reply {
    completion(&verdict_json(
        json!(0.92),
        json!("audiobook"),
        json!([
            {"conversation_id": "c1", "title": "Harry Potter - Chapter 1", "reason": "chapter 1 of a book"},
            {"conversation_id": "c2", "title": "Harry Potter - Chapter 2", "reason": "chapter 2 follows"}
        ]),
    ))
}

// ---------------------------------------------------------------------------------------------
// Inputs and calling conventions.

const OVERVIEW_MARK: &str = "PRIVATE-OVERVIEW-TEXT";

fn conversation(i: usize, title: &str) -> Conversation {
    let start = Timestamp::from_millis(1_764_000_000_000 + i as i64 * 2 * MS_PER_HOUR);
    Conversation {
        conversation_id: format!("c{i}"),
        title: title.into(),
        overview: format!("{OVERVIEW_MARK} {i}: the narrator reads on"),
        category: "entertainment".into(),
        started_at: start,
        finished_at: start.plus_ms(70 * MS_PER_MINUTE),
        source: "omi".into(),
        speaker_count: Some(1),
        word_count: Some(9000),
    }
}

fn input_with(n: usize) -> ClassifierInput {
    ClassifierInput {
        uid: "user-1".into(),
        plan: "unlimited".into(),
        conversations: (1..=n).map(|i| conversation(i, &format!("Harry Potter - Chapter {i}"))).collect(),
        shape: UsageShape {
            speech_ms: 40 * MS_PER_HOUR,
            active_minutes: 2500,
            longest_run_minutes: 240,
            hours_of_day_active: 22,
            mean_density_ms: 55_000,
        },
        window_totals_ms: vec![9 * MS_PER_HOUR, 25 * MS_PER_HOUR, 40 * MS_PER_HOUR],
        sessions: vec![],
    }
}

fn input() -> ClassifierInput {
    input_with(6)
}

/// Short timeouts keep the failure tests quick; a good answer from a local server is instant.
fn classifier(cfg: LlmConfig) -> Arc<OpenAiClassifier> {
    Arc::new(OpenAiClassifier::new(LlmConfig { timeout: Duration::from_secs(5), ..cfg }).unwrap())
}

/// As the service calls it: the async port, awaited on the caller's runtime.
async fn classify(c: &Arc<OpenAiClassifier>, input: ClassifierInput) -> Result<Verdict, ClassifierError> {
    c.classify(&input).await
}

fn request_json(r: &Recorded) -> Value {
    serde_json::from_str(&r.raw).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Answers.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_answer_becomes_a_verdict_with_the_served_model_and_our_prompt_version() {
    let mock = spawn_mock(vec![good_answer()]).await;
    let v = classify(&classifier(mock.config()), input()).await.unwrap();
    assert_eq!(v.misuse_score, 0.92);
    assert_eq!(v.usage_type, UsageType::Audiobook);
    assert_eq!(v.confidence, 0.8);
    assert_eq!(v.evidence.len(), 2);
    assert_eq!(v.evidence[0].conversation_id, "c1");
    assert_eq!(v.evidence[0].title, "Harry Potter - Chapter 1");
    assert_eq!(v.model, SERVED_MODEL, "the model the API says answered");
    assert_eq!(v.prompt_version, PROMPT_VERSION);
    assert_eq!(v.recipes, select_recipes(&input().conversations));
    assert!(!v.recipes.is_empty(), "six 70-minute sessions select recipes");

    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].authorization.as_deref(), Some(format!("Bearer {KEY}").as_str()));
    let body = request_json(&requests[0]);
    assert_eq!(body["model"], "gpt-5.1");
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["messages"][1]["role"], "user");
    let user = body["messages"][1]["content"].as_str().unwrap();
    assert!(user.contains("Harry Potter - Chapter 6"));
    assert!(user.contains("Audiobook check"), "selected recipes are appended");
    let schema = &body["response_format"]["json_schema"]["schema"];
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["properties"]["evidence"]["maxItems"], 10);
    let types = schema["properties"]["usage_type"]["enum"].as_array().unwrap();
    assert!(types.contains(&json!("tv_movie")) && !types.contains(&json!("free_exhausted")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_conversations_the_model_is_not_asked_and_the_answer_is_omis_zero_default() {
    let mock = spawn_mock(vec![good_answer()]).await;
    let v = classify(&classifier(mock.config()), ClassifierInput { conversations: vec![], ..input() }).await.unwrap();
    assert!(mock.requests().is_empty(), "no request reaches the model");
    assert_eq!((v.misuse_score, v.usage_type, v.evidence.len()), (0.0, UsageType::None, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_sessions_are_summarized_in_the_prompt_and_count_for_the_recipes() {
    let mock = spawn_mock(vec![good_answer()]).await;
    // No conversations; five closed 30-minute streams the gateway measured.
    let sessions: Vec<StreamSession> = (0..5)
        .map(|i| {
            let start = Timestamp::from_millis(1_764_000_000_000 + i * 2 * MS_PER_HOUR);
            let mut s = StreamSession::open(format!("stream-{i}"), start);
            s.updated_at = start.plus_ms(30 * MS_PER_MINUTE);
            s.duration_ms = 30 * MS_PER_MINUTE;
            s.speech_ms = 28 * MS_PER_MINUTE;
            s.longest_speech_ms = 26 * MS_PER_MINUTE;
            s.closed = true;
            s
        })
        .collect();
    // One 30-minute conversation far from the streams: something to cite (no conversation, no
    // call), and a sixth 30-minute session for the recipes.
    let mut only = conversation(20, "Evening notes");
    only.finished_at = only.started_at.plus_ms(30 * MS_PER_MINUTE);
    let input = ClassifierInput { conversations: vec![only], sessions, ..input() };
    let v = classify(&classifier(mock.config()), input).await.unwrap();
    assert_eq!(v.recipes, vec![Recipe::Prerecorded, Recipe::Podcast]);
    let user = request_json(&mock.requests()[0])["messages"][1]["content"].as_str().unwrap().to_owned();
    assert!(user.contains("- 5 sessions (0 still open): 2.5 h of audio, 2.3 h of speech"), "{user}");
    assert!(user.contains("under one pause per minute of speech: 5"), "{user}");
    assert!(user.contains("Podcast check"), "{user}");
    assert!(!user.contains("stream-"), "session ids are not sent: {user}");
    let system = request_json(&mock.requests()[0])["messages"][0]["content"].as_str().unwrap().to_owned();
    assert!(system.contains("Never cite a session as evidence"), "{system}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_model_is_recorded_when_the_answer_names_none() {
    let Reply::Json(mut body) = good_answer() else { unreachable!() };
    body.as_object_mut().unwrap().remove("model");
    let mock = spawn_mock(vec![Reply::Json(body)]).await;
    let cfg = LlmConfig { model: "local-llama".into(), ..mock.config() };
    let v = classify(&classifier(cfg), input()).await.unwrap();
    assert_eq!(v.model, "local-llama");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_answer_is_parsed() {
    let text =
        format!("Here is my assessment.\n```json\n{}\n```\n", verdict_json(json!(0.55), json!("podcast"), json!([])));
    let mock = spawn_mock(vec![completion(&text)]).await;
    let v = classify(&classifier(mock.config()), input()).await.unwrap();
    assert_eq!((v.misuse_score, v.usage_type), (0.55, UsageType::Podcast));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_fields_become_zero_empty_and_unknown() {
    let text = r#"{"reasoning":null,"evidence":null,"usage_type":null,"misuse_score":null,"confidence":null}"#;
    let mock = spawn_mock(vec![completion(text)]).await;
    let v = classify(&classifier(mock.config()), input()).await.unwrap();
    assert_eq!(v.misuse_score, 0.0);
    assert_eq!(v.confidence, 0.0);
    assert!(v.evidence.is_empty());
    assert_eq!(v.usage_type, UsageType::Unknown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_service_only_usage_types_become_unknown() {
    for given in ["radio_drama", "free_exhausted"] {
        let mock = spawn_mock(vec![completion(&verdict_json(json!(0.5), json!(given), json!([])))]).await;
        let v = classify(&classifier(mock.config()), input()).await.unwrap();
        assert_eq!(v.usage_type, UsageType::Unknown, "{given}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_outside_zero_to_one_are_clamped() {
    let high = completion(&verdict_json(json!(1.5), json!("tv_movie"), json!([])));
    let low = completion(&verdict_json(json!(-0.2), json!("none"), json!([])));
    let mock = spawn_mock(vec![high, low]).await;
    let c = classifier(mock.config());
    assert_eq!(classify(&c, input()).await.unwrap().misuse_score, 1.0);
    assert_eq!(classify(&c, input()).await.unwrap().misuse_score, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_is_a_bad_answer_and_is_not_retried() {
    let mock =
        spawn_mock(vec![completion("I would rate this user as fairly suspicious, maybe 0.8"), good_answer()]).await;
    let err = classify(&classifier(mock.config()), input()).await.unwrap_err();
    assert!(matches!(err, ClassifierError::BadAnswer(_)), "{err:?}");
    assert_eq!(mock.requests().len(), 1, "a bad answer is not asked again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_a_chat_completion_is_a_bad_answer() {
    let mock = spawn_mock(vec![Reply::Status(200, "<html>gateway</html>".into())]).await;
    let err = classify(&classifier(mock.config()), input()).await.unwrap_err();
    assert!(matches!(err, ClassifierError::BadAnswer(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_a_bad_answer() {
    let mock = spawn_mock(vec![Reply::Json(json!({
        "model": SERVED_MODEL,
        "choices": [{"message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}}]
    }))])
    .await;
    let err = classify(&classifier(mock.config()), input()).await.unwrap_err();
    assert!(matches!(&err, ClassifierError::BadAnswer(m) if m.contains("refused")), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Retries and timeouts.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_is_retried_once_and_the_second_answer_counts() {
    let mock =
        spawn_mock(vec![Reply::Status(500, r#"{"error":{"message":"overloaded"}}"#.into()), good_answer()]).await;
    let v = classify(&classifier(mock.config()), input()).await.unwrap();
    assert_eq!(v.misuse_score, 0.92);
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_errors_fail_after_the_one_retry() {
    let mock = spawn_mock(vec![Reply::Status(503, r#"{"error":{"message":"overloaded"}}"#.into())]).await;
    let err = classify(&classifier(mock.config()), input()).await.unwrap_err();
    assert!(matches!(&err, ClassifierError::Backend(m) if m.contains("503") && m.contains("overloaded")), "{err:?}");
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_is_retried_once() {
    let mock = spawn_mock(vec![Reply::Status(429, r#"{"error":{"message":"slow down"}}"#.into()), good_answer()]).await;
    assert!(classify(&classifier(mock.config()), input()).await.is_ok());
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_error_is_not_retried() {
    let mock =
        spawn_mock(vec![Reply::Status(400, r#"{"error":{"message":"unsupported schema"}}"#.into()), good_answer()])
            .await;
    let err = classify(&classifier(mock.config()), input()).await.unwrap_err();
    assert!(matches!(&err, ClassifierError::Backend(m) if m.contains("400")), "{err:?}");
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_server_times_out_after_the_one_retry() {
    let mock = spawn_mock(vec![Reply::Slow(Duration::from_secs(5), Box::new(good_answer()))]).await;
    let cfg = LlmConfig { timeout: Duration::from_millis(200), ..mock.config() };
    let c = Arc::new(OpenAiClassifier::new(cfg).unwrap());
    let err = classify(&c, input()).await.unwrap_err();
    assert_eq!(err, ClassifierError::Timeout);
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_is_a_backend_error_after_the_retry() {
    // Bind and drop a listener: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let c = classifier(LlmConfig::new(format!("http://127.0.0.1:{port}/v1"), KEY));
    let err = classify(&c, input()).await.unwrap_err();
    assert!(matches!(&err, ClassifierError::Backend(m) if m.contains("connect")), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Evidence.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_citing_a_conversation_not_in_the_input_is_dropped() {
    let evidence = json!([
        {"conversation_id": "c-invented", "title": "The Hobbit - Chapter 1", "reason": "made up"},
        {"conversation_id": "c3", "title": "Chapter three (retold by the model)", "reason": "chapter 3"}
    ]);
    let mock = spawn_mock(vec![completion(&verdict_json(json!(0.9), json!("audiobook"), evidence))]).await;
    let v = classify(&classifier(mock.config()), input()).await.unwrap();
    assert_eq!(v.evidence.len(), 1);
    assert_eq!(v.evidence[0].conversation_id, "c3");
    assert_eq!(v.evidence[0].title, "Harry Potter - Chapter 3", "the host's title, not the model's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_ten_evidence_items_are_cut_to_ten() {
    let evidence: Vec<Value> =
        (1..=14).map(|i| json!({"conversation_id": format!("c{i}"), "title": "", "reason": "chapter"})).collect();
    let mock = spawn_mock(vec![completion(&verdict_json(json!(0.95), json!("audiobook"), json!(evidence)))]).await;
    let v = classify(&classifier(mock.config()), input_with(14)).await.unwrap();
    assert_eq!(v.evidence.len(), MAX_EVIDENCE);
    assert_eq!(v.evidence[0].conversation_id, "c1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_may_only_cite_conversations_the_model_was_shown() {
    // Only the 3 most recent of 8 are shown; citing an older one is citing something unseen.
    let evidence = json!([
        {"conversation_id": "c1", "title": "", "reason": "old"},
        {"conversation_id": "c8", "title": "", "reason": "recent"}
    ]);
    let mock = spawn_mock(vec![completion(&verdict_json(json!(0.5), json!("audiobook"), evidence))]).await;
    let cfg = LlmConfig { max_conversations: 3, ..mock.config() };
    let v = classify(&classifier(cfg), input_with(8)).await.unwrap();
    let cited: Vec<&str> = v.evidence.iter().map(|e| e.conversation_id.as_str()).collect();
    assert_eq!(cited, ["c8"]);
    let user = request_json(&mock.requests()[0])["messages"][1]["content"].as_str().unwrap().to_owned();
    assert!(user.contains("Chapter 6") && user.contains("Chapter 8") && !user.contains("Chapter 5\""));
}

// ---------------------------------------------------------------------------------------------
// Privacy and secrets.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_text_is_never_sent_unless_the_operator_opts_in() {
    let mock = spawn_mock(vec![good_answer()]).await;
    classify(&classifier(mock.config()), input()).await.unwrap();
    let sent = &mock.requests()[0].raw;
    assert!(!sent.contains(OVERVIEW_MARK), "metadata only by default");
    assert!(!sent.contains("user-1"), "the uid is not sent");
    assert!(sent.contains("Harry Potter - Chapter 1"), "titles are metadata");

    let opted_in = LlmConfig { include_text: true, ..mock.config() };
    classify(&classifier(opted_in), input()).await.unwrap();
    assert!(mock.requests()[1].raw.contains(OVERVIEW_MARK));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_never_appears_in_debug_output_or_errors() {
    let mock = spawn_mock(vec![good_answer()]).await;
    let secret = "sk-live-DO-NOT-LEAK-42";
    let c = classifier(LlmConfig::new(mock.base_url.clone(), secret));
    let debug = format!("{c:?} {:?}", c.config());
    assert!(!debug.contains(secret), "{debug}");

    // The server answers 401 and echoes the key it got.
    let err = classify(&c, input()).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(matches!(&err, ClassifierError::Backend(m) if m.contains("401")), "{err:?}");
    assert!(!shown.contains(secret), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");
    assert_eq!(mock.requests().len(), 1, "a rejected key is not retried");
    assert_eq!(mock.requests()[0].authorization.as_deref(), Some(format!("Bearer {secret}").as_str()));
}

// ---------------------------------------------------------------------------------------------
// Runtimes and connections: the call runs on the caller's runtime, through one pooled client.

#[tokio::test(flavor = "current_thread")]
async fn classify_works_on_a_current_thread_runtime_including_the_retry_pause() {
    let mock = spawn_mock(vec![Reply::Status(502, String::new()), good_answer()]).await;
    let v = classify(&classifier(mock.config()), input()).await.unwrap();
    assert_eq!(v.usage_type, UsageType::Audiobook);
    assert_eq!(mock.requests().len(), 2);
}

/// hyper hands a finished HTTP/1 connection back to its pool from the connection's own task, a
/// moment after the caller has the whole body; a call issued in that moment opens a second
/// connection (the retry inside a call waits its pause, calls a real service makes are seconds
/// apart). Without this the connection counts below were flaky on a loaded machine (a CI run saw 2).
async fn let_the_pool_take_the_connection_back() {
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_classifications_reuse_one_pooled_connection() {
    let mock = spawn_mock(vec![good_answer()]).await;
    let c = classifier(mock.config());
    for _ in 0..5 {
        assert_eq!(classify(&c, input()).await.unwrap().misuse_score, 0.92);
        let_the_pool_take_the_connection_back().await;
    }
    assert_eq!(mock.requests().len(), 5);
    assert_eq!(mock.connections(), 1, "one kept-alive connection for five calls, not one per call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_attempt_reuses_the_connection_too() {
    let mock = spawn_mock(vec![Reply::Status(503, String::new()), good_answer()]).await;
    let c = classifier(mock.config());
    assert!(classify(&c, input()).await.is_ok());
    let_the_pool_take_the_connection_back().await;
    assert!(classify(&c, input()).await.is_ok());
    assert_eq!(mock.requests().len(), 3);
    assert_eq!(mock.connections(), 1);
}

// ---------------------------------------------------------------------------------------------
// Metrics: outcomes, latency and tokens (the cost metric).

#[derive(Default)]
struct TestRecorder {
    counters: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    histograms: Mutex<BTreeMap<String, Arc<Samples>>>,
}

#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl metrics::HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

fn key_text(key: &metrics::Key) -> String {
    let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl metrics::Recorder for TestRecorder {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(self.counters.lock().unwrap().entry(key_text(key)).or_default().clone())
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::from_arc(self.histograms.lock().unwrap().entry(key_text(key)).or_default().clone())
    }
}

impl TestRecorder {
    fn counter(&self, key: &str) -> u64 {
        self.counters.lock().unwrap().get(key).map_or(0, |c| c.load(Ordering::Relaxed))
    }
    fn samples(&self, key: &str) -> usize {
        self.histograms.lock().unwrap().get(key).map_or(0, |h| h.0.lock().unwrap().len())
    }
}

#[test]
fn outcomes_latency_and_token_usage_are_metered() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let mock = runtime.block_on(spawn_mock(vec![Reply::Status(500, String::new()), good_answer()]));
    let c = classifier(mock.config());
    // `block_on` drives the call's future right here on this (non-worker) thread, so a
    // thread-local recorder sees its metrics.
    let recorder = TestRecorder::default();
    let v = metrics::with_local_recorder(&recorder, || runtime.block_on(c.classify(&input())));
    assert!(v.is_ok());
    assert_eq!(recorder.counter("fairuse_llm_requests_total{outcome=server_error}"), 1);
    assert_eq!(recorder.counter("fairuse_llm_requests_total{outcome=ok}"), 1);
    assert_eq!(recorder.samples("fairuse_llm_request_seconds{}"), 2);
    assert_eq!(recorder.counter("fairuse_llm_tokens_total{kind=prompt}"), 1200);
    assert_eq!(recorder.counter("fairuse_llm_tokens_total{kind=completion}"), 150);
}
