//! The delivery worker: claims due outbox messages, POSTs them signed, and records the outcome.
//!
//! At least once: a message leaves the outbox only after a 2xx. A crash between the receiver's
//! 2xx and our acknowledgement, or a lost lease, sends it again; receivers deduplicate on
//! `X-Fairuse-Event-Id`, so ordering and duplicates are theirs to absorb and ours to allow.

use std::error::Error as _;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fairuse_domain::error::StoreError;
use fairuse_domain::store::{OutboxMessage, OutboxStore};
use fairuse_domain::time::Clock;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{WebhookConfig, WebhookError, backoff};
use crate::signature::sign;

pub const EVENT_ID_HEADER: &str = "X-Fairuse-Event-Id";
pub const TIMESTAMP_HEADER: &str = "X-Fairuse-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Fairuse-Signature";

const DELIVERIES_METRIC: &str = "fairuse_webhook_deliveries_total";
const DURATION_METRIC: &str = "fairuse_webhook_delivery_seconds";
/// Messages still to be delivered (dead letters excluded), as the outbox last reported them.
pub const BACKLOG_METRIC: &str = "fairuse_webhook_outbox_backlog";
/// How often the worker counts the backlog: a count per pass would be a query per second per
/// replica for a figure alerts read over minutes.
const BACKLOG_REFRESH: Duration = Duration::from_secs(15);

/// Error texts are stored with the message; receivers can answer with long errors chains.
const MAX_ERROR_CHARS: usize = 500;

/// What one pass (or a drain) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Acknowledged with a 2xx and removed from the outbox.
    pub delivered: usize,
    /// Failed and scheduled for another attempt.
    pub failed: usize,
    /// Failed after `max_age` (or could never succeed) and moved to the dead letters.
    pub gave_up: usize,
}

impl DeliveryReport {
    /// Messages this pass sent or tried to send.
    pub fn attempted(&self) -> usize {
        self.delivered + self.failed + self.gave_up
    }

    fn add(&mut self, other: DeliveryReport) {
        self.delivered += other.delivered;
        self.failed += other.failed;
        self.gave_up += other.gave_up;
    }

    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Delivered => self.delivered += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::GaveUp => self.gave_up += 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Delivered,
    Failed,
    GaveUp,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Failed => "failed",
            Outcome::GaveUp => "gave_up",
        }
    }
}

/// Why an attempt failed. `permanent` failures cannot succeed on a retry, so they are not retried.
struct Failure {
    error: String,
    permanent: bool,
}

/// Delivers the outbox to the host's webhook. Cheap to share: wrap it in an `Arc` for [`run`].
///
/// [`run`]: WebhookDeliverer::run
pub struct WebhookDeliverer {
    inner: Arc<Inner>,
}

/// What each concurrent delivery task needs; shared so tasks can be `'static`.
struct Inner {
    cfg: WebhookConfig,
    client: reqwest::Client,
    store: Arc<dyn OutboxStore>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for WebhookDeliverer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookDeliverer").field("cfg", &self.inner.cfg).finish_non_exhaustive()
    }
}

