//! The `openai` backend: one chat-completions call per classification, with structured output,
//! a timeout per attempt, one retry on transient failures, and metrics for cost and latency.
//!
//! Retry rule: a transport error, a timeout, HTTP 408, 429 or 5xx is retried once after a short
//! pause; other 4xx (bad key, unknown model, rejected schema) and bad answers are not, because
//! the same request would fail the same way and a bad answer costs a full completion. The service
//! releases the classifier lock on any failure, so the next cap check tries again anyway.

use std::error::Error as _;
use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fairuse_domain::classifier::{Classifier, ClassifierError, ClassifierInput, Verdict, select_recipes_with_sessions};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde::Deserialize;

use crate::answer::parse_answer;
use crate::config::{LlmConfig, LlmError};
use crate::prompt::{self, PROMPT_VERSION};

const REQUESTS_METRIC: &str = "fairuse_llm_requests_total";
const SECONDS_METRIC: &str = "fairuse_llm_request_seconds";
const TOKENS_METRIC: &str = "fairuse_llm_tokens_total";

/// Attempts per classification: the first and one retry (SPEC section 3).
const ATTEMPTS: u32 = 2;
/// A pause before the retry, so a 429 or a restarting upstream gets a moment.
const RETRY_PAUSE: Duration = Duration::from_millis(250);
/// A chat completion for this prompt is a few kilobytes; anything far larger is not one.
const MAX_BODY_BYTES: usize = 1 << 20;
/// Error bodies quoted in error texts are cut to this.
const MAX_ERROR_CHARS: usize = 300;

/// Classifies with any OpenAI-compatible chat-completions endpoint.
pub struct OpenAiClassifier {
    cfg: LlmConfig,
    endpoint: String,
    client: reqwest::Client,
}

impl fmt::Debug for OpenAiClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiClassifier").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

/// Why one attempt failed, and whether another attempt could succeed.
struct Failure {
    error: ClassifierError,
    outcome: &'static str,
    retryable: bool,
}