impl WebhookDeliverer {
    /// Validates `cfg` and builds the HTTP client. Redirects are not followed: a 3xx is not an
    /// acknowledgement, and following one would re-POST a signed body to a host nobody configured.
    pub fn new(cfg: WebhookConfig, store: Arc<dyn OutboxStore>, clock: Arc<dyn Clock>) -> Result<Self, WebhookError> {
        cfg.validate()?;
        let client = reqwest::Client::builder()
            // The whole exchange (connect, send, response head) must finish within `timeout`:
            // the SPEC's "no answer within 10 s" is a failure.
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("fairuse-webhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WebhookError::Client(e.to_string()))?;
        Ok(WebhookDeliverer { inner: Arc::new(Inner { cfg, client, store, clock }) })
    }

    pub fn config(&self) -> &WebhookConfig {
        &self.inner.cfg
    }

    /// One pass: claims up to `batch` due messages and attempts them all concurrently, so one
    /// slow receiver costs a pass at most `timeout`, not `batch * timeout`.
    ///
    /// Fails if the outbox cannot be read, or if an outcome could not be recorded (after every
    /// attempt of the pass has finished; such a message is sent again when its lease ends).
    pub async fn deliver_due(&self) -> Result<DeliveryReport, StoreError> {
        let cfg = &self.inner.cfg;
        let now = self.inner.clock.now();
        let due = self.inner.store.claim_due(now, cfg.batch, millis(cfg.lease)).await?;
        let mut tasks = JoinSet::new();
        for msg in due {
            let inner = Arc::clone(&self.inner);
            tasks.spawn(async move { inner.deliver_one(msg).await });
        }
        let mut report = DeliveryReport::default();
        let mut first_store_error = None;
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((outcome, recorded)) => {
                    report.count(outcome);
                    if let Err(e) = recorded {
                        first_store_error.get_or_insert(e);
                    }
                }
                // A panicking task leaves its message leased; it becomes due again at lease end.
                Err(e) => tracing::error!(error = %e, "webhook delivery task failed"),
            }
        }
        match first_store_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Passes until nothing is due or `deadline` has passed, whichever comes first. A pass cut
    /// short by the deadline leaves its messages leased; they are sent again when the lease ends
    /// (possibly twice, which receivers absorb).
    pub async fn drain(&self, deadline: Duration) -> DeliveryReport {
        let mut total = DeliveryReport::default();
        let passes = async {
            loop {
                match self.deliver_due().await {
                    Ok(report) if report.attempted() == 0 => break,
                    Ok(report) => total.add(report),
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook drain stopped: outbox unavailable");
                        break;
                    }
                }
            }
        };
        if tokio::time::timeout(deadline, passes).await.is_err() {
            tracing::warn!(deadline_ms = deadline.as_millis() as u64, "webhook drain stopped at its deadline");
        }
        total
    }

    /// Counts the messages still to be delivered and sets the `fairuse_webhook_outbox_backlog`
    /// gauge to it. Every replica reports the same shared outbox, so dashboards take the `max`.
    pub async fn record_backlog(&self) -> Result<u64, StoreError> {
        let n = self.inner.store.backlog().await?;
        metrics::gauge!(BACKLOG_METRIC).set(n as f64);
        Ok(n)
    }

    /// The background worker: passes back to back while there is work, sleeps `idle` when
    /// nothing was due (or the outbox failed), and returns once `shutdown` is true (or its sender
    /// is gone), after a last drain bounded by the request timeout. Every `BACKLOG_REFRESH` it
    /// also records the backlog.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>, idle: Duration) {
        tracing::info!(idle_ms = idle.as_millis() as u64, "webhook worker started");
        let mut backlog_recorded: Option<Instant> = None;
        loop {
            if *shutdown.borrow_and_update() {
                break;
            }
            if backlog_recorded.is_none_or(|at| at.elapsed() >= BACKLOG_REFRESH) {
                // A failing outbox keeps the last figure; the store error alerts say why.
                if let Err(e) = self.record_backlog().await {
                    tracing::debug!(error = %e, "webhook backlog not counted: outbox unavailable");
                }
                backlog_recorded = Some(Instant::now());
            }
            let rest = match self.deliver_due().await {
                Ok(report) => report.attempted() == 0,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook pass failed: outbox unavailable");
                    true
                }
            };
            if rest {
                tokio::select! {
                    () = tokio::time::sleep(idle) => {}
                    changed = shutdown.changed() => {
                        // A dropped sender can never ask us to stop, and `changed` would return at
                        // once forever after: treat it as the shutdown it almost certainly is.
                        if changed.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        let last = self.drain(self.inner.cfg.timeout).await;
        tracing::info!(
            delivered = last.delivered,
            failed = last.failed,
            gave_up = last.gave_up,
            "webhook worker stopped"
        );
    }
}

impl Inner {
    /// Attempts one message and records the outcome; returns it with the store's answer.
    async fn deliver_one(&self, msg: OutboxMessage) -> (Outcome, Result<(), StoreError>) {
        let attempt = msg.attempts.saturating_add(1);
        let sent = self.send(&msg).await;
        let now = self.clock.now();
        let (outcome, recorded) = match sent {
            Ok(()) => {
                tracing::debug!(event_id = %msg.id, attempt, "webhook delivered");
                (Outcome::Delivered, self.store.delivered(&msg.id, now).await)
            }
            Err(Failure { error, permanent }) => {
                let age_ms = now.millis().saturating_sub(msg.created_at.millis());
                if permanent || age_ms >= millis(self.cfg.max_age) {
                    tracing::error!(
                        event_id = %msg.id,
                        attempt,
                        age_s = age_ms / 1000,
                        error = %error,
                        "webhook given up, moved to the dead letters"
                    );
                    (Outcome::GaveUp, self.store.failed(&msg.id, now, &error, true).await)
                } else {
                    let delay = backoff(&msg.id, attempt, &self.cfg);
                    tracing::warn!(
                        event_id = %msg.id,
                        attempt,
                        error = %error,
                        retry_in_ms = delay.as_millis() as u64,
                        "webhook delivery failed, will retry"
                    );
                    (Outcome::Failed, self.store.failed(&msg.id, now.plus_ms(millis(delay)), &error, false).await)
                }
            }
        };
        metrics::counter!(DELIVERIES_METRIC, "outcome" => outcome.as_str()).increment(1);
        if let Err(e) = &recorded {
            tracing::warn!(
                event_id = %msg.id,
                outcome = outcome.as_str(),
                error = %e,
                "webhook outcome not recorded; the message is attempted again when its lease ends"
            );
        }
        (outcome, recorded)
    }

    async fn send(&self, msg: &OutboxMessage) -> Result<(), Failure> {
        // Our own ids are header-safe; a message that is not could never be sent, so it is not
        // retried for a day.
        let event_id = HeaderValue::from_str(&msg.id)
            .map_err(|_| Failure { error: "event id is not a valid http header value".into(), permanent: true })?;
        // Signed with the send time, not the enqueue time, so receivers can reject stale
        // timestamps without rejecting our retries.
        let timestamp_s = self.clock.now().secs();
        let started = Instant::now();
        let sent = self
            .client
            .post(&self.cfg.url)
            .header(CONTENT_TYPE, "application/json")
            .header(EVENT_ID_HEADER, event_id)
            .header(TIMESTAMP_HEADER, timestamp_s)
            .header(SIGNATURE_HEADER, sign(&self.cfg.secret, timestamp_s, &msg.body))
            .body(msg.body.clone())
            .send()
            .await;
        metrics::histogram!(DURATION_METRIC).record(started.elapsed().as_secs_f64());
        // The response body is not read: the status is the whole answer, and a receiver
        // streaming a large body must not hold the worker.
        match sent {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => {
                Err(Failure { error: format!("http status {}", response.status().as_u16()), permanent: false })
            }
            Err(e) => Err(Failure { error: describe(e, self.cfg.timeout), permanent: false }),
        }
    }
}

/// A failed request as stored text: its kind and cause chain, without the URL (it may carry a
/// token) and, by construction, without the secret (which never enters a request error).
fn describe(e: reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("timeout: no answer within {} ms", timeout.as_millis());
    }
    let kind = if e.is_connect() { "connect error" } else { "request error" };
    let e = e.without_url();
    let mut text = format!("{kind}: {e}");
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if text.chars().count() > MAX_ERROR_CHARS {
        text = text.chars().take(MAX_ERROR_CHARS).collect();
    }
    text
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