/// What a successful exchange returned, before its content is parsed.
struct Reply {
    model: Option<String>,
    content: Result<String, ClassifierError>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct ChatCompletion {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Option<Vec<Choice>>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<ChoiceMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ApiErrorBody {
    error: ApiErrorDetail,
}

#[derive(Deserialize)]
struct ApiErrorDetail {
    #[serde(default)]
    message: Option<String>,
}

impl OpenAiClassifier {
    /// Validates `cfg` and builds the HTTP client.
    pub fn new(cfg: LlmConfig) -> Result<Self, LlmError> {
        cfg.validate()?;
        let client = reqwest::Client::builder()
            .connect_timeout(cfg.timeout)
            // An API endpoint that redirects is misconfigured; following it would resend the
            // conversation metadata (and, same-origin, the key) somewhere nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            // Connections are pooled (reqwest's default): every call runs on the caller's
            // runtime, so a kept-alive connection is reused by the next classification instead
            // of paying a TCP and TLS handshake per call.
            .user_agent(concat!("fairuse-llm/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| LlmError::Client(e.to_string()))?;
        Ok(OpenAiClassifier { endpoint: cfg.endpoint(), cfg, client })
    }

    pub fn config(&self) -> &LlmConfig {
        &self.cfg
    }

    /// The classification itself ([`Classifier::classify`]). At most two attempts, each bounded by
    /// the configured timeout; needs a tokio runtime with time and IO enabled (the caller's).
    async fn ask(&self, input: &ClassifierInput) -> Result<Verdict, ClassifierError> {
        // Recipes follow the rules over all the user's conversations and gateway sessions, as the
        // heuristic's do, even when the model is shown only the most recent ones.
        let recipes = select_recipes_with_sessions(&input.conversations, &input.sessions);
        if input.conversations.is_empty() {
            // Nothing the model could cite: Omi's 0.0 default, without a call (and without cost).
            metrics::counter!(REQUESTS_METRIC, "outcome" => "no_conversations").increment(1);
            return Ok(Verdict { recipes, ..Verdict::no_evidence() });
        }
        let prepared = prompt::prepare(input, &recipes, self.cfg.max_conversations, self.cfg.include_text);
        let body = prompt::request_body(&self.cfg.model, &prepared.user_message);
        for attempt in 1..=ATTEMPTS {
            let started = Instant::now();
            let sent = match tokio::time::timeout(self.cfg.timeout, self.exchange(body.clone())).await {
                Ok(result) => result,
                Err(_) => Err(Failure { error: ClassifierError::Timeout, outcome: "timeout", retryable: true }),
            };
            metrics::histogram!(SECONDS_METRIC).record(started.elapsed().as_secs_f64());
            let failure = match sent {
                Ok(reply) => {
                    record_usage(reply.usage.as_ref());
                    let parsed = reply.content.and_then(|text| parse_answer(&text, &prepared.shown));
                    match parsed {
                        Ok(answer) => {
                            metrics::counter!(REQUESTS_METRIC, "outcome" => "ok").increment(1);
                            if answer.invented_evidence > 0 {
                                tracing::warn!(
                                    uid = %input.uid,
                                    dropped = answer.invented_evidence,
                                    "llm classifier cited conversations it was not shown; evidence dropped"
                                );
                            }
                            let model =
                                reply.model.filter(|m| !m.trim().is_empty()).unwrap_or_else(|| self.cfg.model.clone());
                            tracing::debug!(
                                uid = %input.uid,
                                %model,
                                attempt,
                                score = answer.misuse_score,
                                elapsed_ms = started.elapsed().as_millis() as u64,
                                "llm classifier answered"
                            );
                            return Ok(Verdict {
                                misuse_score: answer.misuse_score,
                                usage_type: answer.usage_type,
                                confidence: answer.confidence,
                                evidence: answer.evidence,
                                model,
                                prompt_version: PROMPT_VERSION.to_owned(),
                                recipes,
                                demoted: None,
                            }
                            .clamped());
                        }
                        Err(error) => Failure { error, outcome: "bad_answer", retryable: false },
                    }
                }
                Err(failure) => failure,
            };
            metrics::counter!(REQUESTS_METRIC, "outcome" => failure.outcome).increment(1);
            let retry = failure.retryable && attempt < ATTEMPTS;
            tracing::warn!(uid = %input.uid, attempt, retry, error = %failure.error, "llm classifier attempt failed");
            if !retry {
                return Err(failure.error);
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        // The loop returns on its last attempt; this is only reached if ATTEMPTS were 0.
        Err(ClassifierError::Backend("no attempt was made".into()))
    }

    /// One HTTP exchange: send, check the status, read a bounded body, pick the answer text.
    async fn exchange(&self, body: String) -> Result<Reply, Failure> {
        let mut request = self
            .client
            .post(&self.endpoint)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body);
        if !self.cfg.api_key.is_empty() {
            // bearer_auth marks the header sensitive, so it is never printed by the client.
            request = request.bearer_auth(&self.cfg.api_key);
        }
        let mut response = request.send().await.map_err(|e| self.transport_failure(e))?;
        let status = response.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport_failure(e))? {
            if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(Failure {
                    error: ClassifierError::BadAnswer(format!("response larger than {MAX_BODY_BYTES} bytes")),
                    outcome: "bad_answer",
                    retryable: false,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(self.status_failure(status, &bytes));
        }
        let completion: ChatCompletion = serde_json::from_slice(&bytes).map_err(|e| Failure {
            error: ClassifierError::BadAnswer(format!("response is not a chat completion: {e}")),
            outcome: "bad_answer",
            retryable: false,
        })?;
        let choice = completion.choices.and_then(|c| c.into_iter().next());
        let finish_reason = choice.as_ref().and_then(|c| c.finish_reason.clone()).unwrap_or_default();
        let message = choice.and_then(|c| c.message);
        let content = match message {
            Some(ChoiceMessage { refusal: Some(refusal), .. }) if !refusal.trim().is_empty() => {
                Err(ClassifierError::BadAnswer(format!("the model refused: {}", cut(&self.cfg.scrub(&refusal)))))
            }
            Some(ChoiceMessage { content: Some(text), .. }) if !text.trim().is_empty() => Ok(text),
            _ => Err(ClassifierError::BadAnswer(format!("empty answer (finish_reason {finish_reason:?})"))),
        };
        Ok(Reply { model: completion.model, content, usage: completion.usage })
    }

    fn transport_failure(&self, e: reqwest::Error) -> Failure {
        if e.is_timeout() {
            return Failure { error: ClassifierError::Timeout, outcome: "timeout", retryable: true };
        }
        let kind = if e.is_connect() { "connect error" } else { "transport error" };
        // Without the URL: a base URL may carry credentials.
        let e = e.without_url();
        let mut text = format!("{kind}: {e}");
        let mut source = e.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        Failure {
            error: ClassifierError::Backend(cut(&self.cfg.scrub(&text))),
            outcome: "transport_error",
            retryable: true,
        }
    }

    fn status_failure(&self, status: StatusCode, body: &[u8]) -> Failure {
        let detail = serde_json::from_slice::<ApiErrorBody>(body)
            .ok()
            .and_then(|b| b.error.message)
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
        let detail = cut(&self.cfg.scrub(detail.trim()));
        let text = if detail.is_empty() {
            format!("http status {}", status.as_u16())
        } else {
            format!("http status {}: {detail}", status.as_u16())
        };
        let (outcome, retryable) = match status {
            s if s.is_server_error() => ("server_error", true),
            StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT => ("client_error", true),
            _ => ("client_error", false),
        };
        Failure { error: ClassifierError::Backend(text), outcome, retryable }
    }
}

#[async_trait]
impl Classifier for OpenAiClassifier {
    fn name(&self) -> &str {
        "openai"
    }

    /// Awaits the chat-completions call on the caller's runtime, through the one pooled client
    /// built in [`OpenAiClassifier::new`]. It takes at most about twice the configured timeout.
    async fn classify(&self, input: &ClassifierInput) -> Result<Verdict, ClassifierError> {
        self.ask(input).await
    }
}

fn record_usage(usage: Option<&Usage>) {
    let Some(usage) = usage else { return };
    if let Some(n) = usage.prompt_tokens {
        metrics::counter!(TOKENS_METRIC, "kind" => "prompt").increment(n);
    }
    if let Some(n) = usage.completion_tokens {
        metrics::counter!(TOKENS_METRIC, "kind" => "completion").increment(n);
    }
}

fn cut(text: &str) -> String {
    if text.chars().count() > MAX_ERROR_CHARS {
        let mut t: String = text.chars().take(MAX_ERROR_CHARS).collect();
        t.push('…');
        t
    } else {
        text.to_owned()
    }
}
